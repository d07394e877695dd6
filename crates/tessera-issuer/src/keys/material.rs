use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, OctetKeyPairParameters, OctetKeyPairType, PublicKeyUse,
    RSAKeyParameters, RSAKeyType,
};
use jsonwebtoken::{DecodingKey, EncodingKey};

use super::signer::{SignError, Signer};
use super::{KeyError, SigningAlgorithm};
use crate::random;

/// The shortest HMAC secret accepted for HS256: 256 bits, the size of the hash output (RFC 7518 §3.2).
pub const MIN_HMAC_SECRET_LEN: usize = 32;

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// A private key that signs access tokens, with its key id (`kid`).
///
/// Its `Debug` output shows the `kid` and algorithm only, never key material.
#[derive(Clone)]
pub struct SigningKey {
    encoding: EncodingKey,
    signer: Arc<Signer>,
    verifying: VerifyingKey,
}

impl SigningKey {
    /// A fresh key for `algorithm` from the OS CSPRNG, with a random `kid`. RSA keys are 2048-bit.
    ///
    /// # Errors
    /// [`KeyError::Generate`] if the crypto library cannot produce a key.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<Self, KeyError> {
        let kid = random::id::<12>()?;
        match algorithm {
            SigningAlgorithm::Hs256 => {
                Self::from_hmac_secret(kid, &random::bytes::<MIN_HMAC_SECRET_LEN>()?)
            }
            _ => Self::from_pem(kid, algorithm, &generate_pkcs8_pem(algorithm)?),
        }
    }

    /// A key from a PKCS#8 (`BEGIN PRIVATE KEY`) PEM document; RSA keys may also be PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`). For HS256 use [`SigningKey::from_hmac_secret`].
    ///
    /// # Errors
    /// [`KeyError::InvalidPem`] if the document is not a private key of `algorithm`,
    /// [`KeyError::WeakRsaKey`] for RSA moduli under 2048 bits.
    pub fn from_pem(
        kid: impl Into<String>,
        algorithm: SigningAlgorithm,
        pem: &str,
    ) -> Result<Self, KeyError> {
        let kid = kid.into();
        let invalid = |detail: String| KeyError::InvalidPem {
            kid: kid.clone(),
            algorithm,
            detail,
        };
        let bytes = pem.as_bytes();
        let encoding = match algorithm {
            SigningAlgorithm::EdDSA => EncodingKey::from_ed_pem(bytes),
            SigningAlgorithm::Es256 => EncodingKey::from_ec_pem(bytes),
            SigningAlgorithm::Rs256 => EncodingKey::from_rsa_pem(bytes),
            SigningAlgorithm::Hs256 => {
                return Err(invalid(
                    "HS256 keys are secrets, not PEM documents; use from_hmac_secret".into(),
                ));
            }
        }
        .map_err(|error| invalid(error.to_string()))?;
        let parameters =
            public_parameters(algorithm, encoding.as_bytes()).map_err(|detail| match detail {
                PublicPartError::WeakRsa(bits) => KeyError::WeakRsaKey {
                    kid: kid.clone(),
                    bits,
                },
                PublicPartError::Invalid(detail) => invalid(detail),
            })?;
        let jwk = Jwk {
            common: common_parameters(&kid, algorithm),
            algorithm: parameters,
        };
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|error| invalid(error.to_string()))?;
        let signer = Arc::new(Signer::parse(algorithm, encoding.as_bytes()).map_err(&invalid)?);
        Ok(SigningKey {
            encoding,
            signer,
            verifying: VerifyingKey {
                kid,
                algorithm,
                decoding,
                jwk: Some(jwk),
            },
        })
    }

    /// A key from a private JWK (RFC 7517) with a `kid`: `OKP`/`Ed25519` (`d`, `x`), `EC`/`P-256` (`d`,
    /// `x`, `y`) or `oct` (`k`, HS256). RSA private keys load from PEM ([`SigningKey::from_pem`]).
    ///
    /// ```
    /// use tessera_issuer::{SigningAlgorithm, SigningKey};
    ///
    /// let key = SigningKey::from_jwk_json(
    ///     r#"{"kty":"oct","kid":"hs-1","alg":"HS256","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#,
    /// )?;
    /// assert_eq!((key.kid(), key.algorithm()), ("hs-1", SigningAlgorithm::Hs256));
    /// # Ok::<(), tessera_issuer::KeyError>(())
    /// ```
    ///
    /// # Errors
    /// [`KeyError::InvalidJwk`] if a member is missing or malformed or the key type is not supported,
    /// and the errors of [`SigningKey::from_pem`] / [`SigningKey::from_hmac_secret`].
    pub fn from_jwk_json(json: &str) -> Result<Self, KeyError> {
        let invalid = |detail: &str| KeyError::InvalidJwk {
            detail: detail.to_owned(),
        };
        let jwk: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).map_err(|error| invalid(&error.to_string()))?;
        let member = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
        let bytes = |name: &str| -> Result<Vec<u8>, KeyError> {
            let text = member(name).ok_or_else(|| invalid(&format!("the JWK has no `{name}`")))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| invalid(&format!("the JWK's `{name}` is not base64url")))
        };
        let kid = member("kid")
            .ok_or_else(|| invalid("the JWK has no `kid`"))?
            .to_owned();
        let rejected = |error: aws_lc_rs::error::KeyRejected| invalid(&error.to_string());
        let (algorithm, der) = match (member("kty"), member("crv")) {
            (Some("oct"), _) => return Self::from_hmac_secret(kid, &bytes("k")?),
            (Some("OKP"), Some("Ed25519")) => {
                let pair = Ed25519KeyPair::from_seed_and_public_key(&bytes("d")?, &bytes("x")?)
                    .map_err(rejected)?;
                let der = pair
                    .to_pkcs8v1()
                    .map_err(|_| invalid("cannot encode the key"))?;
                (SigningAlgorithm::EdDSA, der.as_ref().to_vec())
            }
            (Some("EC"), Some("P-256")) => {
                let public = [vec![0x04], bytes("x")?, bytes("y")?].concat();
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &bytes("d")?,
                    &public,
                )
                .map_err(rejected)?;
                let der = pair
                    .to_pkcs8v1()
                    .map_err(|_| invalid("cannot encode the key"))?;
                (SigningAlgorithm::Es256, der.as_ref().to_vec())
            }
            (Some("RSA"), _) => return Err(invalid("load RSA private keys from PEM")),
            _ => {
                return Err(invalid(
                    "supported private JWKs: OKP Ed25519, EC P-256, oct",
                ));
            }
        };
        Self::from_pem(kid, algorithm, &pem_encode("PRIVATE KEY", &der))
    }

    /// An HS256 key from a shared secret of at least 32 bytes.
    ///
    /// # Errors
    /// [`KeyError::HmacSecretTooShort`] for shorter secrets.
    pub fn from_hmac_secret(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        let kid = kid.into();
        if secret.len() < MIN_HMAC_SECRET_LEN {
            return Err(KeyError::HmacSecretTooShort {
                kid,
                len: secret.len(),
            });
        }
        Ok(SigningKey {
            encoding: EncodingKey::from_secret(secret),
            signer: Arc::new(Signer::hmac(secret)),
            verifying: VerifyingKey {
                kid,
                algorithm: SigningAlgorithm::Hs256,
                decoding: DecodingKey::from_secret(secret),
                jwk: None,
            },
        })
    }

    /// The key id, sent as the JWT header's `kid`.
    pub fn kid(&self) -> &str {
        &self.verifying.kid
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.verifying.algorithm
    }

    /// The key that verifies this key's signatures.
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The `jsonwebtoken` signing key, for signing other JWTs with this key (client assertions, tests).
    pub fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }

    /// The signature of a JWS signing input (`base64url(header) "." base64url(payload)`).
    pub(crate) fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        self.signer.sign(signing_input)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.verifying.kid)
            .field("algorithm", &self.verifying.algorithm)
            .finish_non_exhaustive()
    }
}

/// A key that verifies access-token signatures: the public half of an asymmetric key, or an HS256 secret.
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    algorithm: SigningAlgorithm,
    decoding: DecodingKey,
    jwk: Option<Jwk>,
}

impl VerifyingKey {
    /// A key from a public JWK (RFC 7517) with `kid` and `alg` set, e.g. one entry of another instance's
    /// JWKS or a key retired from signing.
    ///
    /// # Errors
    /// [`KeyError::InvalidJwk`] if the JSON is not a public JWK of a supported algorithm with a `kid`.
    pub fn from_jwk_json(json: &str) -> Result<Self, KeyError> {
        let invalid = |detail: String| KeyError::InvalidJwk { detail };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|error| invalid(error.to_string()))?;
        let algorithm = value
            .get("alg")
            .and_then(serde_json::Value::as_str)
            .and_then(|alg| alg.parse::<SigningAlgorithm>().ok())
            .ok_or_else(|| invalid("the JWK's `alg` must be one of EdDSA, ES256, RS256".into()))?;
        let jwk: Jwk = serde_json::from_value(value).map_err(|error| invalid(error.to_string()))?;
        let kid = jwk
            .common
            .key_id
            .clone()
            .ok_or_else(|| invalid("the JWK has no `kid`".into()))?;
        if algorithm.is_symmetric() {
            return Err(invalid(
                "symmetric (oct) keys are secrets; use SigningKey::from_hmac_secret".into(),
            ));
        }
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|error| invalid(error.to_string()))?;
        Ok(VerifyingKey {
            kid,
            algorithm,
            decoding,
            jwk: Some(jwk),
        })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm signatures must use.
    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The `jsonwebtoken` key, for a resource server that verifies with it.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// The public JWK; `None` for HS256, whose secret is never published.
    pub fn jwk(&self) -> Option<&Jwk> {
        self.jwk.as_ref()
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("public", &self.jwk.is_some())
            .finish_non_exhaustive()
    }
}

fn common_parameters(kid: &str, algorithm: SigningAlgorithm) -> CommonParameters {
    CommonParameters {
        public_key_use: Some(PublicKeyUse::Signature),
        key_algorithm: Some(algorithm.jwt_algorithm().into()),
        key_id: Some(kid.to_owned()),
        ..CommonParameters::default()
    }
}

enum PublicPartError {
    WeakRsa(usize),
    Invalid(String),
}

/// The public JWK parameters of a private key, as `jsonwebtoken` holds it: PKCS#8 DER for Ed25519 and
/// P-256, PKCS#1 DER for RSA.
fn public_parameters(
    algorithm: SigningAlgorithm,
    der: &[u8],
) -> Result<AlgorithmParameters, PublicPartError> {
    let rejected =
        |error: aws_lc_rs::error::KeyRejected| PublicPartError::Invalid(error.to_string());
    match algorithm {
        SigningAlgorithm::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
            Ok(AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                key_type: OctetKeyPairType::OctetKeyPair,
                curve: EllipticCurve::Ed25519,
                x: URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()),
            }))
        }
        SigningAlgorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map_err(rejected)?;
            // An uncompressed SEC1 point: 0x04 || x || y, 32 bytes each.
            let point = pair.public_key().as_ref();
            let (x, y) = match point {
                [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                _ => {
                    return Err(PublicPartError::Invalid(
                        "unexpected P-256 public key encoding".into(),
                    ));
                }
            };
            Ok(AlgorithmParameters::EllipticCurve(
                EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: URL_SAFE_NO_PAD.encode(x),
                    y: URL_SAFE_NO_PAD.encode(y),
                },
            ))
        }
        SigningAlgorithm::Rs256 => {
            let pair = RsaKeyPair::from_der(der).map_err(rejected)?;
            let bits = pair.public_modulus_len() * 8;
            if bits < MIN_RSA_BITS {
                return Err(PublicPartError::WeakRsa(bits));
            }
            let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            Ok(AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: URL_SAFE_NO_PAD.encode(&components.n),
                e: URL_SAFE_NO_PAD.encode(&components.e),
            }))
        }
        SigningAlgorithm::Hs256 => Err(PublicPartError::Invalid("HS256 has no public part".into())),
    }
}

/// A fresh private key as a PKCS#8 PEM document.
pub(super) fn generate_pkcs8_pem(algorithm: SigningAlgorithm) -> Result<String, KeyError> {
    let failed = |_| KeyError::Generate { algorithm };
    let rng = SystemRandom::new();
    let der: Vec<u8> = match algorithm {
        SigningAlgorithm::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::Es256 => {
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(failed)?
                .as_ref()
                .to_vec()
        }
        SigningAlgorithm::Rs256 => RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(failed)?
            .as_der()
            .map_err(failed)?
            .as_ref()
            .to_vec(),
        SigningAlgorithm::Hs256 => return Err(KeyError::Generate { algorithm }),
    };
    Ok(pem_encode("PRIVATE KEY", &der))
}

/// RFC 7468 textual encoding.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_jwks_load_and_publish_their_public_half() {
        // RFC 8037 §A.1 and RFC 7517 §A.2 example keys.
        let ed = SigningKey::from_jwk_json(
            r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(ed.algorithm(), SigningAlgorithm::EdDSA);
        let public = serde_json::to_value(ed.verifying_key().jwk().unwrap()).unwrap();
        assert_eq!(public["x"], "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo");
        assert!(public.get("d").is_none());

        let ec = SigningKey::from_jwk_json(
            r#"{"kty":"EC","crv":"P-256","kid":"ec","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}"#,
        )
        .unwrap();
        assert_eq!((ec.kid(), ec.algorithm()), ("ec", SigningAlgorithm::Es256));

        let mismatched = r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"}"#;
        assert!(matches!(
            SigningKey::from_jwk_json(mismatched),
            Err(KeyError::InvalidJwk { .. })
        ));
        let short = r#"{"kty":"oct","kid":"h","k":"c2hvcnQ"}"#;
        assert!(matches!(
            SigningKey::from_jwk_json(short),
            Err(KeyError::HmacSecretTooShort { len: 5, .. })
        ));
        let rsa = r#"{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}"#;
        assert!(
            SigningKey::from_jwk_json(rsa)
                .unwrap_err()
                .to_string()
                .contains("PEM")
        );
        assert!(
            SigningKey::from_jwk_json(r#"{"kty":"oct","k":"AAAA"}"#)
                .unwrap_err()
                .to_string()
                .contains("kid")
        );
    }

    #[test]
    fn keys_debug_without_material_and_weak_inputs_are_refused() {
        let key = SigningKey::generate(SigningAlgorithm::Hs256).unwrap();
        let debug = format!("{key:?}");
        assert!(
            debug.contains(key.kid()) && !debug.contains("secret"),
            "{debug}"
        );
        assert!(matches!(
            SigningKey::from_hmac_secret("k", &[0; 31]),
            Err(KeyError::HmacSecretTooShort { len: 31, .. })
        ));
        assert!(matches!(
            SigningKey::from_pem("k", SigningAlgorithm::EdDSA, "not a pem"),
            Err(KeyError::InvalidPem { .. })
        ));
        let signer = SigningKey::generate(SigningAlgorithm::EdDSA).unwrap();
        let json = serde_json::to_string(signer.verifying_key().jwk().unwrap()).unwrap();
        let public = VerifyingKey::from_jwk_json(&json).unwrap();
        assert_eq!(
            (public.kid(), public.algorithm()),
            (signer.kid(), SigningAlgorithm::EdDSA)
        );
        let secret = r#"{"kty":"oct","kid":"h","alg":"HS256","k":"AAAA"}"#;
        assert!(matches!(
            VerifyingKey::from_jwk_json(secret),
            Err(KeyError::InvalidJwk { .. })
        ));
    }
}
