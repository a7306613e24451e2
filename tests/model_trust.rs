//! Models are loaded from the bytes that were verified: a symlink swapped
//! during loading never gets a substitute model run; manifests' paths stay in
//! their folder; devices are refused as manifests or models; signed manifests
//! (unsigned, wrong key, tampered manifest, tampered model) refuse to start
//! with one line.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use spine_edge::infer::{Manifest, ManifestError, ManifestPolicy};

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// (exit code, stderr) of a run; never a panic.
fn run(args: &[&str]) -> (i32, String) {
    let out = common::spine_edge().args(args).output().expect("run spine-edge");
    let stderr = common::without_emulator_noise(&String::from_utf8_lossy(&out.stderr));
    assert!(!stderr.contains("panicked"), "must not panic: {stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

/// The level model's manifest and ONNX copied into `dir`, the ONNX under `onnx_name`.
fn level_model_in(dir: &Path, onnx_name: &str) -> PathBuf {
    std::fs::copy(repo("models/level_fp32.onnx"), dir.join("level_fp32.onnx")).unwrap();
    std::fs::copy(repo("models/level.md"), dir.join("level.md")).unwrap();
    let text = std::fs::read_to_string(repo("models/level_fp32.toml")).unwrap();
    let text = text.replace("file = \"level_fp32.onnx\"", &format!("file = \"{onnx_name}\""));
    let m = dir.join("level.toml");
    std::fs::write(&m, text).unwrap();
    m
}

fn replace_symlink(target: &Path, link: &Path, tmp: &Path) {
    let _ = std::fs::remove_file(tmp);
    std::os::unix::fs::symlink(target, tmp).unwrap();
    std::fs::rename(tmp, link).unwrap(); // atomic: the link always exists
}

#[test]
fn a_symlink_swapped_during_loading_never_gets_a_substitute_model_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let m = level_model_in(dir.path(), "model.onnx");
    let good = dir.path().join("level_fp32.onnx");
    let evil = dir.path().join("evil.onnx");
    let good_bytes = std::fs::read(&good).unwrap();
    let mut evil_bytes = good_bytes.clone();
    let n = evil_bytes.len();
    evil_bytes[n / 2] ^= 0x40; // a substitute that parses like the real one
    std::fs::write(&evil, &evil_bytes).unwrap();
    let link = dir.path().join("model.onnx");
    replace_symlink(&good, &link, &dir.path().join("tmp.link"));

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, dir) = (stop.clone(), dir.path().to_path_buf());
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let target = if swaps % 2 == 0 { dir.join("evil.onnx") } else { dir.join("level_fp32.onnx") };
                replace_symlink(&target, &dir.join("model.onnx"), &dir.join("tmp.link"));
                swaps += 1;
            }
            swaps
        })
    };
    let (mut loaded, mut refused, mut substitutes) = (0, 0, 0);
    for _ in 0..1000 {
        match Manifest::load(&m) {
            Ok(man) => {
                loaded += 1;
                if man.model_bytes[..] != good_bytes[..] {
                    substitutes += 1;
                }
            }
            Err(ManifestError::Digest { .. }) => refused += 1,
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("1000 loads during {swaps} swaps: {loaded} loaded the verified model, {refused} refused a substitute, {substitutes} substitutes");
    assert_eq!(substitutes, 0);
    assert_eq!(loaded + refused, 1000);
    assert!(swaps > 100, "the swapper ran: {swaps} swaps");
    assert!(refused > 0, "the race was really exercised: some loads saw the substitute and refused it");
}

#[test]
fn manifest_paths_outside_the_folder_are_refused_without_reading_them() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["../../etc/shadow", "/etc/passwd", "sub/../../x.onnx"] {
        let m = level_model_in(dir.path(), name);
        let e = Manifest::load(&m).unwrap_err();
        assert!(matches!(e, ManifestError::Outside { key: "model.file", .. }), "{name}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(name) && msg.contains("allow_paths_outside_manifest_folder") && !msg.contains("sha256"), "{msg}");
    }
    // A board may allow an absolute path on purpose.
    let m = level_model_in(dir.path(), &dir.path().join("level_fp32.onnx").display().to_string());
    let policy = ManifestPolicy { allow_paths_outside_manifest_folder: true, ..Default::default() };
    assert!(Manifest::load_with(&m, &policy).is_ok());
}

#[test]
fn devices_as_manifest_or_model_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let e = Manifest::load(Path::new("/dev/zero")).unwrap_err();
    assert!(e.to_string().contains("/dev/zero: model manifest is not a regular file (it is a character device)"), "{e}");
    let m = level_model_in(dir.path(), "/dev/zero");
    let policy = ManifestPolicy { allow_paths_outside_manifest_folder: true, ..Default::default() };
    let e = Manifest::load_with(&m, &policy).unwrap_err();
    assert!(e.to_string().contains("/dev/zero: model file is not a regular file"), "{e}");
    // And through the binary: a board naming /dev/zero as the level manifest.
    let board = std::fs::read_to_string(repo("boards/x86-dev.toml")).unwrap().replace("../models/level_fp32.toml", "/dev/zero");
    let b = dir.path().join("board.toml");
    std::fs::write(&b, board).unwrap();
    let (code, err) = run(&["run", "--board", b.to_str().unwrap(), "--source", repo("demo/sagittal_sweep.dcm").to_str().unwrap(), "--task", "level", "--no-overlay", "--no-json"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/zero") && err.contains("not a regular file"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// A models folder and a board pinning the key made by `models keygen`; returns (board, manifest, public key).
fn signed_setup(dir: &Path) -> (PathBuf, PathBuf, String) {
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    let m = level_model_in(&models, "level_fp32.onnx");
    let secret = dir.join("secret.key");
    let out = common::spine_edge().args(["models", "keygen", "--secret", secret.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(public.len(), 64, "{public}");
    let out = common::spine_edge().args(["models", "sign", "--secret", secret.to_str().unwrap(), m.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(models.join("level.toml.sig").is_file());
    let board = std::fs::read_to_string(repo("boards/x86-dev.toml"))
        .unwrap()
        .replace("../models/level_fp32.toml", m.to_str().unwrap())
        .replace("[pipeline]", &format!("[model_signing]\ntrusted_keys = [\"{public}\"]\n\n[pipeline]"));
    let b = dir.join("board.toml");
    std::fs::write(&b, board).unwrap();
    (b, m, public)
}

fn verify_with_board(b: &Path, models: &Path) -> (bool, String) {
    let out = common::spine_edge().args(["models", "verify", "--dir", models.to_str().unwrap(), "--board", b.to_str().unwrap()]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).to_string())
}

fn start_level(b: &Path) -> (i32, String) {
    let demo = repo("demo/sagittal_sweep.dcm");
    run(&["run", "--board", b.to_str().unwrap(), "--source", demo.to_str().unwrap(), "--task", "level", "--no-overlay", "--no-json", "--fast"])
}

#[test]
fn signed_manifests_start_and_unsigned_wrong_key_or_tampered_ones_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let (b, m, _public) = signed_setup(dir.path());
    let models = m.parent().unwrap().to_path_buf();
    let (ok, out) = verify_with_board(&b, &models);
    assert!(ok && out.contains("signed by"), "{out}");
    let (code, err) = start_level(&b);
    assert_eq!(code, 0, "a signed model starts: {err}");

    // Tampered manifest (a changed setting, signature kept).
    let sig = models.join("level.toml.sig");
    let original = std::fs::read_to_string(&m).unwrap();
    std::fs::write(&m, original.replacen("level", "levex", 1)).unwrap();
    let (code, err) = start_level(&b);
    assert_eq!(code, 1);
    assert!(err.contains("level.toml") && err.contains("signature does not match"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    std::fs::write(&m, &original).unwrap();

    // Tampered model with its digest updated in the manifest: the signature no longer matches.
    let onnx = models.join("level_fp32.onnx");
    let good = std::fs::read(&onnx).unwrap();
    let mut bad = good.clone();
    let n = bad.len();
    bad[n / 2] ^= 1;
    std::fs::write(&onnx, &bad).unwrap();
    let old_sha = spine_edge::infer::manifest::sha256_hex(&good);
    let new_sha = spine_edge::infer::manifest::sha256_hex(&bad);
    std::fs::write(&m, original.replace(&old_sha, &new_sha)).unwrap();
    let (code, err) = start_level(&b);
    assert_eq!(code, 1);
    assert!(err.contains("signature does not match"), "{err}");
    // Tampered model alone: the digest catches it.
    std::fs::write(&m, &original).unwrap();
    let (code, err) = start_level(&b);
    assert_eq!(code, 1);
    assert!(err.contains("sha256 mismatch"), "{err}");
    std::fs::write(&onnx, &good).unwrap();

    // Signed by a key the board does not pin.
    let other = dir.path().join("other.key");
    assert!(common::spine_edge().args(["models", "keygen", "--secret", other.to_str().unwrap()]).output().unwrap().status.success());
    assert!(common::spine_edge().args(["models", "sign", "--secret", other.to_str().unwrap(), m.to_str().unwrap()]).output().unwrap().status.success());
    let (code, err) = start_level(&b);
    assert_eq!(code, 1);
    assert!(err.contains("which the board does not trust"), "{err}");

    // Unsigned.
    std::fs::remove_file(&sig).unwrap();
    let (code, err) = start_level(&b);
    assert_eq!(code, 1);
    assert!(err.contains("unsigned") && err.contains("level.toml.sig"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (ok, out) = verify_with_board(&b, &models);
    assert!(!ok && out.contains("unsigned"), "{out}");
}

#[test]
fn keygen_never_overwrites_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("k");
    std::fs::write(&secret, "keep me\n").unwrap();
    let out = common::spine_edge().args(["models", "keygen", "--secret", secret.to_str().unwrap()]).output().unwrap();
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "keep me\n");
}
