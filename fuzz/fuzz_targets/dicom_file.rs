//! Fuzz target `dicom_file`: see `spine_edge::fuzz_harness::dicom_file`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = spine_edge::fuzz_harness::dicom_file(data);
});
