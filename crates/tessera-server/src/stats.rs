//! Counters a layer keeps, for metrics and for tests.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of a layer's counters (see [`JwtAuthLayer::stats`](crate::JwtAuthLayer::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthStats {
    /// Requests let through with a verified token.
    pub authenticated: u64,
    /// Requests refused, for any reason.
    pub rejected: u64,
    /// Tokens answered from the verified-token cache.
    pub cache_hits: u64,
    /// Tokens the cache did not hold (verified in full).
    pub cache_misses: u64,
    /// Tokens the cache holds now.
    pub cache_entries: u64,
    /// Fetches of the remote JWKS that completed, successfully or not.
    pub jwks_fetches: u64,
    /// Fetches of the remote JWKS that failed (the last good keys stayed in use).
    pub jwks_fetch_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) authenticated: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
}

impl Counters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> AuthStats {
        AuthStats {
            authenticated: self.authenticated.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cache_misses: self.cache_misses.load(Ordering::Relaxed),
            cache_entries: 0,
            jwks_fetches: 0,
            jwks_fetch_failures: 0,
        }
    }
}
