//! TensorRT backend placeholder. spine-edge has no TensorRT implementation yet
//! (there is no Jetson on the build machines to test one against), so selecting
//! it fails at start with a clear message instead of pretending.

use super::{Backend, InferError, Manifest};

pub fn load(_manifest: &Manifest, _threads: usize) -> Result<Box<dyn Backend>, InferError> {
    if cfg!(feature = "tensorrt") {
        Err(InferError::NotBuilt { backend: "tensorrt", reason: "the TensorRT backend is not implemented yet; use backend = \"tract\"" })
    } else {
        Err(InferError::NotBuilt { backend: "tensorrt", reason: "built without the `tensorrt` feature; use backend = \"tract\"" })
    }
}
