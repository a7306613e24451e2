//! JSON lines: one [`FrameResult`] per line, then one `{"summary": …}` line,
//! each with `schema_version` ([`SCHEMA_VERSION`]; the schema is in docs/results.md).
//!
//! [`JsonLinesSink`] owns its output (a file, whose parent folders it
//! creates, or stdout) behind a `BufWriter`. Each frame's result is
//! serialized with `serde_json::to_writer` straight into that buffer and
//! flushed at the end of its line, so a reader tailing the file (or a pipe)
//! sees whole lines as they happen and a crash loses at most the line being
//! written. Nothing is allocated per frame. At `finish` the [`RunSummary`]
//! is written as `{"summary": <RunSummary>}` and the output flushed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

use serde::Serialize;

use super::{Sink, SinkError};
use crate::frame::Frame;
use crate::result::{FrameResult, SCHEMA_VERSION};
use crate::stats::RunSummary;

/// Large enough for any result line, so a line reaches the output in one write.
const BUFFER_BYTES: usize = 16 * 1024;

pub struct JsonLinesSink {
    /// `json:PATH` or `json:stdout`.
    name: String,
    /// The path (or "stdout") errors name.
    target: String,
    out: BufWriter<Box<dyn Write + Send>>,
}

#[derive(Serialize)]
struct SummaryLine<'a> {
    schema_version: u32,
    summary: &'a RunSummary,
}

/// A frame's line: the schema version, then the result's own fields.
#[derive(Serialize)]
struct FrameLine<'a> {
    schema_version: u32,
    #[serde(flatten)]
    result: &'a FrameResult,
}

impl JsonLinesSink {
    /// Writes to the file at `path` (truncated), creating its parent folders.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, SinkError> {
        let path = path.as_ref();
        let target = path.display().to_string();
        let io_err = |source| SinkError::Io { path: target.clone(), source };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(io_err)?;
        }
        let file = File::create(path).map_err(io_err)?;
        Ok(Self::with_writer(Box::new(file), target))
    }

    /// Writes to the process's standard output.
    pub fn stdout() -> Self {
        Self::with_writer(Box::new(io::stdout()), "stdout".to_string())
    }

    fn with_writer(writer: Box<dyn Write + Send>, target: String) -> Self {
        Self { name: format!("json:{target}"), out: BufWriter::with_capacity(BUFFER_BYTES, writer), target }
    }

    fn io_error(&self, source: io::Error) -> SinkError {
        SinkError::Io { path: self.target.clone(), source }
    }

    fn write_line<T: Serialize>(&mut self, value: &T) -> Result<(), SinkError> {
        let written = serde_json::to_writer(&mut self.out, value)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        written.map_err(|e| self.io_error(e))
    }
}

impl Sink for JsonLinesSink {
    fn name(&self) -> &str {
        &self.name
    }

    fn consume(&mut self, _frame: &Frame, result: &FrameResult) -> Result<(), SinkError> {
        self.write_line(&FrameLine { schema_version: SCHEMA_VERSION, result })
    }

    fn finish(&mut self, summary: &RunSummary) -> Result<(), SinkError> {
        self.write_line(&SummaryLine { schema_version: SCHEMA_VERSION, summary })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::result::{LevelEvent, NoGuidanceReason, SpinePosition};
    use crate::sink::test_support::{frame, guidance, no_guidance, summary, with_event};

    #[test]
    fn writes_one_parsable_line_per_frame_then_the_summary() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/deeper/results.jsonl");
        let mut sink = JsonLinesSink::create(&path).unwrap();
        assert_eq!(sink.name(), format!("json:{}", path.display()));
        let f = frame(8, 8, 0, |_, _| 0);
        let results = [
            guidance(10, SpinePosition::Interspace { index: 1 }, 0.875),
            with_event(guidance(11, SpinePosition::Sacrum, 0.5), LevelEvent::SacrumAnchored),
            no_guidance(12, NoGuidanceReason::ProbeOffSpine, 0.25),
        ];
        for r in &results {
            sink.consume(&f, r).unwrap();
        }
        // Lines are complete on disk before finish.
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
        sink.finish(&summary(3)).unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.ends_with('\n'));
        let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0]["sequence"], 10);
        assert_eq!(lines[0]["level"]["label"], "L4-L5");
        assert_eq!(lines[0]["level"]["confidence"], 0.875);
        assert_eq!(lines[0]["level"]["position"]["kind"], "interspace");
        assert_eq!(lines[0]["level"]["direction"], "cephalad");
        assert_eq!(lines[1]["level"]["event"]["event"], "sacrum_anchored");
        assert_eq!(lines[2]["sequence"], 12);
        assert!(lines[2]["level"]["position"].is_null());
        assert!(lines[2]["level"]["label"].is_null());
        assert_eq!(lines[2]["level"]["guidance"], "none");
        assert_eq!(lines[2]["level"]["reason"], "probe_off_spine");
        assert_eq!(lines[0]["level"]["guidance"], "shown");
        let s = &lines[3]["summary"];
        assert_eq!(s["frames_processed"], 3);
        assert_eq!(s["frames_in"], 4);
        assert_eq!(s["frames_dropped"], 1);
        assert_eq!(s["levels_entered"][1], "L4-L5");
        assert_eq!(lines[3].as_object().unwrap().len(), 2);
        assert!(lines.iter().all(|l| l["schema_version"] == crate::result::SCHEMA_VERSION), "every line carries the schema version");
    }

    #[test]
    fn errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let err = JsonLinesSink::create(blocker.join("results.jsonl")).err().unwrap();
        assert!(err.to_string().contains(&blocker.display().to_string()), "{err}");
    }

    #[test]
    fn write_errors_name_the_target() {
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut sink = JsonLinesSink::with_writer(Box::new(Full), "out/r.jsonl".into());
        let err = sink.consume(&frame(2, 2, 0, |_, _| 0), &guidance(0, SpinePosition::Sacrum, 0.9)).unwrap_err();
        assert_eq!(err.to_string(), "out/r.jsonl: disk full");
    }
}
