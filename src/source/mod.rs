//! Frame sources: where frames come from.
//!
//! Every source is a type behind the [`Source`] trait: it fills a pooled
//! [`Frame`] in place with the next 8-bit grayscale image. Colour and 16-bit
//! inputs are converted to gray8 here, at the edge, so nothing downstream
//! cares where a frame came from. [`open`] picks the source from a URI.
//!
//! Errors come in two kinds: an error from `open` (bad file, bad header) is a
//! startup error; an error from `next_frame` for which [`SourceError::is_fatal`]
//! is false concerns only that frame, and the pipeline counts it and asks for
//! the next one.

use std::path::PathBuf;

use thiserror::Error;

use crate::frame::{Frame, FrameError, PixelSpacingMm};

pub mod dicom;
pub mod png_dir;
pub mod raw;
pub mod repeat;
pub mod spacing_table;
#[cfg(target_os = "linux")]
pub mod v4l;
#[cfg(not(target_os = "linux"))]
#[path = "v4l_stub.rs"]
pub mod v4l;
pub mod y4m;

use crate::hw::pixfmt::PixelFormat;

/// What `next_frame` produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The frame was filled.
    Frame,
    /// The stream has ended; no frame was filled.
    End,
}

/// Facts about a source known once it is open.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// What a person would call it in an error: a path or a device.
    pub name: String,
    /// Largest frame the source will produce (for sizing the pool).
    pub max_width_px: u32,
    pub max_height_px: u32,
    /// Frame rate used to pace replay and stamp frames: the recorded rate when
    /// the source has one (Y4M `F`, DICOM FrameTime...), else `OpenOptions::fps`.
    pub fps: Option<f64>,
    /// Number of frames, when known in advance.
    pub frame_count: Option<u64>,
    /// The stream itself may carry a pixel spacing per frame (DICOM, a
    /// spacing table). False: only the board's `[probe]` calibration can give one.
    pub spacing_from_stream: bool,
}

/// A producer of frames.
pub trait Source: Send {
    fn info(&self) -> &SourceInfo;

    /// Fills `frame` (size, pixels and metadata: sequence, timestamp_us, spacing,
    /// image_region) with the next frame. `Ok(Next::End)` at the end of the stream.
    /// A non-fatal error means this frame is lost but the next call may succeed.
    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError>;
}

#[derive(Debug, Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, #[source] source: std::io::Error },
    #[error("{path}: not a valid {format} stream: {reason}")]
    Format { path: PathBuf, format: &'static str, reason: String },
    /// A well-formed file this build cannot use (no pixel data, a codec or
    /// photometric interpretation not supported).
    #[error("{path}: {reason}")]
    Unsupported { path: PathBuf, reason: String },
    #[error("{path}: frame {frame}: {reason}")]
    BadFrame { path: PathBuf, frame: u64, reason: String },
    #[error("{path}: frame {frame}: {source}")]
    FrameSize { path: PathBuf, frame: u64, #[source] source: FrameError },
    #[error("{path}: frame {frame} is truncated ({got} of {expected} bytes)")]
    Truncated { path: PathBuf, frame: u64, got: usize, expected: usize },
    /// A frame whose size differs from the stream's (e.g. one PNG in a folder of another size).
    #[error("{path}: frame {frame} is {width_px}x{height_px} px, expected {expected_width_px}x{expected_height_px} px")]
    WrongSize {
        path: PathBuf,
        frame: u64,
        width_px: u32,
        height_px: u32,
        expected_width_px: u32,
        expected_height_px: u32,
    },
    #[error("unknown source URI '{uri}': {reason}")]
    BadUri { uri: String, reason: String },
    #[error("{device}: {reason}")]
    Device { device: String, reason: String },
    /// A live source lost its input (device unplugged); it keeps trying to
    /// reopen and will deliver frames again when the input is back.
    #[error("{device}: no signal: {reason}")]
    NoSignal { device: String, reason: String },
}

impl SourceError {
    /// True when the source cannot go on; false when only one frame was lost
    /// (after a truncated last frame the next call returns [`Next::End`]).
    pub fn is_fatal(&self) -> bool {
        !matches!(
            self,
            SourceError::BadFrame { .. }
                | SourceError::FrameSize { .. }
                | SourceError::Truncated { .. }
                | SourceError::WrongSize { .. }
        )
    }
}

/// Largest width or height any source accepts, in pixels: headers claiming
/// more are refused before anything is allocated.
pub const MAX_SIDE_PX: u32 = 16384;

/// The rate a source's frames are stamped with: the recorded rate when the
/// source has one, else `opts.fps`; `None` when neither is a finite positive number.
pub(crate) fn effective_fps(recorded: Option<f64>, opts: &OpenOptions) -> Option<f64> {
    let ok = |f: &f64| f.is_finite() && *f > 0.0;
    recorded.filter(ok).or(opts.fps.filter(ok))
}

/// Presentation time of frame `sequence` at `fps`: `sequence * 1e6 / fps` µs,
/// 0 for every frame when no rate is known.
pub(crate) fn timestamp_us(sequence: u64, fps: Option<f64>) -> u64 {
    match fps {
        Some(f) if f.is_finite() && f > 0.0 => (sequence as f64 * 1e6 / f).round() as u64,
        _ => 0,
    }
}

/// Reads until `buf` is full or the reader is at its end; returns the bytes read.
/// Unlike `read_exact` it says how much of a truncated frame was there.
pub(crate) fn read_full(r: &mut impl std::io::Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// How a live capture device is asked to deliver frames (board `[capture]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureSettings {
    pub width_px: u32,
    pub height_px: u32,
    /// Requested frame rate; the driver may give another.
    pub fps: f64,
    /// Pixel formats to ask for, in order of preference.
    pub formats: Vec<PixelFormat>,
    /// Memory-mapped buffers in the ring (the driver may grant another number).
    pub buffers: u32,
}

impl Default for CaptureSettings {
    fn default() -> Self {
        Self { width_px: 640, height_px: 480, fps: 30.0, formats: vec![PixelFormat::Grey, PixelFormat::Yuyv], buffers: 4 }
    }
}

/// Options that apply to any source.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Frame size for headerless raw video.
    pub raw_size_px: Option<(u32, u32)>,
    /// Frame rate for sources that carry none (raw, PNG folder).
    pub fps: Option<f64>,
    /// Pixel spacing from the board's probe calibration, used when the source has none.
    pub calibration: Option<PixelSpacingMm>,
    /// For live capture devices.
    pub capture: CaptureSettings,
}

/// Every file source stamps frame `n` (counting lost frames too, from 0) with
/// `timestamp_us = n * 1e6 / fps` using [`SourceInfo::fps`], or 0 when no rate
/// is known; spacing comes from the file, else `OpenOptions::calibration`.
///
/// Opens a source from a URI: `y4m:PATH`, `raw:PATH?WxH`, `png:DIR`,
/// `dicom:PATH` (a file or a folder of files), `v4l:/dev/videoN` or
/// `v4l:card=NAME` (live capture); a bare path is recognised by its extension
/// (`.y4m`, `.raw`/`.gray`, `.dcm`), as a `/dev/video*` node, or as a folder of PNGs.
pub fn open(uri: &str, opts: &OpenOptions) -> Result<Box<dyn Source>, SourceError> {
    let (scheme, rest) = match uri.split_once(':') {
        Some((s, r)) if ["y4m", "raw", "png", "dicom", "v4l"].contains(&s) => (s, r),
        _ => ("", uri),
    };
    let scheme = if scheme.is_empty() { guess_scheme(rest) } else { scheme };
    match scheme {
        "y4m" => Ok(Box::new(y4m::Y4mSource::open(rest.as_ref(), opts)?)),
        "raw" => {
            let (path, size) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(parse_size(uri, q)?)),
                None => (rest, opts.raw_size_px),
            };
            let size = size.ok_or_else(|| SourceError::BadUri {
                uri: uri.to_string(),
                reason: "raw video needs its frame size: raw:PATH?640x480".into(),
            })?;
            Ok(Box::new(raw::RawSource::open(path.as_ref(), size, opts)?))
        }
        "png" => Ok(Box::new(png_dir::PngDirSource::open(rest.as_ref(), opts)?)),
        "dicom" => Ok(Box::new(dicom::DicomSource::open(rest.as_ref(), opts)?)),
        "v4l" => Ok(Box::new(v4l::V4l2Source::open(rest, opts)?)),
        _ => Err(SourceError::BadUri {
            uri: uri.to_string(),
            reason: "expected y4m:, raw:, png:, dicom: or v4l:, or a path ending .y4m/.raw/.gray/.dcm, a /dev/video* node or a folder of PNGs".into(),
        }),
    }
}

fn guess_scheme(path: &str) -> &'static str {
    let p = std::path::Path::new(path.split('?').next().unwrap_or(path));
    if path.starts_with("/dev/video") {
        return "v4l";
    }
    match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("y4m") => "y4m",
        Some("raw") | Some("gray") => "raw",
        Some("dcm") | Some("dicom") => "dicom",
        _ if p.is_dir() => {
            let has_dcm = std::fs::read_dir(p).ok().into_iter().flatten().flatten().any(|e| {
                e.path().extension().and_then(|x| x.to_str()).is_some_and(|x| x.eq_ignore_ascii_case("dcm"))
            });
            if has_dcm { "dicom" } else { "png" }
        }
        _ => "",
    }
}

fn parse_size(uri: &str, q: &str) -> Result<(u32, u32), SourceError> {
    let bad = || SourceError::BadUri { uri: uri.to_string(), reason: format!("'{q}' is not a frame size like 640x480") };
    let (w, h) = q.split_once('x').ok_or_else(bad)?;
    let w: u32 = w.trim().parse().map_err(|_| bad())?;
    let h: u32 = h.trim().parse().map_err(|_| bad())?;
    if w == 0 || h == 0 || w > 16384 || h > 16384 {
        return Err(bad());
    }
    Ok((w, h))
}
