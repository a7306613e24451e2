//! The pipeline's own accounting, driven by a scripted source, a mock
//! backend and a test task that the pipeline knows only through the
//! [`Task`] trait (no model files, no timing assertions).

use std::any::Any;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use super::{run, PipelineOptions};
use crate::frame::{Frame, ImageRegionSetting, RegionPx};
use crate::infer::{Backend, InferError, Manifest};
use crate::result::FrameResult;
use crate::sink::{PipelineStatus, Sink, SinkError};
use crate::source::{Next, Source, SourceError, SourceInfo};
use crate::stats::RunSummary;
use crate::task::{Task, TaskOutputs, TaskStage};

/// Lets a test hold the mock model inside `run` until the source has done its part.
#[derive(Default)]
struct Gate {
    state: Mutex<(bool, bool)>, // (a run is waiting, the gate is open)
    cv: Condvar,
}

impl Gate {
    fn wait_in_run(&self) {
        let mut s = self.state.lock().unwrap();
        s.0 = true;
        self.cv.notify_all();
        while !s.1 {
            s = self.cv.wait(s).unwrap();
        }
    }
    fn wait_until_busy(&self) {
        let mut s = self.state.lock().unwrap();
        while !s.0 {
            s = self.cv.wait(s).unwrap();
        }
    }
    fn open(&self) {
        self.state.lock().unwrap().1 = true;
        self.cv.notify_all();
    }
}

#[derive(Clone)]
enum Step {
    /// A 4x4 frame whose pixels all hold `value`.
    Frame(u8),
    /// A frame the source cannot decode (non-fatal).
    BadFrame,
    /// The input is gone for a while (live source), then this step returns NoSignal.
    NoSignal { after_ms: u64 },
    /// The source's device fails for good.
    Fatal,
    Sleep { ms: u64 },
    /// Wait until the model is held inside `run`.
    WaitInferBusy,
    /// Let the model go on.
    OpenGate,
    /// Wait (at most 10 s) until the watched sink has received this many frames.
    WaitSunk(usize),
}

struct Scripted {
    info: SourceInfo,
    steps: std::vec::IntoIter<Step>,
    sequence: u64,
    gate: Arc<Gate>,
    /// Steps consumed (a fatal error must end the reading).
    read: Arc<Mutex<usize>>,
    /// The frames a sink has received (for `Step::WaitSunk`).
    sunk: Option<Arc<Mutex<Vec<u64>>>>,
}

impl Scripted {
    fn new(steps: Vec<Step>, gate: Arc<Gate>) -> (Self, Arc<Mutex<usize>>) {
        let read = Arc::new(Mutex::new(0));
        let info = SourceInfo { name: "scripted".into(), max_width_px: 4, max_height_px: 4, fps: Some(25.0), frame_count: None, spacing_from_stream: false };
        (Self { info, steps: steps.into_iter(), sequence: 0, gate, read: read.clone(), sunk: None }, read)
    }

    /// Lets `Step::WaitSunk` watch the frames a sink received.
    fn watching(mut self, sunk: Arc<Mutex<Vec<u64>>>) -> Self {
        self.sunk = Some(sunk);
        self
    }
}

impl Source for Scripted {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        loop {
            let Some(step) = self.steps.next() else { return Ok(Next::End) };
            *self.read.lock().unwrap() += 1;
            match step {
                Step::Frame(v) => {
                    frame.set_size(4, 4).unwrap();
                    frame.pixels_mut().fill(v);
                    frame.meta.sequence = self.sequence;
                    frame.meta.timestamp_us = 0;
                    self.sequence += 1;
                    return Ok(Next::Frame);
                }
                Step::BadFrame => {
                    self.sequence += 1;
                    return Err(SourceError::BadFrame { path: "scripted".into(), frame: self.sequence - 1, reason: "scripted".into() });
                }
                Step::NoSignal { after_ms } => {
                    std::thread::sleep(Duration::from_millis(after_ms));
                    return Err(SourceError::NoSignal { device: "scripted".into(), reason: "scripted".into() });
                }
                Step::Fatal => return Err(SourceError::Device { device: "/dev/scripted".into(), reason: "gone".into() }),
                Step::Sleep { ms } => std::thread::sleep(Duration::from_millis(ms)),
                Step::WaitInferBusy => self.gate.wait_until_busy(),
                Step::OpenGate => self.gate.open(),
                Step::WaitSunk(n) => {
                    let sunk = self.sunk.as_ref().expect("Step::WaitSunk needs Scripted::watching");
                    let deadline = std::time::Instant::now() + Duration::from_secs(10);
                    while sunk.lock().unwrap().len() < n && std::time::Instant::now() < deadline {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
    }
}

fn manifest() -> Manifest {
    manifest_with_mean(0.0)
}

fn manifest_with_mean(mean: f32) -> Manifest {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mock.toml");
    std::fs::write(
        &path,
        format!(
            r#"[model]
name = "mock"
task = "probe"
file = "mock.onnx"
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
quantization = "fp32"
card = "mock.md"
[input]
name = "image"
shape = [1, 1, 2, 2]
layout = "NCHW"
color = "gray"
resize = "box"
mean = {mean}
std = 1.0
[output]
name = "value"
shape = [1, 1]
kind = "value"
[training]
data = "none"
method = "none"
validated_on_patients = false
"#
        ),
    )
    .unwrap();
    Manifest::load_unverified(&path).unwrap()
}

/// Outputs the frame's pixel value (0..255) plus `offset`; fails on the values in `fail_on`.
struct Mock {
    manifest: Manifest,
    input: Vec<f32>,
    out: [f32; 1],
    offset: f32,
    fail_on: Vec<u8>,
    /// Hold the first run until the gate opens.
    gate: Option<Arc<Gate>>,
}

impl Mock {
    fn new(offset: f32, fail_on: Vec<u8>, gate: Option<Arc<Gate>>) -> Box<dyn Backend> {
        Box::new(Self { manifest: manifest(), input: vec![0.0; 4], out: [0.0], offset, fail_on, gate })
    }

    /// A model whose input is normalised with `mean` (another input contract when not 0).
    fn with_mean(mean: f32) -> Box<dyn Backend> {
        Box::new(Self { manifest: manifest_with_mean(mean), input: vec![0.0; 4], out: [0.0], offset: 0.0, fail_on: vec![], gate: None })
    }
}

impl Backend for Mock {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }
    fn input_mut(&mut self) -> &mut [f32] {
        &mut self.input
    }
    fn run(&mut self) -> Result<(), InferError> {
        if let Some(g) = self.gate.take() {
            g.wait_in_run();
        }
        let value = (self.input[0] * 255.0).round();
        if self.fail_on.contains(&(value as u8)) {
            return Err(InferError::Run { model: PathBuf::from("mock.onnx"), reason: format!("scripted failure on {value}") });
        }
        self.out[0] = value + self.offset;
        Ok(())
    }
    fn output(&self, _i: usize) -> &[f32] {
        &self.out
    }
}

/// A task the pipeline has never heard of: records what its models gave it per frame.
struct Probe {
    models: usize,
    seen: Arc<Mutex<Vec<(u64, Option<Vec<f32>>)>>>,
}

struct ProbeOutputs {
    values: Vec<f32>,
    captured: usize,
}

impl TaskOutputs for ProbeOutputs {
    fn clear(&mut self) {
        self.captured = 0;
    }
    fn capture(&mut self, model: usize, backend: &mut dyn Backend) -> bool {
        assert_eq!(model, self.captured, "models are captured in order");
        self.values[model] = backend.output(0)[0];
        self.captured += 1;
        true
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl Task for Probe {
    fn name(&self) -> &'static str {
        "probe"
    }
    fn new_outputs(&self) -> Box<dyn TaskOutputs> {
        Box::new(ProbeOutputs { values: vec![0.0; self.models], captured: 0 })
    }
    fn process(&mut self, frame: &Frame, _region: RegionPx, outputs: &dyn TaskOutputs, _result: &mut FrameResult) {
        let o = outputs.as_any().downcast_ref::<ProbeOutputs>().expect("the pipeline hands each task its own outputs");
        let got = (o.captured == self.models).then(|| o.values.clone());
        self.seen.lock().unwrap().push((frame.meta.sequence, got));
    }
}

type Seen = Arc<Mutex<Vec<(u64, Option<Vec<f32>>)>>>;

fn probe(models: Vec<Box<dyn Backend>>) -> (TaskStage, Seen) {
    let seen: Seen = Arc::default();
    (TaskStage { task: Box::new(Probe { models: models.len(), seen: seen.clone() }), models }, seen)
}

/// Records statuses and frames; fails on the listed sequence numbers.
#[derive(Default, Clone)]
struct Recorder {
    statuses: Arc<Mutex<Vec<PipelineStatus>>>,
    frames: Arc<Mutex<Vec<u64>>>,
    finished: Arc<Mutex<Option<RunSummary>>>,
    fail_on: Vec<u64>,
}

impl Sink for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn consume(&mut self, frame: &Frame, r: &FrameResult) -> Result<(), SinkError> {
        assert_eq!(frame.meta.sequence, r.sequence);
        self.frames.lock().unwrap().push(r.sequence);
        if self.fail_on.contains(&r.sequence) {
            return Err(SinkError::Encode { path: "recorder".into(), reason: format!("scripted failure on frame {}", r.sequence) });
        }
        Ok(())
    }
    fn finish(&mut self, s: &RunSummary) -> Result<(), SinkError> {
        *self.finished.lock().unwrap() = Some(s.clone());
        Ok(())
    }
    fn status(&mut self, status: PipelineStatus) -> Result<(), SinkError> {
        self.statuses.lock().unwrap().push(status);
        Ok(())
    }
}

fn opts(fast: bool, stall_timeout_ms: u64) -> PipelineOptions {
    PipelineOptions { queue_depth: 2, max_frame_width_px: 64, max_frame_height_px: 64, image_region: ImageRegionSetting::Whole, stall_timeout_ms, fast, pace_fps: None }
}

fn no_stop() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}

#[test]
fn when_inference_lags_the_oldest_waiting_frames_are_dropped_and_counted() {
    let gate = Arc::new(Gate::default());
    // Frame 0 is held inside the model while frames 1..=9 arrive at a queue of depth 2.
    let mut steps = vec![Step::Frame(0), Step::WaitInferBusy];
    steps.extend((1..=9).map(Step::Frame));
    steps.push(Step::OpenGate);
    let (src, _) = Scripted::new(steps, gate.clone());
    let (stage, seen) = probe(vec![Mock::new(0.0, vec![], Some(gate))]);
    let rec = Recorder::default();
    let s = run(Box::new(src), vec![stage], vec![Box::new(rec.clone())], &opts(false, 10_000), no_stop());
    assert_eq!(s.frames_in, 10);
    assert_eq!(s.frames_dropped, 7, "frames 1..=7 were evicted by newer ones");
    assert_eq!(s.frames_processed, 3);
    assert_eq!(s.frames_in, s.frames_processed + s.frames_dropped, "nothing lost unaccounted");
    assert_eq!(*rec.frames.lock().unwrap(), vec![0, 8, 9], "the newest frames survive");
    let seen = seen.lock().unwrap();
    let values: Vec<_> = seen.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(values, vec![Some(vec![0.0]), Some(vec![8.0]), Some(vec![9.0])], "each result carries its own frame's outputs");
}

#[test]
fn per_frame_errors_are_counted_and_survived() {
    let steps = vec![Step::Frame(1), Step::BadFrame, Step::Frame(2), Step::Frame(3), Step::BadFrame, Step::Frame(4), Step::Frame(5)];
    let (src, _) = Scripted::new(steps, Arc::default());
    // Two models: the second fails on frame value 3.
    let (stage, seen) = probe(vec![Mock::new(0.0, vec![], None), Mock::new(100.0, vec![3], None)]);
    let failing = Recorder { fail_on: vec![2], ..Default::default() };
    let healthy = Recorder::default();
    let s = run(Box::new(src), vec![stage], vec![Box::new(failing.clone()), Box::new(healthy.clone())], &opts(true, 10_000), no_stop());
    assert_eq!(s.frames_in, 5);
    assert_eq!(s.frame_errors, 2);
    assert_eq!(s.inference_errors, 1);
    assert_eq!(s.sink_errors, 1);
    assert_eq!(s.frames_processed, 5);
    assert_eq!(s.source_error, None);
    assert_eq!(s.sequence_gaps, 2, "the undecodable frames' numbers are missing");
    // The sink after the failing one still gets every frame.
    assert_eq!(healthy.frames.lock().unwrap().len(), 5);
    let seen = seen.lock().unwrap();
    let by_value: Vec<_> = seen.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        by_value,
        vec![Some(vec![1.0, 101.0]), Some(vec![2.0, 102.0]), None, Some(vec![4.0, 104.0]), Some(vec![5.0, 105.0])],
        "a failed model leaves the task no outputs for that frame only"
    );
}

#[test]
fn a_fatal_source_error_ends_the_run_cleanly() {
    let steps = vec![Step::Frame(1), Step::Frame(2), Step::Frame(3), Step::Fatal, Step::Frame(4)];
    let (src, read) = Scripted::new(steps, Arc::default());
    let (stage, _) = probe(vec![Mock::new(0.0, vec![], None)]);
    let rec = Recorder::default();
    let s = run(Box::new(src), vec![stage], vec![Box::new(rec.clone())], &opts(true, 10_000), no_stop());
    assert_eq!(s.frames_processed, 3, "what came before the failure is processed");
    let err = s.source_error.expect("the summary says why the run ended");
    assert!(err.contains("/dev/scripted") && err.contains("gone"), "{err}");
    assert_eq!(*read.lock().unwrap(), 4, "nothing is read after a fatal error");
    assert_eq!(rec.statuses.lock().unwrap().last(), Some(&PipelineStatus::Stopped));
    let finished = rec.finished.lock().unwrap().clone().expect("sinks are finished");
    assert_eq!(finished.frames_processed, 3);
}

#[test]
fn a_stall_and_a_lost_signal_are_told_to_the_sinks_and_cleared_by_frames() {
    // Timing only bounds, never asserted: a stall timeout of 150 ms against
    // pauses of 800 ms, and the lost signal comes only once frame 2 has
    // reached the sinks (else a slow machine legitimately reports "no
    // signal" before frame 2 arrives).
    let steps = vec![
        Step::Frame(1),
        Step::Sleep { ms: 800 },
        Step::Frame(2),
        Step::WaitSunk(2),
        Step::NoSignal { after_ms: 0 },
        Step::Sleep { ms: 800 },
        Step::Frame(3),
    ];
    let rec = Recorder::default();
    let (src, _) = Scripted::new(steps, Arc::default());
    let src = src.watching(rec.frames.clone());
    // No task at all: the pipeline still moves frames and watches for stalls.
    let s = run(Box::new(src), Vec::new(), vec![Box::new(rec.clone())], &opts(true, 150), no_stop());
    assert_eq!(s.frames_processed, 3);
    let kinds: Vec<&str> = rec
        .statuses
        .lock()
        .unwrap()
        .iter()
        .map(|st| match st {
            PipelineStatus::Running => "running",
            PipelineStatus::Stalled { .. } => "stalled",
            PipelineStatus::NoSignal => "no_signal",
            PipelineStatus::Stopped => "stopped",
        })
        .collect();
    assert_eq!(kinds, ["stalled", "running", "no_signal", "running", "stopped"]);
}

#[test]
fn stop_ends_a_live_source_that_never_ends() {
    let steps: Vec<Step> = (0..10_000).map(|i| if i % 2 == 0 { Step::Frame(1) } else { Step::Sleep { ms: 1 } }).collect();
    let (src, read) = Scripted::new(steps, Arc::default());
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let s = run(Box::new(src), Vec::new(), Vec::new(), &opts(true, 10_000), stop);
    stopper.join().unwrap();
    assert!(*read.lock().unwrap() < 10_000, "the run ended before the script did");
    assert_eq!(s.frames_in, s.frames_processed + s.frames_dropped);
}

#[test]
fn a_stream_of_unreadable_frames_ends_the_run() {
    use super::source_loop::MAX_CONSECUTIVE_FRAME_ERRORS;
    // Two good frames, then more bad ones than the limit, then a good one that is never read.
    let mut steps = vec![Step::Frame(1), Step::Frame(2)];
    steps.extend((0..MAX_CONSECUTIVE_FRAME_ERRORS + 50).map(|_| Step::BadFrame));
    steps.push(Step::Frame(3));
    let (src, read) = Scripted::new(steps, Arc::default());
    let s = run(Box::new(src), Vec::new(), Vec::new(), &opts(true, 10_000), no_stop());
    assert_eq!(s.frames_processed, 2);
    assert_eq!(s.frame_errors, MAX_CONSECUTIVE_FRAME_ERRORS as u64);
    let err = s.source_error.expect("the run says why it ended");
    assert!(err.contains("in a row") && err.contains("scripted"), "{err}");
    assert_eq!(*read.lock().unwrap(), 2 + MAX_CONSECUTIVE_FRAME_ERRORS as usize, "nothing read after giving up");
    // Errors with good frames between them never add up to the limit.
    let mut steps = Vec::new();
    for _ in 0..3 {
        steps.extend((0..MAX_CONSECUTIVE_FRAME_ERRORS - 1).map(|_| Step::BadFrame));
        steps.push(Step::Frame(1));
    }
    let (src, _) = Scripted::new(steps, Arc::default());
    let s = run(Box::new(src), Vec::new(), Vec::new(), &opts(true, 10_000), no_stop());
    assert_eq!((s.frames_processed, s.source_error), (3, None));
}

#[test]
fn models_sharing_an_input_contract_get_the_same_input_and_others_their_own() {
    // Task 1: one model (mean 0). Task 2: mean 0.4 (its own resize), then mean 0
    // (a copy of task 1's input). The mock outputs round(input * 255).
    let steps = vec![Step::Frame(10), Step::Frame(200)];
    let (src, _) = Scripted::new(steps, Arc::default());
    let (first, seen_first) = probe(vec![Mock::with_mean(0.0)]);
    let (second, seen_second) = probe(vec![Mock::with_mean(0.4), Mock::with_mean(0.0)]);
    let s = run(Box::new(src), vec![first, second], vec![], &opts(true, 10_000), no_stop());
    assert_eq!((s.frames_processed, s.inference_errors), (2, 0));
    let values = |seen: &Seen| seen.lock().unwrap().iter().map(|(_, v)| v.clone()).collect::<Vec<_>>();
    assert_eq!(values(&seen_first), vec![Some(vec![10.0]), Some(vec![200.0])]);
    // (10 / 255 - 0.4) * 255 = 10 - 102 = -92; 200 -> 98.
    assert_eq!(values(&seen_second), vec![Some(vec![-92.0, 10.0]), Some(vec![98.0, 200.0])]);
}
