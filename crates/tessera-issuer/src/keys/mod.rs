//! The token service's keys: one signs access tokens, every one verifies them, the public ones are
//! published as the JWKS. [`SigningKeys::load_or_generate`] keeps them in a directory so a restart keeps
//! every issued token valid.

mod dir;

use std::path::Path;
use std::sync::Arc;

use tessera_core::jose::{Algorithm, Jwk, JwkSet, JwtKey, KeyError, KeySet, SigningKey};

pub(crate) use dir::load_or_create_secret;

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
