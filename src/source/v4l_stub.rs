//! V4L2 capture on a system without V4L2: every open fails with a clear
//! message, so callers carry no `cfg`.

use super::{Next, OpenOptions, Source, SourceError, SourceInfo};
use crate::frame::Frame;

pub use super::CaptureSettings;

/// Never constructed off Linux.
pub struct V4l2Source {
    info: SourceInfo,
}

impl V4l2Source {
    pub fn open(spec: &str, _opts: &OpenOptions) -> Result<Self, SourceError> {
        Err(SourceError::Device { device: spec.to_string(), reason: "V4L2 capture needs Linux; this build has no V4L2 support".into() })
    }
}

impl Source for V4l2Source {
    fn info(&self) -> &SourceInfo {
        &self.info
    }
    fn next_frame(&mut self, _frame: &mut Frame) -> Result<Next, SourceError> {
        Err(SourceError::Device { device: self.info.name.clone(), reason: "V4L2 capture needs Linux".into() })
    }
}
