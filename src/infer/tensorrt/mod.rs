//! The TensorRT backend (feature `tensorrt`): ONNX Runtime with the TensorRT
//! execution provider first and CUDA second, through the same session, I/O
//! binding and zero-allocation run as the `ort` backend
//! ([`super::ort_backend::load_with`]). fp32 models are built with FP16
//! allowed, int8 (QDQ) models with INT8 (TensorRT takes the scales from the
//! Q/DQ nodes: no calibration table). Engines are cached on disk per model
//! digest, GPU and TensorRT version ([`engine_cache`]), so only the first
//! start on a board builds them.
//!
//! Before any session is made, what is missing is named on one line: the
//! ONNX Runtime library, its TensorRT provider (the CPU-only wheel has none:
//! JetPack's onnxruntime-gpu does), an NVIDIA GPU, TensorRT's own library.
//! Without the feature, selecting it fails at start with the same kind of line.

pub mod engine_cache;

use super::{Backend, InferError, Manifest};

#[cfg(not(feature = "tensorrt"))]
pub fn load(_manifest: &Manifest, _threads: usize) -> Result<Box<dyn Backend>, InferError> {
    Err(InferError::NotBuilt { backend: "tensorrt", reason: "built without the `tensorrt` feature (cargo build --release --features tensorrt)" })
}

#[cfg(feature = "tensorrt")]
pub fn load(manifest: &Manifest, threads: usize) -> Result<Box<dyn Backend>, InferError> {
    use ort::ep::{ExecutionProvider, TensorRT, CUDA};

    let model = manifest.model_path.clone();
    let refuse = |reason: String| InferError::Load { model: model.clone(), reason: format!("tensorrt: {reason}") };
    super::ort_backend::available().map_err(&refuse)?;
    match TensorRT::is_available() {
        Ok(true) => {}
        Ok(false) => {
            return Err(refuse(format!(
                "the ONNX Runtime library {} was built without the TensorRT execution provider (on a Jetson use JetPack's onnxruntime-gpu build, elsewhere onnxruntime-gpu; docs/install.md)",
                super::ort_backend::library_path().display()
            )))
        }
        Err(e) => return Err(refuse(format!("cannot list ONNX Runtime's execution providers: {e}"))),
    }
    let gpu = gpu_present().map_err(&refuse)?;
    let trt_version = tensorrt_version().map_err(&refuse)?;
    let root = engine_cache::root(|k| std::env::var(k).ok());
    let cache = engine_cache::folder(&root, &manifest.model.sha256, &gpu, &trt_version);
    std::fs::create_dir_all(&cache).map_err(|e| refuse(format!("cannot create the engine cache {}: {e}", cache.display())))?;
    let cache_str = cache.to_string_lossy().into_owned();
    let int8 = manifest.model.quantization.starts_with("int8");
    let trt = TensorRT::default()
        .with_device_id(0)
        .with_engine_cache(true)
        .with_engine_cache_path(&cache_str)
        .with_timing_cache(true)
        .with_timing_cache_path(&cache_str)
        .with_fp16(true)
        .with_int8(int8)
        .build()
        .error_on_failure();
    let cuda = CUDA::default().with_device_id(0).build().error_on_failure();
    log::info!("tensorrt: {} on {gpu}, TensorRT {trt_version}, engine cache {}", manifest.path.display(), cache.display());
    super::ort_backend::load_with(manifest, threads, vec![trt, cuda], "tensorrt")
}

/// The GPU's name, or why there is none: a discrete card shows
/// `/dev/nvidia0`, a Jetson `/dev/nvhost-ctrl-gpu` (or `/dev/nvgpu`).
#[cfg(feature = "tensorrt")]
fn gpu_present() -> Result<String, String> {
    use std::path::Path;
    let discrete = Path::new("/dev/nvidia0").exists();
    let jetson = Path::new("/dev/nvhost-ctrl-gpu").exists() || Path::new("/dev/nvgpu").exists();
    if !discrete && !jetson {
        return Err("no NVIDIA GPU here: neither /dev/nvidia0 nor /dev/nvhost-ctrl-gpu exists".into());
    }
    // Small kernel text files; a cap keeps a strange /proc from costing memory.
    let read = |p: &str| crate::file_read::read_capped(Path::new(p), 64 * 1024, "GPU description").ok().map(|b| String::from_utf8_lossy(&b).into_owned());
    let info = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
        .and_then(|e| read(&e.path().join("information").to_string_lossy()));
    let model = read("/proc/device-tree/model");
    Ok(engine_cache::gpu_name(info.as_deref(), model.as_deref()).unwrap_or_else(|| if jetson { "jetson".into() } else { "nvidia".into() }))
}

/// TensorRT's version from its own library (`getInferLibVersion`), or why
/// the library cannot be loaded.
#[cfg(feature = "tensorrt")]
fn tensorrt_version() -> Result<String, String> {
    const NAMES: [&str; 3] = ["libnvinfer.so.10", "libnvinfer.so.8", "libnvinfer.so"];
    let mut last = String::new();
    for name in NAMES {
        // SAFETY: loading TensorRT runs its initialisers, which is what ONNX
        // Runtime's provider does anyway when it loads the same library.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => {
                // SAFETY: `int32_t getInferLibVersion()` has no arguments and no preconditions.
                let v = unsafe { lib.get::<unsafe extern "C" fn() -> i32>(b"getInferLibVersion\0").map(|f| f()) };
                return v.map(engine_cache::trt_version_string).map_err(|e| format!("{name}: no getInferLibVersion: {e}"));
            }
            Err(e) => last = e.to_string(),
        }
    }
    Err(format!("TensorRT's library is not installed (tried {}: {last}); on a Jetson it comes with JetPack", NAMES.join(", ")))
}
