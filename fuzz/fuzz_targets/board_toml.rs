//! Fuzz target `board_toml`: see `spine_edge::fuzz_harness::board_toml`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = spine_edge::fuzz_harness::board_toml(data);
});
