//! The source stage: fills pooled frames from the source, paces replay at
//! the recorded rate (or `pace_fps`), and hands frames to inference through
//! the bounded queue, dropping the oldest waiting frame when inference lags
//! (waiting instead when replaying `fast`, which has no real-time deadline).
//! A frame the source cannot read is counted and skipped; a run of
//! [`MAX_CONSECUTIVE_FRAME_ERRORS`] of them ends the run with that error.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::source::{Next, Source, SourceError};

use super::Shared;

/// This many frames in a row that the source cannot read end the run: a
/// stream of errors is not a stream of frames (one file that declares
/// millions of unreadable frames must not log millions of lines).
pub const MAX_CONSECUTIVE_FRAME_ERRORS: u32 = 100;

/// What the source stage counted.
#[derive(Default)]
pub(super) struct SourceStats {
    pub frames_in: u64,
    pub frame_errors: u64,
    pub dropped: u64,
    pub gaps: u64,
    pub error: Option<String>,
}

/// Runs until the source ends, fails fatally, or the stop flag is set; closes the inference queue.
pub(super) fn run(mut source: Box<dyn Source>, sh: &Shared) -> SourceStats {
    let mut st = SourceStats::default();
    let mut first_ts: Option<u64> = None;
    let mut last_seq: Option<u64> = None;
    let mut errors_in_a_row = 0u32;
    let paced_start = Instant::now();
    let fast = sh.opts.fast;
    while !sh.stop.load(Ordering::Relaxed) {
        let mut work = sh.pool.take();
        match source.next_frame(&mut work.frame) {
            Ok(Next::Frame) => {
                errors_in_a_row = 0;
                sh.no_signal.store(false, Ordering::Relaxed);
                st.frames_in += 1;
                let seq = work.frame.meta.sequence;
                if let Some(prev) = last_seq {
                    if seq > prev + 1 {
                        st.gaps += seq - prev - 1;
                    }
                }
                last_seq = Some(seq);
                if !fast {
                    let ts = work.frame.meta.timestamp_us;
                    let t0 = *first_ts.get_or_insert(ts);
                    let offset_us = match sh.opts.pace_fps {
                        Some(f) => ((st.frames_in - 1) as f64 * 1e6 / f) as u64,
                        None => ts.saturating_sub(t0),
                    };
                    let due = paced_start + Duration::from_micros(offset_us);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                }
                work.entered = Instant::now();
                if fast {
                    sh.to_infer.push_wait(work);
                } else if let Some(old) = sh.to_infer.push_drop_oldest(work) {
                    st.dropped += 1;
                    sh.pool.give(old);
                }
            }
            Ok(Next::End) => {
                sh.pool.give(work);
                break;
            }
            Err(e @ SourceError::NoSignal { .. }) => {
                if !sh.no_signal.swap(true, Ordering::Relaxed) {
                    log::warn!("{e}");
                }
                sh.pool.give(work);
            }
            Err(e) if !e.is_fatal() => {
                log::warn!("{e}");
                st.frame_errors += 1;
                sh.pool.give(work);
                errors_in_a_row += 1;
                if errors_in_a_row >= MAX_CONSECUTIVE_FRAME_ERRORS {
                    let msg = format!("{errors_in_a_row} frames in a row could not be read (the last: {e}); giving up on the source");
                    log::error!("{msg}");
                    st.error = Some(msg);
                    break;
                }
            }
            Err(e) => {
                log::error!("{e}");
                st.error = Some(e.to_string());
                sh.pool.give(work);
                break;
            }
        }
    }
    sh.to_infer.close();
    st
}
