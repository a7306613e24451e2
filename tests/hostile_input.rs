//! Hostile input through the real binary, each with a bounded outcome: the
//! process ends (a watchdog kills it and fails the test after 60 s), its peak
//! RSS stays under 100 MB, it prints a clear error naming the file and no
//! flood of lines, and it never panics. The inputs are the ones the
//! hardening issue found: a deflated DICOM declaring 4 GB of Pixel Data, a
//! file declaring 4,294,967,295 frames (rows beyond the board, or a few
//! bytes of data), float and 32-bit pixel data, a JPEG frame whose header
//! disagrees with Columns = 1, a file of 50 undecodable JPEG frames, devices
//! and FIFOs where files are expected. Measured time and RSS are printed
//! (`cargo test --test hostile_input -- --nocapture`), not asserted.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const MAX_RSS_KB: i64 = 100 * 1024;
const MAX_STDERR_LINES: usize = 20;

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

struct Outcome {
    code: i32,
    stderr: String,
    rss_kb: i64,
    elapsed: Duration,
}

/// Runs the binary with stdout/stderr to files, waits with `wait4` to get its own peak RSS.
fn run_bounded(name: &str, args: &[&str]) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let err_path = dir.path().join("stderr");
    let mut cmd = common::spine_edge();
    cmd.args(args)
        .stdout(std::fs::File::create(dir.path().join("stdout")).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let t0 = Instant::now();
    let child = cmd.spawn().expect("spawn spine-edge");
    let pid = child.id() as libc::pid_t;
    let watchdog = std::thread::spawn(move || {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
            // Signal 0: does the process still exist (not yet reaped)?
            if unsafe { libc::kill(pid, 0) } != 0 {
                return false;
            }
        }
        unsafe { libc::kill(pid, libc::SIGKILL) };
        true
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    let elapsed = t0.elapsed();
    let killed = watchdog.join().unwrap();
    std::mem::forget(child); // reaped by wait4
    let stderr = common::without_emulator_noise(&std::fs::read_to_string(&err_path).unwrap());
    assert!(!killed, "{name}: still running after 60 s: {stderr}");
    let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
    let o = Outcome { code, stderr, rss_kb: usage.ru_maxrss, elapsed };
    eprintln!("{name}: exit {}, {:.2} s, peak RSS {:.1} MB, {} stderr lines", o.code, o.elapsed.as_secs_f64(), o.rss_kb as f64 / 1024.0, o.stderr.lines().count());
    assert!(!o.stderr.contains("panicked"), "{name}: must not panic: {}", o.stderr);
    assert!(o.rss_kb < MAX_RSS_KB, "{name}: peak RSS {} kB", o.rss_kb);
    assert!(o.stderr.lines().count() <= MAX_STDERR_LINES, "{name}: stderr flood: {}", o.stderr);
    o
}

fn run_file(name: &str, file: &Path) -> Outcome {
    run_bounded(name, &["run", "--board", repo("boards/x86-dev.toml").to_str().unwrap(), "--source", file.to_str().unwrap(), "--task", "level", "--no-overlay", "--no-json", "--fps", "10"])
}

// ---- a minimal DICOM writer (explicit VR little endian elements) ----

fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr);
    if matches!(vr, b"OB" | b"OW" | b"OF" | b"SQ" | b"UN") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(value);
}

fn even(s: &str, pad: u8) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

fn file_meta(transfer_syntax: &str) -> Vec<u8> {
    let mut meta = Vec::new();
    element(&mut meta, 0x0002, 0x0001, b"OB", &[0, 1]);
    element(&mut meta, 0x0002, 0x0002, b"UI", &even("1.2.840.10008.5.1.4.1.1.3.1", 0));
    element(&mut meta, 0x0002, 0x0003, b"UI", &even("1.2.826.0.1.3680043.9.7777.1", 0));
    element(&mut meta, 0x0002, 0x0010, b"UI", &even(transfer_syntax, 0));
    let mut v = vec![0u8; 128];
    v.extend_from_slice(b"DICM");
    element(&mut v, 0x0002, 0x0000, b"UL", &(meta.len() as u32).to_le_bytes());
    v.extend_from_slice(&meta);
    v
}

/// A data set for a gray image: `frames` (as text), `rows`, `cols`, `bits`, then `pixel_data` (already encoded).
fn image_data_set(frames: &str, rows: u16, cols: u16, bits: u16, pixel_tag: (u16, u16), pixel_data: &[u8]) -> Vec<u8> {
    let mut d = Vec::new();
    element(&mut d, 0x0008, 0x0016, b"UI", &even("1.2.840.10008.5.1.4.1.1.3.1", 0));
    element(&mut d, 0x0008, 0x0018, b"UI", &even("1.2.826.0.1.3680043.9.7777.1", 0));
    element(&mut d, 0x0018, 0x1063, b"DS", &even("100", b' '));
    element(&mut d, 0x0028, 0x0002, b"US", &1u16.to_le_bytes());
    element(&mut d, 0x0028, 0x0004, b"CS", &even("MONOCHROME2", b' '));
    element(&mut d, 0x0028, 0x0008, b"IS", &even(frames, b' '));
    element(&mut d, 0x0028, 0x0010, b"US", &rows.to_le_bytes());
    element(&mut d, 0x0028, 0x0011, b"US", &cols.to_le_bytes());
    element(&mut d, 0x0028, 0x0030, b"DS", &even("0.1\\0.1", b' '));
    element(&mut d, 0x0028, 0x0100, b"US", &bits.to_le_bytes());
    element(&mut d, 0x0028, 0x0101, b"US", &bits.to_le_bytes());
    element(&mut d, 0x0028, 0x0102, b"US", &(bits - 1).to_le_bytes());
    element(&mut d, 0x0028, 0x0103, b"US", &0u16.to_le_bytes());
    let vr = if pixel_tag.1 == 0x0008 { b"OF" } else { b"OB" };
    element(&mut d, pixel_tag.0, pixel_tag.1, vr, pixel_data);
    d
}

const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn deflated_dicom_declaring_4_gb_of_pixel_data_is_refused_at_once() {
    use std::io::Write as _;
    let dir = tempfile::tempdir().unwrap();
    let mut body = image_data_set("1", 48, 64, 8, (0x7FE0, 0x0010), &[0x55; 3072]);
    let at = body.len() - 3072 - 4;
    body[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(&body).unwrap();
    let mut f = file_meta("1.2.840.10008.1.2.1.99");
    f.extend_from_slice(&z.finish().unwrap());
    assert!(f.len() < 4096, "a small file: {} bytes", f.len());
    let p = write(dir.path(), "deflate_bomb.dcm", &f);
    let o = run_file("deflated 4 GB Pixel Data", &p);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("deflate_bomb.dcm") && o.stderr.contains("4294967280") && o.stderr.contains("inside the deflated data set"), "{}", o.stderr);
    assert_eq!(o.stderr.trim().lines().count(), 1, "{}", o.stderr);
}

#[test]
fn four_billion_frames_with_rows_beyond_the_board_end_after_one_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = file_meta(EXPLICIT_LE);
    f.extend_from_slice(&image_data_set("4294967295", 4000, 64, 8, (0x7FE0, 0x0010), &[0x55; 4000 * 64]));
    let p = write(dir.path(), "many_frames_tall.dcm", &f);
    let o = run_file("4294967295 frames, rows beyond the board", &p);
    assert!(o.stderr.contains("many_frames_tall.dcm"), "{}", o.stderr);
    assert!(o.stderr.contains("64x4000 px does not fit"), "names the size: {}", o.stderr);
}

#[test]
fn four_billion_frames_over_a_few_bytes_read_what_is_there() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = file_meta(EXPLICIT_LE);
    f.extend_from_slice(&image_data_set("4294967295", 48, 64, 8, (0x7FE0, 0x0010), &[0x55; 64 * 48 * 3]));
    let p = write(dir.path(), "many_frames.dcm", &f);
    let o = run_file("4294967295 frames over 3 frames of data", &p);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("NumberOfFrames 4294967295 but Pixel Data holds 3 whole frames"), "{}", o.stderr);
}

#[test]
fn float_and_32_bit_pixel_data_are_refused_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = file_meta(EXPLICIT_LE);
    f.extend_from_slice(&image_data_set("4294967295", 48, 64, 32, (0x7FE0, 0x0008), &[0; 64 * 48 * 4]));
    let p = write(dir.path(), "float.dcm", &f);
    let o = run_file("Float Pixel Data, 4294967295 frames", &p);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("float.dcm") && o.stderr.contains("no Pixel Data"), "{}", o.stderr);
    let mut g = file_meta(EXPLICIT_LE);
    g.extend_from_slice(&image_data_set("4294967295", 48, 64, 32, (0x7FE0, 0x0010), &[0; 64 * 48 * 4]));
    let p = write(dir.path(), "bits32.dcm", &g);
    let o = run_file("32-bit Pixel Data, 4294967295 frames", &p);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("bits32.dcm") && o.stderr.contains("BitsAllocated 32"), "{}", o.stderr);
}

/// The bundled 3-frame JPEG baseline fixture with its Columns (US) set to `cols`.
fn jpeg_with_columns(cols: u16) -> Vec<u8> {
    let mut f = std::fs::read(repo("tests/fixtures/dicom/jpeg_corrupt_frame1.dcm")).unwrap();
    let tag = [0x28, 0x00, 0x11, 0x00, b'U', b'S', 2, 0];
    let at = f.windows(8).position(|w| w == tag).expect("Columns in the fixture") + 8;
    f[at..at + 2].copy_from_slice(&cols.to_le_bytes());
    f
}

#[test]
fn a_jpeg_frame_that_disagrees_with_columns_1_is_refused_before_the_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "jpeg_cols1.dcm", &jpeg_with_columns(1));
    let o = run_file("JPEG baseline, Columns = 1", &p);
    assert!(o.stderr.contains("jpeg_cols1.dcm") && o.stderr.contains("the DICOM header says 1x"), "{}", o.stderr);
}

#[test]
fn fifty_undecodable_jpeg_frames_cost_a_bounded_number_of_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = file_meta("1.2.840.10008.1.2.4.50");
    let mut d = image_data_set("50", 48, 64, 8, (0x0000, 0x0000), &[]);
    d.truncate(d.len() - 12); // drop the placeholder pixel element
    d.extend_from_slice(&[0xE0, 0x7F, 0x10, 0x00, b'O', b'B', 0, 0, 0xFF, 0xFF, 0xFF, 0xFF]);
    d.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0]); // empty offset table
    for k in 0..50u8 {
        // A JPEG header that agrees with the DICOM one, then garbage.
        let mut frag = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x0B, 8, 0x00, 48, 0x00, 64, 1, 1, 0x11, 0];
        frag.extend(std::iter::repeat_n(k, 33));
        d.extend_from_slice(&[0xFE, 0xFF, 0x00, 0xE0]);
        d.extend_from_slice(&(frag.len() as u32).to_le_bytes());
        d.extend_from_slice(&frag);
    }
    d.extend_from_slice(&[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]);
    f.extend_from_slice(&d);
    let p = write(dir.path(), "jpeg_garbage50.dcm", &f);
    let o = run_file("50 undecodable JPEG frames", &p);
    assert!(o.stderr.contains("jpeg_garbage50.dcm"), "{}", o.stderr);
    assert!(o.stderr.contains("skipping the file's remaining 42 frames"), "{}", o.stderr);
}

#[test]
fn devices_and_fifos_as_dicom_files_or_boards_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = run_file("/dev/zero as a DICOM file", Path::new("dicom:/dev/zero"));
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("/dev/zero") && o.stderr.contains("not a regular file"), "{}", o.stderr);
    let fifo = dir.path().join("fifo.dcm");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let o = run_file("a FIFO as a DICOM file", &fifo);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("fifo.dcm") && o.stderr.contains("FIFO"), "{}", o.stderr);
    let o = run_bounded("/dev/zero as the board", &["run", "--board", "/dev/zero", "--source", repo("demo/sagittal_sweep.dcm").to_str().unwrap()]);
    assert_eq!(o.code, 1, "{}", o.stderr);
    assert!(o.stderr.contains("/dev/zero: board file is not a regular file"), "{}", o.stderr);
}
