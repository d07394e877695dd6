//! Sealing what the store keeps of the keys: signing keys and the refresh-token secret are encrypted with
//! AES-256-GCM under the key-encryption secret (when one is configured), so that a copy of the database
//! alone cannot mint tokens.
//!
//! A sealed value is `0x01 ‖ nonce (12 bytes) ‖ ciphertext ‖ tag`, bound to its name (the `kid`, or the
//! secret's name) as associated data, so a sealed value moved to another row does not open. An unsealed
//! value is `0x00 ‖ plaintext`.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};

/// The length of the key-encryption secret ([`IssuerBuilder::key_encryption_secret`](crate::IssuerBuilder::key_encryption_secret)).
pub const KEY_ENCRYPTION_SECRET_LEN: usize = 32;

const PLAIN: u8 = 0;
const SEALED: u8 = 1;

/// Why a stored value could not be opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenError {
    /// Sealed, but no key-encryption secret is configured.
    NoSecret,
    /// The secret does not open it (another secret sealed it, or the record was altered), or it is not a
    /// value this service wrote.
    Invalid,
}

/// Seals and opens stored key material; without a key-encryption secret, it stores values as they are.
pub(crate) struct Sealer {
    key: Option<RandomizedNonceKey>,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("sealing", &self.key.is_some())
            .finish()
    }
}

impl Sealer {
    /// A sealer with `secret`, or one that stores values in the clear.
    pub(crate) fn new(secret: Option<&[u8; KEY_ENCRYPTION_SECRET_LEN]>) -> Sealer {
        Sealer {
            // AES-256 accepts any 32-byte key, so this cannot fail.
            key: secret.and_then(|secret| RandomizedNonceKey::new(&AES_256_GCM, secret).ok()),
        }
    }

    /// `plaintext` as the store keeps it, bound to `name`.
    pub(crate) fn seal(&self, name: &str, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let Some(key) = &self.key else {
            let mut stored = Vec::with_capacity(plaintext.len() + 1);
            stored.push(PLAIN);
            stored.extend_from_slice(plaintext);
            return Ok(stored);
        };
        let mut sealed = plaintext.to_vec();
        let nonce = key
            .seal_in_place_append_tag(Aad::from(name.as_bytes()), &mut sealed)
            .map_err(|_| SealError)?;
        let mut stored = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        stored.push(SEALED);
        stored.extend_from_slice(nonce.as_ref());
        stored.extend_from_slice(&sealed);
        Ok(stored)
    }

    /// The plaintext of a value [`Sealer::seal`] stored under `name`.
    pub(crate) fn open(&self, name: &str, stored: &[u8]) -> Result<Vec<u8>, OpenError> {
        match stored.split_first() {
            Some((&PLAIN, plaintext)) => Ok(plaintext.to_vec()),
            Some((&SEALED, rest)) => {
                let key = self.key.as_ref().ok_or(OpenError::NoSecret)?;
                let (nonce, sealed) = rest.split_at_checked(NONCE_LEN).ok_or(OpenError::Invalid)?;
                let nonce =
                    Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Invalid)?;
                let mut in_out = sealed.to_vec();
                let plaintext = key
                    .open_in_place(nonce, Aad::from(name.as_bytes()), &mut in_out)
                    .map_err(|_| OpenError::Invalid)?;
                Ok(plaintext.to_vec())
            }
            _ => Err(OpenError::Invalid),
        }
    }
}

/// The system's AEAD failed to seal (it does not, short of a broken crypto library).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealing a key for the store failed")]
pub(crate) struct SealError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_with_their_secret_and_name() {
        let sealer = Sealer::new(Some(&[7; 32]));
        let stored = sealer.seal("kid-1", b"private key").unwrap();
        assert_eq!(stored[0], SEALED);
        assert!(!stored.windows(11).any(|window| window == b"private key"));
        assert_eq!(sealer.open("kid-1", &stored).unwrap(), b"private key");
        assert_eq!(sealer.open("kid-2", &stored), Err(OpenError::Invalid));
        assert_eq!(
            Sealer::new(Some(&[8; 32])).open("kid-1", &stored),
            Err(OpenError::Invalid)
        );
        assert_eq!(
            Sealer::new(None).open("kid-1", &stored),
            Err(OpenError::NoSecret)
        );

        let plain = Sealer::new(None).seal("kid-1", b"key").unwrap();
        assert_eq!(plain, b"\0key");
        assert_eq!(
            sealer.open("kid-1", &plain).unwrap(),
            b"key",
            "plain values still open"
        );
        assert_eq!(sealer.open("kid-1", b""), Err(OpenError::Invalid));
    }
}
