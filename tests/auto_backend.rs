//! `backend = "auto"` in every build: it calibrates what this build has
//! (tract always; ONNX Runtime with the `ort` feature and its library),
//! never picks a backend it could not run, and `models verify --backend
//! auto` prints the choice with every candidate's figures.

use std::path::Path;
use std::process::Command;

use spine_edge::infer::auto::Outcome;
use spine_edge::infer::{self, BackendKind, Manifest};

fn models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models")
}

#[test]
fn auto_loads_a_backend_that_ran_and_lists_the_unavailable_ones() {
    let m = Manifest::load(&models().join("level_fp32.toml")).unwrap();
    let (mut b, choice) = infer::auto::choose(&m, 1).unwrap();
    let chosen = choice.candidates.iter().find(|c| c.kind == choice.chosen).unwrap();
    assert!(matches!(chosen.outcome, Outcome::Ran { agrees: true, .. }), "{choice}");
    assert_eq!(choice.candidates.len(), 3, "{choice}");
    let trt = choice.candidates.iter().find(|c| c.kind == BackendKind::Tensorrt).unwrap();
    assert!(matches!(trt.outcome, Outcome::Unavailable(_)), "no TensorRT on this machine: {choice}");
    if cfg!(not(feature = "ort")) {
        assert_eq!(choice.chosen, BackendKind::Tract, "{choice}");
    }
    b.run().unwrap();
    assert!(b.output(0).iter().all(|v| v.is_finite()));
}

#[test]
fn models_verify_with_auto_prints_the_choice_per_model() {
    let out = Command::new(env!("CARGO_BIN_EXE_spine-edge"))
        .args(["models", "verify", "--backend", "auto", "--dir"])
        .arg(models())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let manifests = std::fs::read_dir(models()).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "toml")).count();
    assert_eq!(stdout.matches("auto: ").count(), manifests, "{stdout}");
    assert!(stdout.contains(": chose tract") || stdout.contains(": chose ort"), "{stdout}");
    assert!(stdout.contains("tract p50 "), "{stdout}");
    let bad = Command::new(env!("CARGO_BIN_EXE_spine-edge")).args(["models", "verify", "--backend", "fastest"]).output().unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected tract, ort, tensorrt or auto"), "{}", String::from_utf8_lossy(&bad.stderr));
}
