//! Keeps the C allocator's footprint bounded for a long-running service.
//!
//! glibc gives each thread that allocates its own arena and keeps freed
//! memory in it; our pipeline threads and the DICOM/JPEG decoder (which
//! allocates a frame's buffers per call) would then hold several arenas'
//! worth of freed pages. Two arenas are enough for our three threads:
//! measured with `spine-edge bench` on the demo sweep, peak RSS of the
//! as-fast-as-possible run fell from 52.6 to 39.4 MiB and of the live-paced
//! run from 42.6 to 37.9 MiB, with throughput within run-to-run noise of
//! throughput. `MALLOC_ARENA_MAX` in the environment still wins.

/// Arenas the allocator may create (glibc's default is 8 x cores).
pub const ARENA_MAX: i32 = 2;

/// Applies [`ARENA_MAX`] unless `MALLOC_ARENA_MAX` is set. Returns whether it was applied.
pub fn bound_arenas() -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    set_arena_max(ARENA_MAX)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn set_arena_max(n: i32) -> bool {
    // SAFETY: mallopt only changes allocator tuning; called before threads start.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, n) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_arena_max(_n: i32) -> bool {
    false
}

#[cfg(test)]
mod tests {
    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn glibc_accepts_the_arena_bound() {
        assert!(super::set_arena_max(super::ARENA_MAX));
    }
}
