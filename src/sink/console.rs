//! The live readout on a terminal: one line whenever what the operator should
//! see changes (a new position, guidance lost or regained), and a closing line
//! with the run's figures. Quiet between changes, so it reads like a display.

use std::io::Write;

use crate::frame::Frame;
use crate::result::{FrameResult, NoGuidanceReason};
use crate::stats::RunSummary;

use super::{Sink, SinkError};

pub struct ConsoleSink<W: Write + Send> {
    out: W,
    last: Option<(Option<&'static str>, Option<NoGuidanceReason>)>,
}

impl ConsoleSink<std::io::Stdout> {
    pub fn stdout() -> Self {
        Self::new(std::io::stdout())
    }
}

impl<W: Write + Send> ConsoleSink<W> {
    pub fn new(out: W) -> Self {
        Self { out, last: None }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// Words for a reason, as shown to the operator.
pub fn reason_text(r: NoGuidanceReason) -> &'static str {
    match r {
        NoGuidanceReason::WaitingForSacrum => "waiting for the sacrum",
        NoGuidanceReason::ProbeOffSpine => "probe off the spine",
        NoGuidanceReason::LowConfidence => "low confidence",
        NoGuidanceReason::CountLost => "count lost: go back to the sacrum",
        NoGuidanceReason::InferenceFailed => "inference failed",
        NoGuidanceReason::NoPixelSpacing => "no pixel spacing: set the probe calibration",
        NoGuidanceReason::ImageNotRecognised => "image not recognised",
    }
}

impl<W: Write + Send> Sink for ConsoleSink<W> {
    fn name(&self) -> &str {
        "console"
    }

    fn consume(&mut self, _frame: &Frame, result: &FrameResult) -> Result<(), SinkError> {
        let Some(level) = result.level else { return Ok(()) };
        let now = (level.label(), level.no_guidance());
        if self.last == Some(now) {
            return Ok(());
        }
        self.last = Some(now);
        let t_s = result.timestamp_us as f64 / 1e6;
        let io = |source| SinkError::Io { path: "stdout".into(), source };
        match (level.label(), level.no_guidance()) {
            (Some(label), _) => writeln!(
                self.out,
                "[{t_s:7.2} s] frame {:5}  {label:<6} confidence {:3.0}%  {:?}",
                result.sequence,
                level.confidence * 100.0,
                level.direction
            ),
            (None, Some(reason)) => writeln!(self.out, "[{t_s:7.2} s] frame {:5}  NO GUIDANCE ({})", result.sequence, reason_text(reason)),
            (None, None) => Ok(()),
        }
        .map_err(io)
    }

    fn finish(&mut self, s: &RunSummary) -> Result<(), SinkError> {
        let io = |source| SinkError::Io { path: "stdout".into(), source };
        writeln!(
            self.out,
            "done: {} frames in, {} processed, {} dropped, {} bad frames, {} inference errors; {:.1} frames/s; end-to-end p50 {:.2} ms p99 {:.2} ms\nlevels entered: {}",
            s.frames_in,
            s.frames_processed,
            s.frames_dropped,
            s.frame_errors,
            s.inference_errors,
            s.fps,
            s.latency.end_to_end.p50_ms,
            s.latency.end_to_end.p99_ms,
            if s.levels_entered.is_empty() { "none".to_string() } else { s.levels_entered.join(" > ") }
        )
        .map_err(io)?;
        self.out.flush().map_err(io)
    }
}
