//! Headerless raw video: back-to-back 8-bit gray frames of a size given by the
//! caller (`raw:PATH?640x480` or `OpenOptions::raw_size_px`).
//!
//! Each frame is read straight into the pooled frame; nothing is allocated per
//! frame. The file carries no rate: frames are stamped from `opts.fps`
//! (`n * 1e6 / fps` µs), or 0 without it. `frame_count` is the number of whole
//! frames in the file. When the file size is not a multiple of the frame size
//! the last, partial frame is [`SourceError::Truncated`] (non-fatal) and the
//! next call returns [`Next::End`]; a wrong frame size given on the command
//! line usually shows up that way.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use super::{effective_fps, read_full, timestamp_us, Next, OpenOptions, Source, SourceError, SourceInfo, MAX_SIDE_PX};
use crate::frame::{Frame, PixelSpacingMm};

pub struct RawSource {
    path: PathBuf,
    reader: BufReader<File>,
    info: SourceInfo,
    width_px: u32,
    height_px: u32,
    fps: Option<f64>,
    spacing: Option<PixelSpacingMm>,
    next_sequence: u64,
    ended: bool,
}

impl RawSource {
    pub fn open(path: &Path, size: (u32, u32), opts: &OpenOptions) -> Result<Self, SourceError> {
        let (width_px, height_px) = size;
        let format_err = |reason: String| SourceError::Format { path: path.to_path_buf(), format: "raw gray8", reason };
        if !(1..=MAX_SIDE_PX).contains(&width_px) || !(1..=MAX_SIDE_PX).contains(&height_px) {
            return Err(format_err(format!("frame size {width_px}x{height_px} is outside 1..={MAX_SIDE_PX} px")));
        }
        let io_err = |source| SourceError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if meta.is_dir() {
            return Err(format_err("is a folder, not a file".into()));
        }
        let frame_bytes = width_px as u64 * height_px as u64;
        let len = meta.len();
        if len == 0 {
            return Err(format_err("the file is empty".into()));
        }
        if len < frame_bytes {
            return Err(format_err(format!(
                "the file ({len} bytes) is smaller than one {width_px}x{height_px} frame ({frame_bytes} bytes): is the frame size right?"
            )));
        }
        let fps = effective_fps(None, opts);
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(64 * 1024, file),
            info: SourceInfo {
                name: path.display().to_string(),
                max_width_px: width_px,
                max_height_px: height_px,
                fps,
                frame_count: Some(len / frame_bytes),
                spacing_from_stream: false,
            },
            width_px,
            height_px,
            fps,
            spacing: opts.calibration.filter(PixelSpacingMm::is_valid),
            next_sequence: 0,
            ended: false,
        })
    }
}

impl Source for RawSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        if self.ended {
            return Ok(Next::End);
        }
        let sequence = self.next_sequence;
        let expected = self.width_px as usize * self.height_px as usize;
        let io_err = |path: &Path, source| SourceError::Io { path: path.to_path_buf(), source };
        if let Err(source) = frame.set_size(self.width_px, self.height_px) {
            let skipped = std::io::copy(&mut (&mut self.reader).take(expected as u64), &mut std::io::sink())
                .map_err(|e| io_err(&self.path, e))?;
            if skipped == 0 {
                self.ended = true;
                return Ok(Next::End);
            }
            self.next_sequence += 1;
            return Err(SourceError::FrameSize { path: self.path.clone(), frame: sequence, source });
        }
        let got = match read_full(&mut self.reader, frame.pixels_mut()) {
            Ok(n) => n,
            Err(e) => {
                self.ended = true;
                return Err(io_err(&self.path, e));
            }
        };
        if got == 0 {
            self.ended = true;
            return Ok(Next::End);
        }
        self.next_sequence += 1;
        if got < expected {
            self.ended = true;
            return Err(SourceError::Truncated { path: self.path.clone(), frame: sequence, got, expected });
        }
        frame.meta.sequence = sequence;
        frame.meta.timestamp_us = timestamp_us(sequence, self.fps);
        frame.meta.spacing = self.spacing;
        frame.meta.image_region = None;
        Ok(Next::Frame)
    }
}
