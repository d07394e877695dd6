//! Signing keys and shared secrets as a store keeps them, so that every instance of the token service signs
//! with, and publishes, the same keys.

use std::fmt;

use tessera_core::jose::Algorithm;

/// A signing key in the store.
///
/// The store holds `material` as opaque bytes: the token service seals it (AES-256-GCM under the key
/// encryption secret, when one is configured) before it gets here.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The key id (`kid`), unique.
    pub kid: String,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// The private key (or HMAC secret), as the token service encoded it.
    pub material: Vec<u8>,
    /// When it was added; it is published from then on.
    pub created_at: i64,
    /// When it starts signing: the signer at any moment is the key with the latest `active_from` not
    /// after it.
    pub active_from: i64,
}

impl fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("active_from", &self.active_from)
            .finish_non_exhaustive()
    }
}
