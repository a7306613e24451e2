//! Fuzz target `png_frame`: see `spine_edge::fuzz_harness::png_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = spine_edge::fuzz_harness::png_frame(data);
});
