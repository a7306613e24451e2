//! Bad input for the appliance side (capture device, framebuffer, V4L2
//! output, `[capture]` board keys): each exits non-zero with one clear line
//! naming the device or key and what was tried, and never panics. These run
//! on any Linux host (no devices needed). Against real drivers, in the VM
//! (tests/vm_hw.rs): busy capture device (b), GPIO line held by another
//! process (c), no usable capture format and unsupported framebuffer depth (g).

use std::path::{Path, PathBuf};

mod common;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn run(args: &[&str]) -> (i32, String, String) {
    // Through the emulator in a cross test run (tests/common).
    let out = common::spine_edge().args(args).output().expect("run spine-edge");
    let stderr = common::without_emulator_noise(&String::from_utf8_lossy(&out.stderr));
    assert!(!stderr.contains("panicked"), "must not panic: {stderr}");
    (out.status.code().unwrap_or(-1), stderr, String::from_utf8_lossy(&out.stdout).to_string())
}

/// The x86 board with `[capture]` appended, written into the repo's boards folder's
/// neighbour so the model path still resolves.
fn board_with(dir: &Path, extra: &str) -> PathBuf {
    let text = std::fs::read_to_string(repo("boards/x86-dev.toml")).unwrap().replace("../models/", &format!("{}/", repo("models").display()));
    // The board's own [capture] (the last section) gives way to the one under test.
    let text = match text.find("\n[capture]") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let p = dir.join("board.toml");
    std::fs::write(&p, format!("{text}\n{extra}\n")).unwrap();
    p
}

fn one_line(err: &str) {
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
}

#[test]
fn a_missing_capture_device_names_it() {
    let (code, err, _) = run(&["run", "--board", repo("boards/x86-dev.toml").to_str().unwrap(), "--source", "v4l:/dev/video-none-7", "--json-stdout"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/video-none-7") && err.contains("no such device"), "{err}");
    one_line(&err);
}

#[test]
fn an_unknown_card_name_says_what_was_searched() {
    let (code, err, _) = run(&["run", "--board", repo("boards/x86-dev.toml").to_str().unwrap(), "--source", "v4l:card=NoSuchGrabber", "--json-stdout"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("card=NoSuchGrabber"), "{err}");
    one_line(&err);
}

#[test]
fn a_missing_framebuffer_and_output_device_name_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let y4m = dir.path().join("x.y4m");
    std::fs::write(&y4m, [&b"YUV4MPEG2 W8 H8 F25:1 Cmono\nFRAME\n"[..], &[0u8; 64][..]].concat()).unwrap();
    let b = repo("boards/x86-dev.toml");
    let (code, err, _) = run(&["run", "--board", b.to_str().unwrap(), "--source", y4m.to_str().unwrap(), "--json-stdout", "--framebuffer", "/dev/fb-none-3"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/fb-none-3"), "{err}");
    one_line(&err);
    let (code, err, _) = run(&["run", "--board", b.to_str().unwrap(), "--source", y4m.to_str().unwrap(), "--json-stdout", "--v4l-out", "/dev/video-none-4"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/video-none-4") && err.contains("no such device"), "{err}");
    one_line(&err);
    // "board" when the board names no framebuffer: the key is named.
    let (code, err, _) = run(&["run", "--board", b.to_str().unwrap(), "--source", y4m.to_str().unwrap(), "--json-stdout", "--framebuffer"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("devices.framebuffer"), "{err}");
}

#[test]
fn a_missing_gpio_chip_names_the_chip_and_the_board_key() {
    let dir = tempfile::tempdir().unwrap();
    let b = board_with(dir.path(), "[gpio]\nchip = \"/dev/gpiochip-none-5\"\n[gpio.lines]\nguidance = { offset = 0 }\n");
    let (code, err, _) = run(&["run", "--board", b.to_str().unwrap(), "--source", "x.y4m", "--json-stdout"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("/dev/gpiochip-none-5") && err.contains("[gpio] chip"), "{err}");
    one_line(&err);
}

#[test]
fn capture_keys_are_validated_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key, what) in [
        ("[capture]\nformats = [\"MJPG\"]", "capture.formats", "'MJPG'"),
        ("[capture]\nformats = []", "capture.formats", "empty"),
        ("[capture]\nfps = 0", "capture.fps", "not in"),
        ("[capture]\nwidth_px = 0", "capture.width_px", "not in"),
        ("[capture]\nbuffers = 1", "capture.buffers", "not in 2..=32"),
        ("[capture]\nframerate = 30", "framerate", "unknown field"),
    ] {
        let b = board_with(dir.path(), extra);
        let (code, err, _) = run(&["run", "--board", b.to_str().unwrap(), "--source", "x.y4m", "--json-stdout"]);
        assert_eq!(code, 1, "{extra}: {err}");
        assert!(err.contains(key) && err.contains(what), "{extra}: {err}");
        one_line(&err);
    }
}

#[test]
fn devices_lists_without_failing_when_there_are_none() {
    let (code, err, out) = run(&["devices"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Video devices (") && out.contains("GPIO chips ("), "{out}");
    let (code, _, out) = run(&["devices", "--json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["video"].is_array() && v["gpio"].is_array(), "{out}");
}
