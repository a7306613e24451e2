//! Comparing backends on one model: the same probe inputs through each,
//! outputs compared, runs timed. Used by `backend = "auto"` (pick the
//! fastest backend whose outputs agree with tract's), by
//! `spine-edge bench --backends` and by the backend tests.

use std::time::Instant;

use super::{Backend, InferError};

/// A deterministic probe image in [0, 1]: smooth bands plus speckle-like
/// noise, different for each `seed` (so a model sees more than a constant).
pub fn fill_probe_input(buf: &mut [f32], width: usize, seed: u32) {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(12_345);
    for (i, v) in buf.iter_mut().enumerate() {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let noise = (x >> 8) as f32 / (1u32 << 24) as f32;
        let (r, c) = ((i / width.max(1)) as f32, (i % width.max(1)) as f32);
        let band = 0.5 + 0.5 * ((r * 0.11 + seed as f32).sin() * (c * 0.05).cos());
        *v = (0.6 * band + 0.4 * noise).clamp(0.0, 1.0);
    }
}

/// Runs `b` on probe `seed` and returns a copy of every output, concatenated.
pub fn outputs_for(b: &mut dyn Backend, seed: u32) -> Result<Vec<f32>, InferError> {
    let width = b.manifest().input.shape[3];
    fill_probe_input(b.input_mut(), width, seed);
    b.run()?;
    let n = b.manifest().outputs.len();
    Ok((0..n).flat_map(|i| b.output(i).to_vec()).collect())
}

/// Largest |a - b| and largest |a| (the reference's scale).
pub fn deviation(reference: &[f32], other: &[f32]) -> (f32, f32) {
    let dev = reference.iter().zip(other).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    let scale = reference.iter().map(|a| a.abs()).fold(0.0f32, f32::max);
    (dev, scale)
}

/// Microseconds of `n` runs on probe inputs, after `warmup` runs, sorted.
pub fn time_runs(b: &mut dyn Backend, warmup: usize, n: usize) -> Result<Vec<f64>, InferError> {
    let width = b.manifest().input.shape[3];
    fill_probe_input(b.input_mut(), width, 7);
    for _ in 0..warmup {
        b.run()?;
    }
    let mut us = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        b.run()?;
        us.push(t.elapsed().as_secs_f64() * 1e6);
    }
    us.sort_by(f64::total_cmp);
    Ok(us)
}

/// The `q` quantile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}
