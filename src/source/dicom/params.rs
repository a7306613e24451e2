//! What a DICOM file's attributes say about its image (size, sample format,
//! codec, colour, VOI) and its acquisition (pixel spacing, ultrasound region,
//! frame rate). Pure reads of the dataset; no pixel data is touched.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use super::gray::{Colour, StoredBits, VoiFunction, Window};
use crate::frame::{PixelSpacingMm, RegionPx};
use crate::source::MAX_SIDE_PX;

/// How the Pixel Data is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Codec {
    /// Native (uncompressed) samples: implicit/explicit VR, little or big
    /// endian, or deflated (inflated by the parser at load).
    Native,
    /// JPEG baseline or extended: the decoder outputs RGB for colour.
    JpegLossy,
    /// JPEG lossless (process 14, any selection value): samples as encoded.
    JpegLossless,
    /// RLE lossless: samples as encoded.
    Rle,
}

impl Codec {
    pub(super) fn from_transfer_syntax(uid: &str) -> Result<Codec, String> {
        Ok(match uid {
            "1.2.840.10008.1.2" | "1.2.840.10008.1.2.1" | "1.2.840.10008.1.2.2" | "1.2.840.10008.1.2.1.99" => Codec::Native,
            "1.2.840.10008.1.2.4.50" | "1.2.840.10008.1.2.4.51" => Codec::JpegLossy,
            "1.2.840.10008.1.2.4.57" | "1.2.840.10008.1.2.4.70" => Codec::JpegLossless,
            "1.2.840.10008.1.2.5" => Codec::Rle,
            other => {
                let name = match other {
                    "1.2.840.10008.1.2.4.80" | "1.2.840.10008.1.2.4.81" => "JPEG-LS",
                    "1.2.840.10008.1.2.4.90" | "1.2.840.10008.1.2.4.91" | "1.2.840.10008.1.2.4.92" | "1.2.840.10008.1.2.4.93" => "JPEG 2000",
                    "1.2.840.10008.1.2.4.201" | "1.2.840.10008.1.2.4.202" | "1.2.840.10008.1.2.4.203" => "HTJ2K",
                    u if u.starts_with("1.2.840.10008.1.2.4.10") => "MPEG/H.264/HEVC video",
                    "1.2.840.10008.1.2.1.98" => "encapsulated uncompressed",
                    _ => "unknown",
                };
                return Err(format!(
                    "transfer syntax {other} ({name}) cannot be decoded by this build (supported: implicit/explicit VR, deflate, JPEG baseline/extended, JPEG lossless, RLE)"
                ));
            }
        })
    }
}

/// The image attributes needed to turn one frame into gray8.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ImageParams {
    pub rows: u32,
    pub cols: u32,
    pub samples_per_pixel: u16,
    pub bits_allocated: u16,
    pub bits: StoredBits,
    /// Layout of native samples (after a codec, see [`ImageParams::decoded_colour`]).
    pub colour: Colour,
    pub monochrome1: bool,
    pub planar: bool,
    pub frames: u32,
    pub codec: Codec,
    pub slope: f64,
    pub intercept: f64,
    pub window: Option<Window>,
}

impl ImageParams {
    /// Reads and checks the image attributes. `Err` is a one-line reason.
    pub(super) fn read(obj: &InMemDicomObject, transfer_syntax: &str) -> Result<Self, String> {
        let codec = Codec::from_transfer_syntax(transfer_syntax)?;
        let rows = int(obj, tags::ROWS).ok_or("no Rows")?;
        let cols = int(obj, tags::COLUMNS).ok_or("no Columns")?;
        for (name, v) in [("Rows", rows), ("Columns", cols)] {
            if !(1..=MAX_SIDE_PX as i64).contains(&v) {
                return Err(format!("{name} {v} is outside 1..={MAX_SIDE_PX}"));
            }
        }
        let samples_per_pixel = int(obj, tags::SAMPLES_PER_PIXEL).unwrap_or(1);
        let bits_allocated = int(obj, tags::BITS_ALLOCATED).ok_or("no BitsAllocated")?;
        if bits_allocated != 8 && bits_allocated != 16 {
            return Err(format!("BitsAllocated {bits_allocated} is not supported (8 or 16 only)"));
        }
        let bits_stored = int(obj, tags::BITS_STORED).unwrap_or(bits_allocated);
        if !(1..=bits_allocated).contains(&bits_stored) {
            return Err(format!("BitsStored {bits_stored} does not fit BitsAllocated {bits_allocated}"));
        }
        let high_bit = int(obj, tags::HIGH_BIT).unwrap_or(bits_stored - 1);
        if !(bits_stored - 1..bits_allocated).contains(&high_bit) {
            return Err(format!("HighBit {high_bit} does not fit BitsStored {bits_stored} in BitsAllocated {bits_allocated}"));
        }
        let signed = int(obj, tags::PIXEL_REPRESENTATION).unwrap_or(0) == 1;
        let pi = string(obj, tags::PHOTOMETRIC_INTERPRETATION).unwrap_or_else(|| "MONOCHROME2".into());
        let (colour, monochrome1) = match (pi.as_str(), samples_per_pixel) {
            ("MONOCHROME2", 1) => (Colour::Mono, false),
            ("MONOCHROME1", 1) => (Colour::Mono, true),
            ("RGB", 3) => (Colour::Rgb, false),
            ("YBR_FULL", 3) => (Colour::YbrFull, false),
            ("YBR_FULL_422", 3) => (Colour::Ybr422, false),
            (pi, spp) => {
                return Err(format!("photometric interpretation {pi} with {spp} samples per pixel is not supported"))
            }
        };
        let planar = samples_per_pixel == 3 && int(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0) == 1;
        let frames = int(obj, tags::NUMBER_OF_FRAMES).unwrap_or(1);
        if !(1..=u32::MAX as i64).contains(&frames) {
            return Err(format!("NumberOfFrames {frames} is not a frame count"));
        }
        let slope = float(obj, tags::RESCALE_SLOPE).filter(|s| *s != 0.0).unwrap_or(1.0);
        let intercept = float(obj, tags::RESCALE_INTERCEPT).unwrap_or(0.0);
        let window = match (float(obj, tags::WINDOW_CENTER), float(obj, tags::WINDOW_WIDTH)) {
            (Some(center), Some(width)) if width > 0.0 => {
                let function = match string(obj, tags::VOILUT_FUNCTION).as_deref() {
                    Some("LINEAR_EXACT") => VoiFunction::LinearExact,
                    Some("SIGMOID") => VoiFunction::Sigmoid,
                    _ => VoiFunction::Linear,
                };
                Some(Window { center, width, function })
            }
            _ => None,
        };
        Ok(Self {
            rows: rows as u32,
            cols: cols as u32,
            samples_per_pixel: samples_per_pixel as u16,
            bits_allocated: bits_allocated as u16,
            bits: StoredBits { bits_stored: bits_stored as u16, high_bit: high_bit as u16, signed },
            colour,
            monochrome1,
            planar,
            frames: frames as u32,
            codec,
            slope,
            intercept,
            window,
        })
    }

    pub(super) fn pixels(&self) -> usize {
        self.rows as usize * self.cols as usize
    }

    /// Sample layout of a frame as the codec hands it over: JPEG lossy
    /// decodes colour to RGB; every codec interleaves and undoes 4:2:2.
    pub(super) fn decoded_colour(&self) -> Colour {
        match (self.codec, self.colour) {
            (Codec::Native, c) => c,
            (_, Colour::Mono) => Colour::Mono,
            (Codec::JpegLossy, _) => Colour::Rgb,
            (_, Colour::Ybr422) => Colour::YbrFull,
            (_, c) => c,
        }
    }
}

/// Spacing, image region and frame rate of one file.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(super) struct Acquisition {
    pub spacing: Option<PixelSpacingMm>,
    pub region: Option<RegionPx>,
    pub fps: Option<f64>,
}

impl Acquisition {
    /// Spacing: the first 2D ultrasound region in cm, else PixelSpacing (also
    /// in the shared functional groups), else ImagerPixelSpacing. Rate:
    /// FrameTime, else CineRate, else RecommendedDisplayFrameRate.
    pub(super) fn read(obj: &InMemDicomObject, cols: u32, rows: u32) -> Self {
        let (mut spacing, mut region) = (None, None);
        if let Some((s, r)) = us_region(obj, cols, rows) {
            spacing = Some(s);
            region = r;
        }
        if spacing.is_none() {
            let shared = obj
                .get(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
                .and_then(|e| e.items())
                .and_then(|i| i.first())
                .and_then(|g| g.get(tags::PIXEL_MEASURES_SEQUENCE))
                .and_then(|e| e.items())
                .and_then(|i| i.first());
            spacing = row_col_spacing(obj, tags::PIXEL_SPACING)
                .or_else(|| shared.and_then(|m| row_col_spacing(m, tags::PIXEL_SPACING)))
                .or_else(|| row_col_spacing(obj, tags::IMAGER_PIXEL_SPACING));
        }
        let positive = |v: &f64| v.is_finite() && *v > 0.0;
        let fps = float(obj, tags::FRAME_TIME)
            .filter(positive)
            .map(|ms| 1000.0 / ms)
            .or_else(|| float(obj, tags::CINE_RATE).filter(positive))
            .or_else(|| float(obj, tags::RECOMMENDED_DISPLAY_FRAME_RATE).filter(positive));
        Self { spacing, region, fps }
    }
}

/// Spacing (mm) and, when its bounds lie inside the image, the region of the
/// first Sequence of Ultrasound Regions item that is 2D (RegionSpatialFormat 1)
/// with both physical units in cm (3).
fn us_region(obj: &InMemDicomObject, cols: u32, rows: u32) -> Option<(PixelSpacingMm, Option<RegionPx>)> {
    let items = obj.get(tags::SEQUENCE_OF_ULTRASOUND_REGIONS)?.items()?;
    items.iter().find_map(|r| {
        if int(r, tags::REGION_SPATIAL_FORMAT)? != 1
            || int(r, tags::PHYSICAL_UNITS_X_DIRECTION)? != 3
            || int(r, tags::PHYSICAL_UNITS_Y_DIRECTION)? != 3
        {
            return None;
        }
        let spacing = PixelSpacingMm {
            x_mm: (float(r, tags::PHYSICAL_DELTA_X)?.abs() * 10.0) as f32,
            y_mm: (float(r, tags::PHYSICAL_DELTA_Y)?.abs() * 10.0) as f32,
        };
        if !spacing.is_valid() {
            return None;
        }
        let bound = |t: Tag| int(r, t).filter(|v| (0..=u32::MAX as i64).contains(v)).map(|v| v as u32);
        let region = (|| {
            let (x0, y0) = (bound(tags::REGION_LOCATION_MIN_X0)?, bound(tags::REGION_LOCATION_MIN_Y0)?);
            let (x1, y1) = (bound(tags::REGION_LOCATION_MAX_X1)?, bound(tags::REGION_LOCATION_MAX_Y1)?);
            let region = RegionPx {
                x_px: x0,
                y_px: y0,
                width_px: x1.checked_sub(x0)?.checked_add(1)?,
                height_px: y1.checked_sub(y0)?.checked_add(1)?,
            };
            region.fits_in(cols, rows).then_some(region)
        })();
        if region.is_none() {
            log::warn!("ultrasound region bounds missing or outside the {cols}x{rows} image; using its spacing only");
        }
        Some((spacing, region))
    })
}

/// A "row spacing \ column spacing" attribute as mm (y, x).
fn row_col_spacing(obj: &InMemDicomObject, tag: Tag) -> Option<PixelSpacingMm> {
    let v = obj.get(tag)?.to_multi_float64().ok()?;
    let s = PixelSpacingMm { y_mm: *v.first()? as f32, x_mm: *v.get(1)? as f32 };
    s.is_valid().then_some(s)
}

pub(super) fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

pub(super) fn float(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    obj.get(tag)?.to_float64().ok().filter(|v| v.is_finite())
}

pub(super) fn string(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    Some(obj.get(tag)?.to_str().ok()?.trim_end_matches(['\0', ' ']).trim().to_string())
}
