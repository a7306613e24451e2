//! Bad input at start: every case exits non-zero with one clear line naming
//! the file or key and the problem, and never panics.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    common::spine_edge()
}

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Runs the binary and returns (exit code, stderr).
fn run(args: &[&str]) -> (i32, String) {
    let out = bin().args(args).output().expect("run spine-edge");
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!stderr.contains("panicked"), "must not panic: {stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

fn board_text() -> String {
    std::fs::read_to_string(repo("boards/x86-dev.toml")).unwrap()
}

fn write_board(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("board.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn unknown_board_key_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = board_text().replace("queue_depth = 2", "queue_depth = 2\nqueue_dept = 3");
    let b = write_board(dir.path(), &text);
    let (code, err) = run(&["run", "--board", b.to_str().unwrap(), "--source", "whatever.y4m"]);
    assert_eq!(code, 1);
    assert!(err.contains("queue_dept"), "{err}");
    assert!(err.contains("board.toml"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn bad_board_value_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = board_text().replace("queue_depth = 2", "queue_depth = 0");
    let b = write_board(dir.path(), &text);
    let (code, err) = run(&["run", "--board", b.to_str().unwrap(), "--source", "x.y4m"]);
    assert_eq!(code, 1);
    assert!(err.contains("pipeline.queue_depth") && err.contains("not in 1..=16"), "{err}");
}

#[test]
fn region_outside_the_frame_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let text = board_text().replace("x_px = 140", "x_px = 1800");
    let b = write_board(dir.path(), &text);
    let (code, err) = run(&["run", "--board", b.to_str().unwrap(), "--source", "x.y4m"]);
    assert_eq!(code, 1);
    assert!(err.contains("image_region"), "{err}");
}

/// A copy of the models folder in a temp dir, and a board pointing at it.
fn board_with_models(dir: &Path) -> PathBuf {
    let models = dir.join("models");
    std::fs::create_dir_all(&models).unwrap();
    for e in std::fs::read_dir(repo("models")).unwrap().flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), models.join(e.file_name())).unwrap();
        }
    }
    let boards = dir.join("boards");
    std::fs::create_dir_all(&boards).unwrap();
    let p = boards.join("x86-dev.toml");
    std::fs::write(&p, board_text()).unwrap();
    p
}

#[test]
fn tampered_model_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let b = board_with_models(dir.path());
    let onnx = dir.path().join("models/level_fp32.onnx");
    let mut bytes = std::fs::read(&onnx).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x01; // one flipped bit in the weights
    std::fs::write(&onnx, bytes).unwrap();
    let (code, err) = run(&["run", "--board", b.to_str().unwrap(), "--source", repo("demo/sagittal_sweep.dcm").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("level_fp32.onnx") && err.contains("sha256 mismatch"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
fn missing_model_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let b = board_with_models(dir.path());
    std::fs::remove_file(dir.path().join("models/level_fp32.onnx")).unwrap();
    let demo = repo("demo/sagittal_sweep.dcm");
    let (code, err) = run(&["run", "--board", b.to_str().unwrap(), "--source", demo.to_str().unwrap(), "--no-overlay", "--no-json"]);
    assert_eq!(code, 1);
    assert!(err.contains("level_fp32.onnx") && err.contains("missing"), "{err}");
}

#[test]
fn models_verify_fails_on_a_tampered_model() {
    let dir = tempfile::tempdir().unwrap();
    board_with_models(dir.path());
    let models = dir.path().join("models");
    let out = bin().args(["models", "verify", "--dir", models.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let onnx = models.join("level_int8.onnx");
    let mut bytes = std::fs::read(&onnx).unwrap();
    bytes.truncate(bytes.len() - 10);
    std::fs::write(&onnx, bytes).unwrap();
    let out = bin().args(["models", "verify", "--dir", models.to_str().unwrap()]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("FAILED") && stdout.contains("level_int8"), "{stdout}");
}

#[test]
fn missing_source_file_names_the_file() {
    let (code, err) = run(&["run", "--source", "/nonexistent/sweep.y4m", "--no-overlay", "--out", std::env::temp_dir().join("se-missing").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent/sweep.y4m"), "{err}");
}

#[test]
fn unknown_source_scheme_is_explained() {
    let (code, err) = run(&["run", "--source", "/tmp/whatever.mp4", "--no-overlay", "--out", std::env::temp_dir().join("se-unknown").to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("whatever.mp4") && err.contains("y4m:"), "{err}");
}

/// The bundled board without its `[probe]` calibration (cephalad moved to `[level]`).
fn board_without_probe(dir: &Path) -> PathBuf {
    let text = board_text();
    let start = text.find("[probe]").expect("the board has a [probe] table");
    let end = start + text[start..].find("\n[").expect("a table follows [probe]") + 1;
    let text = format!("{}{}", &text[..start], &text[end..]).replace("[level]\n", "[level]\ncephalad = \"right\"\n");
    let text = text.replace("../models/", &format!("{}/", repo("models").display()));
    assert!(!text.contains("mm_per_px"), "{text}");
    write_board(dir, &text)
}

/// A 64x48 mono Y4M of noise at 20 frames/s: a source that carries no pixel spacing.
fn noise_y4m(dir: &Path, frames: usize) -> PathBuf {
    let p = dir.join("noise.y4m");
    let mut bytes = b"YUV4MPEG2 W64 H48 F20:1 Ip A1:1 Cmono\n".to_vec();
    let mut x: u32 = 12345;
    for _ in 0..frames {
        bytes.extend_from_slice(b"FRAME\n");
        for _ in 0..64 * 48 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            bytes.push((x >> 24) as u8);
        }
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn level_without_pixel_spacing_refuses_to_start_naming_the_probe_key() {
    let dir = tempfile::tempdir().unwrap();
    let b = board_without_probe(dir.path());
    let video = noise_y4m(dir.path(), 3);
    let (code, err) = run(&["run", "--board", b.to_str().unwrap(), "--source", video.to_str().unwrap(), "--task", "level", "--no-overlay", "--no-json"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("probe.mm_per_px_x") && err.contains("noise.y4m") && err.contains("millimetres"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn target_without_pixel_spacing_runs_in_pixel_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let b = board_without_probe(dir.path());
    let video = noise_y4m(dir.path(), 4);
    let out = bin()
        .args(["run", "--board", b.to_str().unwrap(), "--source", video.to_str().unwrap(), "--task", "target", "--no-overlay", "--json-stdout", "--fast"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("pixel-only mode"), "the mode is declared: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<serde_json::Value> =
        stdout.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).filter(|v| v.get("target").is_some()).collect();
    assert_eq!(frames.len(), 4, "{stdout}");
    for f in &frames {
        let t = &f["target"];
        assert_eq!(t["mm_unavailable"], "no_pixel_spacing", "{t}");
        assert_eq!(t["on_target"], false, "{t}");
        for p in [&t["target"], &t["measured"]] {
            if p.is_object() {
                assert!(p["depth_mm"].is_null() && p["lateral_mm"].is_null(), "no mm without a spacing: {p}");
            }
        }
    }
}

#[test]
fn level_without_a_frame_rate_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("frames.raw");
    std::fs::write(&raw, vec![0u8; 64 * 48 * 2]).unwrap();
    let src = format!("raw:{}?64x48", raw.display());
    let (code, err) = run(&["run", "--source", &src, "--task", "level", "--no-overlay", "--no-json"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("frames.raw") && err.contains("--fps"), "{err}");
}

#[test]
fn redacted_boards_keep_patient_folder_names_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let text = board_text().replace("../models/", &format!("{}/", repo("models").display())) + "\n[logging]\nredact_paths = true\n";
    let b = write_board(dir.path(), &text);
    let patient = dir.path().join("DOE^JOHN 1961");
    std::fs::create_dir_all(&patient).unwrap();
    // A damaged file: its error names the file.
    let bad = patient.join("IMG0001.dcm");
    std::fs::copy(repo("tests/fixtures/dicom/truncated.dcm"), &bad).unwrap();
    let (code, err) = run(&["run", "--board", b.to_str().unwrap(), "--source", bad.to_str().unwrap(), "--no-overlay", "--no-json", "--fps", "10"]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("DOE^JOHN") && err.contains("<source>"), "{err}");
    // The same board without redaction names the folder.
    let plain = write_board(dir.path(), &text.replace("redact_paths = true", "redact_paths = false"));
    let (_, err) = run(&["run", "--board", plain.to_str().unwrap(), "--source", bad.to_str().unwrap(), "--no-overlay", "--no-json", "--fps", "10"]);
    assert!(err.contains("DOE^JOHN"), "{err}");
}
