//! The proofs seen recently, so that a replayed one is refused (RFC 9449 §11.1), in bounded memory.

use std::hash::BuildHasher;
use std::time::Duration;

use quick_cache::DefaultHashBuilder;
use quick_cache::sync::GuardResult;

/// Proofs seen within their window, by a randomly seeded 64-bit hash of their key's thumbprint and `jti`
/// (never the proof itself), each with the second from which it may be forgotten.
pub(crate) struct ReplayCache {
    seen: quick_cache::sync::Cache<u64, i64>,
    hasher: DefaultHashBuilder,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            seen: quick_cache::sync::Cache::new(capacity),
            hasher: DefaultHashBuilder::default(),
        }
    }

    /// The key of a proof: its `jti` is unique per key (a `jti` alone could be reused by another client).
    pub(crate) fn key(&self, thumbprint: &str, jti: &str) -> u64 {
        self.hasher.hash_one((thumbprint, jti))
    }

    /// Records the proof `key` as seen until `until`; `false` when it was seen before and is still
    /// remembered, or when a request with the same proof is recording it at this very moment.
    pub(crate) fn first_use(&self, key: u64, until: i64, now: i64) -> bool {
        match self.seen.get_value_or_guard(&key, Some(Duration::ZERO)) {
            GuardResult::Guard(guard) => {
                let _ = guard.insert(until);
                true
            }
            // A proof past its window cannot pass the `iat` check again: an entry this old was left by
            // an earlier proof that happened to reuse the `jti`.
            GuardResult::Value(remembered) if remembered <= now => {
                self.seen.insert(key, until);
                true
            }
            GuardResult::Value(_) | GuardResult::Timeout => false,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

impl std::fmt::Debug for ReplayCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayCache")
            .field("len", &self.len())
            .field("capacity", &self.seen.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_proof_is_accepted_once_within_its_window() {
        let cache = ReplayCache::new(16);
        let key = cache.key("thumb", "jti-1");
        assert!(cache.first_use(key, 160, 100));
        assert!(!cache.first_use(key, 170, 110));
        assert!(cache.first_use(key, 230, 170), "forgotten after its window");
        assert!(cache.first_use(cache.key("other-thumb", "jti-1"), 160, 100));
        assert_ne!(cache.key("a", "bc"), cache.key("ab", "c"));
    }

    #[test]
    fn memory_stays_bounded() {
        let cache = ReplayCache::new(100);
        for index in 0..10_000 {
            let key = cache.key("thumb", &index.to_string());
            assert!(cache.first_use(key, 160, 100));
        }
        assert!(cache.len() <= 100, "{}", cache.len());
    }
}
