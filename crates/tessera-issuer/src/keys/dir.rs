//! The key directory: one file per key, named `<alg>-<created>-<random>.pem` (or `.secret` for HS256), the
//! file stem being the `kid`.
//!
//! Several processes may start on one directory at once (a rolling restart, two instances on one machine):
//! every file is created atomically and never overwritten (`tessera_core::fs::create_private`), and
//! looking for a key and creating one happen under an exclusive lock on `.lock` in the directory, so that
//! processes starting together on an empty directory end up with one signing key, the first one's.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use tessera_core::jose::{Algorithm, KeyError, SigningKey};
use tessera_core::{Clock as _, SystemClock, random};

use super::{SigningKeys, encode_material, new_kid};

/// The lock file in a key directory.
const LOCK_FILE: &str = ".lock";

struct KeyFile {
    path: PathBuf,
    kid: String,
    algorithm: Algorithm,
    created: i64,
}

pub(super) fn load_or_generate(dir: &Path, algorithm: Algorithm) -> Result<SigningKeys, KeyError> {
    let _lock = lock(dir)?;
    let mut files = list(dir)?;
    files.sort_by(|a, b| (a.created, &a.kid).cmp(&(b.created, &b.kid)));
    let signer = match files.iter().rposition(|file| file.algorithm == algorithm) {
        Some(newest) => load(&files.remove(newest))?,
        None => create(dir, algorithm)?,
    };
    let mut keys = SigningKeys::new(signer)?;
    for file in files.iter().rev() {
        keys = keys.with_retired(&load(file)?)?;
    }
    tracing::info!(
        dir = %dir.display(),
        kid = keys.signer().kid(),
        algorithm = %algorithm,
        verifying = keys.verifying().len(),
        "loaded access-token keys"
    );
    Ok(keys)
}

fn list(dir: &Path) -> Result<Vec<KeyFile>, KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_owned(),
        source,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        let Some(kid) = path.file_stem().and_then(|stem| stem.to_str()) else {
            continue;
        };
        let extension = path.extension().and_then(|ext| ext.to_str());
        let mut parts = kid.splitn(3, '-');
        let (Some(alg), Some(created), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let Ok(algorithm) = alg.parse::<Algorithm>() else {
            continue;
        };
        let Ok(created) = created.parse::<i64>() else {
            continue;
        };
        let expected = if algorithm.is_symmetric() {
            "secret"
        } else {
            "pem"
        };
        if extension == Some(expected) {
            files.push(KeyFile {
                kid: kid.to_owned(),
                path,
                algorithm,
                created,
            });
        }
    }
    Ok(files)
}

fn load(file: &KeyFile) -> Result<SigningKey, KeyError> {
    let text = fs::read_to_string(&file.path).map_err(|source| KeyError::Io {
        path: file.path.clone(),
        source,
    })?;
    if file.algorithm.is_symmetric() {
        let secret = decode_secret(&file.path, &text)?;
        SigningKey::from_hmac_secret(file.kid.clone(), &secret)
    } else {
        SigningKey::from_pem(file.kid.clone(), file.algorithm, &text)
    }
}

fn create(dir: &Path, algorithm: Algorithm) -> Result<SigningKey, KeyError> {
    let kid = new_kid(algorithm, SystemClock.unix_seconds())?;
    let key = SigningKey::generate_with_kid(kid.clone(), algorithm)?;
    let material = encode_material(&key)?;
    let (content, extension) = if algorithm.is_symmetric() {
        (URL_SAFE_NO_PAD.encode(material).into_bytes(), "secret")
    } else {
        (material, "pem")
    };
    write_private(&dir.join(format!("{kid}.{extension}")), &content)?;
    tracing::info!(dir = %dir.display(), kid, algorithm = %algorithm, "generated a new access-token signing key");
    Ok(key)
}

/// Creates `dir` if needed and takes its exclusive lock (waiting for another process's), released when the
/// returned file is dropped.
fn lock(dir: &Path) -> Result<File, KeyError> {
    let io = |source| KeyError::Io {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(io)?;
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))
        .map_err(io)?;
    file.lock().map_err(io)?;
    Ok(file)
}

/// Reads the base64url secret in `path`, or creates it with `LEN` fresh random bytes. Of processes creating
/// it at once, one writes it and the others read what it wrote.
pub(crate) fn load_or_create_secret<const LEN: usize>(path: &Path) -> Result<[u8; LEN], KeyError> {
    let read = |path: &Path| -> Result<Option<[u8; LEN]>, KeyError> {
        match fs::read_to_string(path) {
            Ok(text) => {
                let bytes = decode_secret(path, &text)?;
                let secret = bytes
                    .try_into()
                    .map_err(|bytes: Vec<u8>| KeyError::InvalidFile {
                        path: path.to_owned(),
                        detail: format!("expected {LEN} bytes, found {}", bytes.len()),
                    })?;
                Ok(Some(secret))
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(KeyError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    };
    if let Some(secret) = read(path)? {
        return Ok(secret);
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| KeyError::Io {
            path: parent.to_owned(),
            source,
        })?;
    }
    let secret = random::bytes::<LEN>()?;
    match tessera_core::fs::create_private(path, URL_SAFE_NO_PAD.encode(secret).as_bytes()) {
        Ok(()) => Ok(secret),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            read(path)?.ok_or_else(|| KeyError::Io {
                path: path.to_owned(),
                source: error,
            })
        }
        Err(source) => Err(KeyError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn decode_secret(path: &Path, text: &str) -> Result<Vec<u8>, KeyError> {
    URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|error| KeyError::InvalidFile {
            path: path.to_owned(),
            detail: format!("expected base64url without padding: {error}"),
        })
}

/// Writes a new file readable by the owner only, failing rather than overwriting an existing key.
fn write_private(path: &Path, content: &[u8]) -> Result<(), KeyError> {
    tessera_core::fs::create_private(path, content).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_survive_a_reload_and_other_algorithms_keep_verifying() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_generate(dir.path(), Algorithm::EdDsa).unwrap();
        let again = load_or_generate(dir.path(), Algorithm::EdDsa).unwrap();
        assert_eq!(first.signer().kid(), again.signer().kid());
        assert_eq!(first.jwks(), again.jwks());

        let switched = load_or_generate(dir.path(), Algorithm::Es256).unwrap();
        assert_eq!(switched.signer().algorithm(), Algorithm::Es256);
        assert!(
            switched.verifying().get(first.signer().kid()).is_some(),
            "the EdDSA key still verifies"
        );
        assert_eq!(switched.jwks().keys.len(), 2);
    }

    #[test]
    fn hmac_and_rsa_keys_persist() {
        let dir = tempfile::tempdir().unwrap();
        let hmac = load_or_generate(dir.path(), Algorithm::Hs256).unwrap();
        assert!(
            hmac.jwks().keys.is_empty(),
            "HS256 secrets are never published"
        );
        let rsa = load_or_generate(dir.path(), Algorithm::Rs256).unwrap();
        let rsa_again = load_or_generate(dir.path(), Algorithm::Rs256).unwrap();
        assert_eq!(rsa.jwks(), rsa_again.jwks());
        assert!(rsa_again.verifying().get(hmac.signer().kid()).is_some());
    }

    /// Processes starting together on an empty directory (threads here: each opens the lock file itself,
    /// so the lock excludes them as it excludes processes) agree on one signing key and one secret.
    #[test]
    fn instances_starting_together_on_an_empty_directory_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let start = std::sync::Barrier::new(8);
        let started: Vec<(String, [u8; 32])> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        let keys = load_or_generate(dir.path(), Algorithm::EdDsa).unwrap();
                        let secret =
                            load_or_create_secret(&dir.path().join("refresh.secret")).unwrap();
                        (keys.signer().kid().to_owned(), secret)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|handle| handle.join().unwrap())
                .collect()
        });
        assert!(
            started.windows(2).all(|pair| pair[0] == pair[1]),
            "every instance signs with the same key and shares the secret: {:?}",
            started.iter().map(|(kid, _)| kid).collect::<Vec<_>>()
        );
        assert_eq!(list(dir.path()).unwrap().len(), 1, "one key file");
    }

    #[test]
    fn a_secret_file_is_created_once_and_validated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/refresh.secret");
        let created: [u8; 32] = load_or_create_secret(&path).unwrap();
        let loaded: [u8; 32] = load_or_create_secret(&path).unwrap();
        assert_eq!(created, loaded);
        let too_long = load_or_create_secret::<16>(&path).unwrap_err();
        assert!(
            too_long.to_string().contains("expected 16 bytes"),
            "{too_long}"
        );
        fs::write(&path, "not base64!").unwrap();
        assert!(matches!(
            load_or_create_secret::<32>(&path),
            Err(KeyError::InvalidFile { .. })
        ));
    }
}
