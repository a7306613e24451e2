//! This process's memory from /proc/self/status, for `bench` and `soak`.

/// Memory figures of this process, KiB.
#[derive(Debug, Clone, Copy, Default)]
pub struct MemKib {
    pub peak_rss: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
}

pub fn mem_kib() -> Option<MemKib> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> { status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse().ok() };
    Some(MemKib { peak_rss: field("VmHWM:")?, rss_anon: field("RssAnon:")?, rss_file: field("RssFile:")? })
}

/// Starts a new peak-RSS measurement (Linux >= 4.0: writing 5 to clear_refs resets VmHWM).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn print_mem(what: &str, m: Option<MemKib>) {
    match m {
        Some(m) => println!(
            "peak RSS, {what}: {:.1} MiB (at its end: anonymous {:.1} MiB + file-backed {:.1} MiB, mostly the binary's code)",
            m.peak_rss as f64 / 1024.0,
            m.rss_anon as f64 / 1024.0,
            m.rss_file as f64 / 1024.0
        ),
        None => println!("peak RSS, {what}: not available (no /proc/self/status)"),
    }
}
