//! Server-provided DPoP nonces (RFC 9449 §8, §9), remembered per origin.

use std::sync::{Arc, Mutex, PoisonError};

use http::HeaderMap;
use reqwest::Url;
use tessera_core::header::DPOP_NONCE;

use crate::origin::Origin;

/// How many origins' nonces are kept. A client talks to its token endpoint and a few APIs: the oldest
/// entry makes room beyond that, so a stream of origins cannot grow the cache.
pub(crate) const MAX_ORIGINS: usize = 32;

/// The longest nonce kept; longer values are ignored. RFC 9449 bounds nothing, but a nonce is a short
/// opaque token (oidc-provider's are 43 characters).
pub(crate) const MAX_NONCE_LEN: usize = 1024;

/// The newest nonce each origin handed out, for the next proof sent there.
#[derive(Debug, Default)]
pub(crate) struct NonceCache {
    /// Oldest first; at most [`MAX_ORIGINS`] entries, one per origin.
    entries: Mutex<Vec<(Origin, Arc<str>)>>,
}

impl NonceCache {
    /// The nonce `url`'s origin handed out last, if any.
    pub(crate) fn get(&self, url: &Url) -> Option<Arc<str>> {
        let origin = Origin::of(url)?;
        self.lock()
            .iter()
            .find(|(known, _)| *known == origin)
            .map(|(_, nonce)| Arc::clone(nonce))
    }

    /// Keeps the `DPoP-Nonce` of an answer from `url`, if it carries a valid one; says whether it did.
    pub(crate) fn remember(&self, url: &Url, headers: &HeaderMap) -> bool {
        let (Some(origin), Some(nonce)) = (Origin::of(url), nonce_in(headers)) else {
            return false;
        };
        let mut entries = self.lock();
        entries.retain(|(known, _)| *known != origin);
        if entries.len() >= MAX_ORIGINS {
            entries.remove(0);
        }
        entries.push((origin, nonce.into()));
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Origin, Arc<str>)>> {
        // Every update replaces whole entries: a panic elsewhere cannot leave one half-written.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The `DPoP-Nonce` header's value if it is one valid nonce: `1*NQCHAR` (RFC 9449 §8.1), at most
/// [`MAX_NONCE_LEN`] characters.
pub(crate) fn nonce_in(headers: &HeaderMap) -> Option<&str> {
    let mut values = headers.get_all(DPOP_NONCE).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let nonce = value.to_str().ok()?;
    let nqchar = |byte: u8| matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E);
    (!nonce.is_empty() && nonce.len() <= MAX_NONCE_LEN && nonce.bytes().all(nqchar))
        .then_some(nonce)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn with_nonce(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_NONCE, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn nonces_are_kept_per_origin_and_replaced() {
        let cache = NonceCache::default();
        assert!(cache.remember(&url("https://a.example/token"), &with_nonce("n1")));
        assert!(cache.remember(&url("https://b.example/x"), &with_nonce("n2")));
        assert_eq!(
            cache.get(&url("https://a.example:443/other?q")).as_deref(),
            Some("n1")
        );
        assert_eq!(
            cache.get(&url("http://a.example/token")),
            None,
            "another scheme is another origin"
        );
        assert!(cache.remember(&url("https://a.example/"), &with_nonce("n3")));
        assert_eq!(cache.get(&url("https://a.example/")).as_deref(), Some("n3"));
        assert_eq!(cache.get(&url("https://b.example/")).as_deref(), Some("n2"));
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = NonceCache::default();
        for port in 0..(MAX_ORIGINS as u16 + 10) {
            let origin = url(&format!("https://a.example:{}/", 1000 + port));
            assert!(cache.remember(&origin, &with_nonce("n")));
        }
        assert_eq!(cache.lock().len(), MAX_ORIGINS);
        assert_eq!(
            cache.get(&url("https://a.example:1000/")),
            None,
            "the oldest made room"
        );
        assert!(
            cache
                .get(&url(&format!(
                    "https://a.example:{}/",
                    1000 + MAX_ORIGINS + 9
                )))
                .is_some()
        );
    }

    #[test]
    fn only_a_single_valid_nonce_is_taken() {
        assert_eq!(
            nonce_in(&with_nonce("eyJ7S_zG.1-~x")),
            Some("eyJ7S_zG.1-~x")
        );
        for bad in ["", "with space", "quote\"d", "back\\slash"] {
            let mut headers = HeaderMap::new();
            headers.insert(DPOP_NONCE, HeaderValue::from_str(bad).unwrap());
            assert_eq!(nonce_in(&headers), None, "{bad:?}");
        }
        let mut two = with_nonce("a");
        two.append(DPOP_NONCE, HeaderValue::from_static("b"));
        assert_eq!(nonce_in(&two), None, "two nonces: neither is the one");
        let long = "n".repeat(MAX_NONCE_LEN + 1);
        let mut headers = HeaderMap::new();
        headers.insert(DPOP_NONCE, HeaderValue::from_str(&long).unwrap());
        assert_eq!(nonce_in(&headers), None);
        assert!(!NonceCache::default().remember(&url("https://a.example/"), &HeaderMap::new()));
    }
}
