//! The ONNX Runtime backend (feature `ort`): the model is loaded once from
//! the verified bytes ([`Manifest::model_bytes`]) into a session with full
//! graph optimisation, and run through an I/O binding whose input and
//! output tensors are allocated once at load: per frame the caller writes
//! the input tensor in place, the run writes the outputs in place, and our
//! code allocates nothing.
//!
//! The library is loaded at run time (`ort`'s `load-dynamic`: nothing is
//! downloaded at build time) from `ORT_DYLIB_PATH`, else `libonnxruntime.so`
//! on the library path. The onnxruntime PyPI wheel ships one:
//! `site-packages/onnxruntime/capi/libonnxruntime.so.1.*`. A missing
//! library is one error line at start, not a panic.
//!
//! Execution providers: CPU by default; with the `tensorrt` feature,
//! [`load_with`] puts TensorRT (engine cache on disk) and CUDA first.

use std::path::PathBuf;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::ep::ExecutionProviderDispatch;
use ort::session::IoBinding;
use ort::memory::Allocator;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::Tensor;

use super::{Backend, InferError, Manifest};

/// The process's ONNX Runtime environment, made on first use.
fn environment() -> Result<&'static Environment, String> {
    static ENV: OnceLock<Result<Environment, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let lib = library_path();
        let builder = ort::init_from(&lib).map_err(|e| {
            format!(
                "cannot load the ONNX Runtime library {}: {e} (set ORT_DYLIB_PATH to libonnxruntime.so.*, e.g. from `pip install onnxruntime`: site-packages/onnxruntime/capi/)",
                lib.display()
            )
        })?;
        builder.with_name("spine-edge").build().map_err(|e| format!("cannot start ONNX Runtime: {e}"))
    })
    .as_ref()
    .map_err(|e| e.clone())
}

/// `ORT_DYLIB_PATH`, else the system's `libonnxruntime.so`.
pub fn library_path() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("libonnxruntime.so"))
}

/// Whether the ONNX Runtime library can be loaded here.
pub fn available() -> Result<(), String> {
    environment().map(|_| ())
}

pub struct OrtBackend {
    manifest: Manifest,
    session: Session,
    binding: IoBinding,
    input: Tensor<f32>,
    outputs: Vec<Tensor<f32>>,
    /// Which execution provider the session was built for ("cpu", "tensorrt").
    provider: &'static str,
}

impl OrtBackend {
    pub fn provider(&self) -> &'static str {
        self.provider
    }
}

/// Loads `manifest`'s model on the CPU execution provider.
pub fn load(manifest: &Manifest, threads: usize) -> Result<Box<dyn Backend>, InferError> {
    load_with(manifest, threads, Vec::new(), "cpu")
}

/// Loads `manifest`'s model with `providers` tried first (then the CPU).
pub fn load_with(manifest: &Manifest, threads: usize, providers: Vec<ExecutionProviderDispatch>, provider: &'static str) -> Result<Box<dyn Backend>, InferError> {
    let model = manifest.model_path.clone();
    let load_err = |reason: String| InferError::Load { model: model.clone(), reason };
    let env = environment().map_err(load_err)?;
    let mut builder = Session::builder(env)
        .and_then(|b| b.with_optimization_level(GraphOptimizationLevel::All).map_err(Into::into))
        .and_then(|b| b.with_intra_threads(threads.max(1)).map_err(Into::into))
        .and_then(|b| b.with_inter_threads(1).map_err(Into::into))
        .map_err(|e: ort::Error| load_err(e.to_string()))?;
    if !providers.is_empty() {
        builder = builder.with_execution_providers(providers).map_err(|e| load_err(e.to_string()))?;
    }
    let session = builder.commit_from_memory(&manifest.model_bytes).map_err(|e| load_err(e.to_string()))?;
    let mismatch = |reason: String| InferError::Mismatch { model: model.clone(), reason };
    if session.outputs().len() != manifest.outputs.len() {
        return Err(mismatch(format!("the model has {} outputs, the manifest describes {}", session.outputs().len(), manifest.outputs.len())));
    }
    let allocator = Allocator::default();
    let shape: Vec<i64> = manifest.input.shape.iter().map(|&d| d as i64).collect();
    let input = Tensor::<f32>::new(&allocator, shape).map_err(|e| load_err(e.to_string()))?;
    let mut binding = session.create_binding().map_err(|e| load_err(e.to_string()))?;
    let input_name = session.inputs().first().ok_or_else(|| mismatch("the model has no input".into()))?.name().to_string();
    binding.bind_input(input_name, &input).map_err(|e| load_err(e.to_string()))?;
    let mut outputs = Vec::with_capacity(manifest.outputs.len());
    for (outlet, o) in session.outputs().iter().zip(&manifest.outputs) {
        let shape: Vec<i64> = o.shape.iter().map(|&d| d as i64).collect();
        let mut t = Tensor::<f32>::new(&allocator, shape).map_err(|e| load_err(e.to_string()))?;
        binding
            .bind_output(outlet.name().to_string(), &mut t)
            .map_err(|e| mismatch(format!("output '{}' ({:?}): {e}", outlet.name(), o.shape)))?;
        outputs.push(t);
    }
    let mut backend = OrtBackend { manifest: manifest.clone(), session, binding, input, outputs, provider };
    // One run now: a shape the model disagrees with fails here, at start.
    backend.run().map_err(|e| mismatch(e.to_string()))?;
    Ok(Box::new(backend))
}

impl Backend for OrtBackend {
    fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn input_mut(&mut self) -> &mut [f32] {
        self.input.extract_tensor_mut().1
    }

    fn run(&mut self) -> Result<(), InferError> {
        self.session
            .run_binding(&self.binding)
            .map(drop)
            .map_err(|e| InferError::Run { model: self.manifest.model_path.clone(), reason: e.to_string() })
    }

    fn output(&self, i: usize) -> &[f32] {
        self.outputs[i].extract_tensor().1
    }
}
