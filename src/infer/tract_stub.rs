//! Stub for builds without the `tract` feature: loading fails with a clear message.

use super::{Backend, InferError, Manifest};

pub fn load(_manifest: &Manifest, _threads: usize) -> Result<Box<dyn Backend>, InferError> {
    Err(InferError::NotBuilt { backend: "tract", reason: "rebuild with the default feature `tract`" })
}
