//! Inference: run a loaded model on a preallocated input tensor.
//!
//! A [`Backend`] owns one model, loaded and optimised once at start, its input
//! buffer and its output buffers; per frame the caller writes the input in
//! place ([`Backend::input_mut`]), calls [`Backend::run`] and reads the outputs.
//! [`load`] picks the implementation: tract (feature `tract`, default), ONNX
//! Runtime (feature `ort`), TensorRT through ONNX Runtime (feature
//! `tensorrt`), or `auto` (the fastest of those whose outputs agree with
//! tract's, [`auto`]). A backend that is not built is a stub that fails at
//! load with a clear message, so callers carry no `cfg`.

use std::path::PathBuf;

use thiserror::Error;

pub mod auto;
pub mod manifest;
pub mod compare;
pub mod preprocess;
pub mod signature;

#[cfg(feature = "tract")]
mod tract;
#[cfg(not(feature = "tract"))]
#[path = "tract_stub.rs"]
mod tract;
#[cfg(feature = "ort")]
pub mod ort_backend;
#[cfg(not(feature = "ort"))]
#[path = "ort_stub.rs"]
pub mod ort_backend;
pub mod tensorrt;

pub use manifest::{Manifest, ManifestError, ManifestPolicy};

#[derive(Debug, Error)]
pub enum InferError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{model}: cannot load model: {reason}")]
    Load { model: PathBuf, reason: String },
    #[error("{model}: the model does not match its manifest: {reason}")]
    Mismatch { model: PathBuf, reason: String },
    #[error("{model}: inference failed: {reason}")]
    Run { model: PathBuf, reason: String },
    #[error("backend '{backend}' is not available in this build: {reason}")]
    NotBuilt { backend: &'static str, reason: &'static str },
    #[error("unknown backend '{0}': expected tract, ort, tensorrt or auto")]
    UnknownBackend(String),
}

/// Which inference library runs the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Tract,
    /// ONNX Runtime, CPU execution provider (feature `ort`).
    Ort,
    /// ONNX Runtime with the TensorRT and CUDA execution providers (feature `tensorrt`).
    Tensorrt,
    /// At start, the fastest available backend whose outputs agree with tract's ([`auto`]).
    Auto,
}

impl BackendKind {
    /// The name used in board files and logs.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Tract => "tract",
            BackendKind::Ort => "ort",
            BackendKind::Tensorrt => "tensorrt",
            BackendKind::Auto => "auto",
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = InferError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "tract" => Ok(BackendKind::Tract),
            "ort" => Ok(BackendKind::Ort),
            "tensorrt" => Ok(BackendKind::Tensorrt),
            "auto" => Ok(BackendKind::Auto),
            other => Err(InferError::UnknownBackend(other.to_string())),
        }
    }
}

/// One loaded model with its preallocated input and outputs.
pub trait Backend: Send {
    /// The manifest the model was loaded from.
    fn manifest(&self) -> &Manifest;
    /// The input tensor, NCHW batch 1, as a flat slice to fill before `run`.
    fn input_mut(&mut self) -> &mut [f32];
    /// Runs the model on the current input; outputs are valid until the next run.
    fn run(&mut self) -> Result<(), InferError>;
    /// Output `i` (in manifest order) as a flat slice.
    fn output(&self, i: usize) -> &[f32];
}

/// Loads the model of `manifest` from the bytes its digest was checked on
/// ([`Manifest::model_bytes`]), with `threads` threads.
pub fn load(manifest: &Manifest, kind: BackendKind, threads: usize) -> Result<Box<dyn Backend>, InferError> {
    if manifest.model_bytes.is_empty() {
        return Err(InferError::Load { model: manifest.model_path.clone(), reason: "the manifest was loaded without reading and verifying the model".into() });
    }
    match kind {
        BackendKind::Tract => tract::load(manifest, threads),
        BackendKind::Ort => ort_backend::load(manifest, threads),
        BackendKind::Tensorrt => tensorrt::load(manifest, threads),
        BackendKind::Auto => {
            let (backend, choice) = auto::choose(manifest, threads)?;
            log::info!("backend auto: {choice}");
            Ok(backend)
        }
    }
}

/// Numerically stable softmax of `logits` into `out` (same length).
pub fn softmax(logits: &[f32], out: &mut [f32]) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (o, &l) in out.iter_mut().zip(logits) {
        *o = (l - max).exp();
        sum += *o;
    }
    if sum > 0.0 && sum.is_finite() {
        for o in out.iter_mut() {
            *o /= sum;
        }
    } else {
        let n = out.len().max(1) as f32;
        out.iter_mut().for_each(|o| *o = 1.0 / n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_sums_to_one_and_orders() {
        let mut p = [0.0; 3];
        softmax(&[1.0, 3.0, 2.0], &mut p);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[2] && p[2] > p[0]);
        softmax(&[f32::NAN, 0.0, 0.0], &mut p);
        assert!(p.iter().all(|x| x.is_finite()));
    }
}
