//! Reading a whole file that the service does not trust: a board, a model
//! manifest, a model, a signature, a DICOM file.
//!
//! [`read_capped`] opens the path once, without blocking (a FIFO with no
//! writer would otherwise hang the open), checks on the *opened* file that it
//! is a regular file (not a device such as `/dev/zero`, a FIFO or a socket)
//! and no larger than the caller's cap, then reads at most cap + 1 bytes
//! from that same file. What was checked is what was read: there is no
//! second open for a swapped symlink to slip into.

use std::io::Read;
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum FileReadError {
    #[error("{path}: cannot read {what}: {source}")]
    Io { path: PathBuf, what: &'static str, #[source] source: std::io::Error },
    #[error("{path}: {what} is not a regular file (it is {kind}); refusing it")]
    NotRegular { path: PathBuf, what: &'static str, kind: &'static str },
    #[error("{path}: {what} is {size} bytes, more than the {max} allowed")]
    TooLarge { path: PathBuf, what: &'static str, size: u64, max: u64 },
}

impl FileReadError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. } | Self::NotRegular { path, .. } | Self::TooLarge { path, .. } => path,
        }
    }
}

/// Reads all of `path` if it is a regular file of at most `max_bytes`;
/// `what` names the file's role in errors ("model manifest", "board file").
pub fn read_capped(path: &Path, max_bytes: u64, what: &'static str) -> Result<Vec<u8>, FileReadError> {
    read_prefix_capped(path, max_bytes, max_bytes, what).map(|(bytes, _)| bytes)
}

/// The first `prefix_bytes` of `path` (all of it if shorter) and the file's
/// length, if it is a regular file of at most `max_bytes`.
pub fn read_prefix_capped(path: &Path, prefix_bytes: u64, max_bytes: u64, what: &'static str) -> Result<(Vec<u8>, u64), FileReadError> {
    let io = |source| FileReadError::Io { path: path.to_path_buf(), what, source };
    let file = open_nonblocking(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(FileReadError::NotRegular { path: path.to_path_buf(), what, kind: kind_of(&ft) });
    }
    let too_large = |size| FileReadError::TooLarge { path: path.to_path_buf(), what, size, max: max_bytes };
    if meta.len() > max_bytes {
        return Err(too_large(meta.len()));
    }
    let want = prefix_bytes.min(max_bytes);
    let mut bytes = Vec::with_capacity(meta.len().min(want) as usize);
    // The file may grow after the stat: never read more than the cap allows.
    file.take(want + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    bytes.truncate(want as usize);
    Ok((bytes, meta.len()))
}

/// [`read_capped`] for UTF-8 text.
pub fn read_text_capped(path: &Path, max_bytes: u64, what: &'static str) -> Result<String, FileReadError> {
    let bytes = read_capped(path, max_bytes, what)?;
    String::from_utf8(bytes).map_err(|_| FileReadError::Io {
        path: path.to_path_buf(),
        what,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO without a writer returns at once; it has no
    // effect on reads of regular files.
    #[cfg(target_os = "linux")]
    const O_NONBLOCK: i32 = libc::O_NONBLOCK;
    #[cfg(not(target_os = "linux"))]
    const O_NONBLOCK: i32 = 0o4000;
    std::fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

fn kind_of(ft: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_fifo() {
            return "a FIFO";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_dir() {
        "a folder"
    } else {
        "not a regular file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_naming_the_path() {
        let e = read_capped(Path::new("/dev/zero"), 1 << 20, "model").unwrap_err();
        assert!(matches!(e, FileReadError::NotRegular { kind: "a character device", .. }), "{e}");
        assert!(e.to_string().starts_with("/dev/zero: model is not a regular file"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_capped(dir.path(), 1 << 20, "model").unwrap_err();
        assert!(matches!(e, FileReadError::NotRegular { kind: "a folder", .. }), "{e}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_fifo_without_writer_is_refused_without_hanging() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fifo");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = read_capped(&p, 1 << 20, "board file").unwrap_err();
        assert!(matches!(e, FileReadError::NotRegular { kind: "a FIFO", .. }), "{e}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_and_one_at_the_cap_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.toml");
        std::fs::write(&p, vec![b'x'; 100]).unwrap();
        assert_eq!(read_capped(&p, 100, "manifest").unwrap().len(), 100);
        let e = read_capped(&p, 99, "manifest").unwrap_err();
        assert!(matches!(e, FileReadError::TooLarge { size: 100, max: 99, .. }), "{e}");
        let e = read_capped(&dir.path().join("missing"), 99, "manifest").unwrap_err();
        assert!(e.to_string().contains("missing: cannot read manifest"), "{e}");
    }
}
