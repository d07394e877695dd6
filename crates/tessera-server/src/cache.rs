//! The verified-token cache: skips the charset check, signature and claims work for a token seen before.
//!
//! # What an entry holds, and why a hit is exact
//! A JWS compact token is `header.payload.signature`. An entry is keyed by the SHA-256 of the signature
//! segment together with the signed part (`header.payload`) itself, and a lookup matches only when both are
//! equal, so a hit means the presented bytes are exactly those of a token that passed verification (up to a
//! SHA-256 collision). The signed part is no secret beyond what the entry already holds (the claims JSON it
//! decodes to); the signature, without which the token cannot be presented, is kept only as a digest, so
//! the cache never holds a usable token.
//!
//! Hashing only the signature segment (one SHA-256 block for HS256, two for ES256 and EdDSA) instead of the
//! whole token is what keeps a hit cheap; comparing the signed part is a `memcmp`. Timing of that compare
//! tells nothing to someone without the signature: they never get past the digest.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::digest;
use quick_cache::Equivalent;

use crate::{KeySet, VerifiedToken};

/// A presented token, split for a cache lookup: the digest of its signature and its signed part.
pub(crate) struct CacheKey<'t> {
    signature_digest: [u8; 32],
    signed_part: &'t [u8],
}

impl<'t> CacheKey<'t> {
    /// The key of `token`, or `None` when it has no `.` (not a JWS, so never cached).
    pub(crate) fn of(token: &'t [u8]) -> Option<CacheKey<'t>> {
        let dot = token.iter().rposition(|&byte| byte == b'.')?;
        let (signed_part, signature) = (&token[..dot], &token[dot + 1..]);
        let mut signature_digest = [0; 32];
        signature_digest.copy_from_slice(digest::digest(&digest::SHA256, signature).as_ref());
        Some(CacheKey {
            signature_digest,
            signed_part,
        })
    }

    fn to_owned(&self) -> StoredKey {
        StoredKey {
            signature_digest: self.signature_digest,
            signed_part: self.signed_part.into(),
        }
    }
}

/// What the map stores as the key of an entry: [`CacheKey`] with its signed part owned.
#[derive(PartialEq, Eq)]
struct StoredKey {
    signature_digest: [u8; 32],
    signed_part: Box<[u8]>,
}

// `CacheKey` and `StoredKey` must hash alike: both hash the digest only (it already spreads the tokens
// evenly), and equality then compares the signed part as well.
impl Hash for StoredKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.signature_digest.hash(state);
    }
}

impl Hash for CacheKey<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.signature_digest.hash(state);
    }
}

impl Equivalent<StoredKey> for CacheKey<'_> {
    fn equivalent(&self, stored: &StoredKey) -> bool {
        self.signature_digest == stored.signature_digest && *self.signed_part == *stored.signed_part
    }
}

/// A bounded map from presented token to verification result.
///
/// An entry is served only while the key that verified it is still live and the token is within its
/// lifetime (`nbf` to `exp`, with leeway); an entry failing either check is removed when looked up. Expired
/// entries nobody asks for again are swept out every `capacity / 2` inserts, so none outlives its token by
/// long, and the bound evicts the rest.
pub(crate) struct TokenCache {
    entries: quick_cache::sync::Cache<StoredKey, VerifiedToken>,
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

    /// The cached verification of the token `key` was made of, if its key is still live and
    /// `within_lifetime` holds.
    pub(crate) fn get(
        &self,
        key: &CacheKey<'_>,
        keys: &KeySet,
        within_lifetime: impl FnOnce(&VerifiedToken) -> bool,
    ) -> Option<VerifiedToken> {
        let token = self.entries.get(key)?;
        if keys.contains(token.key()) && within_lifetime(&token) {
            return Some(token);
        }
        self.entries.remove(key);
        None
    }

    /// Caches `token`; every `sweep_every` inserts, first drops the entries `within_lifetime` rejects.
    pub(crate) fn insert(
        &self,
        key: &CacheKey<'_>,
        token: VerifiedToken,
        within_lifetime: impl Fn(&VerifiedToken) -> bool,
    ) {
        if self.inserts.fetch_add(1, Ordering::Relaxed) % self.sweep_every == self.sweep_every - 1 {
            self.entries.retain(|_, cached| within_lifetime(cached));
        }
        self.entries.insert(key.to_owned(), token);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(token: &str) -> StoredKey {
        CacheKey::of(token.as_bytes())
            .map(|key| key.to_owned())
            .unwrap()
    }

    #[test]
    fn a_key_matches_only_the_same_token() {
        let original = stored("aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJl");
        let same = CacheKey::of(b"aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJl").unwrap();
        assert!(same.equivalent(&original));
        for other in [
            "aGVhZGVy.cGF5bG9hZB.c2lnbmF0dXJl", // payload changed, same signature
            "aGVhZGVz.cGF5bG9hZA.c2lnbmF0dXJl", // header changed, same signature
            "aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJm", // signature changed
            "aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJlAA",
            "aGVhZGVycGF5bG9hZA.c2lnbmF0dXJl",
            "aGVhZGVy.cGF5bG9hZAc2lnbmF0dXJl.",
        ] {
            let key = CacheKey::of(other.as_bytes()).unwrap();
            assert!(!key.equivalent(&original), "{other} matched");
        }
        assert!(CacheKey::of(b"no-dot-at-all").is_none());
    }

    #[test]
    fn the_signature_is_not_stored() {
        let key = stored("aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJl");
        assert_eq!(&*key.signed_part, b"aGVhZGVy.cGF5bG9hZA");
        assert!(!key.signed_part.windows(4).any(|window| window == b"c2ln"));
    }
}
