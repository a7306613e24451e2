//! Stand-in for the ONNX Runtime backend in builds without the `ort` feature.

use super::{Backend, InferError, Manifest};

pub fn load(_manifest: &Manifest, _threads: usize) -> Result<Box<dyn Backend>, InferError> {
    Err(InferError::NotBuilt { backend: "ort", reason: "built without the `ort` feature (cargo build --features ort)" })
}

pub fn available() -> Result<(), String> {
    Err("built without the `ort` feature".into())
}
