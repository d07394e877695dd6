//! Server-provided DPoP nonces (RFC 9449 §8): derived from the time and a key, so every instance that
//! shares the refresh-token secret hands out and accepts the same nonces without sharing any state.
//!
//! Time is cut into periods; the nonce of a period is `base64url(HMAC-SHA256(key, period)[..16])`. A
//! nonce is accepted during its period and the next, so it lives between one and two periods, and a new
//! one is handed out as soon as a period starts.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

/// Bytes of HMAC output a nonce keeps: 128 bits, 22 base64url characters.
const NONCE_BYTES: usize = 16;

/// The nonces of one token service.
pub(crate) struct Nonces {
    key: hmac::Key,
    /// Seconds per nonce.
    period: i64,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    /// Nonces keyed from the service's 32-byte master secret, a new one every `period` seconds (at least
    /// 1; the builder checks it).
    pub(crate) fn new(master: &[u8; 32], period: i64) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, master);
        let key = hmac::sign(&master, b"tessera dpop nonce key v1");
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            period: period.max(1),
        }
    }

    /// The nonce to hand out at `now`.
    pub(crate) fn current(&self, now: i64) -> String {
        self.of(now.div_euclid(self.period))
    }

    /// Whether `nonce` was handed out in the current period or the one before.
    pub(crate) fn accepts(&self, nonce: &str, now: i64) -> bool {
        let period = now.div_euclid(self.period);
        // Both compared, whichever matches, so the time taken says nothing about which one did.
        let current = self.of(period).as_bytes().ct_eq(nonce.as_bytes());
        let previous = self.of(period - 1).as_bytes().ct_eq(nonce.as_bytes());
        (current | previous).into()
    }

    fn of(&self, period: i64) -> String {
        let tag = hmac::sign(&self.key, &period.to_be_bytes());
        URL_SAFE_NO_PAD.encode(&tag.as_ref()[..NONCE_BYTES])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_lives_for_its_period_and_the_next() {
        let nonces = Nonces::new(&[7; 32], 300);
        let now = 1_800_000_100;
        let nonce = nonces.current(now);
        assert_eq!(nonce.len(), 22);
        assert!(
            nonce
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "NQCHAR, and safe in a header"
        );
        assert_eq!(
            nonces.current(now + 199),
            nonce,
            "the same until the period ends"
        );
        let next = nonces.current(now + 200);
        assert_ne!(next, nonce, "a new one each period");
        assert!(
            nonces.accepts(&nonce, now + 200),
            "still accepted in the next period"
        );
        assert!(!nonces.accepts(&nonce, now + 500), "but not after");
        assert!(nonces.accepts(&next, now + 200));
        assert!(!nonces.accepts("made-up", now));
        assert!(
            !Nonces::new(&[8; 32], 300).accepts(&nonce, now),
            "keyed by the service's secret"
        );
        assert_eq!(
            Nonces::new(&[7; 32], 300).current(now),
            nonce,
            "every instance sharing the secret agrees"
        );
    }
}
