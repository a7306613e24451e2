//! Motion along the spine between frames, by phase correlation.
//!
//! Both images (the model's input thumbnail, `h` x `w` floats) are windowed
//! with a Hann window and Fourier transformed; the normalised cross-power
//! spectrum's inverse has its peak at the shift. Only the x shift is used by
//! the level logic (x runs along the spine in the paramedian sagittal view);
//! the peak height (0..1) says how much the two images have in common.
//! FFT plans and all buffers are made once in [`PhaseCorrelator::new`].

use std::sync::Arc;

use rustfft::num_complex::Complex32;
use rustfft::{Fft, FftPlanner};

/// The shift of `current` relative to `previous`: `current(x) ~ previous(x - dx_px)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shift {
    pub dx_px: f32,
    pub dy_px: f32,
    /// Height of the correlation peak, 0..1 (1 = identical up to the shift).
    pub peak: f32,
}

pub struct PhaseCorrelator {
    w: usize,
    h: usize,
    window: Vec<f32>,
    fft_w: Arc<dyn Fft<f32>>,
    fft_h: Arc<dyn Fft<f32>>,
    ifft_w: Arc<dyn Fft<f32>>,
    ifft_h: Arc<dyn Fft<f32>>,
    scratch: Vec<Complex32>,
    column: Vec<Complex32>,
    prev: Vec<Complex32>,
    cur: Vec<Complex32>,
    /// The correlation surface (kept apart so `cur` stays a spectrum).
    corr: Vec<Complex32>,
    has_prev: bool,
}

impl PhaseCorrelator {
    pub fn new(w: usize, h: usize) -> Self {
        let mut planner = FftPlanner::<f32>::new();
        let fft_w = planner.plan_fft_forward(w);
        let fft_h = planner.plan_fft_forward(h);
        let ifft_w = planner.plan_fft_inverse(w);
        let ifft_h = planner.plan_fft_inverse(h);
        let scratch_len = [&fft_w, &fft_h, &ifft_w, &ifft_h]
            .iter()
            .map(|f| f.get_inplace_scratch_len())
            .max()
            .unwrap_or(0);
        let hann = |n: usize| -> Vec<f32> {
            (0..n).map(|i| 0.5 - 0.5 * (2.0 * std::f32::consts::PI * (i as f32 + 0.5) / n as f32).cos()).collect()
        };
        let (wx, wy) = (hann(w), hann(h));
        let mut window = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                window[y * w + x] = wx[x] * wy[y];
            }
        }
        Self {
            w,
            h,
            window,
            fft_w,
            fft_h,
            ifft_w,
            ifft_h,
            scratch: vec![Complex32::default(); scratch_len],
            column: vec![Complex32::default(); h],
            prev: vec![Complex32::default(); w * h],
            cur: vec![Complex32::default(); w * h],
            corr: vec![Complex32::default(); w * h],
            has_prev: false,
        }
    }

    /// Forgets the previous image (after a lift-off, say).
    pub fn reset(&mut self) {
        self.has_prev = false;
    }

    /// The spectrum of the last image pushed, to compare with later (see [`Self::compare_with`]).
    pub fn last_spectrum(&self) -> Option<&[Complex32]> {
        self.has_prev.then_some(&self.prev[..])
    }

    /// Adds the next image (row-major `h` x `w`) and returns its shift from the previous one.
    pub fn push(&mut self, image: &[f32]) -> Option<Shift> {
        self.spectrum_into_cur(image);
        let shift = if self.has_prev {
            Some(correlate(&self.cur, &self.prev, &mut self.corr, self.w, self.h, &*self.ifft_w, &*self.ifft_h, &mut self.column, &mut self.scratch))
        } else {
            None
        };
        std::mem::swap(&mut self.prev, &mut self.cur);
        self.has_prev = true;
        shift
    }

    /// Shift of the last pushed image relative to a stored spectrum `reference`
    /// (from [`Self::last_spectrum`], copied by the caller).
    pub fn compare_with(&mut self, reference: &[Complex32]) -> Option<Shift> {
        if !self.has_prev || reference.len() != self.prev.len() {
            return None;
        }
        // prev holds the newest image's spectrum; correlate it against the reference.
        Some(correlate(&self.prev, reference, &mut self.corr, self.w, self.h, &*self.ifft_w, &*self.ifft_h, &mut self.column, &mut self.scratch))
    }

    fn spectrum_into_cur(&mut self, image: &[f32]) {
        let n = self.w * self.h;
        let mean = image.iter().take(n).sum::<f32>() / n as f32;
        for (i, c) in self.cur.iter_mut().enumerate() {
            let v = image.get(i).copied().unwrap_or(mean);
            *c = Complex32::new((v - mean) * self.window[i], 0.0);
        }
        fft2(&mut self.cur, self.w, self.h, &*self.fft_w, &*self.fft_h, &mut self.column, &mut self.scratch);
    }

}

/// Shift of `current` relative to `reference` (both spectra) via the
/// normalised cross-power spectrum; `corr` receives the correlation surface.
#[allow(clippy::too_many_arguments)]
fn correlate(
    current: &[Complex32],
    reference: &[Complex32],
    corr: &mut [Complex32],
    w: usize,
    h: usize,
    ifft_w: &dyn Fft<f32>,
    ifft_h: &dyn Fft<f32>,
    column: &mut [Complex32],
    scratch: &mut [Complex32],
) -> Shift {
    for ((o, c), p) in corr.iter_mut().zip(current).zip(reference) {
        let r = *c * p.conj();
        let m = r.norm();
        *o = if m > 1e-12 { r / m } else { Complex32::default() };
    }
    fft2(corr, w, h, ifft_w, ifft_h, column, scratch);
    let n = (w * h) as f32;
    let (mut best, mut bi) = (f32::MIN, 0usize);
    for (i, c) in corr.iter().enumerate() {
        if c.re > best {
            best = c.re;
            bi = i;
        }
    }
    let (px, py) = (bi % w, bi / w);
    let at = |x: isize, y: isize| -> f32 {
        let xx = x.rem_euclid(w as isize) as usize;
        let yy = y.rem_euclid(h as isize) as usize;
        corr[yy * w + xx].re
    };
    let refine = |m: f32, c: f32, p: f32| -> f32 {
        let d = m - 2.0 * c + p;
        if d.abs() < 1e-12 { 0.0 } else { (0.5 * (m - p) / d).clamp(-0.5, 0.5) }
    };
    let (xi, yi) = (px as isize, py as isize);
    let fx = refine(at(xi - 1, yi), at(xi, yi), at(xi + 1, yi));
    let fy = refine(at(xi, yi - 1), at(xi, yi), at(xi, yi + 1));
    let wrap = |p: usize, n: usize| if p > n / 2 { p as f32 - n as f32 } else { p as f32 };
    Shift { dx_px: wrap(px, w) + fx, dy_px: wrap(py, h) + fy, peak: (best / n).clamp(0.0, 1.0) }
}

/// In-place 2-D FFT of a row-major `h` x `w` buffer: rows, then columns.
fn fft2(buf: &mut [Complex32], w: usize, h: usize, fw: &dyn Fft<f32>, fh: &dyn Fft<f32>, column: &mut [Complex32], scratch: &mut [Complex32]) {
    for row in buf.chunks_exact_mut(w) {
        fw.process_with_scratch(row, scratch);
    }
    for x in 0..w {
        for y in 0..h {
            column[y] = buf[y * w + x];
        }
        fh.process_with_scratch(column, scratch);
        for y in 0..h {
            buf[y * w + x] = column[y];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic speckle-like texture: smoothed noise on a wider field,
    /// sampled with linear interpolation at a sub-pixel offset.
    fn texture(w: usize, h: usize, off_x: f32) -> Vec<f32> {
        let fw = w + 64;
        let mut seed = 7u32;
        let field: Vec<f32> = (0..fw * h)
            .map(|_| {
                seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                (seed >> 8) as f32 / (1 << 24) as f32
            })
            .collect();
        let at = |x: usize, y: usize| field[y * fw + x.min(fw - 1)];
        let mut v = vec![0.0; w * h];
        for y in 0..h {
            for x in 0..w {
                let xf = x as f32 + 32.0 - off_x;
                let (x0, t) = (xf.floor() as usize, xf - xf.floor());
                v[y * w + x] = at(x0, y) * (1.0 - t) + at(x0 + 1, y) * t;
            }
        }
        v
    }

    #[test]
    fn finds_integer_and_subpixel_shifts_with_sign() {
        let mut pc = PhaseCorrelator::new(128, 64);
        assert!(pc.push(&texture(128, 64, 0.0)).is_none());
        let s = pc.push(&texture(128, 64, 5.0)).unwrap();
        assert!((s.dx_px - 5.0).abs() < 0.3, "dx {}", s.dx_px);
        assert!(s.dy_px.abs() < 0.3);
        assert!(s.peak > 0.3, "peak {}", s.peak);
        let s = pc.push(&texture(128, 64, 2.5)).unwrap();
        assert!((s.dx_px + 2.5).abs() < 0.5, "dx {}", s.dx_px);
    }

    #[test]
    fn unrelated_images_have_a_low_peak() {
        let mut pc = PhaseCorrelator::new(64, 64);
        let mut seed = 12345u32;
        let mut noise = || {
            (0..64 * 64)
                .map(|_| {
                    seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
                    (seed >> 8) as f32 / (1 << 24) as f32
                })
                .collect::<Vec<f32>>()
        };
        let a = noise();
        let b = noise();
        pc.push(&a);
        let same = pc.push(&a).unwrap();
        let other = pc.push(&b).unwrap();
        assert!(same.peak > 0.9, "same {}", same.peak);
        assert!(other.peak < 0.1, "other {}", other.peak);
    }

    #[test]
    fn compares_with_a_stored_reference() {
        let mut pc = PhaseCorrelator::new(128, 64);
        pc.push(&texture(128, 64, 0.0));
        let reference = pc.last_spectrum().unwrap().to_vec();
        pc.push(&texture(128, 64, 7.0));
        pc.push(&texture(128, 64, 3.0));
        let s = pc.compare_with(&reference).unwrap();
        assert!((s.dx_px - 3.0).abs() < 0.3, "dx {}", s.dx_px);
    }
}
