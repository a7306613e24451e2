//! The RGB canvas overlays are drawn on, and its conversions.
//!
//! [`RgbCanvas`] owns one RGB888 image (row-major, interleaved, stride =
//! 3 x width). It is an embedded-graphics [`DrawTarget`], so anything that
//! draws with embedded-graphics (the overlay in [`super::overlay`], later a
//! needle path or crosshair) draws onto it; sinks read the result back as
//! RGB bytes ([`RgbCanvas::as_rgb_bytes`], PNG, framebuffer) or as planar
//! YUV 4:2:0 ([`RgbCanvas::to_yuv420`], Y4M, V4L2 output).
//!
//! Memory: the buffer is allocated by [`RgbCanvas::new`] and only again by
//! [`RgbCanvas::resize`] when the image grows; drawing and converting
//! allocate nothing.

use core::convert::Infallible;

use embedded_graphics::pixelcolor::Rgb888;
use embedded_graphics::prelude::*;
use embedded_graphics::primitives::Rectangle;
use crate::color::{chroma_of, luma};

/// An RGB888 image that embedded-graphics can draw on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbCanvas {
    width_px: u32,
    height_px: u32,
    /// `width_px * height_px * 3` bytes, R G B per pixel.
    rgb: Vec<u8>,
}

impl RgbCanvas {
    /// A black canvas of `width_px` x `height_px`.
    pub fn new(width_px: u32, height_px: u32) -> Self {
        Self { width_px, height_px, rgb: vec![0; rgb_len(width_px, height_px)] }
    }

    /// Changes the size, keeping the buffer when it is large enough (then
    /// nothing is allocated). The contents are unspecified afterwards.
    pub fn resize(&mut self, width_px: u32, height_px: u32) {
        self.width_px = width_px;
        self.height_px = height_px;
        self.rgb.resize(rgb_len(width_px, height_px), 0);
    }

    pub fn width(&self) -> u32 {
        self.width_px
    }

    pub fn height(&self) -> u32 {
        self.height_px
    }

    /// The pixels as interleaved RGB bytes, row-major, `3 * width()` bytes per row.
    pub fn as_rgb_bytes(&self) -> &[u8] {
        &self.rgb
    }

    /// The colour at (`x_px`, `y_px`), `None` outside the canvas.
    pub fn pixel(&self, x_px: u32, y_px: u32) -> Option<Rgb888> {
        if x_px >= self.width_px || y_px >= self.height_px {
            return None;
        }
        let i = 3 * (y_px as usize * self.width_px as usize + x_px as usize);
        Some(Rgb888::new(self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]))
    }

    /// Fills the canvas from an 8-bit grayscale image of the same size
    /// (`gray.len() == width * height`), each gray level becoming R = G = B.
    ///
    /// # Panics
    /// If `gray` is not exactly `width * height` bytes.
    pub fn copy_gray(&mut self, gray: &[u8]) {
        assert_eq!(
            gray.len(),
            self.width_px as usize * self.height_px as usize,
            "gray image does not match the {}x{} canvas",
            self.width_px,
            self.height_px
        );
        for (rgb, &g) in self.rgb.chunks_exact_mut(3).zip(gray) {
            rgb.copy_from_slice(&[g, g, g]);
        }
    }

    /// Bytes of a planar YUV 4:2:0 image of this canvas' size:
    /// Y is `w * h`, U and V are `ceil(w/2) * ceil(h/2)` each.
    pub fn yuv420_len(&self) -> usize {
        yuv420_len(self.width_px, self.height_px)
    }

    /// Converts the canvas to planar YUV 4:2:0 (Y plane, then U, then V) in
    /// `out`, with BT.601 full-range ("JPEG", Y4M `C420jpeg`) coefficients.
    /// Chroma is the colour of the average RGB of each 2x2 block; on odd
    /// sizes the last column/row of blocks averages the pixels that exist.
    /// Gray pixels (R = G = B = g) give exactly Y = g, U = V = 128.
    ///
    /// # Panics
    /// If `out` is not exactly [`Self::yuv420_len`] bytes.
    pub fn to_yuv420(&self, out: &mut [u8]) {
        assert_eq!(out.len(), self.yuv420_len(), "YUV buffer does not match the canvas");
        let w = self.width_px as usize;
        let h = self.height_px as usize;
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (y_plane, chroma) = out.split_at_mut(w * h);
        let (u_plane, v_plane) = chroma.split_at_mut(cw * ch);

        for (y_row, rgb_row) in y_plane.chunks_exact_mut(w).zip(self.rgb.chunks_exact(3 * w)) {
            for (y, p) in y_row.iter_mut().zip(rgb_row.chunks_exact(3)) {
                *y = luma(p[0], p[1], p[2]);
            }
        }

        // Chroma, one row of blocks at a time: the block's two source rows (one
        // at an odd bottom edge), whole 2x2 blocks first, then an odd right edge.
        let row = |y: usize| &self.rgb[3 * y * w..3 * (y + 1) * w];
        for cy in 0..ch {
            let top = row(2 * cy);
            let bottom = (2 * cy + 1 < h).then(|| row(2 * cy + 1));
            let u_row = &mut u_plane[cy * cw..(cy + 1) * cw];
            let v_row = &mut v_plane[cy * cw..(cy + 1) * cw];
            let pairs = top.chunks_exact(6).zip(bottom.unwrap_or(top).chunks_exact(6));
            for ((a, b), (u, v)) in pairs.zip(u_row.iter_mut().zip(v_row.iter_mut())) {
                let sum = |k: usize| a[k] as u32 + a[k + 3] as u32 + if bottom.is_some() { b[k] as u32 + b[k + 3] as u32 } else { 0 };
                let n = if bottom.is_some() { 4 } else { 2 };
                (*u, *v) = chroma_of(rounded_mean(sum(0), n), rounded_mean(sum(1), n), rounded_mean(sum(2), n));
            }
            if w % 2 == 1 {
                let a = &top[3 * (w - 1)..];
                let b = bottom.map(|b| &b[3 * (w - 1)..]);
                let sum = |k: usize| a[k] as u32 + b.map_or(0, |b| b[k] as u32);
                let n = if b.is_some() { 2 } else { 1 };
                (u_row[cw - 1], v_row[cw - 1]) = chroma_of(rounded_mean(sum(0), n), rounded_mean(sum(1), n), rounded_mean(sum(2), n));
            }
        }
    }

    fn index(&self, p: Point) -> Option<usize> {
        if p.x < 0 || p.y < 0 || p.x as u32 >= self.width_px || p.y as u32 >= self.height_px {
            return None;
        }
        Some(3 * (p.y as usize * self.width_px as usize + p.x as usize))
    }
}

/// `sum / n` rounded half up.
fn rounded_mean(sum: u32, n: u32) -> i32 {
    ((sum + n / 2) / n) as i32
}

/// Bytes of an RGB888 image.
fn rgb_len(width_px: u32, height_px: u32) -> usize {
    3 * width_px as usize * height_px as usize
}

/// Bytes of a planar YUV 4:2:0 image of `width_px` x `height_px` (odd sizes round chroma up).
pub fn yuv420_len(width_px: u32, height_px: u32) -> usize {
    let (w, h) = (width_px as usize, height_px as usize);
    w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
}

impl OriginDimensions for RgbCanvas {
    fn size(&self) -> Size {
        Size::new(self.width_px, self.height_px)
    }
}

impl DrawTarget for RgbCanvas {
    type Color = Rgb888;
    type Error = Infallible;

    fn draw_iter<I>(&mut self, pixels: I) -> Result<(), Self::Error>
    where
        I: IntoIterator<Item = Pixel<Self::Color>>,
    {
        for Pixel(p, c) in pixels {
            if let Some(i) = self.index(p) {
                self.rgb[i..i + 3].copy_from_slice(&[c.r(), c.g(), c.b()]);
            }
        }
        Ok(())
    }

    fn fill_solid(&mut self, area: &Rectangle, color: Self::Color) -> Result<(), Self::Error> {
        let area = area.intersection(&self.bounding_box());
        let Some(bottom_right) = area.bottom_right() else {
            return Ok(());
        };
        let px = [color.r(), color.g(), color.b()];
        let w = self.width_px as usize;
        for y in area.top_left.y..=bottom_right.y {
            let start = 3 * (y as usize * w + area.top_left.x as usize);
            let end = 3 * (y as usize * w + bottom_right.x as usize + 1);
            for rgb in self.rgb[start..end].chunks_exact_mut(3) {
                rgb.copy_from_slice(&px);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_graphics::primitives::{PrimitiveStyle, Rectangle};

    #[test]
    fn drawing_is_clipped_and_lands_on_the_right_bytes() {
        let mut c = RgbCanvas::new(4, 3);
        Rectangle::new(Point::new(2, 1), Size::new(10, 10))
            .into_styled(PrimitiveStyle::with_fill(Rgb888::new(1, 2, 3)))
            .draw(&mut c)
            .unwrap();
        Pixel(Point::new(-1, 0), Rgb888::RED).draw(&mut c).unwrap();
        Pixel(Point::new(0, 0), Rgb888::RED).draw(&mut c).unwrap();
        assert_eq!(c.pixel(0, 0), Some(Rgb888::RED));
        assert_eq!(c.pixel(1, 1), Some(Rgb888::BLACK));
        assert_eq!(c.pixel(2, 1), Some(Rgb888::new(1, 2, 3)));
        assert_eq!(c.pixel(3, 2), Some(Rgb888::new(1, 2, 3)));
        assert_eq!(c.pixel(4, 0), None);
        // Row 1 is bytes 12..24; its pixel 2 starts at byte 12 + 6.
        assert_eq!(&c.as_rgb_bytes()[18..24], &[1, 2, 3, 1, 2, 3]);
    }

    /// The contract literally: each chroma sample from the mean RGB of the
    /// pixels of its 2x2 block that exist.
    fn yuv420_reference(c: &RgbCanvas) -> Vec<u8> {
        let (w, h) = (c.width() as usize, c.height() as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let mut out = vec![0u8; c.yuv420_len()];
        for y in 0..h {
            for x in 0..w {
                let p = c.pixel(x as u32, y as u32).unwrap();
                out[y * w + x] = luma(p.r(), p.g(), p.b());
            }
        }
        for cy in 0..ch {
            for cx in 0..cw {
                let (mut s, mut n) = ([0u32; 3], 0u32);
                for y in 2 * cy..(2 * cy + 2).min(h) {
                    for x in 2 * cx..(2 * cx + 2).min(w) {
                        let p = c.pixel(x as u32, y as u32).unwrap();
                        s = [s[0] + p.r() as u32, s[1] + p.g() as u32, s[2] + p.b() as u32];
                        n += 1;
                    }
                }
                let (u, v) = chroma_of(rounded_mean(s[0], n), rounded_mean(s[1], n), rounded_mean(s[2], n));
                out[w * h + cy * cw + cx] = u;
                out[w * h + cw * ch + cy * cw + cx] = v;
            }
        }
        out
    }

    #[test]
    fn yuv420_matches_the_reference_at_even_and_odd_sizes() {
        for (w, h) in [(8, 6), (7, 5), (7, 6), (8, 5), (1, 1), (1, 4), (5, 1)] {
            let mut c = RgbCanvas::new(w, h);
            let mut k = 17u32;
            for y in 0..h as i32 {
                for x in 0..w as i32 {
                    k = k.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    let b = k.to_le_bytes();
                    Pixel(Point::new(x, y), Rgb888::new(b[1], b[2], b[3])).draw(&mut c).unwrap();
                }
            }
            let mut yuv = vec![0u8; c.yuv420_len()];
            c.to_yuv420(&mut yuv);
            assert_eq!(yuv, yuv420_reference(&c), "{w}x{h}");
        }
    }

    #[test]
    fn gray_converts_to_exact_luma_and_neutral_chroma_for_every_level() {
        let mut c = RgbCanvas::new(256, 1);
        let gray: Vec<u8> = (0..=255).collect();
        c.copy_gray(&gray);
        let mut yuv = vec![0u8; c.yuv420_len()];
        c.to_yuv420(&mut yuv);
        assert_eq!(&yuv[..256], &gray[..]);
        assert!(yuv[256..].iter().all(|&x| x == 128));
    }

    #[test]
    fn primaries_match_bt601_full_range() {
        // Reference values (JFIF): red Y=76 U=85 V=255; blue Y=29 U=255 V=107.
        let mut c = RgbCanvas::new(2, 2);
        c.clear(Rgb888::RED).unwrap();
        let mut yuv = vec![0u8; c.yuv420_len()];
        c.to_yuv420(&mut yuv);
        assert_eq!(yuv, [76, 76, 76, 76, 85, 255]);
        c.clear(Rgb888::BLUE).unwrap();
        c.to_yuv420(&mut yuv);
        assert_eq!(yuv, [29, 29, 29, 29, 255, 107]);
    }

    #[test]
    fn odd_sizes_average_the_pixels_that_exist() {
        // 3x3: the last chroma column and row cover one pixel column/row only.
        let mut c = RgbCanvas::new(3, 3);
        c.copy_gray(&[0; 9]);
        Pixel(Point::new(2, 2), Rgb888::RED).draw(&mut c).unwrap();
        assert_eq!(c.yuv420_len(), 9 + 2 * 4);
        let mut yuv = vec![0u8; c.yuv420_len()];
        c.to_yuv420(&mut yuv);
        let (u, v) = (&yuv[9..13], &yuv[13..17]);
        // Chroma block (1,1) is the red pixel alone: full red chroma.
        assert_eq!((u[3], v[3]), (85, 255));
        assert_eq!((&u[..3], &v[..3]), (&[128u8; 3][..], &[128u8; 3][..]));
    }

    #[test]
    fn resize_keeps_a_large_enough_buffer() {
        let mut c = RgbCanvas::new(8, 8);
        let before = c.rgb.as_ptr();
        c.resize(4, 4);
        assert_eq!((c.width(), c.height(), c.as_rgb_bytes().len()), (4, 4, 48));
        c.resize(8, 8);
        assert_eq!(c.rgb.as_ptr(), before);
    }
}
