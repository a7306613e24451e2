//! Fuzz target `manifest`: see `spine_edge::fuzz_harness::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = spine_edge::fuzz_harness::manifest(data);
});
