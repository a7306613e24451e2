//! The pipeline: source -> bounded drop-oldest queue -> inference -> task
//! logic -> sinks, each stage on its own thread, with all frames and tensors
//! allocated once, at start, in a fixed pool of [`Work`] items.
//!
//! The selected tasks ([`Stages`]: level, target or both) each bring a model:
//! the inference stage runs every selected model on the frame (each with its
//! own box resizer) and copies its outputs into the frame's [`Work`] item;
//! the task stage runs every selected task on them and puts the answers in
//! one [`FrameResult`].
//!
//! When inference lags, the source's newest frame evicts the oldest waiting
//! one (counted in `frames_dropped`): on a live screen latency beats
//! completeness. Per-frame errors (a frame the source cannot decode, a failed
//! inference, a sink error) are logged with the frame number, counted and
//! survived; a fatal source error ends the run with what was done so far.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::frame::{Frame, RegionPx};
use crate::infer::preprocess::BoxResizer;
use crate::infer::Backend;
use crate::pool::Pool;
use crate::queue::BoundedQueue;
use crate::result::{FrameResult, LevelEvent};
use crate::sink::{PipelineStatus, Sink};
use crate::source::{Next, Source};
use crate::stats::{LatencyHistogram, RunSummary, StageLatencies};
use crate::task::level::LevelTask;
use crate::task::target::needle_model::NeedleOutputs;
use crate::task::target::{TargetInputs, TargetTask};

/// Interspace entries remembered for the summary (bounded).
const MAX_LEVELS_ENTERED: usize = 512;

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Frames that may wait for inference before the oldest is dropped.
    pub queue_depth: usize,
    /// Largest frame the source may deliver.
    pub max_frame_width_px: u32,
    pub max_frame_height_px: u32,
    /// The image region inside the frame when the source gives none; `None` = whole frame.
    pub image_region: Option<RegionPx>,
    /// No frame at the sinks for this long means the pipeline has stalled
    /// (sinks are told: the fault line goes up, the screen says so).
    pub stall_timeout_ms: u64,
    /// Replay as fast as possible instead of at the recorded rate. A file
    /// replayed fast has no real-time deadline, so the source waits for room
    /// in the queue instead of dropping frames; paced and live sources drop
    /// the oldest waiting frame.
    pub fast: bool,
    /// Pace the source at this rate instead of its recorded one (benchmarks).
    pub pace_fps: Option<f64>,
}

/// The level task with its model.
pub struct LevelStage {
    pub backend: Box<dyn Backend>,
    pub task: LevelTask,
}

/// The target task with its model.
pub struct TargetStage {
    pub backend: Box<dyn Backend>,
    pub task: TargetTask,
}

/// The tasks that run, each with its model.
#[derive(Default)]
pub struct Stages {
    pub level: Option<LevelStage>,
    pub target: Option<TargetStage>,
}

/// One frame on its way through the pipeline, with every task's tensors.
pub struct Work {
    pub frame: Frame,
    /// The image region the models saw.
    region: RegionPx,
    thumb: Vec<f32>,
    logits: [f32; 4],
    level_ok: bool,
    heatmap: Vec<f32>,
    plane_logit: f32,
    target_input_mean: f32,
    target_ok: bool,
    /// The target model's needle outputs (empty when it has none).
    needle_tip: Vec<f32>,
    needle_entry: Vec<f32>,
    needle_logit: f32,
    needle_ok: bool,
    entered: Instant,
}

#[derive(Default)]
struct SourceStats {
    frames_in: u64,
    frame_errors: u64,
    dropped: u64,
    gaps: u64,
    error: Option<String>,
}

#[derive(Default)]
struct InferStats {
    preprocess: LatencyHistogram,
    inference: LatencyHistogram,
    errors: u64,
}

#[derive(Default)]
struct TaskStats {
    processed: u64,
    sink_errors: u64,
    task: LatencyHistogram,
    sinks: LatencyHistogram,
    end_to_end: LatencyHistogram,
    levels_entered: Vec<&'static str>,
}

/// Runs `source` through the stages to `sinks` until the source ends, a fatal
/// source error, or `stop` is set. Returns the run's summary (also given to
/// every sink's `finish`).
pub fn run(
    mut source: Box<dyn Source>,
    stages: Stages,
    mut sinks: Vec<Box<dyn Sink>>,
    opts: &PipelineOptions,
    stop: Arc<AtomicBool>,
) -> RunSummary {
    let info = source.info().clone();
    let max_w = info.max_width_px.max(1).min(opts.max_frame_width_px);
    let max_h = info.max_height_px.max(1).min(opts.max_frame_height_px);
    let frame_bytes = max_w as usize * max_h as usize;
    let Stages { level, target } = stages;
    let thumb_len = level
        .as_ref()
        .map(|l| {
            let (h, w) = l.backend.manifest().input_hw();
            h * w
        })
        .unwrap_or(0);
    let heat_len = target
        .as_ref()
        .map(|t| {
            let g = t.task.layout().grid;
            g.width_cells * g.height_cells
        })
        .unwrap_or(0);
    let needle_len = target
        .as_ref()
        .and_then(|t| t.task.layout().needle)
        .map(|n| n.grid.width_cells * n.grid.height_cells)
        .unwrap_or(0);
    // In flight at most: one at the source, `depth` queued, one in inference,
    // two waiting for the task stage, one in the task stage.
    let pool_count = opts.queue_depth + 5;
    let pool: Arc<Pool<Work>> = Arc::new(Pool::from_fn(pool_count, || Work {
        frame: Frame::with_capacity(frame_bytes),
        region: RegionPx::full(1, 1),
        thumb: vec![0.0; thumb_len],
        logits: [0.0; 4],
        level_ok: false,
        heatmap: vec![0.0; heat_len],
        plane_logit: 0.0,
        target_input_mean: 0.0,
        target_ok: false,
        needle_tip: vec![0.0; needle_len],
        needle_entry: vec![0.0; needle_len],
        needle_logit: 0.0,
        needle_ok: false,
        entered: Instant::now(),
    }));
    let to_infer: Arc<BoundedQueue<Work>> = Arc::new(BoundedQueue::new(opts.queue_depth));
    let to_task: Arc<BoundedQueue<Work>> = Arc::new(BoundedQueue::new(2));
    let start = Instant::now();
    let (level_backend, level_task) = match level {
        Some(l) => (Some(l.backend), Some(l.task)),
        None => (None, None),
    };
    let (target_backend, target_task) = match target {
        Some(t) => {
            let layout = *t.task.layout();
            (Some((t.backend, layout)), Some(t.task))
        }
        None => (None, None),
    };

    let no_signal = Arc::new(AtomicBool::new(false));
    let source_thread = {
        let (pool, q, stop, fast, no_signal, pace_fps) = (pool.clone(), to_infer.clone(), stop.clone(), opts.fast, no_signal.clone(), opts.pace_fps);
        std::thread::Builder::new()
            .name("source".into())
            .spawn(move || {
                let mut st = SourceStats::default();
                let mut first_ts: Option<u64> = None;
                let mut last_seq: Option<u64> = None;
                let paced_start = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    let mut work = pool.take();
                    match source.next_frame(&mut work.frame) {
                        Ok(Next::Frame) => {
                            no_signal.store(false, Ordering::Relaxed);
                            st.frames_in += 1;
                            let seq = work.frame.meta.sequence;
                            if let Some(prev) = last_seq {
                                if seq > prev + 1 {
                                    st.gaps += seq - prev - 1;
                                }
                            }
                            last_seq = Some(seq);
                            if !fast {
                                let ts = work.frame.meta.timestamp_us;
                                let t0 = *first_ts.get_or_insert(ts);
                                let offset_us = match pace_fps {
                                    Some(f) => ((st.frames_in - 1) as f64 * 1e6 / f) as u64,
                                    None => ts.saturating_sub(t0),
                                };
                                let due = paced_start + Duration::from_micros(offset_us);
                                let now = Instant::now();
                                if due > now {
                                    std::thread::sleep(due - now);
                                }
                            }
                            work.entered = Instant::now();
                            if fast {
                                q.push_wait(work);
                            } else if let Some(old) = q.push_drop_oldest(work) {
                                st.dropped += 1;
                                pool.give(old);
                            }
                        }
                        Ok(Next::End) => {
                            pool.give(work);
                            break;
                        }
                        Err(e @ crate::source::SourceError::NoSignal { .. }) => {
                            if !no_signal.swap(true, Ordering::Relaxed) {
                                log::warn!("{e}");
                            }
                            pool.give(work);
                        }
                        Err(e) if !e.is_fatal() => {
                            log::warn!("{e}");
                            st.frame_errors += 1;
                            pool.give(work);
                        }
                        Err(e) => {
                            log::error!("{e}");
                            st.error = Some(e.to_string());
                            pool.give(work);
                            break;
                        }
                    }
                }
                q.close();
                st
            })
            .expect("spawn source thread")
    };

    let infer_thread = {
        let (pool, qin, qout, board_region) = (pool.clone(), to_infer.clone(), to_task.clone(), opts.image_region);
        std::thread::Builder::new()
            .name("infer".into())
            .spawn(move || {
                let mut st = InferStats::default();
                let mut level_backend = level_backend;
                let mut target_backend = target_backend;
                let mut level_resizer = BoxResizer::new();
                let mut target_resizer = BoxResizer::new();
                while let Some(mut work) = qin.pop() {
                    work.level_ok = false;
                    work.target_ok = false;
                    work.needle_ok = false;
                    let mut spent = (0u64, 0u64);
                    let meta = work.frame.meta;
                    work.region = meta
                        .image_region
                        .or(board_region)
                        .filter(|r| r.fits_in(meta.width_px, meta.height_px))
                        .unwrap_or(RegionPx::full(meta.width_px, meta.height_px));
                    if let Some(b) = level_backend.as_mut() {
                        if run_model(b.as_mut(), &mut level_resizer, &work.frame, work.region, &mut st, &mut spent) {
                            let out = b.output(0);
                            if out.len() == 4 {
                                work.logits.copy_from_slice(out);
                                let n = work.thumb.len();
                                work.thumb.copy_from_slice(&b.input_mut()[..n]);
                                work.level_ok = true;
                            }
                        }
                    }
                    if let Some((b, layout)) = target_backend.as_mut() {
                        if run_model(b.as_mut(), &mut target_resizer, &work.frame, work.region, &mut st, &mut spent) {
                            let heat = b.output(layout.heatmap_output);
                            let plane = b.output(layout.plane_output);
                            if heat.len() == work.heatmap.len() && plane.len() == 1 {
                                work.heatmap.copy_from_slice(heat);
                                work.plane_logit = plane[0];
                                let input = b.input_mut();
                                work.target_input_mean = input.iter().sum::<f32>() / input.len().max(1) as f32;
                                work.target_ok = true;
                            }
                            if let Some(n) = layout.needle {
                                let (tip, entry, present) = (b.output(n.tip_output), b.output(n.entry_output), b.output(n.present_output));
                                if tip.len() == work.needle_tip.len() && entry.len() == work.needle_entry.len() && present.len() == 1 {
                                    work.needle_tip.copy_from_slice(tip);
                                    work.needle_entry.copy_from_slice(entry);
                                    work.needle_logit = present[0];
                                    work.needle_ok = true;
                                }
                            }
                        }
                    }
                    if level_backend.is_some() || target_backend.is_some() {
                        st.preprocess.record_us(spent.0);
                        st.inference.record_us(spent.1);
                    }
                    qout.push_wait(work);
                }
                qout.close();
                drop(pool);
                st
            })
            .expect("spawn inference thread")
    };

    let task_thread = {
        let (pool, qin, no_signal) = (pool.clone(), to_task.clone(), no_signal.clone());
        let stall = Duration::from_millis(opts.stall_timeout_ms.max(1));
        let mut level_task = level_task;
        let mut target_task = target_task;
        std::thread::Builder::new()
            .name("task".into())
            .spawn(move || {
                let mut st = TaskStats { levels_entered: Vec::with_capacity(MAX_LEVELS_ENTERED), ..Default::default() };
                let mut status = PipelineStatus::Running;
                let mut last_frame = Instant::now();
                loop {
                    let work = match qin.pop_timeout(stall) {
                        Ok(Some(w)) => w,
                        Ok(None) => break,
                        Err(()) => {
                            let now = if no_signal.load(Ordering::Relaxed) {
                                PipelineStatus::NoSignal
                            } else {
                                PipelineStatus::Stalled { since_ms: last_frame.elapsed().as_millis() as u64 }
                            };
                            if std::mem::discriminant(&now) != std::mem::discriminant(&status) {
                                status = now;
                                tell(&mut sinks, status, &mut st.sink_errors);
                            }
                            continue;
                        }
                    };
                    last_frame = Instant::now();
                    if status != PipelineStatus::Running {
                        status = PipelineStatus::Running;
                        tell(&mut sinks, status, &mut st.sink_errors);
                    }
                    let t0 = Instant::now();
                    let meta = work.frame.meta;
                    let level = level_task.as_mut().map(|t| {
                        let logits = if work.level_ok { Some(&work.logits[..]) } else { None };
                        t.process(&meta, work.region.width_px, &work.thumb, logits)
                    });
                    let target = target_task.as_mut().map(|t| {
                        let needle = work.needle_ok.then(|| NeedleOutputs {
                            tip: &work.needle_tip[..],
                            entry: &work.needle_entry[..],
                            present_logit: work.needle_logit,
                        });
                        let inputs = if work.target_ok {
                            TargetInputs { input_mean: Some(work.target_input_mean), heatmap: Some(&work.heatmap[..]), plane_logit: Some(work.plane_logit), needle }
                        } else {
                            TargetInputs { input_mean: None, heatmap: None, plane_logit: None, needle: None }
                        };
                        t.process(&work.frame, work.region, inputs)
                    });
                    if let Some(LevelEvent::Entered { label }) = level.and_then(|l| l.event) {
                        if st.levels_entered.len() < MAX_LEVELS_ENTERED {
                            st.levels_entered.push(label);
                        }
                    }
                    let t1 = Instant::now();
                    st.task.record_us((t1 - t0).as_micros() as u64);
                    let result = FrameResult {
                        sequence: meta.sequence,
                        timestamp_us: meta.timestamp_us,
                        source_id: meta.source_id,
                        latency_us: (t1 - work.entered).as_micros().min(u32::MAX as u128) as u32,
                        level,
                        target,
                    };
                    for s in sinks.iter_mut() {
                        if let Err(e) = s.consume(&work.frame, &result) {
                            log::warn!("frame {}: {}: {e}", meta.sequence, s.name());
                            st.sink_errors += 1;
                        }
                    }
                    st.sinks.record_us(t1.elapsed().as_micros() as u64);
                    st.end_to_end.record_us(work.entered.elapsed().as_micros() as u64);
                    st.processed += 1;
                    pool.give(work);
                }
                tell(&mut sinks, PipelineStatus::Stopped, &mut st.sink_errors);
                (st, sinks)
            })
            .expect("spawn task thread")
    };

    let src = source_thread.join().unwrap_or_else(|_| SourceStats { error: Some("source thread panicked".into()), ..Default::default() });
    // If the source stopped early, the downstream stages still drain and end.
    to_infer.close();
    let inf = infer_thread.join().unwrap_or_else(|_| InferStats { errors: 1, ..Default::default() });
    to_task.close();
    let (task, mut sinks) = match task_thread.join() {
        Ok(v) => v,
        Err(_) => (TaskStats::default(), Vec::new()),
    };
    let wall_s = start.elapsed().as_secs_f64();
    let summary = RunSummary {
        source: info.name.clone(),
        frames_in: src.frames_in,
        frames_processed: task.processed,
        frames_dropped: src.dropped,
        frame_errors: src.frame_errors,
        inference_errors: inf.errors,
        sink_errors: task.sink_errors,
        sequence_gaps: src.gaps,
        wall_s,
        fps: if wall_s > 0.0 { task.processed as f64 / wall_s } else { 0.0 },
        latency: StageLatencies {
            preprocess: inf.preprocess.summary(),
            inference: inf.inference.summary(),
            task: task.task.summary(),
            sinks: task.sinks.summary(),
            end_to_end: task.end_to_end.summary(),
        },
        levels_entered: task.levels_entered,
        source_error: src.error,
    };
    let mut finish_errors = 0;
    for s in sinks.iter_mut() {
        if let Err(e) = s.finish(&summary) {
            log::error!("{}: {e}", s.name());
            finish_errors += 1;
        }
    }
    RunSummary { sink_errors: summary.sink_errors + finish_errors, ..summary }
}

/// Preprocesses `frame`'s `region` into the backend's input and runs it,
/// adding the time spent to `spent_us` (preprocess, inference); logs and counts a failure.
fn run_model(b: &mut dyn Backend, resizer: &mut BoxResizer, frame: &Frame, region: RegionPx, st: &mut InferStats, spent_us: &mut (u64, u64)) -> bool {
    let (h, w) = b.manifest().input_hw();
    let (mean, std) = (b.manifest().input.mean, b.manifest().input.std);
    let t0 = Instant::now();
    let pre = resizer.resize_into(frame, region, b.input_mut(), w, h, mean, std);
    let t1 = Instant::now();
    spent_us.0 += (t1 - t0).as_micros() as u64;
    let ran = pre.map_err(|e| e.to_string()).and_then(|_| b.run().map_err(|e| e.to_string()));
    spent_us.1 += t1.elapsed().as_micros() as u64;
    match ran {
        Ok(()) => true,
        Err(e) => {
            log::warn!("frame {}: {}: {e}", frame.meta.sequence, b.manifest().model.name);
            st.errors += 1;
            false
        }
    }
}

fn tell(sinks: &mut [Box<dyn Sink>], status: PipelineStatus, errors: &mut u64) {
    match status {
        PipelineStatus::Running => log::info!("pipeline running"),
        PipelineStatus::Stopped => log::info!("pipeline stopped"),
        other => log::warn!("pipeline status: {other:?}"),
    }
    for s in sinks.iter_mut() {
        if let Err(e) = s.status(status) {
            log::warn!("{}: {e}", s.name());
            *errors += 1;
        }
    }
}
