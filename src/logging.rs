//! Log output for a terminal or for the systemd journal.
//!
//! On a terminal, lines read `[WARN  spine_edge::pipeline] message` (no
//! timestamps: the journal and terminals that want them add their own).
//! When stderr is connected to the journal — systemd sets `JOURNAL_STREAM`
//! to the `device:inode` of that stream, and it matches stderr's — each line
//! starts with its syslog priority instead, `<4>spine_edge::pipeline: message`
//! (the sd-daemon convention), so `journalctl -p warning` filters properly
//! and no colour codes reach the journal.

use std::io::Write;

use log::Level;

/// syslog priority for a log level (`<N>` prefix understood by journald).
pub fn journal_priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// True when `journal_stream` (the `JOURNAL_STREAM` value, `"DEV:INODE"`)
/// names the stream with device `dev` and inode `ino`.
pub fn names_stream(journal_stream: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = journal_stream.trim().split_once(':') else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

/// True when this process's stderr goes to the systemd journal.
pub fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some(stream) = stream.to_str() else {
        return false;
    };
    stderr_dev_ino().is_some_and(|(dev, ino)| names_stream(stream, dev, ino))
}

#[cfg(unix)]
fn stderr_dev_ino() -> Option<(u64, u64)> {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let fd = std::io::stderr().as_fd().try_clone_to_owned().ok()?;
    let meta = std::fs::File::from(fd).metadata().ok()?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(not(unix))]
fn stderr_dev_ino() -> Option<(u64, u64)> {
    None
}

/// Installs the logger: `RUST_LOG` filters (default `warn`); journal format
/// when stderr is the journal. Returns whether the journal format is on, for
/// the caller's own final error line.
pub fn init() -> bool {
    let journal = stderr_is_journal();
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    if journal {
        b.write_style(env_logger::WriteStyle::Never)
            .format(|buf, r| writeln!(buf, "<{}>{}: {}", journal_priority(r.level()), r.target(), r.args()));
    } else {
        b.format_timestamp(None);
    }
    // A second init (tests) keeps the first logger.
    let _ = b.try_init();
    journal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_syslog() {
        assert_eq!(journal_priority(Level::Error), 3);
        assert_eq!(journal_priority(Level::Warn), 4);
        assert_eq!(journal_priority(Level::Info), 6);
        assert_eq!(journal_priority(Level::Trace), 7);
    }

    #[test]
    fn journal_stream_must_name_this_very_stream() {
        assert!(names_stream("64768:123456", 64768, 123456));
        assert!(names_stream("64768:123456\n", 64768, 123456));
        assert!(!names_stream("64768:123457", 64768, 123456), "another stream (a child's inherited variable)");
        assert!(!names_stream("64768", 64768, 123456));
        assert!(!names_stream("a:b", 64768, 123456));
        assert!(!names_stream("", 0, 0));
    }

    #[cfg(unix)]
    #[test]
    fn stderr_has_a_device_and_inode() {
        // Whatever stderr is here (pipe, tty, file), it can be identified.
        assert!(stderr_dev_ino().is_some());
    }
}
