use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, VerificationAlgorithm,
};

use super::{Algorithm, KeyError};

/// The shortest HMAC secret accepted: 256 bits, the output size of SHA-256 (RFC 7518 §3.2).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

enum Verifier {
    Hmac(Box<hmac::Key>),
    Public(ParsedPublicKey),
}

/// One verification key, bound to one [`Algorithm`] and optionally named by a `kid`.
///
/// Keys are parsed once here; verifying a token never re-parses key material. The `Debug` output never shows
/// key bytes.
///
/// ```
/// use tessera_core::jose::{Algorithm, JwtKey};
///
/// let hmac = JwtKey::hmac(b"0123456789abcdef0123456789abcdef")?.with_kid("2026-11");
/// assert_eq!(hmac.algorithm(), Algorithm::Hs256);
/// assert_eq!(hmac.kid(), Some("2026-11"));
/// assert!(JwtKey::hmac(b"too short").is_err());
/// # Ok::<(), tessera_core::jose::KeyError>(())
/// ```
pub struct JwtKey {
    kid: Option<Box<str>>,
    algorithm: Algorithm,
    verifier: Verifier,
    fingerprint: [u8; 32],
}

impl JwtKey {
    /// An HS256 key from a shared secret of at least [`MIN_HMAC_SECRET_LEN`] bytes.
    ///
    /// # Errors
    /// [`KeyError::HmacSecretTooShort`] for a shorter secret.
    pub fn hmac(secret: impl AsRef<[u8]>) -> Result<JwtKey, KeyError> {
        let secret = secret.as_ref();
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(KeyError::HmacSecretTooShort { len: secret.len() });
        }
        Ok(JwtKey {
            kid: None,
            algorithm: Algorithm::Hs256,
            verifier: Verifier::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
            fingerprint: fingerprint(Algorithm::Hs256, secret),
        })
    }

    /// A public key from PEM text (`-----BEGIN PUBLIC KEY-----`, or `BEGIN RSA PUBLIC KEY` for RSA), for
    /// one of the asymmetric algorithms.
    ///
    /// # Errors
    /// [`KeyError::WrongKeyKind`] for [`Algorithm::Hs256`], [`KeyError::InvalidPem`] when the PEM does not
    /// hold a public key of the algorithm's family, [`KeyError::Rejected`] when the key does not fit the
    /// algorithm (e.g. a P-384 key for ES256).
    pub fn from_pem(algorithm: Algorithm, pem: impl AsRef<[u8]>) -> Result<JwtKey, KeyError> {
        use jsonwebtoken::DecodingKey;
        let pem = pem.as_ref();
        let decoded = match algorithm {
            Algorithm::Hs256 => {
                return Err(KeyError::WrongKeyKind {
                    algorithm,
                    source_kind: "a PEM public key",
                });
            }
            Algorithm::Rs256 | Algorithm::Ps256 => DecodingKey::from_rsa_pem(pem),
            Algorithm::Es256 | Algorithm::Es384 => DecodingKey::from_ec_pem(pem),
            Algorithm::EdDsa => DecodingKey::from_ed_pem(pem),
        };
        let invalid = |error: jsonwebtoken::errors::Error| KeyError::InvalidPem {
            kid: None,
            algorithm,
            reason: error.to_string(),
        };
        let decoded = decoded.map_err(invalid)?;
        let bytes = decoded.try_get_as_bytes().map_err(invalid)?;
        JwtKey::from_public_bytes(algorithm, bytes)
    }

    /// A public key from its raw encoding: an RSA `RSAPublicKey` DER (PKCS#1), an uncompressed EC point
    /// (`0x04 || x || y`), or the 32 bytes of an Ed25519 key.
    ///
    /// # Errors
    /// [`KeyError::WrongKeyKind`] for [`Algorithm::Hs256`], [`KeyError::Rejected`] when the bytes are not
    /// a valid key for the algorithm.
    pub fn from_public_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<JwtKey, KeyError> {
        let verification: &'static dyn VerificationAlgorithm = match algorithm {
            Algorithm::Hs256 => {
                return Err(KeyError::WrongKeyKind {
                    algorithm,
                    source_kind: "public key bytes",
                });
            }
            Algorithm::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
            Algorithm::Ps256 => &RSA_PSS_2048_8192_SHA256,
            Algorithm::Es256 => &ECDSA_P256_SHA256_FIXED,
            Algorithm::Es384 => &ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDsa => &ED25519,
        };
        let parsed =
            ParsedPublicKey::new(verification, bytes).map_err(|rejected| KeyError::Rejected {
                algorithm,
                reason: rejected.to_string(),
            })?;
        Ok(JwtKey {
            kid: None,
            algorithm,
            verifier: Verifier::Public(parsed),
            fingerprint: fingerprint(algorithm, bytes),
        })
    }

    /// The same key, named `kid`: only tokens whose header carries this `kid` select it.
    #[must_use]
    pub fn with_kid(mut self, kid: impl Into<String>) -> JwtKey {
        self.kid = Some(kid.into().into_boxed_str());
        self
    }

    /// The key's `kid`, if it has one.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The one algorithm this key verifies.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// Whether `signature` is a valid signature of `message` under this key, compared in constant time for
    /// HMAC.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verifier::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
            Verifier::Public(key) => key.verify_sig(message, signature).is_ok(),
        }
    }

    /// Whether both keys hold the same material for the same algorithm and name.
    pub fn same_key(&self, other: &JwtKey) -> bool {
        self.algorithm == other.algorithm
            && self.kid == other.kid
            && self.fingerprint == other.fingerprint
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn fingerprint(algorithm: Algorithm, material: &[u8]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    context.update(algorithm.as_str().as_bytes());
    context.update(&[0]);
    context.update(material);
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_secret_length_is_enforced() {
        assert!(matches!(
            JwtKey::hmac([7; 31]),
            Err(KeyError::HmacSecretTooShort { len: 31 })
        ));
        assert!(JwtKey::hmac([7; 32]).is_ok());
    }

    #[test]
    fn hmac_cannot_come_from_pem() {
        assert!(matches!(
            JwtKey::from_pem(Algorithm::Hs256, "x"),
            Err(KeyError::WrongKeyKind { .. })
        ));
    }

    #[test]
    fn garbage_pem_is_rejected_with_the_algorithm_named() {
        let error = JwtKey::from_pem(Algorithm::Es256, "not a pem").unwrap_err();
        assert!(error.to_string().contains("ES256"), "{error}");
    }

    #[test]
    fn debug_shows_no_material() {
        let key = JwtKey::hmac(b"a-very-secret-value-of-32-bytes!!")
            .unwrap()
            .with_kid("k");
        let debug = format!("{key:?}");
        assert!(!debug.contains("secret"), "{debug}");
        assert!(debug.contains("Hs256"));
    }
}
