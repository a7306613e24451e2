//! The fuzz targets' committed corpora (`fuzz/corpus/<target>/`) and every
//! crash the fuzzer ever found (`fuzz/regressions/<target>/`, each named for
//! what it broke) replayed through the same harness functions as the fuzz
//! targets (`spine_edge::fuzz_harness`). A panic fails the test; the sound
//! seeds must also still give what they hold (frames, a valid board).

use std::path::{Path, PathBuf};

use spine_edge::fuzz_harness as h;

fn files(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(kind).join(target);
    let mut v: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

#[test]
fn every_corpus_and_regression_input_runs_through_its_harness() {
    let mut total = 0;
    for (target, run) in h::TARGETS {
        let corpus = files("corpus", target);
        assert!(!corpus.is_empty(), "fuzz/corpus/{target} has seeds");
        for p in corpus.iter().chain(files("regressions", target).iter()) {
            run(&std::fs::read(p).unwrap());
            total += 1;
        }
    }
    h::clean_scratch();
    eprintln!("{total} inputs replayed");
}

#[test]
fn the_sound_seeds_still_parse() {
    let name = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().into_owned();
    for p in files("corpus", "board_toml") {
        assert!(h::board_toml(&std::fs::read(&p).unwrap()), "{}", name(&p));
    }
    for p in files("corpus", "manifest") {
        assert!(h::manifest(&std::fs::read(&p).unwrap()), "{}", name(&p));
    }
    let frames = |target: &str, f: fn(&[u8]) -> usize, seed: &str| {
        let p = files("corpus", target).into_iter().find(|p| name(p) == seed).unwrap_or_else(|| panic!("{target}/{seed}"));
        f(&std::fs::read(p).unwrap())
    };
    assert_eq!(frames("dicom_file", h::dicom_file, "rle_multiframe.dcm"), 3);
    assert_eq!(frames("dicom_file", h::dicom_file, "jpeg_corrupt_frame1.dcm"), 2);
    assert_eq!(frames("y4m", h::y4m, "mono_25fps.y4m"), 4);
    assert_eq!(frames("png_frame", h::png_frame, "f00_gray8.png"), 1);
    assert_eq!(frames("raw", h::raw, "one_pixel"), 1);
    // Found by the fuzzer: a 300-byte PNG declaring 16160x8216 px made the PNG
    // folder source allocate 531 MB at open; now its header is checked
    // against what the file can hold and the folder is refused.
    let dir = tempfile::tempdir().unwrap();
    let png = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/png_frame/oom_531mb_header_declares_a_huge_image.png");
    // The fuzz build's png crate skips CRCs (cfg(fuzzing)): give the header a right one.
    let mut bytes = std::fs::read(&png).unwrap();
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    std::fs::write(dir.path().join("a.png"), bytes).unwrap();
    let e = spine_edge::source::open(&format!("png:{}", dir.path().display()), &Default::default()).err().expect("refused");
    assert!(e.to_string().contains("16160x8216 px is more than 32 Mpx"), "{e}");
    h::clean_scratch();
}
