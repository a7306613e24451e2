//! Fuzz target `y4m`: see `spine_edge::fuzz_harness::y4m`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = spine_edge::fuzz_harness::y4m(data);
});
