//! Entry points for the fuzz targets (`fuzz/`) and for the test that replays
//! their committed corpora (`tests/fuzz_corpora.rs`): one function per parser
//! of untrusted bytes, each taking the bytes and exercising the real code
//! path. A panic, a hang or an unbounded allocation in any of them is a bug;
//! errors are the expected answer to bad bytes.
//!
//! File-based sources are fed through a file (the real open path, including
//! [`crate::file_read`]) in a per-process scratch folder under `/dev/shm`
//! when it exists (no disk writes), else the system temp folder.

use std::path::PathBuf;
use std::sync::OnceLock;

use crate::frame::Frame;
use crate::source::{self, Next, OpenOptions};

/// Frames read from one input at most.
const MAX_FRAMES: usize = 64;
/// The frame buffer: 1 MiB, as the pipeline's pool for a small board.
const FRAME_BYTES: usize = 1 << 20;

/// This thread's scratch folder (threads of one test binary must not share files).
fn scratch() -> PathBuf {
    static BASE: OnceLock<PathBuf> = OnceLock::new();
    let base = BASE.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
        base.join(format!("spine-edge-fuzz-{}", std::process::id()))
    });
    let id: String = format!("{:?}", std::thread::current().id()).chars().filter(char::is_ascii_digit).collect();
    let d = base.join(id);
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Removes this thread's scratch folder (tests call it when done).
pub fn clean_scratch() {
    let d = scratch();
    let _ = std::fs::remove_dir_all(&d);
    if let Some(base) = d.parent() {
        let _ = std::fs::remove_dir(base); // only once empty: other threads may still use theirs
    }
}

/// Writes `bytes` to a scratch file named `name`, opens `scheme:path` (+`query`) and reads it to its end.
fn drain_file(name: &str, scheme: &str, query: &str, bytes: &[u8]) -> usize {
    let p = scratch().join(name);
    if std::fs::write(&p, bytes).is_err() {
        return 0;
    }
    drain(&format!("{scheme}:{}{query}", p.display()))
}

/// Opens `uri` and reads up to [`MAX_FRAMES`] frames; returns the frames read.
pub fn drain(uri: &str) -> usize {
    let opts = OpenOptions { fps: Some(25.0), ..OpenOptions::default() };
    let Ok(mut src) = source::open(uri, &opts) else { return 0 };
    let mut f = Frame::with_capacity(FRAME_BYTES);
    let mut frames = 0;
    for _ in 0..MAX_FRAMES {
        match src.next_frame(&mut f) {
            Ok(Next::End) => break,
            Ok(Next::Frame) => frames += 1,
            Err(e) if e.is_fatal() => break,
            _ => {}
        }
    }
    frames
}

/// A DICOM file (any transfer syntax) to frames.
pub fn dicom_file(bytes: &[u8]) -> usize {
    drain_file("f.dcm", "dicom", "", bytes)
}

/// A Y4M stream to frames.
pub fn y4m(bytes: &[u8]) -> usize {
    drain_file("f.y4m", "y4m", "", bytes)
}

/// Raw gray frames; the first two bytes choose the frame size (1..=64 x 1..=64).
pub fn raw(bytes: &[u8]) -> usize {
    let (w, h) = match bytes {
        [a, b, ..] => (u32::from(*a % 64) + 1, u32::from(*b % 64) + 1),
        _ => return 0,
    };
    drain_file("f.raw", "raw", &format!("?{w}x{h}"), &bytes[2..])
}

/// One PNG in a folder (the PNG folder source), to frames.
pub fn png_frame(bytes: &[u8]) -> usize {
    let dir = scratch().join("png");
    let _ = std::fs::create_dir_all(&dir);
    if std::fs::write(dir.join("a.png"), bytes).is_err() {
        return 0;
    }
    drain(&format!("png:{}", dir.display()))
}

/// Board TOML text (parsed and validated as if read from /boards/fuzz.toml).
pub fn board_toml(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else { return false };
    crate::config::Board::parse(text, std::path::Path::new("/boards/fuzz.toml")).is_ok()
}

/// Model manifest bytes (parsed and validated; the model file is not read).
pub fn manifest(bytes: &[u8]) -> bool {
    crate::infer::Manifest::parse(std::path::Path::new("/models/fuzz.toml"), bytes).is_ok()
}

/// Every harness by the name of its fuzz target and corpus folder.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("dicom_file", |b| {
        dicom_file(b);
    }),
    ("y4m", |b| {
        y4m(b);
    }),
    ("raw", |b| {
        raw(b);
    }),
    ("png_frame", |b| {
        png_frame(b);
    }),
    ("board_toml", |b| {
        board_toml(b);
    }),
    ("manifest", |b| {
        manifest(b);
    }),
];
