//! Model manifests: the TOML file beside every ONNX model that says what the
//! model is, what it eats and what it returns, what it was trained on, and the
//! sha256 of the ONNX file. [`Manifest::load_with`] reads the manifest and the
//! model once each (regular files only, size-capped), checks the signature
//! when the board pins keys, keeps the model's paths inside the manifest's
//! folder unless the board allows otherwise, hashes the model's bytes and
//! keeps exactly those bytes for the backend: what was verified is what runs.
//! It refuses a model whose file is missing or whose digest differs, naming
//! the file.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::signature::{self, SignatureError, TrustedKey};
use crate::file_read::{read_capped, FileReadError};

/// Largest manifest read.
pub const MAX_MANIFEST_BYTES: u64 = 64 * 1024;
/// Largest model file read (the project's models are under 10 MB).
pub const MAX_MODEL_BYTES: u64 = 256 * 1024 * 1024;

#[derive(Debug, Error)]
pub enum ManifestError {
    #[error(transparent)]
    Read(FileReadError),
    #[error("{path}: bad model manifest: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{path}: bad model manifest: {key}: {reason}")]
    Invalid { path: PathBuf, key: &'static str, reason: String },
    #[error("{model}: model file named by {manifest} is missing or unreadable: {source}")]
    MissingModel { model: PathBuf, manifest: PathBuf, #[source] source: FileReadError },
    #[error("{manifest}: {key} = \"{value}\" leaves the manifest's folder; the board allows that only with [model_signing] allow_paths_outside_manifest_folder = true")]
    Outside { manifest: PathBuf, key: &'static str, value: String },
    #[error(transparent)]
    Signature(#[from] SignatureError),
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

/// How manifests are trusted: the board's `[model_signing]` table.
#[derive(Debug, Clone, Default)]
pub struct ManifestPolicy {
    /// When not empty, every manifest must carry a signature by one of these keys.
    pub trusted_keys: Vec<TrustedKey>,
    /// Allow model and card paths that are absolute or climb out of the manifest's folder.
    pub allow_paths_outside_manifest_folder: bool,
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
    /// The model file's bytes, read once and hashed: the backend loads these,
    /// never the path again. Empty for [`Manifest::load_unverified`].
    pub model_bytes: Arc<[u8]>,
    /// The id of the key whose signature was checked, if the policy required one.
    pub signed_by: Option<String>,
}

impl Manifest {
    /// [`Manifest::load_with`] under the default policy (no keys, paths confined).
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        Self::load_with(path, &ManifestPolicy::default())
    }

    /// Reads the manifest once, checks its signature when `policy` has keys,
    /// validates it, then reads the model file once, hashes those bytes and
    /// keeps them.
    pub fn load_with(path: &Path, policy: &ManifestPolicy) -> Result<Self, ManifestError> {
        let bytes = read_capped(path, MAX_MANIFEST_BYTES, "model manifest").map_err(ManifestError::Read)?;
        Self::load_from_bytes(path, &bytes, policy)
    }

    /// [`Manifest::load_with`] for manifest bytes already read from `path`
    /// (`models sign` signs exactly the bytes it verified).
    pub fn load_from_bytes(path: &Path, bytes: &[u8], policy: &ManifestPolicy) -> Result<Self, ManifestError> {
        let signed_by = match policy.trusted_keys.is_empty() {
            true => None,
            false => Some(signature::verify(path, bytes, &policy.trusted_keys)?),
        };
        let mut m = Self::parse(path, bytes)?;
        if !policy.allow_paths_outside_manifest_folder {
            for (key, value) in [("model.file", &m.model.file), ("model.card", &m.model.card)] {
                if !stays_inside(value) {
                    return Err(ManifestError::Outside { manifest: path.to_path_buf(), key, value: value.clone() });
                }
            }
        }
        let model = read_capped(&m.model_path, MAX_MODEL_BYTES, "model file")
            .map_err(|source| ManifestError::MissingModel { model: m.model_path.clone(), manifest: path.to_path_buf(), source })?;
        let actual = sha256_hex(&model);
        if !actual.eq_ignore_ascii_case(&m.model.sha256) {
            return Err(ManifestError::Digest {
                model: m.model_path.clone(),
                manifest: path.to_path_buf(),
                expected: m.model.sha256.clone(),
                actual,
            });
        }
        m.model_bytes = model.into();
        m.signed_by = signed_by;
        Ok(m)
    }

    /// Reads and validates a manifest without reading the model file (tests, tools).
    pub fn load_unverified(path: &Path) -> Result<Self, ManifestError> {
        let bytes = read_capped(path, MAX_MANIFEST_BYTES, "model manifest").map_err(ManifestError::Read)?;
        Self::parse(path, &bytes)
    }

    /// Parses and validates manifest bytes as if read from `path` (model not read).
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, ManifestError> {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| ManifestError::Parse { path: path.to_path_buf(), reason: "not UTF-8 text".into() })?;
        let raw: RawManifest = toml::from_str(text)
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
            model_bytes: Arc::from(Vec::new()),
            signed_by: None,
        })
    }

    /// Input height and width in pixels.
    pub fn input_hw(&self) -> (usize, usize) {
        (self.input.shape[2], self.input.shape[3])
    }

    /// Whether `other`'s model takes the same input tensor from the same
    /// image region (shape, layout, colour, resize, mean, std; names may differ).
    pub fn same_input_contract(&self, other: &Manifest) -> bool {
        let (a, b) = (&self.input, &other.input);
        a.shape == b.shape && a.layout == b.layout && a.color == b.color && a.resize == b.resize && a.mean == b.mean && a.std == b.std
    }
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    signature::to_hex(&Sha256::digest(bytes))
}

/// A relative path of plain names: no root, no `..`.
fn stays_inside(rel: &str) -> bool {
    let p = Path::new(rel);
    !rel.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
