//! Server nonces (RFC 9449 §8, §9), made without state: a nonce is its time slot and a MAC of it, so
//! every instance that shares the secret accepts every other's.

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::HeaderValue;

use crate::AuthRejection;

/// Bytes of the MAC a nonce carries: 128 bits cannot be guessed.
const TAG_LEN: usize = 16;
/// A slot number and its tag.
const NONCE_LEN: usize = 8 + TAG_LEN;

/// Makes and checks nonces; the current one changes every `rotation` seconds.
pub(crate) struct Nonces {
    key: hmac::Key,
    rotation: i64,
}

/// What a presented nonce is worth.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// The current nonce.
    Current,
    /// The one before: still accepted, and the answer hands over the current one.
    Previous(HeaderValue),
}

impl Nonces {
    /// Nonces made with `secret`, rotating every `rotation` seconds (at least 1).
    pub(crate) fn new(secret: &[u8], rotation: i64) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            rotation: rotation.max(1),
        }
    }

    /// Whether `presented` is a nonce of the current or the previous slot at `now`; otherwise the
    /// `use_dpop_nonce` answer carrying the current one.
    pub(crate) fn check(
        &self,
        presented: Option<&str>,
        now: i64,
    ) -> Result<Freshness, AuthRejection> {
        let slot = now.div_euclid(self.rotation);
        match presented.and_then(|nonce| self.slot_of(nonce)) {
            Some(presented) if presented == slot => Ok(Freshness::Current),
            Some(presented) if presented == slot - 1 => {
                let next = HeaderValue::from_str(&self.nonce(slot))
                    .expect("base64url is always a valid header value");
                Ok(Freshness::Previous(next))
            }
            _ => Err(AuthRejection::UseDpopNonce {
                nonce: self.nonce(slot).into(),
            }),
        }
    }

    /// The nonce of `slot`: base64url of the slot number and its truncated MAC, 32 characters.
    fn nonce(&self, slot: i64) -> String {
        let mut raw = [0; NONCE_LEN];
        raw[..8].copy_from_slice(&slot.to_be_bytes());
        raw[8..].copy_from_slice(&self.tag(slot).as_ref()[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The slot `nonce` was made for, if this server (or one sharing its secret) made it.
    fn slot_of(&self, nonce: &str) -> Option<i64> {
        let mut raw = [0; NONCE_LEN + 2];
        let len = URL_SAFE_NO_PAD.decode_slice(nonce, &mut raw).ok()?;
        if len != NONCE_LEN {
            return None;
        }
        let slot = i64::from_be_bytes(raw[..8].try_into().ok()?);
        verify_slices_are_equal(&raw[8..NONCE_LEN], &self.tag(slot).as_ref()[..TAG_LEN]).ok()?;
        Some(slot)
    }

    fn tag(&self, slot: i64) -> hmac::Tag {
        hmac::sign(&self.key, &slot.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nonce a `use_dpop_nonce` answer hands out.
    fn handed_out(outcome: Result<Freshness, AuthRejection>) -> String {
        match outcome {
            Err(AuthRejection::UseDpopNonce { nonce }) => nonce.to_string(),
            other => panic!("a nonce is handed out, not {other:?}"),
        }
    }

    #[test]
    fn nonces_rotate_and_the_previous_one_stays_accepted_once() {
        let nonces = Nonces::new(&[7; 32], 300);
        let first = handed_out(nonces.check(None, 1_000));
        assert_eq!(first.len(), 32);
        assert_eq!(nonces.check(Some(&first), 1_000), Ok(Freshness::Current));
        // One period later it is the previous nonce: accepted, and the next one is handed over.
        let Ok(Freshness::Previous(second)) = nonces.check(Some(&first), 1_300) else {
            panic!("the previous nonce is accepted");
        };
        let second = second.to_str().unwrap();
        assert_ne!(second, first);
        assert_eq!(nonces.check(Some(second), 1_300), Ok(Freshness::Current));
        // Two periods later it is stale.
        assert_ne!(handed_out(nonces.check(Some(&first), 1_600)), first);
    }

    #[test]
    fn forged_and_foreign_nonces_are_refused() {
        let nonces = Nonces::new(&[7; 32], 300);
        let foreign = handed_out(Nonces::new(&[8; 32], 300).check(None, 1_000));
        for presented in [foreign.as_str(), "", "short", &"A".repeat(32), "!!!!"] {
            assert!(
                nonces.check(Some(presented), 1_000).is_err(),
                "{presented:?}"
            );
        }
        // Instances sharing a secret accept each other's nonces.
        let twin = handed_out(Nonces::new(&[7; 32], 300).check(None, 1_000));
        assert_eq!(nonces.check(Some(&twin), 1_000), Ok(Freshness::Current));
    }
}
