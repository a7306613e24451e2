//! Assembly: from a board file, a source URI and output choices to a running
//! pipeline. The CLI (`main.rs`) and the integration tests call this; it is
//! the one place where models are loaded, sinks are opened and tasks built.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use thiserror::Error;

use crate::config::{Board, ConfigError};
use crate::infer::{InferError, ManifestError};
use crate::pipeline::PipelineOptions;
use crate::sink::gpio::{GpioError, GpioSink};
use crate::sink::console::ConsoleSink;
use crate::sink::fb::FramebufferSink;
use crate::sink::v4l_out::V4l2OutputSink;
use crate::sink::json::JsonLinesSink;
use crate::sink::png_out::PngSnapshotSink;
use crate::sink::watchdog::WatchdogSink;
use crate::sink::y4m_out::Y4mOverlaySink;
use crate::sink::{Sink, SinkError};
use crate::source::{OpenOptions, Source, SourceError, SourceInfo};
use crate::stats::RunSummary;
use crate::task::registry::TaskContext;
use crate::task::{TaskError, TaskStage};

#[derive(Debug, Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Gpio(#[from] GpioError),
    #[error(transparent)]
    Task(#[from] TaskError),
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error("cannot find {what}: looked in {looked}")]
    NotFound { what: String, looked: String },
}

/// Where JSON lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonTarget {
    None,
    Stdout,
    File(PathBuf),
}

/// Everything one run needs. Build it with [`RunRequest::new`] (the
/// defaults) and set what differs: the one way every subcommand, evaluator
/// and test makes a request.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub board: PathBuf,
    pub source: String,
    /// Overrides of the board's `[models]`, by task name.
    pub models: BTreeMap<String, PathBuf>,
    /// Overrides the board's `pipeline.tasks`.
    pub tasks: Option<Vec<String>>,
    /// Overrides the board's `pipeline.backend`.
    pub backend: Option<crate::infer::BackendKind>,
    /// Drive the board's GPIO lines (off for evaluation and benchmarks).
    pub gpio: bool,
    pub json: JsonTarget,
    /// Colour overlay video (Y4M).
    pub overlay_y4m: Option<PathBuf>,
    /// PNG snapshots of the overlay: folder and every how many frames (0 = on events only).
    pub snapshots: Option<(PathBuf, u64)>,
    /// Print the live readout.
    pub console: bool,
    pub fast: bool,
    /// Frame rate for sources that carry none.
    pub fps: Option<f64>,
    /// Replay the source this many times (benchmarks).
    pub repeat: u32,
    /// Show the overlay on this framebuffer (`board`: the board's `[devices] framebuffer`).
    pub framebuffer: Option<String>,
    /// Write the overlay video to this V4L2 output device (`board`: the board's `[devices] v4l_out`).
    pub v4l_out: Option<String>,
    /// Pace at this rate instead of the recorded one (benchmarks; ignored with `fast`).
    pub pace_fps: Option<f64>,
}

impl RunRequest {
    /// `source` through `board` with nothing else: no outputs, no GPIO, paced replay, the board's tasks and models.
    pub fn new(board: impl Into<PathBuf>, source: impl Into<String>) -> Self {
        Self {
            board: board.into(),
            source: source.into(),
            models: BTreeMap::new(),
            tasks: None,
            backend: None,
            gpio: false,
            json: JsonTarget::None,
            overlay_y4m: None,
            snapshots: None,
            console: false,
            fast: false,
            fps: None,
            repeat: 1,
            framebuffer: None,
            v4l_out: None,
            pace_fps: None,
        }
    }
}

/// Finds a bundled file (board, model, demo): `$SPINE_EDGE_HOME`, the current
/// folder, `<exe>/../share/spine-edge`, `/usr/share/spine-edge`, then the
/// source tree the binary was built from.
pub fn locate(rel: &str) -> Result<PathBuf, AppError> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("SPINE_EDGE_HOME") {
        candidates.push(PathBuf::from(home).join(rel));
    }
    candidates.push(PathBuf::from(rel));
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            candidates.push(dir.join("../share/spine-edge").join(rel));
        }
    }
    candidates.push(Path::new("/usr/share/spine-edge").join(rel));
    candidates.push(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel));
    for c in &candidates {
        if c.exists() {
            return Ok(c.clone());
        }
    }
    Err(AppError::NotFound {
        what: rel.to_string(),
        looked: candidates.iter().map(|c| c.display().to_string()).collect::<Vec<_>>().join(", "),
    })
}

/// `v4l` or `v4l:` alone means the board's `[devices] video`.
fn board_source_uri(board: &Board, source: &str) -> Result<String, AppError> {
    if source != "v4l" && source != "v4l:" {
        return Ok(source.to_string());
    }
    match &board.video_device {
        Some(v) => Ok(format!("v4l:{v}")),
        None => Err(AppError::Config(ConfigError::Invalid {
            path: board.path.clone(),
            key: "devices.video".into(),
            reason: "source 'v4l' asks for the board's capture device, but the board names none".into(),
        })),
    }
}

/// The board with the request's task selection, model and backend overrides applied.
pub fn board_for(req: &RunRequest) -> Result<Board, AppError> {
    let mut board = Board::load(&req.board)?;
    if let Some(tasks) = &req.tasks {
        crate::task::registry::check_selection(tasks)
            .map_err(|reason| ConfigError::Invalid { path: board.path.clone(), key: "--task".into(), reason })?;
        board.tasks = tasks.clone();
    }
    for (task, path) in &req.models {
        board.models.insert(task.clone(), path.clone());
    }
    if let Some(backend) = req.backend {
        board.backend = backend;
    }
    Ok(board)
}

/// Registers the request's source and output paths for redaction in logs.
fn redact_request_paths(req: &RunRequest) {
    let source = req.source.split_once(':').map_or(req.source.as_str(), |(_, rest)| rest);
    let source = source.split('?').next().unwrap_or(source);
    redact_as(Path::new(source), "<source>");
    let outs = [
        match &req.json {
            JsonTarget::File(p) => p.parent().map(|p| p.to_path_buf()),
            _ => None,
        },
        req.overlay_y4m.as_ref().and_then(|p| p.parent().map(|p| p.to_path_buf())),
        req.snapshots.as_ref().map(|(p, _)| p.clone()),
    ];
    for p in outs.into_iter().flatten() {
        redact_as(&p, "<out>");
    }
}

/// `path` as given (when it has a separator: a bare word like `out` would
/// match inside other words) and as an absolute path.
fn redact_as(path: &Path, label: &'static str) {
    let given = path.display().to_string();
    if given.contains('/') {
        crate::logging::redact_path(&given, label);
    }
    if let Ok(abs) = std::fs::canonicalize(path) {
        crate::logging::redact_path(&abs.display().to_string(), label);
    }
}

/// Builds the board's selected tasks, each with its model, for `source`.
pub fn build_tasks(board: &Board, source: &SourceInfo) -> Result<Vec<TaskStage>, AppError> {
    Ok(crate::task::registry::build(&board.tasks, |name| TaskContext {
        board_path: &board.path,
        table: board.task_tables.get(name),
        model: board.models.get(name).map(|p| p.as_path()),
        backend: board.backend,
        model_policy: &board.model_policy,
        threads: board.threads,
        calibration: board.calibration,
        source,
    })?)
}

/// Opens the request's source with the board's calibration and capture settings.
pub fn open_source(board: &Board, req: &RunRequest) -> Result<Box<dyn Source>, AppError> {
    let opts = OpenOptions { raw_size_px: None, fps: req.fps, calibration: board.calibration, capture: board.capture.clone() };
    let uri = board_source_uri(board, &req.source)?;
    let source = if req.repeat > 1 {
        Box::new(crate::source::repeat::RepeatSource::open(&uri, &opts, req.repeat)?) as Box<dyn Source>
    } else {
        crate::source::open(&uri, &opts)?
    };
    Ok(source)
}

/// A device named on the command line, or `board` for the board's own.
fn board_device(board: &Board, given: &str, key: &str, from_board: &Option<String>) -> Result<String, AppError> {
    if given != "board" {
        return Ok(given.to_string());
    }
    from_board.clone().ok_or_else(|| {
        AppError::Config(ConfigError::Invalid {
            path: board.path.clone(),
            key: key.into(),
            reason: "the command line asks for the board's device, but the board names none".into(),
        })
    })
}

/// Opens the screen and video-output sinks the request asks for.
pub fn open_device_sinks(board: &Board, req: &RunRequest, fps: f64) -> Result<Vec<Box<dyn Sink>>, AppError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(fb) = &req.framebuffer {
        let path = board_device(board, fb, "devices.framebuffer", &board.framebuffer)?;
        sinks.push(Box::new(FramebufferSink::open(Path::new(&path))?));
    }
    if let Some(out) = &req.v4l_out {
        let spec = board_device(board, out, "devices.v4l_out", &board.v4l_out)?;
        sinks.push(Box::new(V4l2OutputSink::open(&spec, fps)?));
    }
    Ok(sinks)
}

/// Opens the sinks the request asks for, plus the systemd notifier when a
/// service manager started us (`NOTIFY_SOCKET` set).
pub fn open_sinks(req: &RunRequest, fps: f64) -> Result<Vec<Box<dyn Sink>>, AppError> {
    let mut sinks: Vec<Box<dyn Sink>> = Vec::new();
    if req.console {
        sinks.push(Box::new(ConsoleSink::stdout()));
    }
    match &req.json {
        JsonTarget::None => {}
        JsonTarget::Stdout => sinks.push(Box::new(JsonLinesSink::stdout())),
        JsonTarget::File(p) => sinks.push(Box::new(JsonLinesSink::create(p)?)),
    }
    if let Some(p) = &req.overlay_y4m {
        sinks.push(Box::new(Y4mOverlaySink::create(p, fps)?));
    }
    if let Some((dir, every)) = &req.snapshots {
        sinks.push(Box::new(PngSnapshotSink::create(dir, *every)?));
    }
    // Last: READY=1 and each ping follow a frame that went through every other sink.
    if let Some(w) = WatchdogSink::from_env()? {
        log::info!("{}: watchdog ping every {:?} while frames flow", w.name(), w.ping_every());
        sinks.push(Box::new(w));
    }
    Ok(sinks)
}

/// The pipeline settings of `board` for `req`.
pub fn pipeline_options(board: &Board, req: &RunRequest) -> PipelineOptions {
    PipelineOptions {
        queue_depth: board.queue_depth,
        max_frame_width_px: board.max_frame_width_px,
        max_frame_height_px: board.max_frame_height_px,
        image_region: board.image_region,
        stall_timeout_ms: board.stall_timeout_ms,
        fast: req.fast,
        pace_fps: req.pace_fps,
    }
}

/// Runs one request to the end (or until `stop`), with `extra` sinks added.
pub fn run(req: &RunRequest, extra: Vec<Box<dyn Sink>>, stop: Arc<AtomicBool>) -> Result<RunSummary, AppError> {
    let board = board_for(req)?;
    if board.redact_paths {
        redact_request_paths(req);
    }
    // Lines first: they go to the safe state at once, before anything else can fail.
    let gpio = match (&board.gpio, req.gpio) {
        (Some(cfg), true) => Some(GpioSink::open(cfg)?),
        _ => None,
    };
    let source = open_source(&board, req)?;
    let tasks = build_tasks(&board, source.info())?;
    let fps = source.info().fps.unwrap_or(25.0);
    let mut sinks = open_sinks(req, fps)?;
    sinks.extend(open_device_sinks(&board, req, fps)?);
    sinks.extend(extra);
    if let Some(g) = gpio {
        sinks.push(Box::new(g));
    }
    let opts = pipeline_options(&board, req);
    Ok(crate::pipeline::run(source, tasks, sinks, &opts, stop))
}
