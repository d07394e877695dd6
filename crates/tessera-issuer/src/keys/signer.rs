//! Signing with a key parsed once: `jsonwebtoken::encode` re-parses the private key on every call, which
//! for Ed25519 means re-deriving the public key and for RSA re-validating the whole key.

use std::fmt;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256,
};

use super::SigningAlgorithm;

/// A parsed private key, ready to sign JWS messages.
pub(crate) enum Signer {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Hmac(Box<hmac::Key>),
}

/// The crypto library refused to sign (an RSA or ECDSA failure; never expected with a valid key).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the crypto library failed to produce a signature")]
pub struct SignError;

impl Signer {
    /// Parses the key material as `jsonwebtoken` holds it: PKCS#8 DER for Ed25519 and P-256, PKCS#1 DER for
    /// RSA, the raw secret for HMAC.
    pub(crate) fn parse(algorithm: SigningAlgorithm, material: &[u8]) -> Result<Self, String> {
        let rejected = |error: aws_lc_rs::error::KeyRejected| error.to_string();
        Ok(match algorithm {
            SigningAlgorithm::EdDSA => Signer::Ed25519(
                Ed25519KeyPair::from_pkcs8_maybe_unchecked(material).map_err(rejected)?,
            ),
            SigningAlgorithm::Es256 => Signer::P256(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, material)
                    .map_err(rejected)?,
            ),
            SigningAlgorithm::Rs256 => {
                Signer::Rsa(RsaKeyPair::from_der(material).map_err(rejected)?)
            }
            SigningAlgorithm::Hs256 => {
                Signer::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, material)))
            }
        })
    }

    /// An HS256 signer.
    pub(crate) fn hmac(secret: &[u8]) -> Self {
        Signer::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret)))
    }

    /// The JWS signature of `message`.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match self {
            Signer::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
            Signer::P256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| SignError),
            Signer::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    message,
                    &mut signature,
                )
                .map_err(|_| SignError)?;
                Ok(signature)
            }
            Signer::Hmac(key) => Ok(hmac::sign(key, message).as_ref().to_vec()),
        }
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<private key>)")
    }
}
