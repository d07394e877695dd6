//! Files that hold secrets (signing keys, the refresh-token secret, a client's tokens): written whole or not
//! at all, readable by their owner only.
//!
//! Both functions write a hidden temporary sibling with mode 0600, flush it to disk, then move it into place
//! and flush the directory entry, so that a crash or a concurrent reader sees either no file, the old file,
//! or the complete new one, never a torn file.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Replaces `path` with `bytes` atomically (write a temporary sibling, rename it over `path`).
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("tokens.json");
/// tessera_core::fs::write_private(&path, b"{}")?;
/// tessera_core::fs::write_private(&path, b"{\"a\":1}")?;
/// assert_eq!(std::fs::read(&path)?, b"{\"a\":1}");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// The I/O error of whichever step failed; the temporary file is removed and `path` is left as it was.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = write_temporary(path, bytes)?;
    finish(path, &temp, fs::rename(&temp, path))
}

/// Creates `path` holding `bytes`, atomically, unless it already exists: when several processes race to
/// create the same file (two instances starting on an empty key directory), exactly one wins and the
/// others get [`io::ErrorKind::AlreadyExists`] and should read the winner's file.
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("refresh.secret");
/// tessera_core::fs::create_private(&path, b"first")?;
/// let second = tessera_core::fs::create_private(&path, b"second").unwrap_err();
/// assert_eq!(second.kind(), std::io::ErrorKind::AlreadyExists);
/// assert_eq!(std::fs::read(&path)?, b"first");
/// # Ok::<(), std::io::Error>(())
/// ```
///
/// # Errors
/// [`io::ErrorKind::AlreadyExists`] when `path` exists; otherwise the I/O error of the step that failed.
pub fn create_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let temp = write_temporary(path, bytes)?;
    // A hard link fails if the target exists, and the target appears complete or not at all.
    let linked = fs::hard_link(&temp, path);
    let removed = fs::remove_file(&temp);
    finish(path, &temp, linked.and(removed))
}

fn write_temporary(path: &Path, bytes: &[u8]) -> io::Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let file_name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let mut temp_name = OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".{}.{}.tmp",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let temp = path.with_file_name(temp_name);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let written = options.open(&temp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    match written {
        Ok(()) => Ok(temp),
        Err(error) => {
            let _ = fs::remove_file(&temp);
            Err(error)
        }
    }
}

fn finish(path: &Path, temp: &Path, moved: io::Result<()>) -> io::Result<()> {
    if let Err(error) = moved {
        let _ = fs::remove_file(temp);
        return Err(error);
    }
    // Make the new directory entry durable too; a directory cannot be opened for this everywhere, so a
    // failure here is not an error of the write.
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
        && let Ok(directory) = File::open(parent)
    {
        let _ = directory.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_no_temporary_is_left() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let replaced = dir.path().join("a");
        write_private(&replaced, b"1").unwrap();
        write_private(&replaced, b"2").unwrap();
        let created = dir.path().join("b");
        create_private(&created, b"3").unwrap();
        assert!(create_private(&created, b"4").is_err());
        for path in [&replaced, &created] {
            let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn racing_creators_agree_on_one_winner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let winners: usize = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8_u8)
                .map(|index| {
                    let path = &path;
                    scope.spawn(move || create_private(path, &[index]).is_ok())
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| usize::from(handle.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1);
        assert_eq!(fs::read(&path).unwrap().len(), 1);
    }

    #[test]
    fn a_path_without_a_file_name_is_refused() {
        assert_eq!(
            write_private(Path::new("/"), b"x").unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
