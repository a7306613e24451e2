//! Helpers shared by the integration tests that run the `spine-edge` binary.
//!
//! Cross test runs (`cargo test --target aarch64-unknown-linux-gnu`, with
//! `qemu-aarch64-static` as cargo's runner, see .cargo/config.toml) run each
//! test binary under user-mode emulation. Without a binfmt_misc registration
//! the kernel refuses to exec an aarch64 binary, so a test that spawns
//! `spine-edge` must go through the same emulator. [`spine_edge`] tries the
//! binary directly once and falls back to the emulator, saying so.

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
///
/// The probe runs `spine-edge --version` directly. Under qemu-user the exec
/// failure does not always come back as an error: glibc's posix_spawn child
/// may just exit 127. So "runs as it is" means "printed its version".
fn runner() -> Option<&'static str> {
    static RUNNER: OnceLock<Option<String>> = OnceLock::new();
    RUNNER
        .get_or_init(|| {
            if prints_version(&mut Command::new(EXE)) {
                return None;
            }
            let r = std::env::var("SPINE_EDGE_TEST_RUNNER").unwrap_or_else(|_| format!("qemu-{}-static", std::env::consts::ARCH));
            let mut via = Command::new(&r);
            via.arg(EXE);
            if prints_version(&mut via) {
                eprintln!("the host cannot exec {EXE} directly (emulated test run): running it through {r}");
                Some(r)
            } else {
                None // neither works: the tests fail and show why
            }
        })
        .as_deref()
}

fn prints_version(cmd: &mut Command) -> bool {
    cmd.arg("--version")
        .output()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).starts_with("spine-edge "))
}

/// `stderr` without the one line qemu-user adds: it shows the host's /proc/cpuinfo, which has
/// no aarch64 "Features" line, so tract_linalg warns at start. A board never prints it.
pub fn without_emulator_noise(stderr: &str) -> String {
    stderr.lines().filter(|l| !(l.contains("tract_linalg") && l.contains("/proc/cpuinfo"))).map(|l| format!("{l}\n")).collect()
}
