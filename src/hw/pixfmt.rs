//! V4L2 pixel formats spine-edge reads and writes, and the conversions at
//! the capture edge: from a dequeued device buffer to the pipeline's 8-bit
//! gray frame ([`extract_luma`]), and from the overlay canvas to an output
//! device's format ([`write_rgb_as`]).
//!
//! Everything here is plain byte shuffling, independent of the kernel, so it
//! builds everywhere and is what the capture benchmark measures. Nothing
//! here allocates.

use std::fmt;

use crate::color::{chroma_of, luma};

/// A pixel format by its V4L2 fourcc, restricted to those whose 8-bit luma
/// spine-edge can take without decoding (packed 4:2:2, planar 4:2:0 and
/// 8-bit RGB; Y is read as is, RGB is converted with Rec. 601 weights).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// `GREY`: 8-bit luma only.
    Grey,
    /// `YUYV`: packed 4:2:2, Y0 U Y1 V.
    Yuyv,
    /// `YVYU`: packed 4:2:2, Y0 V Y1 U.
    Yvyu,
    /// `UYVY`: packed 4:2:2, U Y0 V Y1.
    Uyvy,
    /// `VYUY`: packed 4:2:2, V Y0 U Y1.
    Vyuy,
    /// `NV12`: Y plane, then interleaved UV at 4:2:0.
    Nv12,
    /// `NV21`: Y plane, then interleaved VU at 4:2:0.
    Nv21,
    /// `YU12` (I420): Y, U, V planes at 4:2:0.
    Yu12,
    /// `YV12`: Y, V, U planes at 4:2:0.
    Yv12,
    /// `RGB3`: packed 8-bit R G B.
    Rgb24,
    /// `BGR3`: packed 8-bit B G R.
    Bgr24,
}

/// Every format spine-edge can capture, in the order it prefers them when the
/// board's list is not available on a device (cheapest to convert first).
pub const CAPTURE_PREFERENCE: [PixelFormat; 11] = [
    PixelFormat::Grey,
    PixelFormat::Yuyv,
    PixelFormat::Uyvy,
    PixelFormat::Yvyu,
    PixelFormat::Vyuy,
    PixelFormat::Nv12,
    PixelFormat::Nv21,
    PixelFormat::Yu12,
    PixelFormat::Yv12,
    PixelFormat::Rgb24,
    PixelFormat::Bgr24,
];

/// Formats the V4L2 output sink can write.
pub const OUTPUT_PREFERENCE: [PixelFormat; 3] = [PixelFormat::Yuyv, PixelFormat::Rgb24, PixelFormat::Grey];

impl PixelFormat {
    /// The V4L2 fourcc bytes.
    pub const fn fourcc(self) -> [u8; 4] {
        match self {
            PixelFormat::Grey => *b"GREY",
            PixelFormat::Yuyv => *b"YUYV",
            PixelFormat::Yvyu => *b"YVYU",
            PixelFormat::Uyvy => *b"UYVY",
            PixelFormat::Vyuy => *b"VYUY",
            PixelFormat::Nv12 => *b"NV12",
            PixelFormat::Nv21 => *b"NV21",
            PixelFormat::Yu12 => *b"YU12",
            PixelFormat::Yv12 => *b"YV12",
            PixelFormat::Rgb24 => *b"RGB3",
            PixelFormat::Bgr24 => *b"BGR3",
        }
    }

    /// The fourcc as a V4L2 `pixelformat` code.
    pub const fn code(self) -> u32 {
        u32::from_le_bytes(self.fourcc())
    }

    pub fn from_fourcc(fourcc: [u8; 4]) -> Option<Self> {
        CAPTURE_PREFERENCE.iter().copied().find(|f| f.fourcc() == fourcc)
    }

    pub fn from_code(code: u32) -> Option<Self> {
        Self::from_fourcc(code.to_le_bytes())
    }

    /// Parses a board-file name: the fourcc (`"GREY"`, `"YUYV"`, `"RGB3"`) or
    /// a common alias (`"GRAY"`, `"Y8"`, `"I420"`, `"RGB24"`, `"BGR24"`), any case.
    pub fn parse(name: &str) -> Option<Self> {
        let up = name.trim().to_ascii_uppercase();
        let alias = match up.as_str() {
            "GRAY" | "Y8" | "Y800" => Some(PixelFormat::Grey),
            "I420" => Some(PixelFormat::Yu12),
            "RGB24" => Some(PixelFormat::Rgb24),
            "BGR24" => Some(PixelFormat::Bgr24),
            _ => None,
        };
        alias.or_else(|| <[u8; 4]>::try_from(up.as_bytes()).ok().and_then(Self::from_fourcc))
    }

    /// Bytes per pixel in the first (or only) plane.
    pub const fn bytes_per_px(self) -> u32 {
        match self {
            PixelFormat::Grey
            | PixelFormat::Nv12
            | PixelFormat::Nv21
            | PixelFormat::Yu12
            | PixelFormat::Yv12 => 1,
            PixelFormat::Yuyv | PixelFormat::Yvyu | PixelFormat::Uyvy | PixelFormat::Vyuy => 2,
            PixelFormat::Rgb24 | PixelFormat::Bgr24 => 3,
        }
    }

    /// Bytes of one image at `stride_bytes` per line of the first plane.
    pub fn image_bytes(self, stride_bytes: usize, height_px: u32) -> usize {
        let h = height_px as usize;
        match self {
            PixelFormat::Nv12 | PixelFormat::Nv21 => stride_bytes * h + stride_bytes * h.div_ceil(2),
            PixelFormat::Yu12 | PixelFormat::Yv12 => stride_bytes * h + 2 * stride_bytes.div_ceil(2) * h.div_ceil(2),
            _ => stride_bytes * h,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cc = self.fourcc();
        f.write_str(std::str::from_utf8(&cc).unwrap_or("????"))
    }
}

/// A fourcc code as text for messages: printable ASCII as is, else hex.
pub fn fourcc_text(code: u32) -> String {
    let b = code.to_le_bytes();
    if b.iter().all(|c| c.is_ascii_graphic() || *c == b' ') {
        String::from_utf8_lossy(&b).trim_end().to_string()
    } else {
        format!("0x{code:08x}")
    }
}

/// The device buffer is smaller than its format says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShortBuffer {
    pub got_bytes: usize,
    pub needed_bytes: usize,
}

/// Copies the 8-bit luma of a `width_px` x `height_px` image in `format`
/// (first plane `stride_bytes` per line) into `dst` (stride = width, exactly
/// `width_px * height_px` bytes). RGB is converted with Rec. 601 weights.
/// Fails, touching nothing, when `src` is shorter than the image or
/// `stride_bytes` cannot hold a line.
pub fn extract_luma(
    format: PixelFormat,
    src: &[u8],
    stride_bytes: usize,
    width_px: u32,
    height_px: u32,
    dst: &mut [u8],
) -> Result<(), ShortBuffer> {
    let (w, h) = (width_px as usize, height_px as usize);
    let line = w * format.bytes_per_px() as usize;
    assert_eq!(dst.len(), w * h, "destination is not width * height");
    // Only the luma rows are read: the last line need not be padded to the stride.
    let needed = if h == 0 { 0 } else { stride_bytes * (h - 1) + line };
    if stride_bytes < line || src.len() < needed {
        return Err(ShortBuffer { got_bytes: src.len(), needed_bytes: needed.max(line * h) });
    }
    if w == 0 || h == 0 {
        return Ok(());
    }
    let rows = dst.chunks_exact_mut(w).enumerate();
    match format {
        PixelFormat::Grey | PixelFormat::Nv12 | PixelFormat::Nv21 | PixelFormat::Yu12 | PixelFormat::Yv12 => {
            if stride_bytes == w {
                dst.copy_from_slice(&src[..w * h]);
            } else {
                for (y, row) in rows {
                    row.copy_from_slice(&src[y * stride_bytes..y * stride_bytes + w]);
                }
            }
        }
        PixelFormat::Yuyv | PixelFormat::Yvyu | PixelFormat::Uyvy | PixelFormat::Vyuy => {
            let off = matches!(format, PixelFormat::Uyvy | PixelFormat::Vyuy) as usize;
            for (y, row) in rows {
                let s = &src[y * stride_bytes..y * stride_bytes + line];
                // Pairs of pixels: 4 bytes in, 2 luma out.
                for (d, q) in row.chunks_exact_mut(2).zip(s.chunks_exact(4)) {
                    d[0] = q[off];
                    d[1] = q[off + 2];
                }
                if w % 2 == 1 {
                    row[w - 1] = s[2 * (w - 1) + off];
                }
            }
        }
        PixelFormat::Rgb24 | PixelFormat::Bgr24 => {
            let (ri, bi) = if format == PixelFormat::Rgb24 { (0, 2) } else { (2, 0) };
            for (y, row) in rows {
                let s = &src[y * stride_bytes..y * stride_bytes + line];
                for (d, p) in row.iter_mut().zip(s.chunks_exact(3)) {
                    *d = crate::color::luma(p[ri], p[1], p[bi]);
                }
            }
        }
    }
    Ok(())
}

/// Bytes of one `width_px` x `height_px` image that [`write_rgb_as`] writes
/// (tightly packed: stride = width x bytes per pixel).
pub fn output_bytes(format: PixelFormat, width_px: u32, height_px: u32) -> usize {
    format.image_bytes(width_px as usize * format.bytes_per_px() as usize, height_px)
}

/// Converts a packed RGB888 image (`rgb`, `3 * w * h` bytes) into `format`
/// in `out` (exactly [`output_bytes`] bytes): GREY and RGB24/BGR24 directly,
/// the packed 4:2:2 formats with the canvas' BT.601 full-range coefficients
/// (as [`crate::sink::canvas::RgbCanvas::to_yuv420`]) and the chroma of each
/// pixel pair averaged. Returns false (writing nothing) for a planar format
/// or a size mismatch.
pub fn write_rgb_as(format: PixelFormat, rgb: &[u8], width_px: u32, height_px: u32, out: &mut [u8]) -> bool {
    let (w, h) = (width_px as usize, height_px as usize);
    if rgb.len() != 3 * w * h || out.len() != output_bytes(format, width_px, height_px) {
        return false;
    }
    match format {
        PixelFormat::Grey => {
            for (d, p) in out.iter_mut().zip(rgb.chunks_exact(3)) {
                *d = luma(p[0], p[1], p[2]);
            }
        }
        PixelFormat::Rgb24 => out.copy_from_slice(rgb),
        PixelFormat::Bgr24 => {
            for (d, p) in out.chunks_exact_mut(3).zip(rgb.chunks_exact(3)) {
                d.copy_from_slice(&[p[2], p[1], p[0]]);
            }
        }
        PixelFormat::Yuyv | PixelFormat::Yvyu | PixelFormat::Uyvy | PixelFormat::Vyuy => {
            let (yo, uo, vo) = match format {
                PixelFormat::Yuyv => (0, 1, 3),
                PixelFormat::Yvyu => (0, 3, 1),
                PixelFormat::Uyvy => (1, 0, 2),
                _ => (1, 2, 0),
            };
            for (out_row, rgb_row) in out.chunks_exact_mut(2 * w).zip(rgb.chunks_exact(3 * w)) {
                for (x0, px) in (0..w).step_by(2).zip(out_row.chunks_mut(4)) {
                    let a = &rgb_row[3 * x0..3 * x0 + 3];
                    let b = if x0 + 1 < w { &rgb_row[3 * x0 + 3..3 * x0 + 6] } else { a };
                    let avg = |i: usize| (a[i] as i32 + b[i] as i32 + 1) / 2;
                    let (u, v) = chroma_of(avg(0), avg(1), avg(2));
                    let (ya, yb) = (luma(a[0], a[1], a[2]), luma(b[0], b[1], b[2]));
                    if px.len() == 4 {
                        px[yo] = ya;
                        px[yo + 2] = yb;
                        px[uo] = u;
                        px[vo] = v;
                    }
                }
            }
        }
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_to_fourccs_and_back() {
        for f in CAPTURE_PREFERENCE {
            assert_eq!(PixelFormat::parse(&f.to_string()), Some(f));
            assert_eq!(PixelFormat::from_code(f.code()), Some(f));
        }
        assert_eq!(PixelFormat::parse("gray"), Some(PixelFormat::Grey));
        assert_eq!(PixelFormat::parse("rgb24"), Some(PixelFormat::Rgb24));
        assert_eq!(PixelFormat::parse("MJPG"), None);
        assert_eq!(PixelFormat::parse("YUYVX"), None);
        assert_eq!(fourcc_text(u32::from_le_bytes(*b"MJPG")), "MJPG");
        assert_eq!(fourcc_text(0x0000_0001), "0x00000001");
    }

    #[test]
    fn yuyv_and_uyvy_give_their_luma_bytes_with_padded_stride() {
        // 3x2 image, stride 8 bytes (6 used + 2 padding).
        let yuyv = [10, 1, 11, 2, 12, 3, 0xEE, 0xEE, 20, 1, 21, 2, 22, 3, 0xEE, 0xEE];
        let mut dst = [0u8; 6];
        extract_luma(PixelFormat::Yuyv, &yuyv, 8, 3, 2, &mut dst).unwrap();
        assert_eq!(dst, [10, 11, 12, 20, 21, 22]);
        let uyvy = [1, 10, 2, 11, 3, 12, 0, 0, 1, 20, 2, 21, 3, 22];
        extract_luma(PixelFormat::Uyvy, &uyvy, 8, 3, 2, &mut dst).unwrap();
        assert_eq!(dst, [10, 11, 12, 20, 21, 22]);
    }

    #[test]
    fn planar_and_grey_copy_the_first_plane() {
        let mut src = vec![0u8; PixelFormat::Nv12.image_bytes(4, 2)];
        src[..8].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        src[8..].fill(99);
        let mut dst = [0u8; 8];
        extract_luma(PixelFormat::Nv12, &src, 4, 4, 2, &mut dst).unwrap();
        assert_eq!(dst, [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut dst = [0u8; 6];
        extract_luma(PixelFormat::Grey, &[1, 2, 3, 0, 4, 5, 6], 4, 3, 2, &mut dst).unwrap();
        assert_eq!(dst, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rgb_converts_with_rec601_weights() {
        let mut dst = [0u8; 2];
        extract_luma(PixelFormat::Rgb24, &[255, 0, 0, 0, 0, 255], 6, 2, 1, &mut dst).unwrap();
        assert_eq!(dst, [76, 29]);
        extract_luma(PixelFormat::Bgr24, &[255, 0, 0, 0, 0, 255], 6, 2, 1, &mut dst).unwrap();
        assert_eq!(dst, [29, 76]);
    }

    #[test]
    fn a_short_buffer_is_refused_not_read_past() {
        let mut dst = [7u8; 4];
        let err = extract_luma(PixelFormat::Yuyv, &[0; 7], 4, 2, 2, &mut dst).unwrap_err();
        assert_eq!(err, ShortBuffer { got_bytes: 7, needed_bytes: 8 });
        assert_eq!(dst, [7; 4]);
        // A stride smaller than a line is refused too.
        assert!(extract_luma(PixelFormat::Yuyv, &[0; 64], 3, 2, 2, &mut dst).is_err());
    }

    #[test]
    fn rgb_to_yuyv_keeps_gray_neutral_and_primaries_exact() {
        let mut out = vec![0u8; output_bytes(PixelFormat::Yuyv, 2, 1)];
        assert!(write_rgb_as(PixelFormat::Yuyv, &[100, 100, 100, 100, 100, 100], 2, 1, &mut out));
        assert_eq!(out, [100, 128, 100, 128]);
        assert!(write_rgb_as(PixelFormat::Yuyv, &[255, 0, 0, 255, 0, 0], 2, 1, &mut out));
        assert_eq!(out, [76, 85, 76, 255]);
        // Odd width: the last pixel pairs with itself.
        let mut out = vec![0u8; output_bytes(PixelFormat::Uyvy, 3, 1)];
        assert_eq!(out.len(), 6);
        assert!(write_rgb_as(PixelFormat::Uyvy, &[0; 9], 3, 1, &mut out));
        let mut grey = [0u8; 2];
        assert!(write_rgb_as(PixelFormat::Grey, &[255, 0, 0, 0, 0, 255], 2, 1, &mut grey));
        assert_eq!(grey, [76, 29]);
        assert!(!write_rgb_as(PixelFormat::Nv12, &[0; 12], 2, 2, &mut [0; 6]));
    }
}
