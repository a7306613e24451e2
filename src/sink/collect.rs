//! A sink that keeps one value per frame, by sequence number, for the
//! evaluators and tests: what a task showed on each frame, picked out of
//! the [`FrameResult`] by a function. Not for a live service (it grows with
//! the stream).

use std::sync::{Arc, Mutex};

use crate::frame::Frame;
use crate::result::FrameResult;
use crate::stats::RunSummary;

use super::{Sink, SinkError};

/// Collects `pick(result)` for every frame at index `result.sequence`.
pub struct CollectSink<T> {
    pick: fn(&FrameResult) -> Option<T>,
    got: Arc<Mutex<Vec<Option<T>>>>,
}

impl<T: Clone + Send + 'static> CollectSink<T> {
    /// The sink and a handle to read what it collected after the run.
    pub fn new(pick: fn(&FrameResult) -> Option<T>) -> (Self, Arc<Mutex<Vec<Option<T>>>>) {
        let got = Arc::new(Mutex::new(Vec::new()));
        (Self { pick, got: got.clone() }, got)
    }

    /// What was collected (frames never seen are `None`).
    pub fn take(handle: &Arc<Mutex<Vec<Option<T>>>>) -> Vec<Option<T>> {
        std::mem::take(&mut *handle.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl<T: Clone + Send + 'static> Sink for CollectSink<T> {
    fn name(&self) -> &str {
        "collect"
    }

    fn consume(&mut self, _frame: &Frame, r: &FrameResult) -> Result<(), SinkError> {
        let mut v = self.got.lock().unwrap_or_else(|p| p.into_inner());
        let i = r.sequence as usize;
        if v.len() <= i {
            v.resize(i + 1, None);
        }
        v[i] = (self.pick)(r);
        Ok(())
    }

    fn finish(&mut self, _s: &RunSummary) -> Result<(), SinkError> {
        Ok(())
    }
}
