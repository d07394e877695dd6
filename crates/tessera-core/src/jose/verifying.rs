use std::fmt;

use aws_lc_rs::digest;
use aws_lc_rs::hmac;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P384_SHA384_FIXED, ED25519, ParsedPublicKey,
    RSA_PKCS1_2048_8192_SHA256, RSA_PSS_2048_8192_SHA256, VerificationAlgorithm,
};

use super::algorithm::AlgorithmSet;
use super::{Algorithm, KeyError};

/// The shortest HMAC secret accepted: 256 bits, the output size of SHA-256 (RFC 7518 §3.2).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

enum Verifier {
    Hmac(Box<hmac::Key>),
    /// One parsed key per way of checking a signature: an RSA key of the RS256/PS256 family holds two.
    Public(Box<[PublicVerifier]>),
}

struct PublicVerifier {
    /// The `alg` names this parsed key verifies (EdDSA and Ed25519 are one check).
    algorithms: AlgorithmSet,
    key: ParsedPublicKey,
}

/// One verification key, bound to the algorithms it may verify and optionally named by a `kid`.
///
/// A key loaded for one [`Algorithm`] (a PEM, a JWK with `alg`) verifies that algorithm only. A JWK
/// without `alg` verifies its key type's family and nothing across families: an RSA key RS256 and PS256,
/// an Ed25519 key EdDSA and Ed25519, an EC key its curve's one algorithm.
///
/// Keys are parsed once here; verifying a token never re-parses key material. The `Debug` output never shows
/// key bytes.
///
/// ```
/// use tessera_core::jose::{Algorithm, JwtKey};
///
/// let hmac = JwtKey::hmac(b"0123456789abcdef0123456789abcdef")?.with_kid("2026-11");
/// assert!(hmac.accepts(Algorithm::Hs256) && !hmac.accepts(Algorithm::Rs256));
/// assert_eq!(hmac.kid(), Some("2026-11"));
/// assert!(JwtKey::hmac(b"too short").is_err());
/// # Ok::<(), tessera_core::jose::KeyError>(())
/// ```
pub struct JwtKey {
    kid: Option<Box<str>>,
    algorithms: AlgorithmSet,
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
        let algorithms = AlgorithmSet::one(Algorithm::Hs256);
        Ok(JwtKey {
            kid: None,
            algorithms,
            verifier: Verifier::Hmac(Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret))),
            fingerprint: fingerprint(algorithms, secret),
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
            Algorithm::EdDsa | Algorithm::Ed25519 => DecodingKey::from_ed_pem(pem),
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

    /// A public key for `algorithm` only, from its raw encoding: an RSA `RSAPublicKey` DER (PKCS#1), an
    /// uncompressed EC point (`0x04 || x || y`), the 32 bytes of an Ed25519 key, or a DER
    /// `SubjectPublicKeyInfo` (RFC 5280) of any of them.
    ///
    /// # Errors
    /// [`KeyError::WrongKeyKind`] for [`Algorithm::Hs256`], [`KeyError::Rejected`] when the bytes are not
    /// a valid key for the algorithm.
    pub fn from_public_bytes(algorithm: Algorithm, bytes: &[u8]) -> Result<JwtKey, KeyError> {
        JwtKey::public(AlgorithmSet::one(algorithm), bytes)
    }

    /// A public key verifying every algorithm of `algorithms`, all of one key type.
    pub(crate) fn public(algorithms: AlgorithmSet, bytes: &[u8]) -> Result<JwtKey, KeyError> {
        let mut verifiers: Vec<PublicVerifier> = Vec::with_capacity(2);
        for algorithm in algorithms.iter() {
            let Some(method) = verification(algorithm) else {
                return Err(KeyError::WrongKeyKind {
                    algorithm,
                    source_kind: "public key bytes",
                });
            };
            if let Some(shared) = verifiers
                .iter_mut()
                .find(|verifier| std::ptr::addr_eq(verifier.key.algorithm(), method))
            {
                shared.algorithms = shared.algorithms.with(algorithm);
                continue;
            }
            let key =
                ParsedPublicKey::new(method, bytes).map_err(|rejected| KeyError::Rejected {
                    algorithm,
                    reason: rejected.to_string(),
                })?;
            verifiers.push(PublicVerifier {
                algorithms: AlgorithmSet::one(algorithm),
                key,
            });
        }
        Ok(JwtKey {
            kid: None,
            algorithms,
            verifier: Verifier::Public(verifiers.into_boxed_slice()),
            fingerprint: fingerprint(algorithms, bytes),
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

    /// Every algorithm this key verifies.
    pub fn algorithms(&self) -> impl Iterator<Item = Algorithm> + use<> {
        self.algorithms.iter()
    }

    /// Whether this key verifies `algorithm`.
    pub fn accepts(&self, algorithm: Algorithm) -> bool {
        self.algorithms.contains(algorithm)
    }

    /// Whether `signature` is a valid `algorithm` signature of `message` under this key; `false` for an
    /// algorithm the key does not accept. HMAC tags are compared in constant time.
    pub fn verify(&self, algorithm: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match &self.verifier {
            Verifier::Hmac(key) => {
                algorithm == Algorithm::Hs256 && hmac::verify(key, message, signature).is_ok()
            }
            Verifier::Public(verifiers) => verifiers
                .iter()
                .find(|verifier| verifier.algorithms.contains(algorithm))
                .is_some_and(|verifier| verifier.key.verify_sig(message, signature).is_ok()),
        }
    }

    /// Whether both keys hold the same material for the same algorithms and name.
    pub fn same_key(&self, other: &JwtKey) -> bool {
        self.algorithms == other.algorithms
            && self.kid == other.kid
            && self.fingerprint == other.fingerprint
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

/// How a public key checks `algorithm`'s signatures; `None` for HMAC.
fn verification(algorithm: Algorithm) -> Option<&'static dyn VerificationAlgorithm> {
    Some(match algorithm {
        Algorithm::Hs256 => return None,
        Algorithm::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
        Algorithm::Ps256 => &RSA_PSS_2048_8192_SHA256,
        Algorithm::Es256 => &ECDSA_P256_SHA256_FIXED,
        Algorithm::Es384 => &ECDSA_P384_SHA384_FIXED,
        Algorithm::EdDsa | Algorithm::Ed25519 => &ED25519,
    })
}

fn fingerprint(algorithms: AlgorithmSet, material: &[u8]) -> [u8; 32] {
    let mut context = digest::Context::new(&digest::SHA256);
    for algorithm in algorithms.iter() {
        context.update(algorithm.as_str().as_bytes());
        context.update(&[0]);
    }
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
