//! Tasks as plug-ins: model outputs -> typed results, each task keeping its
//! own temporal state. The pipeline knows frames, models, tasks and sinks,
//! never levels or needles; it holds a fixed list of [`TaskStage`]s built
//! once at start by [`registry::build`] from the board.
//!
//! A task is split along the pipeline's two worker threads:
//! - on the inference thread, after each of the task's models has run on a
//!   frame, the task's own [`TaskOutputs`] (one per pooled frame, allocated at
//!   start) copies what its logic needs out of the backend;
//! - on the task thread, [`Task::process`] reads those outputs, updates the
//!   task's temporal state and writes the task's part of the
//!   [`FrameResult`].
//!
//! One folder per task: [`level`] (which interspace, on a sagittal sweep) and
//! [`needle_target`] (where to aim, on a transverse view). Adding a task =
//! one folder here with a `REGISTRATION`, one line in [`registry::REGISTRY`],
//! and its result slot in [`crate::result::FrameResult`] (see
//! docs/architecture.md).

use std::any::Any;

use thiserror::Error;

use crate::frame::{Frame, RegionPx};
use crate::infer::{Backend, InferError, ManifestError};
use crate::result::FrameResult;
use crate::stats::RunSummary;

pub mod level;
pub mod needle_target;
pub mod registry;

/// What a task copies out of its models for one frame (its own buffers,
/// allocated once per pooled frame). Lives in the frame's pipeline slot and
/// travels with it from the inference thread to the task thread.
pub trait TaskOutputs: Any + Send {
    /// Forgets the previous frame's outputs: called before the models run.
    fn clear(&mut self);
    /// Model `model` (index in the task's model list) has just run on the
    /// frame: copy what the logic needs. `false` when the outputs do not have
    /// the shapes the task expects (the task then reports the failure).
    fn capture(&mut self, model: usize, backend: &mut dyn Backend) -> bool;
    /// For the task's own downcast in [`Task::process`].
    fn as_any(&self) -> &dyn Any;
}

/// One task's logic and temporal state for one stream.
pub trait Task: Send {
    /// The task's name: its key in `pipeline.tasks`, `[models]` and its board table.
    fn name(&self) -> &'static str;
    /// A fresh output buffer for one pooled frame (called at start only).
    fn new_outputs(&self) -> Box<dyn TaskOutputs>;
    /// One frame: `region` is the image region the models saw; `outputs` were
    /// filled by this task's [`TaskOutputs`] (cleared, if a model failed).
    /// Writes the task's own part of `result`.
    fn process(&mut self, frame: &Frame, region: RegionPx, outputs: &dyn TaskOutputs, result: &mut FrameResult);
    /// The run has ended: add what the task keeps for the summary.
    fn finish(&mut self, _summary: &mut RunSummary) {}
}

/// A task with the models it needs, ready for the pipeline.
pub struct TaskStage {
    pub task: Box<dyn Task>,
    /// Loaded models, in the order the task's [`TaskOutputs::capture`] numbers them.
    pub models: Vec<Box<dyn Backend>>,
}

/// Why a task could not be built at start. Every variant names the board
/// file, manifest or source and the key a person has to change.
#[derive(Debug, Error)]
pub enum TaskError {
    #[error("{board}: {key}: {reason}")]
    Setting { board: String, key: String, reason: String },
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Infer(#[from] InferError),
    #[error("{manifest}: the {task} task needs {what}")]
    Model { manifest: String, task: &'static str, what: String },
    /// The source cannot give what the task needs (named in `reason`).
    #[error("{source_name}: {reason}")]
    Source { source_name: String, reason: String },
    #[error("unknown task '{name}' (known: {known})")]
    Unknown { name: String, known: String },
}
