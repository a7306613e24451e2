//! Helpers shared by the integration tests that run the `spine-edge` binary.
//!
//! Cross test runs (`cargo test --target aarch64-unknown-linux-gnu`, with
//! `qemu-aarch64-static` as cargo's runner, see .cargo/config.toml) run each
//! test binary under user-mode emulation. Without a binfmt_misc registration
//! the kernel refuses to exec an aarch64 binary (ENOEXEC), so a test that
//! spawns `spine-edge` must go through the same emulator. [`spine_edge`]
//! tries the binary directly once and falls back to the emulator, saying so.

#![allow(dead_code)]

use std::process::Command;
use std::sync::OnceLock;

const EXE: &str = env!("CARGO_BIN_EXE_spine-edge");

/// A `Command` that runs the `spine-edge` binary under test (through the
/// emulator when the host cannot run it).
pub fn spine_edge() -> Command {
    match runner() {
        Some(r) => {
            let mut c = Command::new(r);
            c.arg(EXE);
            c
        }
        None => Command::new(EXE),
    }
}

/// The emulator to run the binary with: `SPINE_EDGE_TEST_RUNNER`, else
/// `qemu-<arch>-static`; `None` when the binary runs as it is.
fn runner() -> Option<&'static str> {
    static RUNNER: OnceLock<Option<String>> = OnceLock::new();
    RUNNER
        .get_or_init(|| match Command::new(EXE).arg("--version").output() {
            // ENOEXEC: "exec format error", a binary for another architecture.
            Err(e) if e.raw_os_error() == Some(8) => {
                let r = std::env::var("SPINE_EDGE_TEST_RUNNER").unwrap_or_else(|_| format!("qemu-{}-static", std::env::consts::ARCH));
                eprintln!("the host cannot exec {EXE} ({e}): running it through {r}");
                Some(r)
            }
            _ => None,
        })
        .as_deref()
}
