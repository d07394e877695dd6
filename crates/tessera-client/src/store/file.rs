use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{StoreError, StoreLock, TokenStore};
use crate::TokenSet;

/// Keeps tokens in a JSON file, replaced atomically, and safe to share between processes.
///
/// Every save writes a new file next to the target (readable by the owner only on Unix), flushes it to
/// disk, and renames it over the target, so a crash leaves either the old pair or the new pair, never a
/// torn file. File I/O runs on tokio's blocking pool.
///
/// **Several processes, one file.** The store locks a sibling file, `<path>.lock` (an OS advisory lock:
/// `flock` on Unix, `LockFileEx` on Windows, released by the OS if the process dies), from re-reading the
/// tokens through the refresh to saving the new pair. A second process that needs a refresh meanwhile
/// waits for the lock (at most its refresh timeout, then it backs off and serves its still-valid token),
/// re-reads the file, and adopts the pair the first one saved instead of presenting the refresh token the
/// first one just consumed. The lock file is created next to the token file and never deleted. Tools that
/// write the token file without the lock are not coordinated.
///
/// ```no_run
/// use tessera_client::FileTokenStore;
///
/// let store = FileTokenStore::new("/var/lib/my-service/tokens.json");
/// ```
#[derive(Debug, Clone)]
pub struct FileTokenStore {
    path: PathBuf,
}

impl FileTokenStore {
    /// A store at `path`. The directory must exist; the file is created on the first save.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileTokenStore { path: path.into() }
    }

    /// The token file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The lock file's path: the token file's, with `.lock` appended.
    pub fn lock_path(&self) -> PathBuf {
        let mut name = OsString::from(self.path.as_os_str());
        name.push(".lock");
        PathBuf::from(name)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Path) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let error_path = path.clone();
        tokio::task::spawn_blocking(move || job(&path))
            .await
            .map_err(|join| StoreError::Io {
                path: error_path,
                source: io::Error::other(join),
            })?
    }
}

#[async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self) -> Result<Option<TokenSet>, StoreError> {
        self.blocking(|path| match fs::read(path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|source| StoreError::Corrupt {
                        path: path.to_owned(),
                        source,
                    })
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        })
        .await
    }

    async fn save(&self, tokens: &TokenSet) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(tokens).map_err(|source| StoreError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        self.blocking(move |path| write_atomically(path, &bytes))
            .await
    }

    async fn clear(&self) -> Result<(), StoreError> {
        self.blocking(|path| match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io {
                path: path.to_owned(),
                source,
            }),
        })
        .await
    }

    async fn lock(&self) -> Result<Option<StoreLock>, StoreError> {
        let lock_path = self.lock_path();
        let file = tokio::task::spawn_blocking(move || {
            let io_error = |source| StoreError::Io {
                path: lock_path.clone(),
                source,
            };
            let file = open_lock_file(&lock_path).map_err(io_error)?;
            // Blocks until every other holder let go; if the waiting caller gave up meanwhile, the file is
            // dropped with this task's result, releasing the lock at once.
            file.lock().map_err(io_error)?;
            Ok::<File, StoreError>(file)
        })
        .await
        .map_err(|join| StoreError::Io {
            path: self.lock_path(),
            source: io::Error::other(join),
        })??;
        Ok(Some(StoreLock::new(file)))
    }
}

/// Opens (creating it if need be) the lock file, readable by its owner only on Unix.
fn open_lock_file(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)
}

/// Replaces the token file atomically, readable by its owner only.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    tessera_core::fs::write_private(path, bytes).map_err(|source| StoreError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample(access: &str) -> TokenSet {
        TokenSet::new(access)
            .with_refresh_token("r")
            .with_expires_at(UNIX_EPOCH + Duration::from_secs(7))
    }

    #[tokio::test]
    async fn save_load_clear_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path().join("tokens.json"));
        assert_eq!(store.load().await.unwrap(), None);
        store.save(&sample("a1")).await.unwrap();
        store.save(&sample("a2")).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(sample("a2")));
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(
            leftovers,
            ["tokens.json"],
            "no temporary file is left behind"
        );
        assert_eq!(store.lock_path(), dir.path().join("tokens.json.lock"));
        store.clear().await.unwrap();
        store.clear().await.unwrap();
        assert_eq!(store.load().await.unwrap(), None);
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn token_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileTokenStore::new(dir.path().join("tokens.json"));
        store.save(&sample("a1")).await.unwrap();
        let mode = fs::metadata(store.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[tokio::test]
    async fn the_lock_is_exclusive_across_handles_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let one = FileTokenStore::new(dir.path().join("tokens.json"));
        let other = FileTokenStore::new(dir.path().join("tokens.json"));
        let held = one.lock().await.unwrap().unwrap();
        let mut waiting = Box::pin(other.lock());
        let blocked =
            tokio::time::timeout(std::time::Duration::from_millis(100), &mut waiting).await;
        assert!(
            blocked.is_err(),
            "a second handle waits while the first holds the lock"
        );
        drop(held);
        let second = tokio::time::timeout(std::time::Duration::from_secs(10), waiting)
            .await
            .expect("released on drop")
            .unwrap();
        assert!(second.is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(one.lock_path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[tokio::test]
    async fn corrupt_and_unreachable_files_are_typed_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        fs::write(&path, b"not json").unwrap();
        let error = FileTokenStore::new(&path).load().await.unwrap_err();
        assert!(matches!(error, StoreError::Corrupt { .. }), "{error}");

        let missing_dir = FileTokenStore::new(dir.path().join("missing").join("tokens.json"));
        let error = missing_dir.save(&sample("a1")).await.unwrap_err();
        assert!(matches!(error, StoreError::Io { .. }), "{error}");
    }
}
