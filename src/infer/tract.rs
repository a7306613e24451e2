//! The tract backend: loads an ONNX model once, pins its input to the
//! manifest's shape, optimises it once, and runs it per frame on one
//! preallocated input tensor. Outputs are copied into preallocated buffers.
//!
//! The caller fills a plain input buffer; at run it is copied into one tensor
//! shared with tract through an `Arc` (a refcount bump per run); after the run
//! tract has dropped its reference and the tensor is reused. Allocations made inside tract while running are
//! tract's own (measured and reported by the allocation test).

use std::sync::Arc;

use tract_onnx::prelude::*;

use super::{Backend, InferError, Manifest};

pub struct TractBackend {
    manifest: Manifest,
    state: TypedSimpleState,
    /// What the caller fills; copied into `tensor` at run (a few thousand floats).
    input: Vec<f32>,
    tensor: Arc<Tensor>,
    outputs: Vec<Vec<f32>>,
}

pub fn load(manifest: &Manifest, threads: usize) -> Result<Box<dyn Backend>, InferError> {
    if threads > 1 {
        set_threads(threads);
    }
    let model_path = manifest.model_path.clone();
    let load_err = |e: TractError| InferError::Load { model: model_path.clone(), reason: format!("{e:#}") };
    let shape: Vec<usize> = manifest.input.shape.clone();
    // The bytes the manifest's digest was checked on, never the path again.
    let mut model = tract_onnx::onnx().model_for_read(&mut &manifest.model_bytes[..]).map_err(load_err)?;
    // Exported value_info may carry symbolic batch dims that conflict with our
    // pinned batch of 1 (FIELD-NOTES); the optimiser re-derives them.
    for node in model.nodes.iter_mut() {
        for out in node.outputs.iter_mut() {
            if !model.inputs.iter().any(|i| i.node == node.id) {
                out.fact = InferenceFact::default();
            }
        }
    }
    model.set_input_fact(0, f32::fact(&shape).into()).map_err(load_err)?;
    let typed = model.into_optimized().map_err(load_err)?;
    let n_out = typed.outputs.len();
    if n_out != manifest.outputs.len() {
        return Err(InferError::Mismatch {
            model: model_path,
            reason: format!("the model has {n_out} outputs, the manifest describes {}", manifest.outputs.len()),
        });
    }
    for (i, o) in manifest.outputs.iter().enumerate() {
        let fact = typed.output_fact(i).map_err(load_err)?;
        let got: Option<Vec<usize>> = fact.shape.as_concrete().map(|s| s.to_vec());
        if got.as_deref() != Some(&o.shape[..]) {
            return Err(InferError::Mismatch {
                model: model_path,
                reason: format!("output {i} ('{}') has shape {:?}, the manifest says {:?}", o.name, fact.shape, o.shape),
            });
        }
    }
    let plan = typed.into_runnable().map_err(load_err)?;
    let state = TypedSimpleState::new(&plan).map_err(load_err)?;
    let tensor = Arc::new(Tensor::zero::<f32>(&shape).map_err(load_err)?);
    let input = vec![0.0f32; shape.iter().product()];
    let outputs = manifest.outputs.iter().map(|o| vec![0.0f32; o.len()]).collect();
    Ok(Box::new(TractBackend { manifest: manifest.clone(), state, input, tensor, outputs }))
}

fn set_threads(threads: usize) {
    use std::sync::Once;
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        tract_linalg::multithread::set_default_executor(tract_linalg::multithread::Executor::multithread(threads));
    });
}

impl Backend for TractBackend {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn input_mut(&mut self) -> &mut [f32] {
        &mut self.input
    }

    fn run(&mut self) -> Result<(), InferError> {
        let run_err = |reason: String| InferError::Run { model: self.manifest.model_path.clone(), reason };
        if Arc::get_mut(&mut self.tensor).is_none() {
            // tract kept a reference to the last input: start a fresh tensor.
            let t = Tensor::zero::<f32>(&self.manifest.input.shape).map_err(|e| run_err(format!("{e:#}")))?;
            self.tensor = Arc::new(t);
        }
        if let Some(t) = Arc::get_mut(&mut self.tensor) {
            let mut view = t.to_plain_array_view_mut::<f32>().map_err(|e| run_err(format!("{e:#}")))?;
            let dst = view.as_slice_mut().ok_or_else(|| run_err("input tensor is not contiguous".into()))?;
            dst.copy_from_slice(&self.input);
        }
        let out = self
            .state
            .run(tvec![TValue::from_const(self.tensor.clone())])
            .map_err(|e| run_err(format!("{e:#}")))?;
        for (i, t) in out.iter().enumerate().take(self.outputs.len()) {
            let view = t.to_plain_array_view::<f32>().map_err(|e| run_err(format!("output {i}: {e:#}")))?;
            let dst = &mut self.outputs[i];
            if view.len() != dst.len() {
                return Err(run_err(format!("output {i} has {} values, expected {}", view.len(), dst.len())));
            }
            for (d, s) in dst.iter_mut().zip(view.iter()) {
                *d = *s;
            }
        }
        Ok(())
    }

    fn output(&self, i: usize) -> &[f32] {
        &self.outputs[i]
    }
}
