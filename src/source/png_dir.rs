//! A folder of PNG files replayed as frames, in file-name order.
//!
//! Files ending `.png` (any case) are taken, sorted by file name byte by byte
//! (not "natural" order: `f10.png` comes before `f2.png`, so zero-pad the
//! numbers); other files are ignored. The first readable file fixes the frame
//! size; a file of another size is [`SourceError::WrongSize`] and a file that
//! fails to decode is [`SourceError::BadFrame`], both non-fatal: the next call
//! goes on with the next file. An empty folder is an open error.
//!
//! Every PNG colour type becomes gray8: 1/2/4/8/16-bit gray (16-bit keeps the
//! high byte), gray+alpha, RGB, RGBA and palette (through RGB), with luma
//! 0.299 R + 0.587 G + 0.114 B; alpha is ignored. Rate: `opts.fps` (stamps
//! `n * 1e6 / fps` µs, else 0); spacing: `opts.calibration`.
//!
//! Allocation: the file bytes and the decoded pixels go into two buffers owned
//! by the source and sized at open (for the largest file, and 4 bytes a pixel),
//! but the `png` decoder allocates its own inflate state on every file.

use std::fs::File;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};

use crate::color::luma;
use super::{effective_fps, timestamp_us, Next, OpenOptions, Source, SourceError, SourceInfo, MAX_SIDE_PX};
use crate::frame::{Frame, PixelSpacingMm};

pub struct PngDirSource {
    files: Vec<PathBuf>,
    info: SourceInfo,
    width_px: u32,
    height_px: u32,
    /// One file's bytes; reused.
    file_buf: Vec<u8>,
    /// Decoded 8-bit samples of one image (up to 4 a pixel); reused.
    decoded: Vec<u8>,
    /// Files larger than this are refused without being read.
    max_file_bytes: u64,
    fps: Option<f64>,
    spacing: Option<PixelSpacingMm>,
    next_index: usize,
}

impl PngDirSource {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self, SourceError> {
        let format_err = |reason: String| SourceError::Format { path: path.to_path_buf(), format: "PNG folder", reason };
        let entries = std::fs::read_dir(path).map_err(|source| SourceError::Io { path: path.to_path_buf(), source })?;
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().and_then(|x| x.to_str()).is_some_and(|x| x.eq_ignore_ascii_case("png")))
            .collect();
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        if files.is_empty() {
            return Err(format_err("the folder has no .png files".into()));
        }
        // The first file that reads fixes the frame size.
        let mut first_err = None;
        let mut size = None;
        for f in &files {
            match read_png_size(f) {
                Ok(s) => {
                    size = Some(s);
                    break;
                }
                Err(e) => {
                    first_err.get_or_insert_with(|| format!("{}: {e}", f.display()));
                }
            }
        }
        let Some((width_px, height_px)) = size else {
            return Err(format_err(format!(
                "none of its {} .png files can be read (first: {})",
                files.len(),
                first_err.unwrap_or_default()
            )));
        };
        let pixels = width_px as usize * height_px as usize;
        // A PNG is at most about its 16-bit RGBA samples plus chunk overhead.
        let max_file_bytes = pixels as u64 * 8 + (1 << 20);
        let largest = files
            .iter()
            .filter_map(|f| f.metadata().ok().map(|m| m.len()))
            .filter(|&l| l <= max_file_bytes)
            .max()
            .unwrap_or(0);
        let fps = effective_fps(None, opts);
        Ok(Self {
            info: SourceInfo {
                name: path.display().to_string(),
                max_width_px: width_px,
                max_height_px: height_px,
                fps,
                frame_count: Some(files.len() as u64),
                spacing_from_stream: false,
            },
            files,
            width_px,
            height_px,
            file_buf: Vec::with_capacity(largest as usize + 1),
            decoded: vec![0u8; pixels * 4],
            max_file_bytes,
            fps,
            spacing: opts.calibration.filter(PixelSpacingMm::is_valid),
            next_index: 0,
        })
    }

    fn decode_into(&mut self, index: usize, frame: &mut Frame) -> Result<(), SourceError> {
        let sequence = index as u64;
        let file = &self.files[index];
        let bad = |reason: String| SourceError::BadFrame { path: file.clone(), frame: sequence, reason };
        let io_err = |source| SourceError::Io { path: file.clone(), source };
        let mut f = File::open(file).map_err(io_err)?;
        let len = f.metadata().map_err(io_err)?.len();
        if len > self.max_file_bytes {
            return Err(bad(format!("file of {len} bytes is too large for a {}x{} frame", self.width_px, self.height_px)));
        }
        self.file_buf.clear();
        f.read_to_end(&mut self.file_buf).map_err(io_err)?;

        let mut decoder = png::Decoder::new_with_limits(Cursor::new(&self.file_buf[..]), limits(self.decoded.len()));
        decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
        let mut reader = decoder.read_info().map_err(|e| bad(format!("not a readable PNG: {e}")))?;
        let (w, h) = (reader.info().width, reader.info().height);
        if (w, h) != (self.width_px, self.height_px) {
            return Err(SourceError::WrongSize {
                path: file.clone(),
                frame: sequence,
                width_px: w,
                height_px: h,
                expected_width_px: self.width_px,
                expected_height_px: self.height_px,
            });
        }
        let needed = reader.output_buffer_size().filter(|&n| n <= self.decoded.len()).ok_or_else(|| bad("decoded image larger than expected".into()))?;
        let out = reader.next_frame(&mut self.decoded[..needed]).map_err(|e| bad(format!("PNG decoding failed: {e}")))?;
        let channels = match out.color_type {
            png::ColorType::Grayscale => 1,
            png::ColorType::GrayscaleAlpha => 2,
            png::ColorType::Rgb => 3,
            png::ColorType::Rgba => 4,
            png::ColorType::Indexed => return Err(bad("palette was not expanded".into())),
        };
        if out.bit_depth != png::BitDepth::Eight {
            return Err(bad(format!("unexpected decoded bit depth {:?}", out.bit_depth)));
        }
        frame.set_size(w, h).map_err(|source| SourceError::FrameSize { path: file.clone(), frame: sequence, source })?;
        let row_bytes = w as usize * channels;
        let stride = out.line_size.max(row_bytes);
        let dst = frame.pixels_mut();
        for (y, dst_row) in dst.chunks_exact_mut(w as usize).enumerate() {
            let src_row = self
                .decoded
                .get(y * stride..y * stride + row_bytes)
                .ok_or_else(|| bad("decoded image shorter than its header says".into()))?;
            match channels {
                1 => dst_row.copy_from_slice(src_row),
                2 => dst_row.iter_mut().zip(src_row.chunks_exact(2)).for_each(|(d, s)| *d = s[0]),
                _ => dst_row
                    .iter_mut()
                    .zip(src_row.chunks_exact(channels))
                    .for_each(|(d, s)| *d = luma(s[0], s[1], s[2])),
            }
        }
        Ok(())
    }
}

fn limits(decoded_bytes: usize) -> png::Limits {
    // Room for the image plus the decoder's own buffers; refuses bombs.
    png::Limits { bytes: decoded_bytes.saturating_mul(2).saturating_add(1 << 20) }
}

/// Largest PNG frame, pixels (the decode buffer is 4 bytes a pixel).
const MAX_PNG_PIXELS: u64 = 32 << 20;
/// Deflate's best ratio is about 1032:1: a file smaller than its image
/// data over this cannot hold the image its header declares.
const DEFLATE_MAX_RATIO: u64 = 1032;

/// Reads only the header of a PNG file, and checks the size it declares
/// against what the file could hold before anything is allocated for it.
fn read_png_size(path: &Path) -> Result<(u32, u32), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let file_len = file.metadata().map_err(|e| e.to_string())?.len();
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    let info = decoder.read_header_info().map_err(|e| e.to_string())?;
    let (w, h) = (info.width, info.height);
    if !(1..=MAX_SIDE_PX).contains(&w) || !(1..=MAX_SIDE_PX).contains(&h) {
        return Err(format!("{w}x{h} px is outside 1..={MAX_SIDE_PX}"));
    }
    if w as u64 * h as u64 > MAX_PNG_PIXELS {
        return Err(format!("{w}x{h} px is more than {} Mpx", MAX_PNG_PIXELS >> 20));
    }
    let bits = info.bit_depth as u64 * info.color_type.samples() as u64;
    let image_bytes = h as u64 * (1 + (w as u64 * bits).div_ceil(8));
    if file_len.saturating_mul(DEFLATE_MAX_RATIO) < image_bytes {
        return Err(format!("declares {w}x{h} px ({image_bytes} bytes of image data) but the file has only {file_len} bytes"));
    }
    Ok((w, h))
}

impl Source for PngDirSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        let index = self.next_index;
        if index >= self.files.len() {
            return Ok(Next::End);
        }
        self.next_index += 1;
        self.decode_into(index, frame)?;
        let sequence = index as u64;
        frame.meta.sequence = sequence;
        frame.meta.timestamp_us = timestamp_us(sequence, self.fps);
        frame.meta.spacing = self.spacing;
        frame.meta.image_region = None;
        Ok(Next::Frame)
    }
}
