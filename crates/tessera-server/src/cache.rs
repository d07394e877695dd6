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

use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lc_rs::digest;
use quick_cache::{DefaultHashBuilder, Equivalent};

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

/// A bounded map from presented token to verification result.
///
/// An entry is served only while the key that verified it is still live and the token is within its
/// lifetime (`nbf` to `exp`, with leeway); an entry failing either check is removed when looked up. Expired
/// entries nobody asks for again are swept out every `capacity / 2` inserts, so none outlives its token by
/// long, and the bound evicts the rest.
pub(crate) struct TokenCache {
    entries: quick_cache::sync::Cache<StoredKey, VerifiedToken>,
    /// Seeded at random per cache: hashes the signature characters before the digested ones.
    rest_hasher: DefaultHashBuilder,
    sweep_every: usize,
    inserts: AtomicUsize,
}

impl TokenCache {
    pub(crate) fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: quick_cache::sync::Cache::new(capacity),
            rest_hasher: DefaultHashBuilder::default(),
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

    #[test]
    fn a_key_matches_only_the_same_token() {
        let cache = TokenCache::new(16);
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
        let cache = TokenCache::new(16);
        let stored = cache
            .key(b"aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJl")
            .unwrap()
            .to_owned();
        assert_eq!(&*stored.signed_part, b"aGVhZGVy.cGF5bG9hZA");
    }
}
