//! DICOM replay: one file (single- or multi-frame) or a folder of files, one
//! frame at a time, as gray8 with the file's spacing, ultrasound region and rate.
//!
//! - **Transfer syntaxes**: implicit and explicit VR little endian, explicit
//!   big endian, deflated explicit VR; JPEG baseline/extended (8-bit), JPEG
//!   lossless (process 14, any selection value), RLE lossless. Others
//!   (JPEG-LS, JPEG 2000, video) are refused at open, naming the syntax.
//! - **Pixels**: 8- and 16-bit, any BitsStored/HighBit, signed or not,
//!   MONOCHROME1/2, RGB (either planar configuration), YBR_FULL,
//!   YBR_FULL_422; see [`gray`] for the mapping to 8 bits (window when the
//!   file has one, else identity for plain 8-bit, else each frame's min..max).
//! - **Spacing**: the first 2D Sequence of Ultrasound Regions item in cm
//!   (its bounds also give `image_region`), else PixelSpacing (row \ column,
//!   also from the shared functional groups), else ImagerPixelSpacing, else
//!   `opts.calibration`. Other region units (e.g. Doppler seconds) are skipped.
//! - **Rate**: FrameTime (ms), else CineRate, else RecommendedDisplayFrameRate,
//!   else `opts.fps`; frame `n` is stamped `n * 1e6 / fps` µs, or 0 without a rate.
//! - **Folder**: files are sorted by InstanceNumber, then file name (files with
//!   none go last); files that are not DICOM or have no image (a DICOMDIR, a
//!   report) are skipped at open with a warning. Only one file is in memory at
//!   a time; each file's frames follow the previous file's in `sequence`.
//!
//! Memory and allocation: a file is parsed whole into memory when its turn
//! comes (compressed frames stay compressed), and frames are decoded one at a
//! time, never all at once. Native frames are converted straight from the
//! parsed Pixel Data into the pooled frame without allocating; the JPEG and
//! RLE decoders of `dicom-pixeldata` allocate one frame's buffer per call.
//! Decoder panics on malformed data are caught and reported as a bad frame.
//!
//! Errors: open fails (fatal, one line naming the file) for a missing or
//! unparsable file, a file without Pixel Data ("has no Pixel Data (SOP class
//! …)"), an unsupported transfer syntax or photometric interpretation. A frame
//! that fails to decode is [`SourceError::BadFrame`], missing frame bytes are
//! [`SourceError::Truncated`]; both are non-fatal and the next call goes on.

mod gray;
mod guard;
mod jpeg_header;
mod params;
mod rle;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use dicom_core::dictionary::{UidDictionary, UidDictionaryEntry};
use dicom_core::value::{PrimitiveValue, Value};
use dicom_dictionary_std::{tags, StandardSopClassDictionary};
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use dicom_pixeldata::PixelDecoder;

use self::gray::{Bytes8, Layout, Le16, MonoMap, SignedWords16, Words16, Words8};
use self::params::{Acquisition, Codec, ImageParams};
use super::{effective_fps, timestamp_us, Next, OpenOptions, Source, SourceError, SourceInfo};
use crate::file_read::{read_prefix_capped, FileReadError};
use crate::frame::{Frame, PixelSpacingMm};

pub struct DicomSource {
    info: SourceInfo,
    files: Vec<FileEntry>,
    /// Index in `files` of the file being read.
    file_index: usize,
    /// Next frame to read within that file.
    frame_in_file: u32,
    loaded: Option<Loaded>,
    next_sequence: u64,
    fps: Option<f64>,
    calibration: Option<PixelSpacingMm>,
}

/// A file of the stream, as seen at open.
#[derive(Debug)]
struct FileEntry {
    path: PathBuf,
    /// NumberOfFrames from its header (used to number frames of a file that fails to load).
    frames: u32,
}

/// The file being read, parsed, with everything needed per frame.
struct Loaded {
    path: PathBuf,
    obj: DefaultDicomObject,
    params: ImageParams,
    map: MonoMap,
    acquisition: Acquisition,
    /// One decoded RLE frame; empty for other codecs.
    rle_out: Vec<u8>,
    /// Frames of this file that failed one after the other.
    bad_in_a_row: u32,
}

/// After this many frames of one file fail in a row, the rest of the file is skipped.
pub const MAX_BAD_FRAMES_PER_FILE: u32 = 8;

/// Native Pixel Data must be stored as the header says (8- or 16-bit
/// samples); a NumberOfFrames beyond the whole frames it holds is damage and
/// is cut to what is there, so a file declaring 4 billion frames over a few
/// bytes costs a few errors, not billions.
fn check_native_storage(path: &Path, obj: &DefaultDicomObject, p: &mut ImageParams) -> Result<(), SourceError> {
    let bytes = match obj.get(tags::PIXEL_DATA).map(|e| e.value()) {
        Some(Value::Primitive(PrimitiveValue::U8(b))) => b.len(),
        Some(Value::Primitive(PrimitiveValue::U16(w))) => w.len() * 2,
        Some(Value::Primitive(PrimitiveValue::I16(w))) if p.bits_allocated == 16 => w.len() * 2,
        _ => {
            return Err(SourceError::Unsupported {
                path: path.to_path_buf(),
                reason: "Pixel Data is not stored as 8- or 16-bit samples".into(),
            })
        }
    };
    let per_frame = p.colour.samples_per_frame(p.pixels()) * p.bits_allocated as usize / 8;
    let whole = (bytes / per_frame.max(1)).min(u32::MAX as usize) as u32;
    if whole < p.frames {
        log::warn!("{}: NumberOfFrames {} but Pixel Data holds {whole} whole frames; reading {}", path.display(), p.frames, whole.max(1));
        // At least one: a file without a whole frame reports it as truncated.
        p.frames = whole.max(1);
    }
    Ok(())
}

/// Largest header read when a folder is scanned at open.
const HEADER_PREFIX_BYTES: usize = 4 << 20;

/// Largest DICOM file read (it is held in memory whole while its frames are read).
pub const MAX_DICOM_FILE_BYTES: u64 = 1 << 30;

/// Reads a DICOM file (all of it, or its first `limit` bytes) after checking
/// that no declared length runs past its end. Only regular files are read.
fn parse(path: &Path, limit: Option<usize>, until_pixel_data: bool) -> Result<DefaultDicomObject, SourceError> {
    let read = |prefix: u64| {
        read_prefix_capped(path, prefix, MAX_DICOM_FILE_BYTES, "DICOM file").map_err(|e| match e {
            FileReadError::Io { source, .. } => SourceError::Io { path: path.to_path_buf(), source },
            other => SourceError::Format { path: path.to_path_buf(), format: "DICOM", reason: other.to_string() },
        })
    };
    let (mut bytes, total) = read(limit.map_or(u64::MAX, |l| l as u64))?;
    let format_err = |reason: String| SourceError::Format { path: path.to_path_buf(), format: "DICOM", reason };
    let damaged = |e: String| format_err(format!("damaged: {e}"));
    if guard::check_lengths(&bytes, total).map_err(damaged)? == guard::Verdict::NeedWholeFile {
        // A deflated data set: its lengths can only be checked on all of it.
        bytes = read(u64::MAX)?.0;
        guard::check_lengths(&bytes, bytes.len() as u64).map_err(damaged)?;
    }
    let mut options = OpenFileOptions::new().read_preamble(ReadPreamble::Auto);
    if until_pixel_data {
        options = options.read_until(tags::PIXEL_DATA);
    }
    options.from_reader(&bytes[..]).map_err(|e| format_err(format!("cannot be read: {e}")))
}

impl Loaded {
    fn load(path: &Path) -> Result<Self, SourceError> {
        let obj = parse(path, None, false)?;
        if obj.get(tags::PIXEL_DATA).is_none() {
            let uid = params::string(&obj, tags::SOP_CLASS_UID)
                .unwrap_or_else(|| obj.meta().media_storage_sop_class_uid().to_string());
            let name = StandardSopClassDictionary.by_uid(&uid).map(|e| e.name().to_string());
            let class = match name {
                Some(n) => format!("{n}, {uid}"),
                None => uid,
            };
            return Err(SourceError::Unsupported {
                path: path.to_path_buf(),
                reason: format!("has no Pixel Data (SOP class {class})"),
            });
        }
        let mut params = ImageParams::read(&obj, obj.meta().transfer_syntax())
            .map_err(|reason| SourceError::Unsupported { path: path.to_path_buf(), reason })?;
        if let Some(Value::PixelSequence(seq)) = obj.get(tags::PIXEL_DATA).map(|e| e.value()) {
            // Each frame needs at least one fragment: a larger NumberOfFrames is damage.
            let fragments = seq.fragments().len() as u32;
            if params.frames > fragments {
                log::warn!("{}: NumberOfFrames {} but only {fragments} fragments", path.display(), params.frames);
                params.frames = fragments.max(1);
            }
        }
        if params.codec == Codec::Native {
            check_native_storage(path, &obj, &mut params)?;
        }
        let map = MonoMap::new(params.bits, params.slope, params.intercept, params.window, params.monochrome1);
        let acquisition = Acquisition::read(&obj, params.cols, params.rows);
        let rle_out = match params.codec {
            Codec::Rle => vec![0u8; params.pixels() * params.samples_per_pixel as usize * params.bits_allocated as usize / 8],
            _ => Vec::new(),
        };
        Ok(Self { path: path.to_path_buf(), obj, params, map, acquisition, rle_out, bad_in_a_row: 0 })
    }

    /// Decodes frame `k` of this file into `frame` (size and pixels only).
    fn decode(&mut self, k: u32, sequence: u64, frame: &mut Frame) -> Result<(), SourceError> {
        let p = &self.params;
        let bad = |reason: String| SourceError::BadFrame { path: self.path.clone(), frame: sequence, reason };
        frame
            .set_size(p.cols, p.rows)
            .map_err(|source| SourceError::FrameSize { path: self.path.clone(), frame: sequence, source })?;
        let pixels = p.pixels();
        let bytes_per_sample = p.bits_allocated as usize / 8;
        if p.codec == Codec::Native {
            let colour = p.colour;
            let per_frame = colour.samples_per_frame(pixels);
            // usize::MAX (no data) when the offset overflows a 32-bit usize.
            let first = (k as usize).checked_mul(per_frame).unwrap_or(usize::MAX);
            let layout = Layout { first, colour, planar: p.planar };
            let value = self.obj.get(tags::PIXEL_DATA).map(|e| e.value());
            let out = frame.pixels_mut();
            let available = match (value, p.bits_allocated) {
                (Some(Value::Primitive(PrimitiveValue::U8(b))), 8) => convert(&Bytes8(b), layout, p, &self.map, out),
                (Some(Value::Primitive(PrimitiveValue::U8(b))), _) => convert(&Le16(b), layout, p, &self.map, out),
                (Some(Value::Primitive(PrimitiveValue::U16(w))), 16) => convert(&Words16(w), layout, p, &self.map, out),
                (Some(Value::Primitive(PrimitiveValue::U16(w))), _) => convert(&Words8(w), layout, p, &self.map, out),
                (Some(Value::Primitive(PrimitiveValue::I16(w))), 16) => convert(&SignedWords16(w), layout, p, &self.map, out),
                _ => return Err(bad("Pixel Data is not stored as 8- or 16-bit samples".into())),
            };
            if let Err(got) = available {
                return Err(SourceError::Truncated {
                    path: self.path.clone(),
                    frame: sequence,
                    got: got * bytes_per_sample,
                    expected: per_frame * bytes_per_sample,
                });
            }
            return Ok(());
        }
        let colour = p.decoded_colour();
        let layout = Layout { first: 0, colour, planar: false };
        if p.codec == Codec::Rle {
            let fragment = match self.obj.get(tags::PIXEL_DATA).map(|e| e.value()) {
                Some(Value::PixelSequence(seq)) if seq.fragments().len() == p.frames as usize => seq.fragments().get(k as usize),
                _ => None,
            }
            .ok_or_else(|| bad("RLE Pixel Data does not hold one fragment per frame".into()))?;
            rle::decode_frame(fragment, pixels, p.samples_per_pixel as usize, bytes_per_sample, &mut self.rle_out).map_err(bad)?;
            let out = frame.pixels_mut();
            let r = match p.bits_allocated {
                8 => convert(&Bytes8(&self.rle_out), layout, p, &self.map, out),
                _ => convert(&Le16(&self.rle_out), layout, p, &self.map, out),
            };
            return r.map_err(|_| bad("RLE frame shorter than expected".into()));
        }
        if let Some(Value::PixelSequence(seq)) = self.obj.get(tags::PIXEL_DATA).map(|e| e.value()) {
            // One fragment per frame: its JPEG header must agree with the DICOM one.
            if seq.fragments().len() == p.frames as usize {
                let fragment = seq.fragments().get(k as usize).map(|f| &f[..]).unwrap_or(&[]);
                let sof = jpeg_header::read_sof(fragment).ok_or_else(|| bad("no JPEG frame header in the frame's data".into()))?;
                if sof.width as u32 != p.cols || (sof.height != 0 && sof.height as u32 != p.rows) || sof.components as u16 != p.samples_per_pixel {
                    return Err(bad(format!(
                        "the JPEG frame is {}x{} with {} components, the DICOM header says {}x{} with {}",
                        sof.width, sof.height, sof.components, p.cols, p.rows, p.samples_per_pixel
                    )));
                }
            }
        }
        let decoded = catch_unwind(AssertUnwindSafe(|| self.obj.decode_pixel_data_frame(k)))
            .map_err(|_| bad("the decoder failed on malformed data".into()))?
            .map_err(|e| bad(format!("cannot decode: {e}")))?;
        let data = decoded.data();
        let out = frame.pixels_mut();
        let r = match p.bits_allocated {
            8 => convert(&Bytes8(data), layout, p, &self.map, out),
            _ => convert(&Le16(data), layout, p, &self.map, out),
        };
        r.map_err(|got| {
            bad(format!(
                "decoded {} bytes, expected {}",
                got * bytes_per_sample,
                colour.samples_per_frame(pixels) * bytes_per_sample
            ))
        })
    }
}

/// Converts one frame if `s` holds all of it; else `Err(samples of the frame present)`.
fn convert(s: &impl gray::Samples, layout: Layout, p: &ImageParams, map: &MonoMap, out: &mut [u8]) -> Result<(), usize> {
    let needed = layout.colour.samples_per_frame(out.len());
    let present = s.len().saturating_sub(layout.first);
    if present < needed {
        return Err(present);
    }
    gray::to_gray(s, layout, p.bits, map, out);
    Ok(())
}

impl DicomSource {
    /// Opens a DICOM file, or a folder of DICOM files.
    pub fn open(path: &Path, opts: &OpenOptions) -> Result<Self, SourceError> {
        let meta = std::fs::metadata(path).map_err(|source| SourceError::Io { path: path.to_path_buf(), source })?;
        let calibration = opts.calibration.filter(PixelSpacingMm::is_valid);
        if !meta.is_dir() {
            let loaded = Loaded::load(path)?;
            let p = &loaded.params;
            let fps = effective_fps(loaded.acquisition.fps, opts);
            let info = SourceInfo {
                name: path.display().to_string(),
                max_width_px: p.cols,
                max_height_px: p.rows,
                fps,
                frame_count: Some(p.frames as u64),
                spacing_from_stream: true,
            };
            let files = vec![FileEntry { path: path.to_path_buf(), frames: p.frames }];
            return Ok(Self {
                info,
                files,
                file_index: 0,
                frame_in_file: 0,
                loaded: Some(loaded),
                next_sequence: 0,
                fps,
                calibration,
            });
        }
        Self::open_folder(path, opts, calibration)
    }

    fn open_folder(dir: &Path, opts: &OpenOptions, calibration: Option<PixelSpacingMm>) -> Result<Self, SourceError> {
        let entries = std::fs::read_dir(dir).map_err(|source| SourceError::Io { path: dir.to_path_buf(), source })?;
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
        paths.sort();
        struct Header {
            path: PathBuf,
            instance: i64,
            frames: u32,
            cols: u32,
            rows: u32,
            fps: Option<f64>,
        }
        let mut headers = Vec::new();
        for path in paths {
            let obj = match parse(&path, Some(HEADER_PREFIX_BYTES), true) {
                Ok(o) => o,
                Err(e) => {
                    log::warn!("{}: skipped, not a readable DICOM file: {e}", path.display());
                    continue;
                }
            };
            let (Some(rows), Some(cols)) = (params::int(&obj, tags::ROWS), params::int(&obj, tags::COLUMNS)) else {
                log::warn!("{}: skipped, no image (no Rows/Columns)", path.display());
                continue;
            };
            let side = 1..=super::MAX_SIDE_PX as i64;
            if !side.contains(&rows) || !side.contains(&cols) {
                log::warn!("{}: skipped, image size {cols}x{rows} is out of range", path.display());
                continue;
            }
            let frames = params::int(&obj, tags::NUMBER_OF_FRAMES).filter(|f| (1..=u32::MAX as i64).contains(f)).unwrap_or(1) as u32;
            let fps = Acquisition::read(&obj, cols as u32, rows as u32).fps;
            let instance = params::int(&obj, tags::INSTANCE_NUMBER).unwrap_or(i64::MAX);
            headers.push(Header { path, instance, frames, cols: cols as u32, rows: rows as u32, fps });
        }
        // Stable: equal instance numbers keep file-name order.
        headers.sort_by_key(|h| h.instance);
        let Some(first) = headers.first() else {
            return Err(SourceError::Format {
                path: dir.to_path_buf(),
                format: "DICOM folder",
                reason: "the folder has no DICOM image files".into(),
            });
        };
        let fps = effective_fps(first.fps, opts);
        let info = SourceInfo {
            name: dir.display().to_string(),
            max_width_px: headers.iter().map(|h| h.cols).max().unwrap_or(0),
            max_height_px: headers.iter().map(|h| h.rows).max().unwrap_or(0),
            fps,
            frame_count: Some(headers.iter().map(|h| h.frames as u64).sum()),
            spacing_from_stream: true,
        };
        let files = headers.into_iter().map(|h| FileEntry { path: h.path, frames: h.frames }).collect();
        Ok(Self { info, files, file_index: 0, frame_in_file: 0, loaded: None, next_sequence: 0, fps, calibration })
    }
}

impl Source for DicomSource {
    fn info(&self) -> &SourceInfo {
        &self.info
    }

    fn next_frame(&mut self, frame: &mut Frame) -> Result<Next, SourceError> {
        loop {
            let Some(entry) = self.files.get(self.file_index) else {
                self.loaded = None;
                return Ok(Next::End);
            };
            if self.loaded.is_none() {
                match Loaded::load(&entry.path) {
                    Ok(l) => self.loaded = Some(l),
                    Err(e) => {
                        // Skip the whole file; its frames are lost.
                        let sequence = self.next_sequence;
                        self.next_sequence += entry.frames.max(1) as u64;
                        self.file_index += 1;
                        self.frame_in_file = 0;
                        return Err(SourceError::BadFrame { path: entry.path.clone(), frame: sequence, reason: e.to_string() });
                    }
                }
            }
            let Some(loaded) = self.loaded.as_mut() else { continue };
            if self.frame_in_file >= loaded.params.frames {
                self.file_index += 1;
                self.frame_in_file = 0;
                self.loaded = None;
                continue;
            }
            let k = self.frame_in_file;
            let sequence = self.next_sequence;
            self.frame_in_file += 1;
            self.next_sequence += 1;
            if let Err(e) = loaded.decode(k, sequence, frame) {
                loaded.bad_in_a_row += 1;
                match e {
                    // The file's data ends inside this frame: none follow.
                    SourceError::Truncated { .. } => self.frame_in_file = u32::MAX,
                    // Every frame of the file has this size: none can be read.
                    _ if matches!(e, SourceError::FrameSize { .. }) || loaded.bad_in_a_row >= MAX_BAD_FRAMES_PER_FILE => {
                        let rest = loaded.params.frames.saturating_sub(self.frame_in_file);
                        if rest > 0 {
                            log::warn!(
                                "{}: {} frame(s) in a row failed; skipping the file's remaining {rest} frames (numbers {}..{})",
                                loaded.path.display(),
                                loaded.bad_in_a_row,
                                self.next_sequence,
                                self.next_sequence + rest as u64 - 1
                            );
                        }
                        self.next_sequence += rest as u64;
                        self.frame_in_file = u32::MAX;
                    }
                    _ => {}
                }
                return Err(e);
            }
            loaded.bad_in_a_row = 0;
            frame.meta.sequence = sequence;
            frame.meta.timestamp_us = timestamp_us(sequence, self.fps);
            frame.meta.spacing = loaded.acquisition.spacing.or(self.calibration);
            frame.meta.image_region = loaded.acquisition.region;
            return Ok(Next::Frame);
        }
    }
}
