//! The ONNX Runtime backend (feature `ort`, library from ORT_DYLIB_PATH) runs
//! every shipped model, through the same `Backend` trait, with outputs that
//! agree with tract's on probe inputs: fp32 within 1e-4 (relative to the
//! output scale). int8 is looser: ORT runs QDQ convolutions in integer
//! arithmetic, tract dequantizes and runs them in float, so the two int8
//! runs differ by up to ~0.5 logit on these out-of-distribution probes
//! (`bench --backends` reports the figures); asserted here: finite and
//! within 1.0 logit.
//! `cargo test --features ort --test backends` (not in the default suite).
#![cfg(feature = "ort")]

use std::path::Path;

use spine_edge::infer::compare::{deviation, outputs_for};
use spine_edge::infer::{self, BackendKind, Manifest};

fn manifest(name: &str) -> Manifest {
    Manifest::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(name)).unwrap()
}

#[test]
fn ort_loads_every_model_and_agrees_with_tract() {
    infer::ort_backend::available().expect("ONNX Runtime library (set ORT_DYLIB_PATH)");
    for name in ["level_fp32.toml", "target_fp32.toml", "level_int8.toml"] {
        let m = manifest(name);
        let mut tract = infer::load(&m, BackendKind::Tract, 1).unwrap();
        let mut ort = infer::load(&m, BackendKind::Ort, 1).unwrap();
        for seed in 0..6 {
            let a = outputs_for(tract.as_mut(), seed).unwrap();
            let b = outputs_for(ort.as_mut(), seed).unwrap();
            assert_eq!(a.len(), b.len());
            let (dev, scale) = deviation(&a, &b);
            if m.model.quantization == "fp32" {
                assert!(dev <= 1e-4 * scale.max(1.0), "{name} probe {seed}: |Δ| {dev} (scale {scale})");
            } else {
                assert!(b.iter().all(|v| v.is_finite()) && dev <= 1.0, "{name} probe {seed}: {a:?} vs {b:?}");
            }
        }
    }
}
