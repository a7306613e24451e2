//! Placeholder: the PngDirSource is being written.

use super::{OpenOptions, SourceError};

pub struct PngDirSource;

impl PngDirSource {
    pub fn open(path: &std::path::Path, _opts: &OpenOptions) -> Result<Self, SourceError> {
        Err(SourceError::Format { path: path.to_path_buf(), format: "png_dir", reason: "not implemented yet".into() })
    }
}

impl super::Source for PngDirSource {
    fn info(&self) -> &super::SourceInfo {
        unreachable!("placeholder never opens")
    }
    fn next_frame(&mut self, _frame: &mut crate::frame::Frame) -> Result<super::Next, SourceError> {
        unreachable!("placeholder never opens")
    }
}
