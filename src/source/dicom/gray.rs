//! DICOM samples -> gray8: the modality and VOI transforms, MONOCHROME1
//! inversion and colour-to-luma, for one frame, into a caller's buffer.
//!
//! Monochrome mapping, decided once per file ([`MonoMap::new`]):
//! - Window Center/Width present (first pair; VOI LUT Function LINEAR,
//!   LINEAR_EXACT or SIGMOID): a lookup table over every stored value,
//!   through Rescale Slope/Intercept and the window, built once.
//! - No window, 8 bits stored, unsigned, identity rescale (most ultrasound):
//!   values pass through unchanged (an identity table).
//! - Otherwise: each frame's own min..max stretched to 0..255.
//!
//! MONOCHROME1 is inverted after the mapping. Colour: RGB becomes luma
//! (0.299 R + 0.587 G + 0.114 B); YBR_FULL and YBR_FULL_422 keep their Y
//! channel, which is luma already. 16-bit colour samples keep their top 8
//! stored bits. Nothing here allocates per frame.

/// How the pixels of one frame are laid out, after any codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Colour {
    Mono,
    /// Three samples R, G, B.
    Rgb,
    /// Three samples Y, Cb, Cr (full range): Y is taken.
    YbrFull,
    /// Native YBR_FULL_422: Y1 Y2 Cb Cr for each pair of pixels.
    Ybr422,
}

impl Colour {
    /// Samples per frame of `pixels` pixels.
    pub(super) fn samples_per_frame(self, pixels: usize) -> usize {
        match self {
            Colour::Mono => pixels,
            Colour::Rgb | Colour::YbrFull => pixels * 3,
            Colour::Ybr422 => pixels.div_ceil(2) * 4,
        }
    }
}

/// What the stored values are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct StoredBits {
    pub bits_stored: u16,
    pub high_bit: u16,
    pub signed: bool,
}

impl StoredBits {
    /// The stored value of a raw sample, as an unsigned `bits_stored`-bit number.
    #[inline]
    pub(super) fn mask(&self, raw: u16) -> u16 {
        let shift = (self.high_bit + 1).saturating_sub(self.bits_stored).min(15);
        let bits = self.bits_stored.clamp(1, 16);
        let mask = if bits >= 16 { u16::MAX } else { (1u16 << bits) - 1 };
        (raw >> shift) & mask
    }

    /// The stored value as a signed or unsigned integer.
    #[inline]
    pub(super) fn value(&self, masked: u16) -> i32 {
        if self.signed {
            let shift = 32 - self.bits_stored.clamp(1, 16) as u32;
            ((masked as i32) << shift) >> shift
        } else {
            masked as i32
        }
    }

    /// The top 8 stored bits (for colour samples).
    #[inline]
    pub(super) fn top8(&self, raw: u16) -> u8 {
        let v = self.mask(raw);
        let drop = self.bits_stored.clamp(1, 16).saturating_sub(8);
        (v >> drop).min(255) as u8
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum VoiFunction {
    Linear,
    LinearExact,
    Sigmoid,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Window {
    pub center: f64,
    pub width: f64,
    pub function: VoiFunction,
}

impl Window {
    /// The window's output for modality value `x`, in 0..=1 (PS3.3 C.11.2.1.2).
    pub(super) fn apply(&self, x: f64) -> f64 {
        let (c, w) = (self.center, self.width);
        let y = match self.function {
            VoiFunction::Linear => {
                if w <= 1.0 {
                    if x <= c - 0.5 { 0.0 } else { 1.0 }
                } else {
                    (x - (c - 0.5)) / (w - 1.0) + 0.5
                }
            }
            VoiFunction::LinearExact => (x - c) / w + 0.5,
            VoiFunction::Sigmoid => 1.0 / (1.0 + (-4.0 * (x - c) / w).exp()),
        };
        y.clamp(0.0, 1.0)
    }
}

/// The per-file monochrome mapping.
#[derive(Debug)]
pub(super) enum MonoMap {
    /// Indexed by the masked stored value.
    Lut(Box<[u8]>),
    /// Each frame's min..max; `invert` for MONOCHROME1 or a negative slope.
    MinMax { invert: bool },
}

impl MonoMap {
    pub(super) fn new(bits: StoredBits, slope: f64, intercept: f64, window: Option<Window>, monochrome1: bool) -> Self {
        let size = 1usize << bits.bits_stored.clamp(1, 16);
        let finish = |y: u8| if monochrome1 { 255 - y } else { y };
        if let Some(w) = window.filter(|w| w.center.is_finite() && w.width.is_finite() && w.width > 0.0) {
            let lut = (0..size)
                .map(|i| {
                    let x = bits.value(i as u16) as f64 * slope + intercept;
                    finish((w.apply(x) * 255.0).round() as u8)
                })
                .collect();
            return MonoMap::Lut(lut);
        }
        if bits.bits_stored == 8 && !bits.signed && slope == 1.0 && intercept == 0.0 {
            return MonoMap::Lut((0..size).map(|i| finish(i as u8)).collect());
        }
        MonoMap::MinMax { invert: monochrome1 ^ (slope < 0.0) }
    }
}

/// Random access to one frame's raw samples (16-bit wide, whatever the storage).
pub(super) trait Samples {
    fn len(&self) -> usize;
    /// Sample `i`; 0 past the end (callers check `len` first).
    fn at(&self, i: usize) -> u16;
}

/// 8-bit samples.
pub(super) struct Bytes8<'a>(pub &'a [u8]);
/// 16-bit little-endian samples in a byte buffer.
pub(super) struct Le16<'a>(pub &'a [u8]);
/// 16-bit samples already decoded to words.
pub(super) struct Words16<'a>(pub &'a [u16]);
/// Signed 16-bit words (reinterpreted bit for bit).
pub(super) struct SignedWords16<'a>(pub &'a [i16]);
/// 8-bit samples packed two to a little-endian word (8-bit data read as OW).
pub(super) struct Words8<'a>(pub &'a [u16]);

impl Samples for Bytes8<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    fn at(&self, i: usize) -> u16 {
        self.0.get(i).copied().unwrap_or(0) as u16
    }
}
impl Samples for Le16<'_> {
    fn len(&self) -> usize {
        self.0.len() / 2
    }
    #[inline]
    fn at(&self, i: usize) -> u16 {
        match self.0.get(2 * i..2 * i + 2) {
            Some(b) => u16::from_le_bytes([b[0], b[1]]),
            None => 0,
        }
    }
}
impl Samples for Words16<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    fn at(&self, i: usize) -> u16 {
        self.0.get(i).copied().unwrap_or(0)
    }
}
impl Samples for SignedWords16<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    #[inline]
    fn at(&self, i: usize) -> u16 {
        self.0.get(i).copied().unwrap_or(0) as u16
    }
}
impl Samples for Words8<'_> {
    fn len(&self) -> usize {
        self.0.len() * 2
    }
    #[inline]
    fn at(&self, i: usize) -> u16 {
        self.0.get(i / 2).map_or(0, |w| if i.is_multiple_of(2) { w & 0xff } else { w >> 8 })
    }
}

/// Where one frame's samples are and how to read them.
#[derive(Debug, Clone, Copy)]
pub(super) struct Layout {
    /// Index of the frame's first sample.
    pub first: usize,
    pub colour: Colour,
    /// Colour planes one after the other (PlanarConfiguration 1) instead of interleaved.
    pub planar: bool,
}

/// Writes one frame of `out.len()` pixels as gray8. The caller has checked
/// that `samples` holds `layout.colour.samples_per_frame(out.len())` samples from `layout.first`.
pub(super) fn to_gray(s: &impl Samples, layout: Layout, bits: StoredBits, map: &MonoMap, out: &mut [u8]) {
    let n = out.len();
    let f = layout.first;
    match layout.colour {
        Colour::Mono => match map {
            MonoMap::Lut(lut) => {
                for (i, o) in out.iter_mut().enumerate() {
                    *o = lut.get(bits.mask(s.at(f + i)) as usize).copied().unwrap_or(0);
                }
            }
            MonoMap::MinMax { invert } => {
                let (mut lo, mut hi) = (i32::MAX, i32::MIN);
                for i in 0..n {
                    let v = bits.value(bits.mask(s.at(f + i)));
                    lo = lo.min(v);
                    hi = hi.max(v);
                }
                let range = (hi as i64 - lo as i64).max(1);
                for (i, o) in out.iter_mut().enumerate() {
                    let v = bits.value(bits.mask(s.at(f + i))) as i64 - lo as i64;
                    let y = ((v * 255 + range / 2) / range).clamp(0, 255) as u8;
                    *o = if *invert { 255 - y } else { y };
                }
            }
        },
        Colour::Rgb => {
            let (step, plane) = if layout.planar { (1, n) } else { (3, 1) };
            for (i, o) in out.iter_mut().enumerate() {
                let base = f + i * step;
                let r = bits.top8(s.at(base));
                let g = bits.top8(s.at(base + plane));
                let b = bits.top8(s.at(base + 2 * plane));
                *o = crate::color::luma(r, g, b);
            }
        }
        Colour::YbrFull => {
            let step = if layout.planar { 1 } else { 3 };
            for (i, o) in out.iter_mut().enumerate() {
                *o = bits.top8(s.at(f + i * step));
            }
        }
        Colour::Ybr422 => {
            for (i, o) in out.iter_mut().enumerate() {
                *o = bits.top8(s.at(f + 4 * (i / 2) + i % 2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const U8: StoredBits = StoredBits { bits_stored: 8, high_bit: 7, signed: false };
    const MONO: Layout = Layout { first: 0, colour: Colour::Mono, planar: false };

    #[test]
    fn eight_bit_passes_through_and_monochrome1_inverts() {
        let src = [0u8, 1, 128, 255];
        let mut out = [0u8; 4];
        to_gray(&Bytes8(&src), MONO, U8, &MonoMap::new(U8, 1.0, 0.0, None, false), &mut out);
        assert_eq!(out, src);
        to_gray(&Bytes8(&src), MONO, U8, &MonoMap::new(U8, 1.0, 0.0, None, true), &mut out);
        assert_eq!(out, [255, 254, 127, 0]);
    }

    #[test]
    fn sixteen_bit_without_window_stretches_the_frame_min_max() {
        let bits = StoredBits { bits_stored: 12, high_bit: 11, signed: false };
        // Bits above the stored 12 are masked off: 0xF000 | 1000 reads as 1000.
        let src = [1000u16 | 0xF000, 2000, 3000];
        let mut out = [0u8; 3];
        to_gray(&Words16(&src), MONO, bits, &MonoMap::new(bits, 1.0, 0.0, None, false), &mut out);
        assert_eq!(out, [0, 128, 255]);
        // A negative slope flips the image, as the modality values do.
        to_gray(&Words16(&src), MONO, bits, &MonoMap::new(bits, -1.0, 0.0, None, false), &mut out);
        assert_eq!(out, [255, 127, 0]);
    }

    #[test]
    fn signed_values_are_sign_extended_from_bits_stored() {
        let bits = StoredBits { bits_stored: 12, high_bit: 11, signed: true };
        assert_eq!(bits.value(bits.mask(0x0FFF)), -1);
        assert_eq!(bits.value(bits.mask(0x0800)), -2048);
        assert_eq!(bits.value(bits.mask(0x07FF)), 2047);
        let src = [0x0800u16, 0x0FFF, 0x0000, 0x07FF]; // -2048, -1, 0, 2047
        let mut out = [0u8; 4];
        to_gray(&Words16(&src), MONO, bits, &MonoMap::new(bits, 1.0, 0.0, None, false), &mut out);
        assert_eq!(out, [0, 127, 128, 255]);
    }

    #[test]
    fn window_follows_the_dicom_linear_formula_after_rescale() {
        let bits = StoredBits { bits_stored: 16, high_bit: 15, signed: true };
        let w = Window { center: 40.0, width: 400.0, function: VoiFunction::Linear };
        let map = MonoMap::new(bits, 1.0, -1024.0, Some(w), false);
        // HU = stored - 1024; window 40/400 spans about -160..240 HU.
        let hu = |h: i32| (h + 1024) as i16 as u16;
        let src = [hu(-1000), hu(-160), hu(40), hu(240), hu(3000)];
        let mut out = [0u8; 5];
        to_gray(&Words16(&src), MONO, bits, &map, &mut out);
        assert_eq!(out[0], 0);
        assert!(out[1] <= 1, "{out:?}");
        assert!((127..=128).contains(&out[2]), "{out:?}");
        assert!(out[3] >= 254, "{out:?}");
        assert_eq!(out[4], 255);
    }

    #[test]
    fn rgb_interleaved_and_planar_give_luma() {
        let bits = U8;
        let inter = [255u8, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255];
        let planar = [255u8, 0, 0, 255, 0, 255, 0, 255, 0, 0, 255, 255];
        let expect = [76u8, 150, 29, 255];
        let map = MonoMap::MinMax { invert: false };
        let mut out = [0u8; 4];
        to_gray(&Bytes8(&inter), Layout { first: 0, colour: Colour::Rgb, planar: false }, bits, &map, &mut out);
        assert_eq!(out, expect);
        to_gray(&Bytes8(&planar), Layout { first: 0, colour: Colour::Rgb, planar: true }, bits, &map, &mut out);
        assert_eq!(out, expect);
    }

    #[test]
    fn ybr_422_takes_each_pixels_own_y() {
        // Two pixel pairs: Y1 Y2 Cb Cr.
        let src = [10u8, 20, 99, 99, 30, 40, 99, 99];
        let mut out = [0u8; 4];
        to_gray(&Bytes8(&src), Layout { first: 0, colour: Colour::Ybr422, planar: false }, U8, &MonoMap::MinMax { invert: false }, &mut out);
        assert_eq!(out, [10, 20, 30, 40]);
        assert_eq!(Colour::Ybr422.samples_per_frame(4), 8);
    }

    #[test]
    fn eight_bit_samples_packed_in_words_unpack_little_endian() {
        let words = [0x2010u16, 0x4030];
        let s = Words8(&words);
        assert_eq!((s.len(), s.at(0), s.at(1), s.at(2), s.at(3), s.at(4)), (4, 0x10, 0x20, 0x30, 0x40, 0));
    }
}
