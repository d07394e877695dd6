//! Access-token signing keys: generation, PEM/JWK loading, persistence in a key directory, and the JWKS.
//!
//! A [`KeySet`] holds one [`SigningKey`] that signs new tokens and any number of [`VerifyingKey`]s that
//! still verify tokens signed before a key rotation. [`KeySet::load_or_generate`] keeps keys in a directory
//! so a restart keeps every issued token valid.

mod algorithm;
mod dir;
mod material;
mod signer;

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::JwkSet;

pub use algorithm::{SigningAlgorithm, UnknownAlgorithm};
pub(crate) use dir::load_or_create_secret;
pub use material::{MIN_HMAC_SECRET_LEN, SigningKey, VerifyingKey};
pub use signer::SignError;

use crate::random::RandomError;

/// What went wrong creating or loading a key. Messages name the key and say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The crypto library could not generate a key.
    #[error("could not generate a {algorithm} key")]
    Generate {
        /// The algorithm asked for.
        algorithm: SigningAlgorithm,
    },
    /// The OS random generator failed.
    #[error(transparent)]
    Random(#[from] RandomError),
    /// A PEM document is not a private key of the expected algorithm.
    #[error("key `{kid}` is not a valid {algorithm} private key in PEM (PKCS#8): {detail}")]
    InvalidPem {
        /// The key id.
        kid: String,
        /// The algorithm the key was loaded for.
        algorithm: SigningAlgorithm,
        /// What the parser said.
        detail: String,
    },
    /// An RSA key is too small to be safe.
    #[error("RSA key `{kid}` has {bits} bits; use at least 2048")]
    WeakRsaKey {
        /// The key id.
        kid: String,
        /// The modulus size found.
        bits: usize,
    },
    /// An HS256 secret is too short.
    #[error("HS256 secret `{kid}` has {len} bytes; use at least 32 random bytes")]
    HmacSecretTooShort {
        /// The key id.
        kid: String,
        /// The length found.
        len: usize,
    },
    /// A JWK document is unusable.
    #[error("invalid JWK: {detail}")]
    InvalidJwk {
        /// What is wrong with it.
        detail: String,
    },
    /// Two keys share a `kid`, so a token's header could not pick one.
    #[error("two keys have the kid `{0}`; every key needs its own kid")]
    DuplicateKid(String),
    /// Reading or writing the key directory failed.
    #[error("key file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file in the key directory has unusable content.
    #[error("key file {}: {detail}", path.display())]
    InvalidFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
}

/// The keys of a token service: one signs, all verify.
///
/// ```
/// use tessera_issuer::{KeySet, SigningAlgorithm, SigningKey};
///
/// let old = SigningKey::generate(SigningAlgorithm::EdDSA)?;
/// let keys = KeySet::new(SigningKey::generate(SigningAlgorithm::Es256)?)
///     .with_verifying_key(old.verifying_key().clone())?;
/// assert_eq!(keys.jwks().keys.len(), 2);
/// assert!(keys.find(old.kid()).is_some());
/// # Ok::<(), tessera_issuer::KeyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct KeySet {
    signer: SigningKey,
    verifying: Vec<VerifyingKey>,
}

impl KeySet {
    /// A set whose only key is `signer`.
    pub fn new(signer: SigningKey) -> Self {
        let verifying = vec![signer.verifying_key().clone()];
        KeySet { signer, verifying }
    }

    /// A set with one freshly generated key that lives only in memory: tokens die with the process.
    ///
    /// # Errors
    /// See [`SigningKey::generate`].
    pub fn generate(algorithm: SigningAlgorithm) -> Result<Self, KeyError> {
        SigningKey::generate(algorithm).map(KeySet::new)
    }

    /// Loads every key in `dir`, generating (and saving) a key for `algorithm` if none exists yet.
    ///
    /// The newest key of `algorithm` signs; every other key in the directory still verifies, so switching
    /// algorithms or adding a newer key keeps earlier tokens valid. Files are written with mode 0600.
    ///
    /// # Errors
    /// [`KeyError::Io`] if the directory cannot be read or written, and the load errors of the key types
    /// for files with bad content.
    pub fn load_or_generate(
        dir: impl AsRef<Path>,
        algorithm: SigningAlgorithm,
    ) -> Result<Self, KeyError> {
        dir::load_or_generate(dir.as_ref(), algorithm)
    }

    /// Adds a key that verifies but never signs (a retired key, or another instance's key).
    ///
    /// # Errors
    /// [`KeyError::DuplicateKid`] if the set already has a key with that `kid`.
    pub fn with_verifying_key(mut self, key: VerifyingKey) -> Result<Self, KeyError> {
        if self.find(key.kid()).is_some() {
            return Err(KeyError::DuplicateKid(key.kid().to_owned()));
        }
        self.verifying.push(key);
        Ok(self)
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// Every key that verifies, the signer's first.
    pub fn verifying_keys(&self) -> &[VerifyingKey] {
        &self.verifying
    }

    /// The verifying key with this `kid`.
    pub fn find(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.iter().find(|key| key.kid() == kid)
    }

    /// The public keys as a JWKS document (RFC 7517 §5). HS256 secrets are never included.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self
                .verifying
                .iter()
                .filter_map(|key| key.jwk().cloned())
                .collect(),
        }
    }
}
