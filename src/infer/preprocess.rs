//! Preprocessing: the image region of a gray frame -> a model's input tensor.
//!
//! The resize is an integer box filter, the same one the training scripts use
//! (`models/training`): for output index `o` along an axis of source length
//! `S` and output length `N`, the box is `[o*S/N, max(o*S/N + 1, (o+1)*S/N))`
//! (integer division) and the output is the float mean of the pixels in the
//! box; then `value = (mean / 255 - mean_norm) / std_norm`.
//! The box tables are computed when the region or size changes, never per frame.

use thiserror::Error;

use crate::frame::{Frame, RegionPx};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PreprocessError {
    #[error("image region {region:?} does not fit the {width_px}x{height_px} frame")]
    RegionOutside { region: RegionPx, width_px: u32, height_px: u32 },
    #[error("model input of {got} values, expected {expected}")]
    InputSize { got: usize, expected: usize },
}

/// Box-filter resizer with cached box tables.
#[derive(Debug, Default)]
pub struct BoxResizer {
    key: Option<(RegionPx, usize, usize)>,
    /// Per output column: source column range [x0, x1).
    cols: Vec<(u32, u32)>,
    rows: Vec<(u32, u32)>,
}

/// One axis' boxes: `n` outputs over a source of length `s` starting at `offset`.
fn boxes(offset: u32, s: u32, n: usize, out: &mut Vec<(u32, u32)>) {
    out.clear();
    let (s, nn) = (s as u64, n as u64);
    for o in 0..nn {
        let a = o * s / nn;
        let b = ((o + 1) * s / nn).max(a + 1);
        out.push((offset + a as u32, offset + b as u32));
    }
}

impl BoxResizer {
    pub fn new() -> Self {
        Self::default()
    }

    fn prepare(&mut self, region: RegionPx, out_w: usize, out_h: usize) {
        if self.key != Some((region, out_w, out_h)) {
            boxes(region.x_px, region.width_px, out_w, &mut self.cols);
            boxes(region.y_px, region.height_px, out_h, &mut self.rows);
            self.key = Some((region, out_w, out_h));
        }
    }

    /// Resizes `region` of `frame` into `out` (row-major `out_h` x `out_w`),
    /// normalised as `(v / 255 - mean) / std`.
    pub fn resize_into(
        &mut self,
        frame: &Frame,
        region: RegionPx,
        out: &mut [f32],
        out_w: usize,
        out_h: usize,
        mean: f32,
        std: f32,
    ) -> Result<(), PreprocessError> {
        let (fw, fh) = (frame.meta.width_px, frame.meta.height_px);
        if !region.fits_in(fw, fh) {
            return Err(PreprocessError::RegionOutside { region, width_px: fw, height_px: fh });
        }
        if out.len() != out_w * out_h {
            return Err(PreprocessError::InputSize { got: out.len(), expected: out_w * out_h });
        }
        self.prepare(region, out_w, out_h);
        let px = frame.pixels();
        let stride = fw as usize;
        let scale = 1.0 / (255.0 * std);
        let bias = mean / std;
        for (oy, &(y0, y1)) in self.rows.iter().enumerate() {
            let out_row = &mut out[oy * out_w..(oy + 1) * out_w];
            for (o, &(x0, x1)) in out_row.iter_mut().zip(self.cols.iter()) {
                let mut sum = 0u32;
                for y in y0..y1 {
                    let row = &px[y as usize * stride..];
                    for &v in &row[x0 as usize..x1 as usize] {
                        sum += v as u32;
                    }
                }
                let n = (x1 - x0) * (y1 - y0);
                *o = (sum as f32 / n as f32) * scale - bias;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, f: impl Fn(u32, u32) -> u8) -> Frame {
        let mut fr = Frame::with_capacity((w * h) as usize);
        fr.set_size(w, h).unwrap();
        for y in 0..h {
            for x in 0..w {
                fr.pixels_mut()[(y * w + x) as usize] = f(x, y);
            }
        }
        fr
    }

    #[test]
    fn box_tables_match_the_training_definition() {
        // 360 -> 128: s0 = o*360//128, s1 = max(s0+1, (o+1)*360//128)
        let mut v = Vec::new();
        boxes(140, 360, 128, &mut v);
        assert_eq!(v[0], (140, 142));
        assert_eq!(v[1], (142, 145));
        assert_eq!(v[127], (140 + 357, 140 + 360));
        // Upscaling repeats source pixels.
        boxes(0, 2, 4, &mut v);
        assert_eq!(v, vec![(0, 1), (0, 1), (1, 2), (1, 2)]);
    }

    #[test]
    fn resize_averages_boxes_and_normalises() {
        let fr = frame(8, 4, |x, _| if x < 4 { 0 } else { 255 });
        let mut out = vec![0.0; 4 * 2];
        let mut r = BoxResizer::new();
        r.resize_into(&fr, RegionPx::full(8, 4), &mut out, 4, 2, 0.0, 1.0).unwrap();
        assert_eq!(out, vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]);
        // A box straddling the edge averages: 3 outputs over 8 columns.
        let mut out3 = vec![0.0; 3];
        r.resize_into(&fr, RegionPx { x_px: 0, y_px: 0, width_px: 8, height_px: 1 }, &mut out3, 3, 1, 0.5, 0.5).unwrap();
        // boxes [0,2) [2,5) [5,8): means 0, 255/3, 255 -> (v-0.5)/0.5
        assert!((out3[0] + 1.0).abs() < 1e-6);
        assert!((out3[1] - (2.0 / 3.0 - 1.0)).abs() < 1e-6);
        assert!((out3[2] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn region_outside_the_frame_is_an_error_not_a_panic() {
        let fr = frame(8, 4, |_, _| 0);
        let mut out = vec![0.0; 4];
        let mut r = BoxResizer::new();
        let region = RegionPx { x_px: 6, y_px: 0, width_px: 4, height_px: 4 };
        assert!(matches!(r.resize_into(&fr, region, &mut out, 2, 2, 0.0, 1.0), Err(PreprocessError::RegionOutside { .. })));
        assert!(matches!(r.resize_into(&fr, RegionPx::full(8, 4), &mut out, 3, 2, 0.0, 1.0), Err(PreprocessError::InputSize { .. })));
    }
}
