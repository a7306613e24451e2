//! The pipeline: source -> bounded drop-oldest queue -> inference -> tasks
//! -> sinks, each stage on its own thread ([`source_loop`], [`infer_loop`],
//! [`task_loop`]), sharing one small [`Shared`] context: the pool of
//! [`Work`] items (every frame and every task's output buffers, allocated
//! once at start), the two queues and the stop flags.
//!
//! The pipeline knows frames, models, tasks and sinks, never what a task
//! computes: each [`TaskStage`] brings its models and its own
//! [`TaskOutputs`](crate::task::TaskOutputs).
//!
//! Accounting (each covered by a test in `tests.rs`): when inference lags,
//! the source's newest frame evicts the oldest waiting one (`frames_dropped`;
//! on a live screen latency beats completeness). A frame the source cannot
//! decode (`frame_errors`), a failed inference (`inference_errors`) and a
//! sink error (`sink_errors`) are logged with the frame number, counted and
//! survived; a fatal source error ends the run with what was done so far
//! (`source_error`); no frame at the sinks for `stall_timeout_ms` tells the
//! sinks the pipeline has stalled. Every frame delivered is either processed
//! or dropped: `frames_in == frames_processed + frames_dropped`.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use crate::frame::{Frame, ImageRegionSetting, RegionPx};
use crate::pool::Pool;
use crate::queue::BoundedQueue;
use crate::sink::Sink;
use crate::source::Source;
use crate::stats::{RunSummary, StageLatencies};
use crate::task::{TaskOutputs, TaskStage};

mod infer_loop;
mod source_loop;
mod task_loop;
#[cfg(test)]
mod tests;

/// How the pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    /// Frames that may wait for inference before the oldest is dropped.
    pub queue_depth: usize,
    /// Largest frame the source may deliver.
    pub max_frame_width_px: u32,
    pub max_frame_height_px: u32,
    /// The image region inside the frame when the source gives none.
    pub image_region: ImageRegionSetting,
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

/// One frame on its way through the pipeline, with every task's outputs.
pub struct Work {
    pub frame: Frame,
    /// The image region the models saw.
    region: RegionPx,
    /// One per task, in the order of the pipeline's task list.
    outputs: Vec<Box<dyn TaskOutputs>>,
    entered: Instant,
}

/// What the three stages share.
struct Shared {
    pool: Pool<Work>,
    to_infer: BoundedQueue<Work>,
    to_task: BoundedQueue<Work>,
    /// Set from outside (signal, test) to end the run.
    stop: Arc<AtomicBool>,
    /// A live source has lost its input (the task stage reports "no signal", not "stalled").
    no_signal: AtomicBool,
    opts: PipelineOptions,
}

/// Runs `source` through `tasks` to `sinks` until the source ends, a fatal
/// source error, or `stop` is set. Returns the run's summary (also given to
/// every task's and every sink's `finish`).
pub fn run(source: Box<dyn Source>, tasks: Vec<TaskStage>, sinks: Vec<Box<dyn Sink>>, opts: &PipelineOptions, stop: Arc<AtomicBool>) -> RunSummary {
    let info = source.info().clone();
    let max_w = info.max_width_px.max(1).min(opts.max_frame_width_px);
    let max_h = info.max_height_px.max(1).min(opts.max_frame_height_px);
    let frame_bytes = max_w as usize * max_h as usize;
    let (logic, models): (Vec<_>, Vec<_>) = tasks.into_iter().map(|t| (t.task, t.models)).unzip();
    // In flight at most: one at the source, `depth` queued, one in inference,
    // two waiting for the task stage, one in the task stage.
    let pool_count = opts.queue_depth + 5;
    let shared = Shared {
        pool: Pool::from_fn(pool_count, || Work {
            frame: Frame::with_capacity(frame_bytes),
            region: RegionPx::full(1, 1),
            outputs: logic.iter().map(|t| t.new_outputs()).collect(),
            entered: Instant::now(),
        }),
        to_infer: BoundedQueue::new(opts.queue_depth),
        to_task: BoundedQueue::new(2),
        stop,
        no_signal: AtomicBool::new(false),
        opts: opts.clone(),
    };
    let start = Instant::now();
    let (src, inf, task, mut logic, mut sinks) = std::thread::scope(|s| {
        let spawn_err = |what: &str| format!("cannot start the {what} thread");
        let source_thread = std::thread::Builder::new()
            .name("source".into())
            .spawn_scoped(s, || source_loop::run(source, &shared))
            .expect(&spawn_err("source"));
        let infer_thread = std::thread::Builder::new()
            .name("infer".into())
            .spawn_scoped(s, || infer_loop::run(models, &shared, (max_w, max_h)))
            .expect(&spawn_err("inference"));
        let task_thread = std::thread::Builder::new()
            .name("task".into())
            .spawn_scoped(s, || task_loop::run(logic, sinks, &shared))
            .expect(&spawn_err("task"));
        let src = source_thread
            .join()
            .unwrap_or_else(|_| source_loop::SourceStats { error: Some("source thread panicked".into()), ..Default::default() });
        // If the source stopped early, the downstream stages still drain and end.
        shared.to_infer.close();
        let inf = infer_thread.join().unwrap_or_else(|_| infer_loop::InferStats { errors: 1, ..Default::default() });
        shared.to_task.close();
        let (task, logic, sinks) = task_thread.join().unwrap_or_else(|_| (task_loop::TaskStats::default(), Vec::new(), Vec::new()));
        (src, inf, task, logic, sinks)
    });
    let wall_s = start.elapsed().as_secs_f64();
    let mut summary = RunSummary {
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
        levels_entered: Vec::new(),
        source_error: src.error,
    };
    for t in logic.iter_mut() {
        t.finish(&mut summary);
    }
    let mut finish_errors = 0;
    for s in sinks.iter_mut() {
        if let Err(e) = s.finish(&summary) {
            log::error!("{}: {e}", s.name());
            finish_errors += 1;
        }
    }
    summary.sink_errors += finish_errors;
    summary
}
