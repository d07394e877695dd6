//! The token service's keys: one signs access tokens, every one verifies them, the public ones are
//! published as the JWKS.
//!
//! Where they live: given as they are ([`SigningKeys`]), in a directory ([`SigningKeys::load_or_generate`],
//! `dir`), or in the store, shared by every instance of the service (`stored`, sealed by `sealing`).
//! Whatever their source, the service reads them through [`LiveKeys`], which a key rotation replaces while
//! it runs.

mod dir;
mod sealing;
mod stored;

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tessera_core::jose::{Algorithm, Jwk, JwkSet, JwtKey, KeyError, KeySet, SigningKey};
use tessera_server::KeyRing;

pub(crate) use dir::load_or_create_secret;
pub use sealing::KEY_ENCRYPTION_SECRET_LEN;
pub(crate) use sealing::Sealer;
pub use stored::{KeyState, SigningKeyStatus, StoredKeyError};
pub(crate) use stored::{KeyVault, StoredKeys};

/// The keys of a token service: one signs, all verify.
///
/// ```
/// use tessera_issuer::SigningKeys;
/// use tessera_issuer::jose::{Algorithm, SigningKey};
///
/// let old = SigningKey::generate(Algorithm::EdDsa)?;
/// let keys = SigningKeys::new(SigningKey::generate(Algorithm::Es256)?)?.with_retired(&old)?;
/// assert_eq!(keys.jwks().keys.len(), 2);
/// assert!(keys.verifying().get(old.kid()).is_some());
/// # Ok::<(), tessera_issuer::jose::KeyError>(())
/// ```
#[derive(Debug, Clone)]
pub struct SigningKeys {
    signer: SigningKey,
    verifying: KeySet,
    published: JwkSet,
}

impl SigningKeys {
    /// A set whose only key is `signer`.
    ///
    /// # Errors
    /// Never for a single key; the signature matches the other constructors.
    pub fn new(signer: SigningKey) -> Result<SigningKeys, KeyError> {
        let verifying = KeySet::from_shared(vec![Arc::clone(signer.verifying_key())])?;
        let published = JwkSet {
            keys: signer.public_jwk().cloned().into_iter().collect(),
        };
        Ok(SigningKeys {
            signer,
            verifying,
            published,
        })
    }

    /// A set with one freshly generated key that lives only in memory: tokens die with the process.
    ///
    /// # Errors
    /// See [`SigningKey::generate`].
    pub fn generate(algorithm: Algorithm) -> Result<SigningKeys, KeyError> {
        SigningKeys::new(SigningKey::generate(algorithm)?)
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
        algorithm: Algorithm,
    ) -> Result<SigningKeys, KeyError> {
        dir::load_or_generate(dir.as_ref(), algorithm)
    }

    /// Adds a key that verifies but no longer signs (a retired key); its public half is published.
    ///
    /// # Errors
    /// [`KeyError::DuplicateKid`] if the set already has a key with that `kid`.
    pub fn with_retired(self, key: &SigningKey) -> Result<SigningKeys, KeyError> {
        self.with_verifying(Arc::clone(key.verifying_key()), key.public_jwk().cloned())
    }

    /// Adds a public key that verifies and is published but that this service cannot sign with (another
    /// instance's key, say).
    ///
    /// # Errors
    /// [`KeyError::InvalidJwk`] for an unusable JWK, [`KeyError::DuplicateKid`] for a `kid` already present.
    pub fn with_public_key(self, jwk: Jwk) -> Result<SigningKeys, KeyError> {
        let key = jwk.to_key()?;
        self.with_verifying(Arc::new(key), Some(jwk))
    }

    fn with_verifying(
        mut self,
        key: Arc<JwtKey>,
        jwk: Option<Jwk>,
    ) -> Result<SigningKeys, KeyError> {
        let mut keys: Vec<_> = self.verifying.shared().cloned().collect();
        keys.push(key);
        self.verifying = KeySet::from_shared(keys)?;
        self.published.keys.extend(jwk);
        Ok(self)
    }

    /// The key that signs new tokens.
    pub fn signer(&self) -> &SigningKey {
        &self.signer
    }

    /// Every key that verifies, the signer's first.
    pub fn verifying(&self) -> &KeySet {
        &self.verifying
    }

    /// The public keys as a JWKS document (RFC 7517 §5). HS256 secrets are never included.
    pub fn jwks(&self) -> &JwkSet {
        &self.published
    }
}

/// The keys in use, replaced as a whole when keys rotate: the signer and key set of every access token
/// minted from now on, and the [`KeyRing`] the service's own `JwtAuthLayer` verifies with.
#[derive(Debug, Clone)]
pub(crate) struct LiveKeys {
    current: Arc<ArcSwap<SigningKeys>>,
    ring: KeyRing,
}

impl LiveKeys {
    /// The keys now.
    pub(crate) fn current(&self) -> Arc<SigningKeys> {
        self.current.load_full()
    }

    /// Makes `keys` the keys in use, unless they are the same keys with the same signer.
    pub(crate) fn replace(&self, keys: SigningKeys) {
        let current = self.current.load();
        let same = current.signer().kid() == keys.signer().kid()
            && current.verifying().len() == keys.verifying().len()
            && keys.verifying().shared().all(|key| {
                key.kid()
                    .is_some_and(|kid| current.verifying().get(kid).is_some())
            });
        if same {
            return;
        }
        drop(current);
        tracing::info!(
            signer = keys.signer().kid(),
            verifying = keys.verifying().len(),
            "access-token keys changed"
        );
        self.ring.replace(keys.verifying().clone());
        self.current.store(Arc::new(keys));
    }

    /// The verifying keys, kept current, for a `JwtAuthLayer`.
    pub(crate) fn ring(&self) -> &KeyRing {
        &self.ring
    }
}

impl From<SigningKeys> for LiveKeys {
    fn from(keys: SigningKeys) -> LiveKeys {
        LiveKeys {
            ring: KeyRing::new(keys.verifying().clone()),
            current: Arc::new(ArcSwap::from_pointee(keys)),
        }
    }
}

/// A fresh `kid`: `<alg>-<created>-<random>`, e.g. `eddsa-1800000000-Zk3xQ8`.
fn new_kid(algorithm: Algorithm, created: i64) -> Result<String, KeyError> {
    Ok(format!(
        "{}-{created:010}-{}",
        algorithm.as_str().to_ascii_lowercase(),
        tessera_core::random::id::<6>()?
    ))
}

/// A key's private half as bytes: the PKCS#8 PEM of an asymmetric key, the raw secret of an HMAC key.
fn encode_material(key: &SigningKey) -> Result<Vec<u8>, KeyError> {
    match (key.to_pkcs8_pem()?, key.hmac_secret()) {
        (Some(pem), _) => Ok(pem.into_bytes()),
        (None, Some(secret)) => Ok(secret.to_vec()),
        (None, None) => Err(KeyError::Generate {
            algorithm: key.algorithm(),
        }),
    }
}

/// The key [`encode_material`] encoded.
fn decode_material(
    kid: &str,
    algorithm: Algorithm,
    material: &[u8],
) -> Result<SigningKey, KeyError> {
    if algorithm.is_symmetric() {
        SigningKey::from_hmac_secret(kid, material)
    } else {
        let pem = std::str::from_utf8(material).map_err(|_| KeyError::InvalidPem {
            kid: Some(kid.to_owned()),
            algorithm,
            reason: "the stored material is not UTF-8 text".into(),
        })?;
        SigningKey::from_pem(kid, algorithm, pem)
    }
}

/// The status of keys not kept in the store: the signer, then each other key as verifying.
pub(crate) fn statuses_of(keys: &SigningKeys) -> Vec<SigningKeyStatus> {
    let signer = keys.signer().kid();
    let status = |kid: &str, algorithm, state| SigningKeyStatus {
        kid: kid.to_owned(),
        algorithm,
        created_at: 0,
        active_from: 0,
        state,
    };
    std::iter::once(status(signer, keys.signer().algorithm(), KeyState::Signing))
        .chain(keys.verifying().shared().filter_map(|key| {
            let kid = key.kid()?;
            let algorithm = key.algorithms().next()?;
            (kid != signer).then(|| status(kid, algorithm, KeyState::Verifying))
        }))
        .collect()
}
