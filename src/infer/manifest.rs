//! Model manifests: the TOML file beside every ONNX model that says what the
//! model is, what it eats and what it returns, what it was trained on, and the
//! sha256 of the ONNX file. [`Manifest::load`] refuses a model whose file is
//! missing or whose digest differs, naming the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error("{path}: cannot read model manifest: {source}")]
    Read { path: PathBuf, #[source] source: std::io::Error },
    #[error("{path}: bad model manifest: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: bad model manifest: {key}: {reason}")]
    Invalid { path: PathBuf, key: &'static str, reason: String },
    #[error("{model}: model file named by {manifest} is missing or unreadable: {source}")]
    MissingModel { model: PathBuf, manifest: PathBuf, #[source] source: std::io::Error },
    #[error("{model}: sha256 mismatch: the manifest {manifest} says {expected}, the file is {actual}; refusing a tampered or replaced model")]
    Digest { model: PathBuf, manifest: PathBuf, expected: String, actual: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSection {
    pub name: String,
    /// Which task the model serves: "level", "target", ...
    pub task: String,
    /// The ONNX file, relative to the manifest's folder.
    pub file: String,
    pub sha256: String,
    /// "fp32" or "int8-qdq".
    pub quantization: String,
    /// The model card, relative to the manifest's folder.
    pub card: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSection {
    pub name: String,
    /// NCHW, batch 1, one channel.
    pub shape: Vec<usize>,
    pub layout: String,
    pub color: String,
    /// How the image region is resized to the input: only "box" (see `preprocess`).
    pub resize: String,
    /// Network input = (pixel / 255 - mean) / std.
    pub mean: f32,
    pub std: f32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub name: String,
    pub shape: Vec<usize>,
    /// "logits", "logit", "probs", "heatmap_logits", "heatmap_probs", ...
    pub kind: String,
    #[serde(default)]
    pub labels: Vec<String>,
    /// Model-input pixels per heatmap cell.
    #[serde(default)]
    pub stride_px: Option<f32>,
    /// How a heatmap is decoded ("softargmax", ...).
    #[serde(default)]
    pub decode: Option<String>,
}

impl OutputSection {
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSection {
    pub data: String,
    pub method: String,
    pub validated_on_patients: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    model: ModelSection,
    input: InputSection,
    output: Option<OutputSection>,
    outputs: Option<Vec<OutputSection>>,
    training: TrainingSection,
    #[serde(default)]
    metrics: BTreeMap<String, toml::Value>,
}

/// A validated manifest whose model file exists and matches its digest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where the manifest was read from.
    pub path: PathBuf,
    /// The ONNX file, resolved.
    pub model_path: PathBuf,
    pub model: ModelSection,
    pub input: InputSection,
    /// One or more outputs, in the model's output order.
    pub outputs: Vec<OutputSection>,
    pub training: TrainingSection,
    pub metrics: BTreeMap<String, toml::Value>,
}

impl Manifest {
    /// Reads and validates a manifest, then checks the model file's sha256.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let m = Self::load_unverified(path)?;
        m.verify_digest()?;
        Ok(m)
    }

    /// Reads and validates a manifest without hashing the model file.
    pub fn load_unverified(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ManifestError::Read { path: path.to_path_buf(), source })?;
        let raw: RawManifest = toml::from_str(&text)
            .map_err(|e| ManifestError::Parse { path: path.to_path_buf(), reason: one_line(&e.to_string()) })?;
        let invalid = |key: &'static str, reason: String| ManifestError::Invalid { path: path.to_path_buf(), key, reason };
        let outputs = match (raw.output, raw.outputs) {
            (Some(o), None) => vec![o],
            (None, Some(v)) if !v.is_empty() => v,
            (Some(_), Some(_)) => return Err(invalid("output", "give either [output] or [[outputs]], not both".into())),
            _ => return Err(invalid("output", "missing: the manifest must describe the model's output".into())),
        };
        let input = raw.input;
        if input.shape.len() != 4 || input.shape[0] != 1 || input.shape[1] != 1 || input.shape[2] == 0 || input.shape[3] == 0 {
            return Err(invalid("input.shape", format!("{:?}: expected [1, 1, H, W]", input.shape)));
        }
        if input.shape[2] > 2048 || input.shape[3] > 2048 {
            return Err(invalid("input.shape", format!("{:?}: larger than 2048 px", input.shape)));
        }
        if input.layout != "NCHW" {
            return Err(invalid("input.layout", format!("'{}': only NCHW is supported", input.layout)));
        }
        if input.color != "gray" {
            return Err(invalid("input.color", format!("'{}': only gray is supported", input.color)));
        }
        if input.resize != "box" {
            return Err(invalid("input.resize", format!("'{}': only box is supported", input.resize)));
        }
        if !(input.std.is_finite() && input.std > 0.0 && input.mean.is_finite()) {
            return Err(invalid("input.std", "mean must be finite and std finite and > 0".into()));
        }
        for o in &outputs {
            if o.is_empty() || o.len() > 16 * 1024 * 1024 {
                return Err(invalid("output.shape", format!("{:?} for output '{}'", o.shape, o.name)));
            }
        }
        if !matches!(raw.model.quantization.as_str(), "fp32" | "int8-qdq" | "int8-qoperator" | "fp16") {
            return Err(invalid("model.quantization", format!("'{}': expected fp32, fp16, int8-qdq or int8-qoperator", raw.model.quantization)));
        }
        if raw.model.sha256.len() != 64 || !raw.model.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("model.sha256", "expected 64 hex digits".into()));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(Manifest {
            path: path.to_path_buf(),
            model_path: dir.join(&raw.model.file),
            model: raw.model,
            input,
            outputs,
            training: raw.training,
            metrics: raw.metrics,
        })
    }

    /// Hashes the model file and compares with the manifest.
    pub fn verify_digest(&self) -> Result<(), ManifestError> {
        let actual = sha256_file(&self.model_path).map_err(|source| ManifestError::MissingModel {
            model: self.model_path.clone(),
            manifest: self.path.clone(),
            source,
        })?;
        if !actual.eq_ignore_ascii_case(&self.model.sha256) {
            return Err(ManifestError::Digest {
                model: self.model_path.clone(),
                manifest: self.path.clone(),
                expected: self.model.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Input height and width in pixels.
    pub fn input_hw(&self) -> (usize, usize) {
        (self.input.shape[2], self.input.shape[3])
    }
}

/// Hex sha256 of a file's contents.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
