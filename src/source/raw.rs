//! Placeholder: the RawSource is being written.

use super::{OpenOptions, SourceError};

pub struct RawSource;

impl RawSource {
    pub fn open(path: &std::path::Path, _size: (u32, u32), _opts: &OpenOptions) -> Result<Self, SourceError> {
        Err(SourceError::Format { path: path.to_path_buf(), format: "raw", reason: "not implemented yet".into() })
    }
}

impl super::Source for RawSource {
    fn info(&self) -> &super::SourceInfo {
        unreachable!("placeholder never opens")
    }
    fn next_frame(&mut self, _frame: &mut crate::frame::Frame) -> Result<super::Next, SourceError> {
        unreachable!("placeholder never opens")
    }
}
