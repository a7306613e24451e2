//! Frame sources against the fixtures in tests/fixtures (made by
//! tests/fixtures/make_fixtures.py; the pixel formulas here repeat its own).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use spine_edge::frame::{Frame, PixelSpacingMm, RegionPx};
use spine_edge::source::{self, Next, OpenOptions, Source, SourceError};

// Counts heap allocations made by the current thread (tests run in parallel).
struct CountingAlloc;
thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}
fn count(size: usize) {
    let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
}
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}
#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn allocs() -> u64 {
    ALLOCS.with(|c| c.get())
}

const FIX: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn fix(rel: &str) -> String {
    format!("{FIX}/{rel}")
}

/// The fixtures' 8-bit gradient: (4x + 2y + 10k) mod 256.
fn grad8(w: u32, h: u32, k: u32) -> Vec<u8> {
    (0..h).flat_map(|y| (0..w).map(move |x| ((4 * x + 2 * y + 10 * k) % 256) as u8)).collect()
}

fn frame() -> Frame {
    Frame::with_capacity(1024 * 1024)
}

fn open(uri: &str) -> Box<dyn Source> {
    source::open(uri, &OpenOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn open_err(uri: &str, opts: &OpenOptions) -> SourceError {
    match source::open(uri, opts) {
        Ok(_) => panic!("{uri} opened"),
        Err(e) => e,
    }
}

fn expect_frame(src: &mut dyn Source, f: &mut Frame) {
    match src.next_frame(f) {
        Ok(Next::Frame) => {}
        other => panic!("expected a frame, got {other:?}"),
    }
}

fn expect_end(src: &mut dyn Source, f: &mut Frame) {
    assert!(matches!(src.next_frame(f), Ok(Next::End)));
    assert!(matches!(src.next_frame(f), Ok(Next::End)), "End must stay End");
}

fn max_diff(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0)
}

fn assert_spacing(got: Option<PixelSpacingMm>, x_mm: f32, y_mm: f32) {
    let s = got.expect("spacing");
    assert!((s.x_mm - x_mm).abs() < 1e-4 && (s.y_mm - y_mm).abs() < 1e-4, "{s:?} != ({x_mm}, {y_mm})");
}

/// The error names the file and, for per-frame errors, is not fatal.
fn assert_names(e: &SourceError, file: &str) {
    let msg = e.to_string();
    assert!(msg.contains(file), "'{msg}' does not name {file}");
    assert!(!msg.contains('\n'), "'{msg}' is not one line");
}

// ---------------------------------------------------------------- Y4M

#[test]
fn y4m_mono_gives_every_frame_with_rate_and_timestamps() {
    let mut src = open(&fix("y4m/mono_25fps.y4m"));
    let info = src.info().clone();
    assert_eq!((info.max_width_px, info.max_height_px, info.fps, info.frame_count), (32, 24, Some(25.0), Some(4)));
    assert!(info.name.ends_with("mono_25fps.y4m"));
    let mut f = frame();
    for k in 0..4 {
        expect_frame(src.as_mut(), &mut f);
        assert_eq!(f.pixels(), &grad8(32, 24, k)[..], "frame {k}");
        assert_eq!((f.meta.sequence, f.meta.timestamp_us), (k as u64, k as u64 * 40_000));
        assert_eq!((f.meta.spacing, f.meta.image_region), (None, None));
    }
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn y4m_420_takes_luma_only_and_ntsc_rate() {
    let opts = OpenOptions { calibration: Some(PixelSpacingMm { x_mm: 0.3, y_mm: 0.2 }), ..Default::default() };
    let mut src = source::open(&format!("y4m:{}", fix("y4m/yuv420_2997fps.y4m")), &opts).unwrap();
    assert!((src.info().fps.unwrap() - 29.97).abs() < 0.001);
    assert_eq!(src.info().frame_count, Some(4));
    let mut f = frame();
    for k in 0..4u32 {
        expect_frame(src.as_mut(), &mut f);
        assert_eq!(f.pixels(), &grad8(32, 24, k)[..], "chroma (90, 200) must not leak into frame {k}");
        assert_eq!(f.meta.timestamp_us, (k as f64 * 1e6 * 1001.0 / 30000.0).round() as u64);
        assert_spacing(f.meta.spacing, 0.3, 0.2);
    }
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn y4m_truncated_last_frame_is_a_non_fatal_error_then_end() {
    let path = fix("y4m/truncated.y4m");
    let mut src = open(&path);
    assert_eq!(src.info().frame_count, None, "size is not whole frames");
    let mut f = frame();
    for k in 0..3 {
        expect_frame(src.as_mut(), &mut f);
        assert_eq!(f.pixels(), &grad8(32, 24, k)[..]);
    }
    let e = src.next_frame(&mut f).unwrap_err();
    assert!(matches!(e, SourceError::Truncated { frame: 3, got: 952, expected: 1152, .. }), "{e:?}");
    assert!(!e.is_fatal());
    assert_names(&e, "truncated.y4m");
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn y4m_bad_headers_fail_at_open_naming_the_file_and_problem() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 5] = [
        ("sixteen.y4m", b"YUV4MPEG2 W32 H24 F25:1 Cmono16\nFRAME\n", "Cmono16"),
        ("p10.y4m", b"YUV4MPEG2 W32 H24 F25:1 C420p10\n", "C420p10"),
        ("magic.y4m", b"RIFF1234 W32 H24\n", "YUV4MPEG2"),
        ("huge.y4m", b"YUV4MPEG2 W99999 H24 F25:1\n", "W99999"),
        ("empty.y4m", b"", "empty"),
    ];
    for (name, bytes, why) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = open_err(p.to_str().unwrap(), &OpenOptions::default());
        assert!(matches!(e, SourceError::Format { .. }), "{name}: {e:?}");
        assert!(e.is_fatal());
        assert_names(&e, name);
        assert!(e.to_string().contains(why), "{name}: '{e}' should say {why}");
    }
    let e = open_err(&format!("y4m:{}/nope.y4m", dir.path().display()), &OpenOptions::default());
    assert!(matches!(e, SourceError::Io { .. }) && e.to_string().contains("nope.y4m"), "{e}");
}

#[test]
fn y4m_frame_without_frame_marker_stops_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("desync.y4m");
    let mut bytes = b"YUV4MPEG2 W2 H2 F10:1 Cmono\nFRAME\n\x01\x02\x03\x04".to_vec();
    bytes.extend_from_slice(b"GARBAGE\n\x01\x02\x03\x04");
    std::fs::write(&p, bytes).unwrap();
    let mut src = open(p.to_str().unwrap());
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    assert_eq!(f.pixels(), &[1, 2, 3, 4]);
    let e = src.next_frame(&mut f).unwrap_err();
    assert!(matches!(e, SourceError::BadFrame { frame: 1, .. }) && !e.is_fatal(), "{e:?}");
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn y4m_frame_params_are_skipped_and_steady_state_allocates_nothing() {
    // 4:2:2 with parameters on the FRAME lines.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("p.y4m");
    let (w, h) = (6u32, 4u32);
    let mut bytes = b"YUV4MPEG2 W6 H4 F50:1 C422 XCOLORRANGE=FULL\n".to_vec();
    for k in 0..20u32 {
        bytes.extend_from_slice(if k % 2 == 0 { b"FRAME Ixyz\n" } else { b"FRAME\n" });
        bytes.extend((0..w * h).map(|i| (i + k) as u8));
        bytes.extend(std::iter::repeat_n(0xEEu8, (2 * 3 * 4) as usize));
    }
    std::fs::write(&p, bytes).unwrap();
    let mut src = open(p.to_str().unwrap());
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let before = allocs();
    for k in 1..20u32 {
        expect_frame(src.as_mut(), &mut f);
        assert_eq!(f.pixels()[0], k as u8);
        assert_eq!(f.pixels()[23], 23 + k as u8);
        assert_eq!(f.meta.timestamp_us, k as u64 * 20_000);
    }
    assert!(matches!(src.next_frame(&mut f), Ok(Next::End)));
    assert_eq!(allocs() - before, 0, "Y4M allocated per frame");
}

#[test]
fn y4m_frame_larger_than_the_pool_buffer_is_skipped_in_step() {
    let mut src = open(&fix("y4m/mono_25fps.y4m"));
    let mut small = Frame::with_capacity(100);
    let e = src.next_frame(&mut small).unwrap_err();
    assert!(matches!(e, SourceError::FrameSize { frame: 0, .. }) && !e.is_fatal(), "{e:?}");
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    assert_eq!((f.meta.sequence, f.pixels()), (1, &grad8(32, 24, 1)[..]));
}

// ---------------------------------------------------------------- raw

#[test]
fn raw_reads_frames_stamps_from_opts_and_truncates_a_partial_last_frame() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("clip.gray");
    let mut bytes = grad8(32, 24, 0);
    bytes.extend(grad8(32, 24, 1));
    bytes.extend(&grad8(32, 24, 2)[..100]);
    std::fs::write(&p, &bytes).unwrap();
    let cal = PixelSpacingMm { x_mm: 0.1, y_mm: 0.15 };
    let opts = OpenOptions { fps: Some(10.0), calibration: Some(cal), ..Default::default() };
    let mut src = source::open(&format!("raw:{}?32x24", p.display()), &opts).unwrap();
    assert_eq!((src.info().fps, src.info().frame_count), (Some(10.0), Some(2)));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let before = allocs();
    expect_frame(src.as_mut(), &mut f);
    assert_eq!(allocs() - before, 0, "raw allocated per frame");
    assert_eq!(f.pixels(), &grad8(32, 24, 1)[..]);
    assert_eq!((f.meta.sequence, f.meta.timestamp_us, f.meta.spacing), (1, 100_000, Some(cal)));
    let e = src.next_frame(&mut f).unwrap_err();
    assert!(matches!(e, SourceError::Truncated { frame: 2, got: 100, expected: 768, .. }), "{e:?}");
    assert!(!e.is_fatal());
    assert_names(&e, "clip.gray");
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn raw_with_the_wrong_size_is_caught() {
    // A 32x24 clip of 3 frames read as 40x40: 1 whole frame, then a truncated one.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("wrong.raw");
    std::fs::write(&p, vec![7u8; 32 * 24 * 3]).unwrap();
    let opts = OpenOptions { raw_size_px: Some((40, 40)), ..Default::default() };
    let mut src = source::open(p.to_str().unwrap(), &opts).unwrap();
    assert_eq!(src.info().frame_count, Some(1));
    assert_eq!(src.info().fps, None);
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    assert_eq!(f.meta.timestamp_us, 0, "no rate known: time 0");
    assert!(matches!(src.next_frame(&mut f), Err(SourceError::Truncated { frame: 1, got: 704, expected: 1600, .. })));
    expect_end(src.as_mut(), &mut f);
    // Smaller than one frame: an open error that suggests the size is wrong.
    let e = open_err(&format!("raw:{}?640x480", p.display()), &OpenOptions::default());
    assert!(matches!(e, SourceError::Format { .. }) && e.to_string().contains("frame size"), "{e}");
    assert_names(&e, "wrong.raw");
    // No size at all.
    assert!(matches!(open_err(&format!("raw:{}", p.display()), &OpenOptions::default()), SourceError::BadUri { .. }));
}

// ---------------------------------------------------------------- PNG folder

#[test]
fn png_folder_converts_every_colour_type_and_survives_bad_files() {
    let opts = OpenOptions { fps: Some(20.0), ..Default::default() };
    let mut src = source::open(&format!("png:{}", fix("png_dir")), &opts).unwrap();
    assert_eq!((src.info().max_width_px, src.info().max_height_px), (32, 24));
    assert_eq!((src.info().frame_count, src.info().fps), (Some(8), Some(20.0)));
    let grad = grad8(32, 24, 0);
    let red_blue: Vec<u8> = (0..24).flat_map(|_| (0..32).map(|x| if x < 16 { 76 } else { 29 })).collect();
    let mut f = frame();
    for (k, expect, what) in [(0, &grad, "gray8"), (1, &grad, "gray16 high byte"), (2, &red_blue, "RGB luma"), (3, &red_blue, "palette"), (4, &red_blue, "RGBA")] {
        expect_frame(src.as_mut(), &mut f);
        assert_eq!(f.pixels(), &expect[..], "{what}");
        assert_eq!((f.meta.sequence, f.meta.timestamp_us), (k, k * 50_000));
    }
    let e = src.next_frame(&mut f).unwrap_err();
    assert!(matches!(e, SourceError::BadFrame { frame: 5, .. }) && !e.is_fatal(), "{e:?}");
    assert_names(&e, "f05_corrupt.png");
    let e = src.next_frame(&mut f).unwrap_err();
    assert!(
        matches!(e, SourceError::WrongSize { frame: 6, width_px: 20, height_px: 10, expected_width_px: 32, expected_height_px: 24, .. }),
        "{e:?}"
    );
    assert!(!e.is_fatal());
    assert_names(&e, "f06_small.png");
    expect_frame(src.as_mut(), &mut f);
    assert_eq!((f.meta.sequence, f.pixels()), (7, &grad[..]), "gray+alpha");
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn png_empty_folder_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("readme.txt"), "no frames").unwrap();
    let e = open_err(&format!("png:{}", dir.path().display()), &OpenOptions::default());
    assert!(matches!(e, SourceError::Format { .. }) && e.to_string().contains("no .png files"), "{e}");
    assert_names(&e, &dir.path().display().to_string());
}

// ---------------------------------------------------------------- DICOM

#[test]
fn dicom_us_multiframe_through_open_gives_every_frame_spacing_region_and_rate() {
    let mut src = open(&format!("dicom:{}", fix("dicom/us_multiframe_regions.dcm")));
    let info = src.info().clone();
    assert_eq!((info.max_width_px, info.max_height_px, info.frame_count), (64, 48, Some(5)));
    assert!((info.fps.unwrap() - 25.0).abs() < 1e-9, "FrameTime 40 ms");
    let mut f = frame();
    for k in 0..5u32 {
        expect_frame(src.as_mut(), &mut f);
        assert_eq!(f.pixels(), &grad8(64, 48, k)[..], "frame {k}");
        assert_eq!((f.meta.sequence, f.meta.timestamp_us), (k as u64, k as u64 * 40_000));
        // The 2D region (cm -> mm), not the Doppler one before it, nor PixelSpacing.
        assert_spacing(f.meta.spacing, 0.2, 0.25);
        assert_eq!(f.meta.image_region, Some(RegionPx { x_px: 8, y_px: 4, width_px: 48, height_px: 32 }));
    }
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn dicom_native_frames_do_not_allocate() {
    let mut src = open(&fix("dicom/us_multiframe_regions.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let before = allocs();
    for _ in 1..5 {
        expect_frame(src.as_mut(), &mut f);
    }
    assert_eq!(allocs() - before, 0);
}

#[test]
fn dicom_16bit_without_window_stretches_min_max_and_reads_pixel_spacing() {
    let mut src = open(&fix("dicom/mono16_pixelspacing.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let v: Vec<i64> = (0..24).flat_map(|y| (0..32).map(move |x| (100 + 100 * x + 40 * y).min(4095))).collect();
    let (lo, hi) = (100, 4095);
    let expect: Vec<u8> = v.iter().map(|v| (((v - lo) * 255 + (hi - lo) / 2) / (hi - lo)) as u8).collect();
    assert_eq!(f.pixels(), &expect[..]);
    assert_spacing(f.meta.spacing, 0.25, 0.5); // PixelSpacing is row (y) \ column (x)
    assert_eq!((f.meta.image_region, f.meta.timestamp_us), (None, 0));
    assert_eq!(src.info().fps, None);
}

/// DICOM linear VOI, rounded to 0..255.
fn window(x: f64, c: f64, w: f64) -> u8 {
    ((((x - (c - 0.5)) / (w - 1.0)) + 0.5).clamp(0.0, 1.0) * 255.0).round() as u8
}

#[test]
fn dicom_signed_rescaled_windowed_implicit_vr_with_imager_spacing() {
    let opts = OpenOptions { fps: Some(5.0), ..Default::default() };
    let mut src = source::open(&fix("dicom/signed16_window_implicit.dcm"), &opts).unwrap();
    assert_eq!(src.info().fps, Some(5.0), "no rate in the file: opts.fps");
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let expect: Vec<u8> = (0..16)
        .flat_map(|y| (0..16).map(move |x| window(2.0 * (-200.0 + 100.0 * x as f64 + 5.0 * y as f64) - 1000.0, 0.0, 2000.0)))
        .collect();
    assert!(max_diff(f.pixels(), &expect) <= 1, "{:?}\n{:?}", &f.pixels()[..16], &expect[..16]);
    assert!(f.pixels().contains(&0) && f.pixels().contains(&255), "window clips both ends");
    assert_spacing(f.meta.spacing, 0.4, 0.3);
}

#[test]
fn dicom_monochrome1_is_inverted() {
    let mut src = open(&fix("dicom/mono1.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let expect: Vec<u8> = grad8(32, 24, 0).iter().map(|v| 255 - v).collect();
    assert_eq!(f.pixels(), &expect[..]);
}

#[test]
fn dicom_rgb_planar_becomes_luma() {
    let mut src = open(&fix("dicom/rgb_planar.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let at = |x: u32, y: u32| f.pixels()[(y * 16 + x) as usize];
    assert_eq!((at(0, 0), at(15, 0), at(0, 15), at(15, 15)), (76, 150, 29, 255), "red, green, blue, white");
}

#[test]
fn dicom_deflate_and_rle_are_lossless() {
    let mut src = open(&fix("dicom/deflate_gradient.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    assert_eq!(f.pixels(), &grad8(32, 24, 0)[..]);
    expect_end(src.as_mut(), &mut f);

    let mut src = open(&fix("dicom/rle_multiframe.dcm"));
    assert_eq!(src.info().frame_count, Some(3));
    for k in 0..3 {
        expect_frame(src.as_mut(), &mut f);
        assert_eq!(f.pixels(), &grad8(32, 24, k)[..], "RLE frame {k}");
        assert_eq!(f.meta.sequence, k as u64);
    }
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn dicom_jpeg_baseline_ybr_full_422_keeps_the_gradient() {
    let mut src = open(&fix("dicom/ybr422_jpeg_baseline.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let d = max_diff(f.pixels(), &grad8(32, 24, 0));
    assert!(d <= 6, "lossy JPEG drifted by {d}");
}

#[test]
fn dicom_jpeg_lossless_multiframe_12_bit_is_exact_through_the_window() {
    let mut src = open(&fix("dicom/jpeg_lossless_sv1_multiframe.dcm"));
    let mut f = frame();
    for k in 0..3u32 {
        expect_frame(src.as_mut(), &mut f);
        let expect: Vec<u8> = (0..24)
            .flat_map(|y| (0..32).map(move |x| window((90 * x + 40 * y + 50 * k) as f64, 2048.0, 4096.0)))
            .collect();
        assert!(max_diff(f.pixels(), &expect) <= 1, "frame {k}");
    }
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn dicom_corrupt_frame_in_a_multiframe_is_skipped() {
    let mut src = open(&fix("dicom/jpeg_corrupt_frame1.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    assert!(max_diff(f.pixels(), &grad8(32, 24, 0)) <= 6);
    let e = src.next_frame(&mut f).unwrap_err();
    assert!(matches!(e, SourceError::BadFrame { frame: 1, .. }) && !e.is_fatal(), "{e:?}");
    assert_names(&e, "jpeg_corrupt_frame1.dcm");
    expect_frame(src.as_mut(), &mut f);
    assert_eq!(f.meta.sequence, 2);
    assert!(max_diff(f.pixels(), &grad8(32, 24, 2)) <= 6);
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn dicom_folder_is_ordered_by_instance_number() {
    let cal = PixelSpacingMm { x_mm: 9.0, y_mm: 9.0 };
    let opts = OpenOptions { calibration: Some(cal), ..Default::default() };
    // A bare folder path holding .dcm files goes to the DICOM source.
    let mut src = source::open(&fix("dicom/series"), &opts).unwrap();
    assert_eq!(src.info().frame_count, Some(3), "notes.txt is skipped");
    let mut f = frame();
    for (k, value) in [(0u64, 50u8), (1, 100), (2, 150)] {
        expect_frame(src.as_mut(), &mut f);
        assert!(f.pixels().iter().all(|&p| p == value), "frame {k} should be InstanceNumber {}", k + 1);
        assert_eq!(f.meta.sequence, k);
        assert_spacing(f.meta.spacing, 0.1, 0.1); // the file's, not the calibration
    }
    expect_end(src.as_mut(), &mut f);
}

#[test]
fn dicom_calibration_applies_when_the_file_has_no_spacing() {
    let cal = PixelSpacingMm { x_mm: 0.7, y_mm: 0.8 };
    let opts = OpenOptions { calibration: Some(cal), ..Default::default() };
    let mut src = source::open(&fix("dicom/mono1.dcm"), &opts).unwrap();
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    assert_eq!(f.meta.spacing, Some(cal));
}

#[test]
fn dicom_bad_files_fail_at_open_naming_the_file() {
    let e = open_err(&fix("dicom/pydicom_rtplan.dcm"), &OpenOptions::default());
    assert!(matches!(e, SourceError::Unsupported { .. }), "{e:?}");
    assert!(e.to_string().contains("has no Pixel Data (SOP class RT Plan Storage"), "{e}");
    assert_names(&e, "pydicom_rtplan.dcm");
    for name in ["truncated.dcm", "garbage.dcm"] {
        let e = open_err(&fix(&format!("dicom/{name}")), &OpenOptions::default());
        assert!(matches!(e, SourceError::Format { .. }) && e.is_fatal(), "{name}: {e:?}");
        assert_names(&e, name);
    }
    let e = open_err("dicom:/nonexistent/x.dcm", &OpenOptions::default());
    assert!(matches!(e, SourceError::Io { .. }));
    assert_names(&e, "/nonexistent/x.dcm");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.dcm"), b"not dicom").unwrap();
    let e = open_err(&format!("dicom:{}", dir.path().display()), &OpenOptions::default());
    assert!(e.to_string().contains("no DICOM image files"), "{e}");
}

// Real sample files from pydicom-data (see tests/fixtures/README.md); the
// expected values were computed with pydicom/numpy (and dcmdjpeg for JPEG).

#[test]
fn dicom_sample_ct_small_signed_rescaled_min_max() {
    let mut src = open(&fix("dicom/pydicom_CT_small.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let at = |x: usize, y: usize| f.pixels()[y * 128 + x];
    assert_eq!([at(0, 0), at(20, 10), at(64, 64), at(30, 100), at(127, 127)], [6, 7, 222, 119, 97]);
    assert_spacing(f.meta.spacing, 0.661468, 0.661468);
}

#[test]
fn dicom_sample_mr_small_rle_16_bit_window() {
    let mut src = open(&fix("dicom/pydicom_MR_small_RLE.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let at = |x: usize, y: usize| f.pixels()[y * 64 + x];
    let got = [at(0, 0), at(20, 10), at(32, 32), at(30, 40), at(63, 63)];
    let expect = [176u8, 82, 61, 63, 169];
    assert!(got.iter().zip(expect).all(|(g, e)| g.abs_diff(e) <= 1), "{got:?}");
    assert_spacing(f.meta.spacing, 0.3125, 0.3125);
}

#[test]
fn dicom_sample_rgb_jpeg_baseline_ybr_full() {
    let mut src = open(&fix("dicom/pydicom_SC_rgb_jpeg_dcmtk.dcm"));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let at = |x: usize, y: usize| f.pixels()[y * 100 + x];
    let got = [at(0, 0), at(50, 5), at(50, 50), at(5, 95), at(99, 99)];
    let expect = [76u8, 76, 143, 255, 255];
    assert!(got.iter().zip(expect).all(|(g, e)| g.abs_diff(e) <= 3), "{got:?}");
}

#[test]
fn dicom_sample_jpeg_lossless_sv1_8_bit() {
    let mut src = open(&fix("dicom/pydicom_JPGLosslessP14SV1_1s_1f_8b.dcm"));
    assert_eq!((src.info().max_width_px, src.info().max_height_px), (1024, 768));
    let mut f = frame();
    expect_frame(src.as_mut(), &mut f);
    let at = |x: usize, y: usize| f.pixels()[y * 1024 + x];
    // (row, col, stored, through window 127/254)
    for (y, x, _stored, expect) in [(26, 20, 208, 210u8), (318, 670, 133, 134), (394, 761, 94, 95), (480, 795, 45, 45), (744, 973, 189, 190)] {
        assert!(at(x, y).abs_diff(expect) <= 1, "({x},{y}) = {}", at(x, y));
    }
    let sum: u64 = f.pixels().iter().map(|&p| p as u64).sum();
    assert!(sum.abs_diff(13_650_803) < 1024 * 768 / 2, "sum {sum}");
}

#[test]
fn unknown_uri_is_refused() {
    assert!(matches!(open_err("ftp://x", &OpenOptions::default()), SourceError::BadUri { .. }));
    assert!(Path::new(FIX).is_dir());
}

// ---------------------------------------------------------------- robustness

/// Deterministic damage: byte flips, overwritten runs and truncations of a
/// good file. Every source must open-or-fail and read-or-fail without panicking.
fn damaged_copies(original: &[u8], count: usize, keep_prefix: usize) -> Vec<Vec<u8>> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count)
        .map(|i| {
            let mut b = original.to_vec();
            let span = b.len() - keep_prefix;
            match i % 3 {
                0 => {
                    for _ in 0..1 + rand() % 8 {
                        let at = keep_prefix + (rand() as usize % span);
                        b[at] = rand() as u8;
                    }
                }
                1 => {
                    let at = keep_prefix + (rand() as usize % span);
                    let len = (rand() as usize % 64).min(b.len() - at);
                    b[at..at + len].iter_mut().for_each(|x| *x = 0xFF);
                }
                _ => b.truncate(keep_prefix + (rand() as usize % span)),
            }
            b
        })
        .collect()
}

/// Opens and reads a source to its end, ignoring errors; returns the largest
/// single allocation made meanwhile.
fn drain(uri: &str, opts: &OpenOptions) -> usize {
    LARGEST.with(|c| c.set(0));
    if let Ok(mut src) = source::open(uri, opts) {
        let mut f = frame();
        for _ in 0..64 {
            match src.next_frame(&mut f) {
                Ok(Next::End) => break,
                Err(e) if e.is_fatal() => break,
                _ => {}
            }
        }
    }
    LARGEST.with(|c| c.get())
}

/// Frames (1 MiB) plus decoder buffers of these small fixtures stay far below this;
/// a damaged length taken at its word would not.
const SANE_ALLOC_BYTES: usize = 16 << 20;

#[test]
fn damaged_files_never_panic_nor_allocate_what_a_bad_length_claims() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("dicom/us_multiframe_regions.dcm", "dcm", 132),
        ("dicom/rle_multiframe.dcm", "dcm", 132),
        ("dicom/jpeg_lossless_sv1_multiframe.dcm", "dcm", 132),
        ("dicom/ybr422_jpeg_baseline.dcm", "dcm", 132),
        ("dicom/pydicom_MR_small_RLE.dcm", "dcm", 132),
        ("dicom/pydicom_CT_small.dcm", "dcm", 132),
        ("dicom/series/a.dcm", "dcm", 132),
        ("y4m/yuv420_2997fps.y4m", "y4m", 0),
    ];
    for (rel, ext, keep) in cases {
        let original = std::fs::read(fix(rel)).unwrap();
        for (i, bytes) in damaged_copies(&original, 150, keep).into_iter().enumerate() {
            let p = dir.path().join(format!("d{i}.{ext}"));
            std::fs::write(&p, bytes).unwrap();
            let largest = drain(p.to_str().unwrap(), &OpenOptions::default());
            assert!(largest < SANE_ALLOC_BYTES, "{rel} damage #{i}: allocated {largest} bytes at once");
        }
    }
    let original = std::fs::read(fix("png_dir/f02_rgb.png")).unwrap();
    let pngs = dir.path().join("pngs");
    std::fs::create_dir(&pngs).unwrap();
    std::fs::copy(fix("png_dir/f00_gray8.png"), pngs.join("a.png")).unwrap();
    for (i, bytes) in damaged_copies(&original, 150, 8).into_iter().enumerate() {
        std::fs::write(pngs.join(format!("b{i:03}.png")), bytes).unwrap();
    }
    let largest = drain(&format!("png:{}", pngs.display()), &OpenOptions::default());
    assert!(largest < SANE_ALLOC_BYTES, "PNG: allocated {largest} bytes at once");
}

/// `image_region = "auto"` on a real cart-screen layout: the bundled demo
/// (phantom screen with menus, scales and text around the image) carries its
/// true image region in the DICOM's ultrasound region sequence.
#[test]
fn auto_region_finds_the_demo_image_within_two_pixels() {
    use spine_edge::region_finder::{Found, RegionFinder};
    let mut src = open(&format!("dicom:{}", Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/sagittal_sweep.dcm").display()));
    let mut f = Frame::with_capacity(640 * 480);
    let mut finder = RegionFinder::new(640, 480, 24);
    let mut found = None;
    let mut truth = None;
    for _ in 0..24 {
        expect_frame(src.as_mut(), &mut f);
        truth = f.meta.image_region;
        if let Found::New(r) = finder.push(&f) {
            found = Some(r);
        }
    }
    let (found, truth) = (found.expect("a region after one window"), truth.expect("the demo names its region"));
    let ends = |r: RegionPx| (r.x_px, r.y_px, r.x_px + r.width_px, r.y_px + r.height_px);
    let (a, b) = (ends(found), ends(truth));
    assert!(
        a.0.abs_diff(b.0) <= 2 && a.1.abs_diff(b.1) <= 2 && a.2.abs_diff(b.2) <= 2 && a.3.abs_diff(b.3) <= 2,
        "found {found:?}, truth {truth:?}"
    );
}
