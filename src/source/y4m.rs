//! Y4M (YUV4MPEG2) replay: the luma plane of each frame, as gray8.
//!
//! Accepted: 8-bit `Cmono`, `C420`, `C420jpeg`, `C420mpeg2`, `C420paldv`,
//! `C411`, `C422`, `C444` and `C444alpha` (a missing `C` means 420jpeg, as the
//! format says). The luma plane is read straight into the pooled frame; the
//! other planes are read into one scratch buffer sized at open and dropped.
//! 16-bit and other colour spaces (`Cmono16`, `C420p10`, ...) are refused at
//! open. `I`, `A` and `X` parameters, and parameters on `FRAME` lines, are ignored.
//!
//! Rate and time: `F` gives the frame rate (else `opts.fps`); frame `n` is
//! stamped `n * 1e6 / fps` µs, or 0 when no rate is known. `frame_count` is
//! known when the file size is an exact number of parameter-less frames.
//!
//! Per frame, after the first, nothing is allocated: the reader's buffer, the
//! chroma scratch and the frame are all reused.
//!
//! Errors: a frame cut short by the end of the file is
//! [`SourceError::Truncated`], a frame that does not start with `FRAME` is
//! [`SourceError::BadFrame`] (the stream cannot be resynchronised); both are
//! non-fatal and the next call returns [`Next::End`].

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::{effective_fps, read_full, timestamp_us, Next, OpenOptions, Source, SourceError, SourceInfo, MAX_SIDE_PX};
use crate::frame::{Frame, PixelSpacingMm};

/// Longest stream header or `FRAME` line accepted, in bytes.
const MAX_LINE_BYTES: usize = 4096;

pub struct Y4mSource {
    path: PathBuf,
    reader: BufReader<File>,
    info: SourceInfo,
    width_px: u32,
    height_px: u32,
    /// The non-luma planes of one frame; read and discarded.
    chroma: Box<[u8]>,
    fps: Option<f64>,
    spacing: Option<PixelSpacingMm>,
    next_sequence: u64,
    ended: bool,
}

/// What a Y4M stream header says.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    width_px: u32,
    height_px: u32,
    fps: Option<f64>,
    /// Bytes after the luma plane in each frame.
    chroma_bytes: usize,
}

impl Y4mSource {
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self, SourceError> {
        let io_err = |source| SourceError::Io { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(io_err)?;
        let file_len = file.metadata().map_err(io_err)?.len();
        let mut reader = BufReader::new(file);
        let mut line = Vec::with_capacity(128);
        let format_err = |reason: String| SourceError::Format { path: path.to_path_buf(), format: "Y4M", reason };
        match read_line(&mut reader, &mut line).map_err(io_err)? {
            LineEnd::Newline => {}
            LineEnd::Eof if line.is_empty() => return Err(format_err("the file is empty".into())),
            LineEnd::Eof => return Err(format_err("the header line has no end".into())),
            LineEnd::TooLong => return Err(format_err(format!("no header line within {MAX_LINE_BYTES} bytes"))),
        }
        let header = parse_header(&line).map_err(format_err)?;
        let luma = header.width_px as usize * header.height_px as usize;
        let frame_bytes = luma + header.chroma_bytes;
        let header_bytes = line.len() as u64 + 1;
        let body = file_len.saturating_sub(header_bytes);
        let stride = frame_bytes as u64 + b"FRAME\n".len() as u64;
        let frame_count = (body % stride == 0).then_some(body / stride);
        let fps = effective_fps(header.fps, opts);
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            info: SourceInfo {
                name: path.display().to_string(),
                max_width_px: header.width_px,
                max_height_px: header.height_px,
                fps,
                frame_count,
                spacing_from_stream: false,
            },
            width_px: header.width_px,
            height_px: header.height_px,
            chroma: vec![0u8; header.chroma_bytes].into_boxed_slice(),
            fps,
            spacing: opts.calibration.filter(PixelSpacingMm::is_valid),
            next_sequence: 0,
            ended: false,
        })
    }

    fn frame_bytes(&self) -> usize {
        self.width_px as usize * self.height_px as usize + self.chroma.len()
    }

    /// Consumes one `FRAME...\n` line without allocating.
    fn read_frame_line(&mut self, sequence: u64) -> Result<Option<()>, SourceError> {
        let mut head = [0u8; 5];
        let mut n = 0usize;
        loop {
            let buf = self.reader.fill_buf().map_err(|source| SourceError::Io { path: self.path.clone(), source })?;
            if buf.is_empty() {
                if n == 0 {
                    return Ok(None);
                }
                return Err(SourceError::Truncated { path: self.path.clone(), frame: sequence, got: 0, expected: self.frame_bytes() });
            }
            let (take, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            for &b in &buf[..take] {
                if let Some(h) = head.get_mut(n) {
                    *h = b;
                }
                n += 1;
            }
            self.reader.consume(take);
            if head[..n.min(5)] != b"FRAME"[..n.min(5)] || n > MAX_LINE_BYTES {
                return Err(SourceError::BadFrame {
                    path: self.path.clone(),
                    frame: sequence,
                    reason: "no FRAME marker where a frame should start (stream out of step)".into(),
                });
            }
            if done {
                if n < 6 {
                    return Err(SourceError::BadFrame {
                        path: self.path.clone(),
                        frame: sequence,
                        reason: "short FRAME marker".into(),
                    });
                }
                return Ok(Some(()));
            }
        }
    }

    fn next_inner(&mut self, frame: &mut Frame, sequence: u64) -> Result<Next, SourceError> {
        let io_err = |path: &Path, source| SourceError::Io { path: path.to_path_buf(), source };
        if self.read_frame_line(sequence)?.is_none() {
            return Ok(Next::End);
        }
        let expected = self.frame_bytes();
        if let Err(source) = frame.set_size(self.width_px, self.height_px) {
            // Keep in step with the stream: skip this frame's bytes.
            let skipped = std::io::copy(&mut (&mut self.reader).take(expected as u64), &mut std::io::sink())
                .map_err(|e| io_err(&self.path, e))?;
            if (skipped as usize) < expected {
                self.ended = true;
            }
            return Err(SourceError::FrameSize { path: self.path.clone(), frame: sequence, source });
        }
        let got = read_full(&mut self.reader, frame.pixels_mut()).map_err(|e| io_err(&self.path, e))?;
        let got = if got == frame.pixels().len() {
            got + read_full(&mut self.reader, &mut self.chroma).map_err(|e| io_err(&self.path, e))?
        } else {
            got
        };
        if got < expected {
            return Err(SourceError::Truncated { path: self.path.clone(), frame: sequence, got, expected });
        }
        frame.meta.sequence = sequence;
        frame.meta.timestamp_us = timestamp_us(sequence, self.fps);
        frame.meta.spacing = self.spacing;
        frame.meta.image_region = None;
        Ok(Next::Frame)
    }
}

impl Source for Y4mSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        if self.ended {
            return Ok(Next::End);
        }
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let r = self.next_inner(frame, sequence);
        match &r {
            Ok(Next::End) | Err(SourceError::Truncated { .. }) | Err(SourceError::BadFrame { .. }) => self.ended = true,
            Err(e) if e.is_fatal() => self.ended = true,
            _ => {}
        }
        r
    }
}

enum LineEnd {
    Newline,
    Eof,
    TooLong,
}

/// Reads one line (without its `\n`) into `line`, at most [`MAX_LINE_BYTES`].
fn read_line(r: &mut impl BufRead, line: &mut Vec<u8>) -> std::io::Result<LineEnd> {
    line.clear();
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok(LineEnd::Eof);
        }
        match buf.iter().position(|&b| b == b'\n') {
            Some(i) => {
                line.extend_from_slice(&buf[..i]);
                r.consume(i + 1);
                return Ok(if line.len() > MAX_LINE_BYTES { LineEnd::TooLong } else { LineEnd::Newline });
            }
            None => {
                let n = buf.len();
                line.extend_from_slice(buf);
                r.consume(n);
                if line.len() > MAX_LINE_BYTES {
                    return Ok(LineEnd::TooLong);
                }
            }
        }
    }
}

fn parse_header(line: &[u8]) -> Result<Header, String> {
    let text = std::str::from_utf8(line).map_err(|_| "the header is not text".to_string())?;
    let mut tokens = text.split(' ').filter(|t| !t.is_empty());
    match tokens.next() {
        Some("YUV4MPEG2") => {}
        _ => return Err("does not start with YUV4MPEG2".into()),
    }
    let (mut w, mut h, mut fps, mut colour) = (None, None, None, None);
    for t in tokens {
        let Some(val) = t.get(1..) else { continue };
        match t.as_bytes().first() {
            Some(b'W') => w = Some(parse_side("W", val)?),
            Some(b'H') => h = Some(parse_side("H", val)?),
            Some(b'F') => fps = Some(parse_rate(val)?),
            Some(b'C') => colour = Some(val),
            _ => {} // I (interlace), A (aspect), X (extensions): not needed for gray8
        }
    }
    let width_px = w.ok_or("the header has no width (W)")?;
    let height_px = h.ok_or("the header has no height (H)")?;
    let (wu, hu) = (width_px as usize, height_px as usize);
    let (half_w, half_h) = (wu.div_ceil(2), hu.div_ceil(2));
    let chroma_bytes = match colour.unwrap_or("420jpeg") {
        "mono" => 0,
        "420" | "420jpeg" | "420mpeg2" | "420paldv" => 2 * half_w * half_h,
        "411" => 2 * wu.div_ceil(4) * hu,
        "422" => 2 * half_w * hu,
        "444" => 2 * wu * hu,
        "444alpha" => 3 * wu * hu,
        other => {
            return Err(format!(
                "colour space C{other} is not supported (8-bit mono, 420, 420jpeg, 420mpeg2, 420paldv, 411, 422, 444, 444alpha only)"
            ))
        }
    };
    Ok(Header { width_px, height_px, fps: fps.flatten(), chroma_bytes })
}

fn parse_side(tag: &str, val: &str) -> Result<u32, String> {
    match val.parse::<u32>() {
        Ok(v) if (1..=MAX_SIDE_PX).contains(&v) => Ok(v),
        _ => Err(format!("{tag}{val} is not a frame side in 1..={MAX_SIDE_PX}")),
    }
}

/// `F30000:1001` -> 29.97. `F0:0` (unknown) -> `None`.
fn parse_rate(val: &str) -> Result<Option<f64>, String> {
    let bad = || format!("F{val} is not a frame rate like F25:1");
    let (n, d) = val.split_once(':').ok_or_else(bad)?;
    let n: u32 = n.parse().map_err(|_| bad())?;
    let d: u32 = d.parse().map_err(|_| bad())?;
    if n == 0 || d == 0 {
        return Ok(None);
    }
    Ok(Some(n as f64 / d as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_gives_size_rate_and_chroma() {
        let h = parse_header(b"YUV4MPEG2 W33 H5 F30000:1001 It A1:1 C420mpeg2 XYSCSS=420MPEG2").unwrap();
        assert_eq!((h.width_px, h.height_px), (33, 5));
        assert!((h.fps.unwrap() - 29.97).abs() < 0.001);
        assert_eq!(h.chroma_bytes, 2 * 17 * 3);
        assert_eq!(parse_header(b"YUV4MPEG2 W4 H4 F25:1 Cmono").unwrap().chroma_bytes, 0);
        assert_eq!(parse_header(b"YUV4MPEG2 W4 H4 F25:1 C422").unwrap().chroma_bytes, 16);
        assert_eq!(parse_header(b"YUV4MPEG2 W4 H4 F25:1 C444").unwrap().chroma_bytes, 32);
        // No C: 4:2:0.
        assert_eq!(parse_header(b"YUV4MPEG2 W4 H4 F0:0").unwrap(), Header { width_px: 4, height_px: 4, fps: None, chroma_bytes: 8 });
    }

    #[test]
    fn header_refuses_16_bit_absurd_and_garbage() {
        assert!(parse_header(b"YUV4MPEG2 W4 H4 F25:1 Cmono16").unwrap_err().contains("Cmono16"));
        assert!(parse_header(b"YUV4MPEG2 W4 H4 C420p10").unwrap_err().contains("C420p10"));
        assert!(parse_header(b"YUV4MPEG2 W40000 H4").unwrap_err().contains("W40000"));
        assert!(parse_header(b"YUV4MPEG2 W0 H4").is_err());
        assert!(parse_header(b"YUV4MPEG2 W-1 H4").is_err());
        assert!(parse_header(b"YUV4MPEG2 H4").unwrap_err().contains("width"));
        assert!(parse_header(b"YUV4MPEG2 W4 H4 Fx").is_err());
        assert!(parse_header(b"YUV4MPEG W4 H4").is_err());
        assert!(parse_header(&[0xff, 0xfe, 0x00]).is_err());
        // A multi-byte character where a tag letter should be is skipped, not a panic.
        assert!(parse_header("YUV4MPEG2 W4 H4 é5".as_bytes()).is_ok());
    }
}
