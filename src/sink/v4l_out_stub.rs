//! The V4L2 output sink on a system without V4L2: opening fails with a clear
//! message, so callers carry no `cfg`.

use super::{Sink, SinkError};
use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

/// Never constructed off Linux.
pub struct V4l2OutputSink {
    name: String,
}

impl V4l2OutputSink {
    pub fn open(spec: &str, _fps: f64) -> Result<Self, SinkError> {
        Err(SinkError::Setting { path: spec.to_string(), reason: "the V4L2 output sink needs Linux".into() })
    }
}

impl Sink for V4l2OutputSink {
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
