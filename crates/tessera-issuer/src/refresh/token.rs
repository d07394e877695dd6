//! Refresh-token cryptography: minting, the keyed hash the store keeps, and the deterministic successor.
//!
//! A refresh token is 32 bytes, base64url without padding (43 characters). The first token of a family is
//! 32 bytes from the OS CSPRNG. Its successor at each rotation is
//! `HMAC-SHA256(successor_key, presented_token || salt)`, where `salt` is 32 fresh CSPRNG bytes drawn for
//! that rotation and kept in the family record. So every token mixes in 256 bits of fresh OS randomness,
//! and a client that retries with the token it just presented (a lost response, a second tab) gets the very
//! same successor back, although the store never held that successor: recomputing it needs the presented
//! token (held only by the client), the salt (in the store) and the server secret (in the key directory).
//! A copy of the database alone yields no usable token, nor does the database plus the secret.
//!
//! The store keys records by `HMAC-SHA256(hash_key, token)`; both HMAC keys derive from one 32-byte
//! server secret. Looking a hash up in an index is not a secret comparison (nobody can compute a hash
//! without the key, so timing reveals nothing about tokens); the one comparison against a secret, a
//! re-derived successor against the stored hash, is constant-time ([`TokenHash::ct_eq`]).

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

use tessera_core::random::{self, RandomError};

/// Bytes in a refresh token, a token hash, a rotation salt and the server secret.
pub(crate) const TOKEN_LEN: usize = 32;

/// A refresh token as the client holds it. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct RefreshToken([u8; TOKEN_LEN]);

impl RefreshToken {
    /// A fresh token from the OS CSPRNG.
    pub(crate) fn generate() -> Result<Self, RandomError> {
        random::bytes().map(RefreshToken)
    }

    /// Parses a presented token; `None` unless it is exactly 43 canonical base64url characters.
    pub(crate) fn parse(presented: &str) -> Option<Self> {
        let mut bytes = [0_u8; TOKEN_LEN];
        match URL_SAFE_NO_PAD.decode_slice(presented, &mut bytes) {
            Ok(TOKEN_LEN) => Some(RefreshToken(bytes)),
            _ => None,
        }
    }

    /// The wire form.
    pub(crate) fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// A 32-byte keyed hash the store keeps: built from stored bytes, read back, compared in constant time,
/// and shown by `Debug` as a prefix only.
macro_rules! stored_hash {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; TOKEN_LEN]);

        impl $name {
            /// A value from its stored bytes; `None` unless there are exactly 32.
            pub fn from_slice(bytes: &[u8]) -> Option<Self> {
                bytes.try_into().ok().map($name)
            }

            /// The stored bytes.
            pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
                &self.0
            }

            /// Constant-time equality, for comparing a recomputed value against a stored one.
            pub fn ct_eq(&self, other: &$name) -> bool {
                self.0.ct_eq(&other.0).into()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(
                    f,
                    "{}({:02x}{:02x}{:02x}{:02x}..)",
                    stringify!($name),
                    self.0[0],
                    self.0[1],
                    self.0[2],
                    self.0[3]
                )
            }
        }
    };
}

stored_hash!(
    /// The keyed hash of a refresh token: what a [`RefreshStore`](crate::store::RefreshStore) keys records
    /// by.
    ///
    /// Not a credential (the token cannot be recovered from it), but `Debug` still prints only a prefix.
    TokenHash
);

stored_hash!(
    /// The keyed hash of what identifies the request that rotated a refresh token: its client, its
    /// `User-Agent` and its DPoP key. A store serves a retry within the grace window only to a request
    /// with the same fingerprint.
    RequestFingerprint
);

/// The 32 random bytes drawn for one rotation; with the presented token and the server secret it
/// determines the successor token.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RotationSalt([u8; TOKEN_LEN]);

impl RotationSalt {
    /// Fresh salt from the OS CSPRNG.
    pub(crate) fn generate() -> Result<Self, RandomError> {
        random::bytes().map(RotationSalt)
    }

    /// A salt from its stored bytes; `None` unless there are exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(RotationSalt)
    }

    /// The stored bytes.
    pub fn as_bytes(&self) -> &[u8; TOKEN_LEN] {
        &self.0
    }
}

impl fmt::Debug for RotationSalt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RotationSalt(..)")
    }
}

/// What a [`RequestFingerprint`] is made of.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Requester<'a> {
    pub(crate) client_id: &'a str,
    pub(crate) user_agent: Option<&'a str>,
    /// The RFC 7638 thumbprint of the request's DPoP key, if it sent a proof.
    pub(crate) dpop_jkt: Option<&'a str>,
}

/// The server-side secret behind token hashes and successors. `Debug` never shows it.
#[derive(Clone)]
pub(crate) struct RefreshSecret {
    hash_key: hmac::Key,
    successor_key: hmac::Key,
    fingerprint_key: hmac::Key,
}

impl RefreshSecret {
    /// Derives the two HMAC keys from a 32-byte master secret.
    pub(crate) fn from_master(master: &[u8; TOKEN_LEN]) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, master);
        let derive =
            |label: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&master, label).as_ref());
        RefreshSecret {
            hash_key: derive(b"tessera refresh-token hash key v1"),
            successor_key: derive(b"tessera refresh-token successor key v1"),
            fingerprint_key: derive(b"tessera refresh-request fingerprint key v1"),
        }
    }

    /// The fingerprint of a request, each part length-prefixed so no two requests share one by
    /// shifting bytes between parts.
    pub(crate) fn fingerprint(&self, requester: &Requester<'_>) -> RequestFingerprint {
        let mut context = hmac::Context::with_key(&self.fingerprint_key);
        for part in [
            Some(requester.client_id),
            requester.user_agent,
            requester.dpop_jkt,
        ] {
            match part {
                Some(text) => {
                    context.update(&[1]);
                    context.update(&(text.len() as u64).to_be_bytes());
                    context.update(text.as_bytes());
                }
                None => context.update(&[0]),
            }
        }
        RequestFingerprint(to_array(context.sign()))
    }

    /// The keyed hash the store keeps for `token`.
    pub(crate) fn hash(&self, token: &RefreshToken) -> TokenHash {
        TokenHash(to_array(hmac::sign(&self.hash_key, &token.0)))
    }

    /// The successor of `presented` for the rotation that drew `salt`.
    pub(crate) fn successor(&self, presented: &RefreshToken, salt: &RotationSalt) -> RefreshToken {
        let mut context = hmac::Context::with_key(&self.successor_key);
        context.update(&presented.0);
        context.update(&salt.0);
        RefreshToken(to_array(context.sign()))
    }
}

impl fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshSecret(<redacted>)")
    }
}

fn to_array(tag: hmac::Tag) -> [u8; TOKEN_LEN] {
    let mut out = [0_u8; TOKEN_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_reject_malformed_input() {
        let token = RefreshToken::generate().unwrap();
        let wire = token.encode();
        assert_eq!(wire.len(), 43);
        assert_eq!(RefreshToken::parse(&wire).as_ref(), Some(&token));
        assert_eq!(RefreshToken::parse(&wire[..42]), None);
        assert_eq!(RefreshToken::parse(&format!("{wire}A")), None);
        assert_eq!(
            RefreshToken::parse(&wire.replace(|c: char| c.is_alphanumeric(), "+")),
            None
        );
        assert_eq!(format!("{token:?}"), "RefreshToken(<redacted>)");
    }

    #[test]
    fn successors_are_deterministic_per_salt_and_secret() {
        let secret = RefreshSecret::from_master(&[7; 32]);
        let token = RefreshToken::generate().unwrap();
        let salt = RotationSalt::generate().unwrap();
        let successor = secret.successor(&token, &salt);
        assert_eq!(successor, secret.successor(&token, &salt));
        assert_ne!(
            successor,
            secret.successor(&token, &RotationSalt::generate().unwrap())
        );
        assert_ne!(
            successor,
            RefreshSecret::from_master(&[8; 32]).successor(&token, &salt)
        );
        assert_ne!(secret.hash(&token), secret.hash(&successor));
        assert!(secret.hash(&token).ct_eq(&secret.hash(&token)));
    }

    #[test]
    fn fingerprints_tell_requests_apart_by_every_part() {
        let secret = RefreshSecret::from_master(&[7; 32]);
        let base = Requester {
            client_id: "web",
            user_agent: Some("app/1"),
            dpop_jkt: None,
        };
        let fingerprint = secret.fingerprint(&base);
        assert!(fingerprint.ct_eq(&secret.fingerprint(&base)));
        for other in [
            Requester {
                client_id: "web2",
                ..base
            },
            Requester {
                user_agent: None,
                ..base
            },
            Requester {
                user_agent: Some(""),
                ..base
            },
            Requester {
                dpop_jkt: Some("key"),
                ..base
            },
            Requester {
                client_id: "webapp/1",
                user_agent: None,
                dpop_jkt: None,
            },
        ] {
            assert!(!fingerprint.ct_eq(&secret.fingerprint(&other)), "{other:?}");
        }
        assert!(
            !fingerprint.ct_eq(&RefreshSecret::from_master(&[8; 32]).fingerprint(&base)),
            "keyed by the server secret"
        );
    }
}
