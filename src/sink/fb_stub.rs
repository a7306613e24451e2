//! The framebuffer sink on a system without Linux framebuffers: opening fails
//! with a clear message, so callers carry no `cfg`.

use std::path::Path;

use super::{Sink, SinkError};
use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

/// Never constructed off Linux.
pub struct FramebufferSink {
    name: String,
}

impl FramebufferSink {
    pub fn open(path: &Path) -> Result<Self, SinkError> {
        Err(SinkError::Setting { path: path.display().to_string(), reason: "the framebuffer sink needs Linux".into() })
    }
}

impl Sink for FramebufferSink {
    fn name(&self) -> &str {
        &self.name
    }
    fn consume(&mut self, _frame: &Frame, _result: &FrameResult) -> Result<(), SinkError> {
        Ok(())
    }
    fn finish(&mut self, _summary: &RunSummary) -> Result<(), SinkError> {
        Ok(())
    }
}
