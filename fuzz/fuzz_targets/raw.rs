//! Fuzz target `raw`: see `spine_edge::fuzz_harness::raw`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = spine_edge::fuzz_harness::raw(data);
});
