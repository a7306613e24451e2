//! Sinks: where results go. Each sink consumes a frame and its result, and is
//! told once at the end with the run's summary. Sinks never see hardware types
//! beyond their own; the pipeline holds them as `Box<dyn Sink>`.

use thiserror::Error;

use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

pub mod console;
pub mod json;
pub mod overlay;
pub mod png_out;
pub mod y4m_out;

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("{path}: {source}")]
    Io { path: String, #[source] source: std::io::Error },
    #[error("{path}: {reason}")]
    Encode { path: String, reason: String },
}

pub trait Sink: Send {
    /// A short name for logs ("json:out/results.jsonl").
    fn name(&self) -> &str;
    /// Handles one frame and its result. An error is counted; the run goes on.
    fn consume(&mut self, frame: &Frame, result: &FrameResult) -> Result<(), SinkError>;
    /// The run is over; flush and write any summary.
    fn finish(&mut self, summary: &RunSummary) -> Result<(), SinkError>;
}
