//! Replays a source several times back to back, as one stream with
//! continuous sequence numbers and timestamps (for benchmarks and soak runs).

use crate::frame::Frame;

use super::{Next, OpenOptions, Source, SourceError, SourceInfo};

pub struct RepeatSource {
    uri: String,
    opts: OpenOptions,
    /// `None` only while the next pass is being opened.
    inner: Option<Box<dyn Source>>,
    info: SourceInfo,
    times_left: u32,
    seq_offset: u64,
    ts_offset_us: u64,
    last_seq: u64,
    last_ts_us: u64,
}

impl RepeatSource {
    pub fn open(uri: &str, opts: &OpenOptions, times: u32) -> Result<Self, SourceError> {
        let inner = super::open(uri, opts)?;
        let mut info = inner.info().clone();
        info.frame_count = info.frame_count.map(|n| n * times as u64);
        Ok(Self {
            uri: uri.to_string(),
            opts: opts.clone(),
            inner: Some(inner),
            info,
            times_left: times.saturating_sub(1),
            seq_offset: 0,
            ts_offset_us: 0,
            last_seq: 0,
            last_ts_us: 0,
        })
    }
}

impl Source for RepeatSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        loop {
            let Some(inner) = self.inner.as_mut() else { return Ok(Next::End) };
            match inner.next_frame(frame)? {
                Next::Frame => {
                    frame.meta.sequence += self.seq_offset;
                    frame.meta.timestamp_us += self.ts_offset_us;
                    self.last_seq = frame.meta.sequence;
                    self.last_ts_us = frame.meta.timestamp_us;
                    return Ok(Next::Frame);
                }
                Next::End if self.times_left > 0 => {
                    self.times_left -= 1;
                    // Close this pass before opening the next: a DICOM source holds the
                    // whole file, and two at once would double the peak memory.
                    self.inner = None;
                    self.inner = Some(super::open(&self.uri, &self.opts)?);
                    let step_us = self.info.fps.map(|f| (1e6 / f) as u64).unwrap_or(40_000);
                    self.seq_offset = self.last_seq + 1;
                    self.ts_offset_us = self.last_ts_us + step_us;
                }
                Next::End => return Ok(Next::End),
            }
        }
    }
}
