//! The verified-token cache: skips the charset check, signature and claims work for a token seen before.
//!
//! # What an entry holds, and why a hit is exact
//! A JWS compact token is `header.payload.signature`. A lookup matches an entry only when three parts
//! agree: the signed part `header.payload` (compared byte for byte), the last 43 characters of the
//! signature (compared by SHA-256 digest), and the rest of the signature, if any (compared by a randomly
//! seeded 64-bit hash). 43 base64url characters carry 258 bits, so a hit means the presented bytes are
//! those of a token that passed verification unless SHA-256 collides, and no one can aim at an entry
//! without knowing the end of a cached token's signature: the part of a token that truncated logs drop.
//!
//! The cache never holds a usable token: the signed part is no secret beyond what the entry already holds
//! (the claims JSON it decodes to), and of the signature it keeps only hashes. Hashing at most 43
//! characters with SHA-256 (one block, whatever the algorithm; an RS256 signature has 342) is what keeps a
//! hit cheap.
//!
//! # What a hit answers
//! An entry is a token that passed every check but its lifetime, which depends on the time of the request.
//! A hit answers exactly what a full verification of the same bytes would answer now, without the
//! signature: the token while it is within its lifetime, [`AuthRejection::NotYetValid`](crate::AuthRejection::NotYetValid) before its `nbf`
//! (a host clock stepped back), and [`AuthRejection::Expired`](crate::AuthRejection::Expired) after its `exp`. So the 401 that tells a
//! client to refresh costs a hit, not a signature verification, for a retention window after expiry
//! (default [`DEFAULT_EXPIRED_TOKEN_RETENTION`](crate::DEFAULT_EXPIRED_TOKEN_RETENTION)): clients whose
//! token just expired, or a replayed one, are answered from memory. Past the window the entry is dropped,
//! on lookup or by the periodic sweep, and the token is verified in full again (and not cached: only tokens
//! that verify are). An entry whose key has left the live key set is never answered: it is dropped, and
//! the token verified against the live keys, which refuse it for what it is (unknown key, bad signature).

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::digest;
use quick_cache::{DefaultHashBuilder, Equivalent};

use crate::verify::Lifetime;
use crate::{KeySet, VerifiedToken};

/// How many trailing signature characters are compared by SHA-256 digest: 43 base64url characters are
/// 258 bits, the whole of an HS256 signature.
const DIGESTED_CHARS: usize = 43;

/// A presented token, split for a cache lookup (see the [module documentation](self)).
pub(crate) struct CacheKey<'t> {
    signature_digest: [u8; 32],
    signature_rest: u64,
    signed_part: &'t [u8],
}

impl CacheKey<'_> {
    fn to_owned(&self) -> StoredKey {
        StoredKey {
            signature_digest: self.signature_digest,
            signature_rest: self.signature_rest,
            signed_part: self.signed_part.into(),
        }
    }
}

/// What the map stores as the key of an entry: [`CacheKey`] with its signed part owned.
#[derive(PartialEq, Eq)]
struct StoredKey {
    signature_digest: [u8; 32],
    signature_rest: u64,
    signed_part: Box<[u8]>,
}

// `CacheKey` and `StoredKey` must hash alike: both hash the digest only (it already spreads the tokens
// evenly), and equality then compares the other parts as well.
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
        self.signature_digest == stored.signature_digest
            && self.signature_rest == stored.signature_rest
            && *self.signed_part == *stored.signed_part
    }
}

/// A bounded map from presented token to verification result (see the [module documentation](self)).
///
/// Entries past the retention window that nobody asks for again are swept out every `capacity / 2`
/// inserts, so none outlives its window by long, and the capacity bounds the rest.
pub(crate) struct TokenCache {
    entries: quick_cache::sync::Cache<StoredKey, VerifiedToken>,
    /// Seeded at random per cache: hashes the signature characters before the digested ones.
    rest_hasher: DefaultHashBuilder,
    /// How long after its `exp` (plus leeway) an entry still answers [`AuthRejection::Expired`](crate::AuthRejection::Expired), in seconds.
    retention: i64,
    sweep_every: usize,
    inserts: AtomicUsize,
}

/// What the cache answers for a presented token.
pub(crate) enum Cached {
    /// Verified before: what a full verification would hand over, its lifetime still to be checked.
    Hit(VerifiedToken),
    /// Not held (or no longer answerable): verify in full.
    Miss,
}

impl TokenCache {
    /// A cache of `capacity` tokens answering expired ones for `retention` seconds.
    pub(crate) fn new(capacity: usize, retention: i64) -> TokenCache {
        TokenCache {
            entries: quick_cache::sync::Cache::new(capacity),
            rest_hasher: DefaultHashBuilder::default(),
            retention,
            sweep_every: (capacity / 2).max(16),
            inserts: AtomicUsize::new(0),
        }
    }

    /// The key of `token`, or `None` when it has no `.` (not a JWS, so never cached).
    pub(crate) fn key<'t>(&self, token: &'t [u8]) -> Option<CacheKey<'t>> {
        let dot = memchr::memrchr(b'.', token)?;
        let (signed_part, signature) = (&token[..dot], &token[dot + 1..]);
        let (rest, digested) = signature.split_at(signature.len().saturating_sub(DIGESTED_CHARS));
        let mut signature_digest = [0; 32];
        signature_digest.copy_from_slice(digest::digest(&digest::SHA256, digested).as_ref());
        Some(CacheKey {
            signature_digest,
            signature_rest: self.rest_hasher.hash_one(rest),
            signed_part,
        })
    }

    /// The verified token `key` was made of, if the cache can stand in for a full verification at `now`:
    /// the entry exists, its key is still live, and it has not expired longer than the retention window
    /// ago. An entry failing either of the last two is removed. The caller checks the lifetime, as after a
    /// full verification.
    #[inline]
    pub(crate) fn get(
        &self,
        key: &CacheKey<'_>,
        keys: &KeySet,
        lifetime: Lifetime,
        now: i64,
    ) -> Cached {
        let Some(token) = self.entries.get(key) else {
            return Cached::Miss;
        };
        if !keys.contains(token.key()) {
            self.entries.remove(key);
            return Cached::Miss;
        }
        if !self.retains(&token, lifetime, now) {
            self.entries.remove(key);
            return Cached::Miss;
        }
        Cached::Hit(token)
    }

    /// Caches `token`; every `sweep_every` inserts, first drops the entries past their retention window.
    pub(crate) fn insert(
        &self,
        key: &CacheKey<'_>,
        token: VerifiedToken,
        lifetime: Lifetime,
        now: i64,
    ) {
        if self.inserts.fetch_add(1, Ordering::Relaxed) % self.sweep_every == self.sweep_every - 1 {
            self.entries
                .retain(|_, cached| self.retains(cached, lifetime, now));
        }
        self.entries.insert(key.to_owned(), token);
    }

    /// Whether `token` may still be answered at `now`: until the retention window after its expiry ends.
    fn retains(&self, token: &VerifiedToken, lifetime: Lifetime, now: i64) -> bool {
        now < lifetime
            .end(token.expires_at())
            .saturating_add(self.retention)
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
            .field("retention", &self.retention)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_matches_only_the_same_token() {
        let cache = TokenCache::new(16, 600);
        // A signature longer than the digested part, so that every part of the key is exercised.
        let signature = "A".repeat(20) + &"B".repeat(DIGESTED_CHARS);
        let token = format!("aGVhZGVy.cGF5bG9hZA.{signature}");
        let original = cache.key(token.as_bytes()).unwrap().to_owned();
        assert!(cache.key(token.as_bytes()).unwrap().equivalent(&original));
        for position in 0..token.len() {
            let mut other = token.clone().into_bytes();
            other[position] = if other[position] == b'x' { b'y' } else { b'x' };
            let key = cache.key(&other).unwrap();
            assert!(!key.equivalent(&original), "a change at {position} matched");
        }
        for other in [
            format!("{token}A"),
            format!("A{token}"),
            token.replacen('.', "", 1),
        ] {
            let key = cache.key(other.as_bytes()).unwrap();
            assert!(!key.equivalent(&original), "{other} matched");
        }
        assert!(cache.key(b"no-dot-at-all").is_none());
    }

    #[test]
    fn no_signature_character_is_stored() {
        let cache = TokenCache::new(16, 600);
        let stored = cache
            .key(b"aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJl")
            .unwrap()
            .to_owned();
        assert_eq!(&*stored.signed_part, b"aGVhZGVy.cGF5bG9hZA");
    }
}
