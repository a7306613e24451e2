//! Log output for a terminal or for the systemd journal.
//!
//! On a terminal, lines read `[WARN  spine_edge::pipeline] message` (no
//! timestamps: the journal and terminals that want them add their own).
//! When stderr is connected to the journal — systemd sets `JOURNAL_STREAM`
//! to the `device:inode` of that stream, and it matches stderr's — each line
//! starts with its syslog priority instead, `<4>spine_edge::pipeline: message`
//! (the sd-daemon convention), so `journalctl -p warning` filters properly
//! and no colour codes reach the journal.
//!
//! Path redaction: folder and file names often carry patient names. With
//! `[logging] redact_paths = true` in the board, the run registers its
//! source and output paths ([`redact_path`]) and every log line, and the
//! final error line ([`redacted`]), shows `<source>` / `<out>` in their
//! place (`<source>/IMG0001.dcm` keeps the part below the registered folder).

use std::borrow::Cow;
use std::io::Write;
use std::sync::RwLock;

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

/// Registered (path, label) pairs, longest path first.
static REDACTIONS: RwLock<Vec<(String, &'static str)>> = RwLock::new(Vec::new());

/// From now on, log lines show `label` where `path` appears.
pub fn redact_path(path: &str, label: &'static str) {
    if path.len() < 2 {
        return; // "/" or "": replacing them would garble every line
    }
    let mut v = REDACTIONS.write().unwrap_or_else(|e| e.into_inner());
    if !v.iter().any(|(p, _)| p == path) {
        v.push((path.to_string(), label));
        v.sort_by_key(|(p, _)| std::cmp::Reverse(p.len()));
    }
}

/// Whether any path is registered for redaction.
fn redacting() -> bool {
    !REDACTIONS.read().unwrap_or_else(|e| e.into_inner()).is_empty()
}

/// `msg` with every registered path replaced by its label.
pub fn redacted(msg: &str) -> Cow<'_, str> {
    let v = REDACTIONS.read().unwrap_or_else(|e| e.into_inner());
    if !v.iter().any(|(p, _)| msg.contains(p.as_str())) {
        return Cow::Borrowed(msg);
    }
    let mut out = msg.to_string();
    for (p, label) in v.iter() {
        out = out.replace(p.as_str(), label);
    }
    Cow::Owned(out)
}

/// Installs the logger: `RUST_LOG` filters (default `warn`); journal format
/// when stderr is the journal. Returns whether the journal format is on, for
/// the caller's own final error line.
/// An error and its causes on one line, "outer: cause: cause", leaving out
/// a cause whose text the line already carries (most of our errors put
/// their source in their own message, so `{:#}` would say it twice).
pub fn error_line<'a>(chain: impl IntoIterator<Item = &'a (dyn std::error::Error + 'static)>) -> String {
    let mut line = String::new();
    for cause in chain {
        let text = cause.to_string();
        if line.is_empty() {
            line = text;
        } else if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    line
}

pub fn init() -> bool {
    let journal = stderr_is_journal();
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"));
    if journal {
        b.write_style(env_logger::WriteStyle::Never).format(|buf, r| {
            let p = journal_priority(r.level());
            match redacting() {
                true => writeln!(buf, "<{p}>{}: {}", r.target(), redacted(&r.args().to_string())),
                false => writeln!(buf, "<{p}>{}: {}", r.target(), r.args()),
            }
        });
    } else {
        b.format(|buf, r| {
            let style = buf.default_level_style(r.level());
            match redacting() {
                true => writeln!(buf, "[{style}{:<5}{style:#} {}] {}", r.level(), r.target(), redacted(&r.args().to_string())),
                false => writeln!(buf, "[{style}{:<5}{style:#} {}] {}", r.level(), r.target(), r.args()),
            }
        });
    }
    // A second init (tests) keeps the first logger.
    let _ = b.try_init();
    journal
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_names_each_cause_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("models/x.toml: cannot read model manifest: {source}")]
        struct Outer {
            #[source]
            source: std::io::Error,
        }
        #[derive(Debug, thiserror::Error)]
        #[error("board boards/b.toml")]
        struct Context {
            #[source]
            source: Outer,
        }
        let e = Context { source: Outer { source: std::io::Error::from(std::io::ErrorKind::NotFound) } };
        let chain = std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| e.source());
        let line = error_line(chain);
        assert_eq!(line, "board boards/b.toml: models/x.toml: cannot read model manifest: entity not found");
    }

    #[test]
    fn registered_paths_are_replaced_longest_first() {
        redact_path("/data/DOE^JOHN", "<source>");
        redact_path("/data/DOE^JOHN/out", "<out>");
        redact_path("/", "<never>");
        assert_eq!(redacted("/data/DOE^JOHN/IMG1.dcm: bad frame"), "<source>/IMG1.dcm: bad frame");
        assert_eq!(redacted("cannot write /data/DOE^JOHN/out/x.png"), "cannot write <out>/x.png");
        assert_eq!(redacted("/boards/x86.toml: ok"), "/boards/x86.toml: ok");
    }

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
