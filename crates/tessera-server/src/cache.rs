//! The verified-token cache: skips signature and claims work for a token seen before.

use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::digest;

use crate::{KeySet, VerifiedToken};

/// SHA-256 of a token: the cache never holds the token itself, only this digest.
pub(crate) type TokenDigest = [u8; 32];

/// A bounded map from token digest to verification result.
///
/// An entry is served only while the key that verified it is still live and the token is within its
/// lifetime (`nbf` to `exp`, with leeway); an entry failing either check is removed when looked up. Expired
/// entries nobody asks for again are swept out every `capacity / 2` inserts, so none outlives its token by
/// long, and the bound evicts the rest.
pub(crate) struct TokenCache {
    entries: quick_cache::sync::Cache<TokenDigest, VerifiedToken>,
    sweep_every: usize,
    inserts: AtomicUsize,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: quick_cache::sync::Cache::new(capacity),
            sweep_every: (capacity / 2).max(16),
            inserts: AtomicUsize::new(0),
        }
    }

    pub(crate) fn digest(token: &str) -> TokenDigest {
        let mut out = [0; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        out
    }

    /// The cached verification of `digest`, if its key is still live and `within_lifetime` holds.
    pub(crate) fn get(
        &self,
        digest: &TokenDigest,
        keys: &KeySet,
        within_lifetime: impl FnOnce(&VerifiedToken) -> bool,
    ) -> Option<VerifiedToken> {
        let token = self.entries.get(digest)?;
        if keys.contains(token.key()) && within_lifetime(&token) {
            return Some(token);
        }
        self.entries.remove(digest);
        None
    }

    /// Caches `token`; every `sweep_every` inserts, first drops the entries `within_lifetime` rejects.
    pub(crate) fn insert(
        &self,
        digest: TokenDigest,
        token: VerifiedToken,
        within_lifetime: impl Fn(&VerifiedToken) -> bool,
    ) {
        if self.inserts.fetch_add(1, Ordering::Relaxed) % self.sweep_every == self.sweep_every - 1 {
            self.entries.retain(|_, cached| within_lifetime(cached));
        }
        self.entries.insert(digest, token);
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenCache")
            .field("len", &self.len())
            .field("capacity", &self.entries.capacity())
            .finish()
    }
}
