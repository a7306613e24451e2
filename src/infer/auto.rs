//! `backend = "auto"`: at start, every backend this build and machine have
//! runs the model on the same probe inputs; a backend whose outputs do not
//! agree with tract's on the same model (within [`agrees`]) is not chosen,
//! and of those that agree the one with the lowest median latency (10 to 60
//! timed runs, as many as fit in half a second) is. The
//! choice and every candidate's figures are logged at start, and
//! `spine-edge models verify --backend auto` prints them.
//!
//! Without tract in the build there is no reference: the first backend that
//! loads is taken, and the log says so.

use std::fmt;

use super::compare::{deviation, outputs_for, quantile, time_runs};
use super::{Backend, BackendKind, InferError, Manifest};

/// Backends `auto` considers, in order of preference on a tie.
pub const CANDIDATES: [BackendKind; 3] = [BackendKind::Tract, BackendKind::Ort, BackendKind::Tensorrt];

/// Probe inputs compared per candidate.
const PROBES: u32 = 4;
/// Warm-up runs, and the range of timed runs per candidate: as many as fit
/// in [`TIMING_BUDGET_S`] (a slow board or an emulator still starts in
/// seconds), at least the minimum.
const WARMUP_RUNS: usize = 5;
const MIN_TIMED_RUNS: usize = 10;
const MAX_TIMED_RUNS: usize = 60;
const TIMING_BUDGET_S: f64 = 0.5;

/// What one candidate did in the calibration.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Ran: median and 99th-percentile latency, largest output deviation
    /// from tract on the same model and whether that is within tolerance.
    Ran { p50_ms: f64, p99_ms: f64, max_abs_dev: f32, agrees: bool },
    /// Could not be loaded or run here (not built, library or device absent).
    Unavailable(String),
}

#[derive(Debug, Clone)]
pub struct Candidate {
    pub kind: BackendKind,
    pub outcome: Outcome,
}

/// The calibration of one model: every candidate and the one chosen.
#[derive(Debug, Clone)]
pub struct Choice {
    pub model: String,
    pub chosen: BackendKind,
    pub candidates: Vec<Candidate>,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: chose {}", self.model, self.chosen.name())?;
        for c in &self.candidates {
            match &c.outcome {
                Outcome::Ran { p50_ms, p99_ms, max_abs_dev, agrees } => write!(
                    f,
                    "; {} p50 {p50_ms:.3} ms p99 {p99_ms:.3} ms max |Δ| {max_abs_dev:.1e}{}",
                    c.kind.name(),
                    if *agrees { "" } else { " (disagrees: not eligible)" }
                )?,
                Outcome::Unavailable(why) => write!(f, "; {} unavailable ({why})", c.kind.name())?,
            }
        }
        Ok(())
    }
}

/// Whether `dev` (largest |Δ| against tract on the same model, whose
/// largest |output| is `scale`) is close enough for a model of
/// `quantization`. fp32: 1e-3 of the output scale (floating-point
/// reassociation and fused kernels; measured ~1e-6). int8: 0.1 of the
/// scale — ONNX Runtime runs QDQ convolutions in integer arithmetic and
/// tract dequantizes and runs them in float, so their roundings differ
/// (measured up to ~0.5 logit on probe inputs, `bench --backends`).
pub fn agrees(quantization: &str, dev: f32, scale: f32) -> bool {
    let rel = if quantization == "fp32" { 1e-3 } else { 0.1 };
    dev.is_finite() && dev <= rel * scale.max(1.0)
}

/// Calibrates every candidate on `manifest`'s model and returns the chosen,
/// loaded backend with the figures. Fails only when no backend loads.
pub fn choose(manifest: &Manifest, threads: usize) -> Result<(Box<dyn Backend>, Choice), InferError> {
    choose_among(manifest, threads, &CANDIDATES)
}

/// [`choose`] over `kinds` (tests restrict the set).
pub fn choose_among(manifest: &Manifest, threads: usize, kinds: &[BackendKind]) -> Result<(Box<dyn Backend>, Choice), InferError> {
    let mut reference: Option<Vec<Vec<f32>>> = None;
    let mut best: Option<(f64, Box<dyn Backend>, BackendKind)> = None;
    let mut candidates = Vec::with_capacity(kinds.len());
    let mut first_error = None;
    for &kind in kinds {
        let outcome = match calibrate(manifest, kind, threads, &mut reference) {
            Ok((backend, p50_ms, p99_ms, max_abs_dev, agrees)) => {
                if agrees && best.as_ref().is_none_or(|(b, _, _)| p50_ms < *b) {
                    best = Some((p50_ms, backend, kind));
                }
                Outcome::Ran { p50_ms, p99_ms, max_abs_dev, agrees }
            }
            Err(e) => {
                let line = e.to_string();
                first_error.get_or_insert(e);
                Outcome::Unavailable(line)
            }
        };
        candidates.push(Candidate { kind, outcome });
    }
    let model = manifest.path.display().to_string();
    match best {
        Some((_, backend, chosen)) => Ok((backend, Choice { model, chosen, candidates })),
        None => Err(first_error.unwrap_or(InferError::Load { model: manifest.model_path.clone(), reason: "auto: no backend's outputs agree with tract's".into() })),
    }
}

type Calibrated = (Box<dyn Backend>, f64, f64, f32, bool);

/// Loads `kind`, compares its outputs with `reference` (tract's, made by the
/// first candidate when it is tract) and times it.
fn calibrate(manifest: &Manifest, kind: BackendKind, threads: usize, reference: &mut Option<Vec<Vec<f32>>>) -> Result<Calibrated, InferError> {
    let mut b = super::load(manifest, kind, threads)?;
    let outs = (0..PROBES).map(|s| outputs_for(b.as_mut(), s)).collect::<Result<Vec<_>, _>>()?;
    let (mut dev, mut scale) = (0.0f32, 0.0f32);
    match reference {
        Some(refs) => {
            for (r, o) in refs.iter().zip(&outs) {
                let (d, s) = deviation(r, o);
                dev = dev.max(if o.iter().all(|v| v.is_finite()) { d } else { f32::INFINITY });
                scale = scale.max(s);
            }
        }
        // The first backend that runs is the reference: tract when built.
        None => *reference = Some(outs),
    }
    // The probe runs above were timed by nothing; one warm-up run now says how many fit the budget.
    let per_run_s = time_runs(b.as_mut(), WARMUP_RUNS, 1)?[0] / 1e6;
    let n = ((TIMING_BUDGET_S / per_run_s.max(1e-6)) as usize).clamp(MIN_TIMED_RUNS, MAX_TIMED_RUNS);
    let us = time_runs(b.as_mut(), 0, n)?;
    let agrees = agrees(&manifest.model.quantization, dev, scale);
    Ok((b, quantile(&us, 0.5) / 1e3, quantile(&us, 0.99) / 1e3, dev, agrees))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_depends_on_quantization_and_scale() {
        assert!(agrees("fp32", 1e-6, 5.0));
        assert!(!agrees("fp32", 0.01, 5.0));
        assert!(agrees("fp32", 9e-4, 0.1), "scale below 1 counts as 1");
        assert!(agrees("int8-qdq", 0.4, 5.0));
        assert!(!agrees("int8-qdq", 0.6, 5.0));
        assert!(!agrees("fp32", f32::NAN, 5.0));
        assert!(!agrees("int8", f32::INFINITY, 5.0));
    }
}
