//! Placeholder: the Y4mSource is being written.

use super::{OpenOptions, SourceError};

pub struct Y4mSource;

impl Y4mSource {
    pub fn open(path: &std::path::Path, _opts: &OpenOptions) -> Result<Self, SourceError> {
        Err(SourceError::Format { path: path.to_path_buf(), format: "y4m", reason: "not implemented yet".into() })
    }
}

impl super::Source for Y4mSource {
    fn info(&self) -> &super::SourceInfo {
        unreachable!("placeholder never opens")
    }
    fn next_frame(&mut self, _frame: &mut crate::frame::Frame) -> Result<super::Next, SourceError> {
        unreachable!("placeholder never opens")
    }
}
