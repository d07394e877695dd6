use std::fmt;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RSA_PSS_SHA256,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::Serialize;
use serde_json::{Map, Value};

use super::{Algorithm, Jwk, JwtKey, KeyError, MIN_HMAC_SECRET_LEN, SignError};
use crate::random;

/// The smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;

/// A private key that signs JWS messages (access tokens, client assertions, DPoP proofs), with its `kid`.
///
/// Parsed once; signing never re-parses key material. Its `Debug` output shows the `kid` and algorithm only.
///
/// ```
/// use tessera_core::jose::{Algorithm, JwsHeader, KeySet, Selection, SigningKey};
///
/// let key = SigningKey::generate(Algorithm::EdDsa)?;
/// let token = key.sign_jwt(JwsHeader::typed("JWT"), &serde_json::json!({"sub": "alice"}))?;
/// let (signing_input, signature) = token.rsplit_once('.').unwrap();
/// let signature = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)?;
/// assert!(key.verifying_key().verify(key.algorithm(), signing_input.as_bytes(), &signature));
/// assert_eq!(key.public_jwk().unwrap().kid.as_deref(), Some(key.kid()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    signer: Arc<Signer>,
    verifying: Arc<JwtKey>,
    jwk: Option<Jwk>,
}

/// The protected header of a JWS that [`SigningKey::sign_jwt`] writes: `alg` is always the key's, `kid` is
/// added unless the public key is embedded instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct JwsHeader<'a> {
    /// The `typ` header (`at+jwt`, `dpop+jwt`, `JWT`), if any.
    pub typ: Option<&'a str>,
    /// Embed the public key as `jwk` instead of naming it by `kid` (DPoP proofs, RFC 9449 §4.2).
    pub embed_jwk: bool,
}

impl<'a> JwsHeader<'a> {
    /// A header with `typ`, naming the key by `kid`.
    pub fn typed(typ: &'a str) -> JwsHeader<'a> {
        JwsHeader {
            typ: Some(typ),
            embed_jwk: false,
        }
    }
}

enum Signer {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Hmac {
        key: Box<hmac::Key>,
        secret: Box<[u8]>,
    },
}

impl SigningKey {
    /// A fresh key for `algorithm` from the OS CSPRNG, with a random `kid`. RSA keys are 2048-bit.
    ///
    /// # Errors
    /// [`KeyError::Generate`] if the crypto library cannot produce a key, [`KeyError::Random`] if the OS
    /// generator fails.
    pub fn generate(algorithm: Algorithm) -> Result<SigningKey, KeyError> {
        SigningKey::generate_with_kid(random::id::<12>()?, algorithm)
    }

    /// A fresh key for `algorithm` named `kid`.
    ///
    /// # Errors
    /// As [`SigningKey::generate`].
    pub fn generate_with_kid(
        kid: impl Into<String>,
        algorithm: Algorithm,
    ) -> Result<SigningKey, KeyError> {
        let failed = |_| KeyError::Generate { algorithm };
        let rng = SystemRandom::new();
        let pkcs8: Vec<u8> = match algorithm {
            Algorithm::Hs256 => {
                return SigningKey::from_hmac_secret(kid, &random::bytes::<MIN_HMAC_SECRET_LEN>()?);
            }
            Algorithm::EdDsa | Algorithm::Ed25519 => Ed25519KeyPair::generate_pkcs8v1(&rng)
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Algorithm::Es256 | Algorithm::Es384 => {
                EcdsaKeyPair::generate_pkcs8(ecdsa_signing(algorithm), &rng)
                    .map_err(failed)?
                    .as_ref()
                    .to_vec()
            }
            Algorithm::Rs256 | Algorithm::Ps256 => RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(failed)?
                .as_der()
                .map_err(failed)?
                .as_ref()
                .to_vec(),
        };
        SigningKey::from_der(kid.into(), algorithm, &pkcs8, DerKind::Pkcs8)
    }

    /// A key from a PEM document: PKCS#8 (`BEGIN PRIVATE KEY`), or PKCS#1 (`BEGIN RSA PRIVATE KEY`) for the
    /// RSA algorithms. For HS256 use [`SigningKey::from_hmac_secret`].
    ///
    /// # Errors
    /// [`KeyError::InvalidPem`] if the document is not a private key of `algorithm`,
    /// [`KeyError::WeakRsaKey`] for RSA moduli under 2048 bits, [`KeyError::WrongKeyKind`] for HS256.
    pub fn from_pem(
        kid: impl Into<String>,
        algorithm: Algorithm,
        pem: &str,
    ) -> Result<SigningKey, KeyError> {
        let kid = kid.into();
        if algorithm.is_symmetric() {
            return Err(KeyError::WrongKeyKind {
                algorithm,
                source_kind: "a PEM document (HS256 keys are secrets: use from_hmac_secret)",
            });
        }
        let invalid = |reason: String| KeyError::InvalidPem {
            kid: Some(kid.clone()),
            algorithm,
            reason,
        };
        let (label, der) = pem_decode(pem).map_err(|reason| invalid(reason.to_owned()))?;
        let kind = match label.as_str() {
            "PRIVATE KEY" => DerKind::Pkcs8,
            "RSA PRIVATE KEY" if matches!(algorithm, Algorithm::Rs256 | Algorithm::Ps256) => {
                DerKind::Pkcs1
            }
            other => return Err(invalid(format!("a `{other}` block is not a private key"))),
        };
        SigningKey::from_der(kid, algorithm, &der, kind)
    }

    /// A key from a private JWK (RFC 7517) with a `kid`: `OKP`/`Ed25519` (`d`, `x`), `EC`/`P-256` or
    /// `P-384` (`d`, `x`, `y`), or `oct` (`k`, HS256). RSA private keys load from PEM.
    ///
    /// ```
    /// use tessera_core::jose::{Algorithm, SigningKey};
    ///
    /// let key = SigningKey::from_jwk_json(
    ///     r#"{"kty":"oct","kid":"hs-1","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}"#,
    /// )?;
    /// assert_eq!((key.kid(), key.algorithm()), ("hs-1", Algorithm::Hs256));
    /// # Ok::<(), tessera_core::jose::KeyError>(())
    /// ```
    ///
    /// # Errors
    /// [`KeyError::InvalidJwk`] if a member is missing or malformed or the key type is not supported, and
    /// [`KeyError::HmacSecretTooShort`] for a short `oct` key.
    pub fn from_jwk_json(json: &str) -> Result<SigningKey, KeyError> {
        let parsed: Map<String, Value> =
            serde_json::from_str(json).map_err(|error| KeyError::InvalidJwk {
                kid: None,
                reason: error.to_string(),
            })?;
        let member = |name: &str| parsed.get(name).and_then(Value::as_str);
        let kid = member("kid").map(str::to_owned);
        let invalid = |reason: &str| KeyError::InvalidJwk {
            kid: kid.clone(),
            reason: reason.to_owned(),
        };
        let bytes = |name: &str| -> Result<Vec<u8>, KeyError> {
            let text = member(name).ok_or_else(|| invalid(&format!("the JWK has no `{name}`")))?;
            URL_SAFE_NO_PAD
                .decode(text)
                .map_err(|_| invalid(&format!("the JWK's `{name}` is not base64url")))
        };
        let kid = kid.clone().ok_or_else(|| invalid("the JWK has no `kid`"))?;
        let rejected = |error: aws_lc_rs::error::KeyRejected| invalid(&error.to_string());
        let unencodable = |_| invalid("the key cannot be encoded");
        let (algorithm, pkcs8) = match (member("kty"), member("crv")) {
            (Some("oct"), _) => return SigningKey::from_hmac_secret(kid, &bytes("k")?),
            (Some("OKP"), Some("Ed25519")) => {
                let pair = Ed25519KeyPair::from_seed_and_public_key(&bytes("d")?, &bytes("x")?)
                    .map_err(rejected)?;
                let der = pair.to_pkcs8v1().map_err(unencodable)?;
                (Algorithm::EdDsa, der.as_ref().to_vec())
            }
            (Some("EC"), Some(curve @ ("P-256" | "P-384"))) => {
                let algorithm = if curve == "P-256" {
                    Algorithm::Es256
                } else {
                    Algorithm::Es384
                };
                let public = [vec![0x04], bytes("x")?, bytes("y")?].concat();
                let pair = EcdsaKeyPair::from_private_key_and_public_key(
                    ecdsa_signing(algorithm),
                    &bytes("d")?,
                    &public,
                )
                .map_err(rejected)?;
                let der = pair.to_pkcs8v1().map_err(unencodable)?;
                (algorithm, der.as_ref().to_vec())
            }
            (Some("RSA"), _) => return Err(invalid("load RSA private keys from PEM")),
            _ => {
                return Err(invalid(
                    "supported private JWKs: OKP Ed25519, EC P-256 and P-384, oct",
                ));
            }
        };
        SigningKey::from_der(kid, algorithm, &pkcs8, DerKind::Pkcs8)
    }

    /// An HS256 key from a shared secret of at least 32 bytes.
    ///
    /// # Errors
    /// [`KeyError::HmacSecretTooShort`] for shorter secrets.
    pub fn from_hmac_secret(kid: impl Into<String>, secret: &[u8]) -> Result<SigningKey, KeyError> {
        let kid = kid.into();
        let verifying = JwtKey::hmac(secret)?.with_kid(kid.clone());
        Ok(SigningKey {
            kid,
            algorithm: Algorithm::Hs256,
            signer: Arc::new(Signer::Hmac {
                key: Box::new(hmac::Key::new(hmac::HMAC_SHA256, secret)),
                secret: secret.into(),
            }),
            verifying: Arc::new(verifying),
            jwk: None,
        })
    }

    fn from_der(
        kid: String,
        algorithm: Algorithm,
        der: &[u8],
        kind: DerKind,
    ) -> Result<SigningKey, KeyError> {
        let invalid = |error: aws_lc_rs::error::KeyRejected| KeyError::InvalidPem {
            kid: Some(kid.clone()),
            algorithm,
            reason: error.to_string(),
        };
        let mut jwk = Jwk {
            kty: String::new(),
            key_use: Some("sig".to_owned()),
            alg: Some(algorithm.as_str().to_owned()),
            kid: Some(kid.clone()),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
        };
        let signer = match algorithm {
            Algorithm::Hs256 => {
                return Err(KeyError::WrongKeyKind {
                    algorithm,
                    source_kind: "a private key document",
                });
            }
            Algorithm::EdDsa | Algorithm::Ed25519 => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(invalid)?;
                jwk.kty = "OKP".into();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(URL_SAFE_NO_PAD.encode(pair.public_key().as_ref()));
                Signer::Ed25519(pair)
            }
            Algorithm::Es256 | Algorithm::Es384 => {
                let pair =
                    EcdsaKeyPair::from_pkcs8(ecdsa_signing(algorithm), der).map_err(invalid)?;
                // An uncompressed SEC1 point: 0x04 || x || y.
                let (x, y) = match pair.public_key().as_ref() {
                    [0x04, coordinates @ ..] => coordinates.split_at(coordinates.len() / 2),
                    _ => {
                        return Err(KeyError::Rejected {
                            algorithm,
                            reason: "unexpected EC public key encoding".into(),
                        });
                    }
                };
                jwk.kty = "EC".into();
                jwk.crv = Some(
                    if algorithm == Algorithm::Es256 {
                        "P-256"
                    } else {
                        "P-384"
                    }
                    .into(),
                );
                jwk.x = Some(URL_SAFE_NO_PAD.encode(x));
                jwk.y = Some(URL_SAFE_NO_PAD.encode(y));
                Signer::Ecdsa(pair)
            }
            Algorithm::Rs256 | Algorithm::Ps256 => {
                let pair = match kind {
                    DerKind::Pkcs8 => RsaKeyPair::from_pkcs8(der),
                    DerKind::Pkcs1 => RsaKeyPair::from_der(der),
                }
                .map_err(invalid)?;
                let bits = pair.public_modulus_len() * 8;
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::WeakRsaKey { bits });
                }
                let components = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                jwk.kty = "RSA".into();
                jwk.n = Some(URL_SAFE_NO_PAD.encode(&components.n));
                jwk.e = Some(URL_SAFE_NO_PAD.encode(&components.e));
                Signer::Rsa(pair)
            }
        };
        let verifying = jwk.to_key()?;
        Ok(SigningKey {
            kid,
            algorithm,
            signer: Arc::new(signer),
            verifying: Arc::new(verifying),
            jwk: Some(jwk),
        })
    }

    /// The key id, sent as the JWS header's `kid`.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The key that verifies this key's signatures (for HS256, the same secret).
    pub fn verifying_key(&self) -> &Arc<JwtKey> {
        &self.verifying
    }

    /// The public JWK (with `kid`, `alg` and `use: sig`); `None` for HS256, whose secret is never published.
    pub fn public_jwk(&self) -> Option<&Jwk> {
        self.jwk.as_ref()
    }

    /// The private key as a PKCS#8 PEM document, to persist it; `None` for HS256 (see
    /// [`SigningKey::hmac_secret`]). The text is a secret: write it with [`crate::fs::write_private`].
    ///
    /// # Errors
    /// [`KeyError::Rejected`] if the crypto library cannot encode the key.
    pub fn to_pkcs8_pem(&self) -> Result<Option<String>, KeyError> {
        let failed = |_| KeyError::Rejected {
            algorithm: self.algorithm,
            reason: "the key cannot be encoded as PKCS#8".into(),
        };
        let der = match &*self.signer {
            Signer::Ed25519(pair) => pair.to_pkcs8v1().map_err(failed)?.as_ref().to_vec(),
            Signer::Ecdsa(pair) => pair.to_pkcs8v1().map_err(failed)?.as_ref().to_vec(),
            Signer::Rsa(pair) => pair.as_der().map_err(failed)?.as_ref().to_vec(),
            Signer::Hmac { .. } => return Ok(None),
        };
        Ok(Some(pem_encode("PRIVATE KEY", &der)))
    }

    /// The HS256 secret, to persist it; `None` for asymmetric keys.
    pub fn hmac_secret(&self) -> Option<&[u8]> {
        match &*self.signer {
            Signer::Hmac { secret, .. } => Some(secret),
            _ => None,
        }
    }

    /// The signature of a JWS signing input (`base64url(header) "." base64url(payload)`).
    ///
    /// # Errors
    /// [`SignError::Crypto`] if the crypto library fails.
    pub fn sign(&self, signing_input: &[u8]) -> Result<Vec<u8>, SignError> {
        let random = SystemRandom::new();
        match &*self.signer {
            Signer::Ed25519(pair) => Ok(pair.sign(signing_input).as_ref().to_vec()),
            Signer::Ecdsa(pair) => pair
                .sign(&random, signing_input)
                .map(|signature| signature.as_ref().to_vec())
                .map_err(|_| SignError::Crypto),
            Signer::Rsa(pair) => {
                let padding = if self.algorithm == Algorithm::Ps256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &random, signing_input, &mut signature)
                    .map_err(|_| SignError::Crypto)?;
                Ok(signature)
            }
            Signer::Hmac { key, .. } => Ok(hmac::sign(key, signing_input).as_ref().to_vec()),
        }
    }

    /// A compact JWS of `claims` with the header described by `header`.
    ///
    /// # Errors
    /// [`SignError::Serialize`] if `claims` do not serialise to JSON, [`SignError::Crypto`] if signing fails.
    pub fn sign_jwt(
        &self,
        header: JwsHeader<'_>,
        claims: &impl Serialize,
    ) -> Result<String, SignError> {
        let mut fields = Map::new();
        fields.insert("alg".into(), self.algorithm.as_str().into());
        if let Some(typ) = header.typ {
            fields.insert("typ".into(), typ.into());
        }
        match (&self.jwk, header.embed_jwk) {
            (Some(jwk), true) => {
                fields.insert(
                    "jwk".into(),
                    serde_json::to_value(jwk.thumbprint_members())?,
                );
            }
            _ => {
                fields.insert("kid".into(), self.kid.clone().into());
            }
        }
        let header = serde_json::to_vec(&fields)?;
        let payload = serde_json::to_vec(claims)?;
        let mut token = String::with_capacity((header.len() + payload.len()) * 4 / 3 + 128);
        URL_SAFE_NO_PAD.encode_string(&header, &mut token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.sign(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy)]
enum DerKind {
    Pkcs8,
    Pkcs1,
}

fn ecdsa_signing(algorithm: Algorithm) -> &'static EcdsaSigningAlgorithm {
    if algorithm == Algorithm::Es384 {
        &ECDSA_P384_SHA384_FIXED_SIGNING
    } else {
        &ECDSA_P256_SHA256_FIXED_SIGNING
    }
}

/// The label and DER bytes of the first PEM block (RFC 7468).
fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), &'static str> {
    let begin = pem.find("-----BEGIN ").ok_or("no PEM block")?;
    let after_begin = &pem[begin + "-----BEGIN ".len()..];
    let label_end = after_begin.find("-----").ok_or("malformed BEGIN line")?;
    let label = &after_begin[..label_end];
    let body = &after_begin[label_end + "-----".len()..];
    let end_marker = format!("-----END {label}-----");
    let end = body.find(&end_marker).ok_or("no matching END line")?;
    let base64: String = body[..end].split_ascii_whitespace().collect();
    let der = STANDARD
        .decode(base64)
        .map_err(|_| "the PEM body is not base64")?;
    Ok((label.to_owned(), der))
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

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Signer(<private key>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::ALL_ALGORITHMS;

    #[test]
    fn every_algorithm_signs_verifies_and_round_trips_through_pem() {
        for algorithm in ALL_ALGORITHMS {
            let key = SigningKey::generate(algorithm).unwrap();
            let signature = key.sign(b"message").unwrap();
            assert!(
                key.verifying_key()
                    .verify(algorithm, b"message", &signature),
                "{algorithm}"
            );
            assert!(
                !key.verifying_key()
                    .verify(algorithm, b"massage", &signature),
                "{algorithm}"
            );
            match key.to_pkcs8_pem().unwrap() {
                Some(pem) => {
                    let again = SigningKey::from_pem(key.kid(), algorithm, &pem).unwrap();
                    assert_eq!(again.public_jwk(), key.public_jwk());
                    let published = key.public_jwk().unwrap().to_key().unwrap();
                    assert!(
                        published.verify(algorithm, b"message", &signature),
                        "{algorithm}"
                    );
                }
                None => assert_eq!(key.hmac_secret().map(<[u8]>::len), Some(32)),
            }
        }
    }

    #[test]
    fn private_jwks_load_and_publish_their_public_half() {
        // RFC 8037 §A.1 and RFC 7517 §A.2 example keys.
        let ed = SigningKey::from_jwk_json(
            r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
        )
        .unwrap();
        assert_eq!(ed.algorithm(), Algorithm::EdDsa);
        let public = ed.public_jwk().unwrap();
        assert_eq!(
            public.x.as_deref(),
            Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
        );
        assert!(!serde_json::to_string(public).unwrap().contains("\"d\""));

        let ec = SigningKey::from_jwk_json(
            r#"{"kty":"EC","crv":"P-256","kid":"ec","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YiLUrN5vfvVHuhp7x8PxltmWWlbbM4IFyM","d":"870MB6gfuTJ4HtUnUvYMyJpr5eUZNP4Bk43bVdj3eAE"}"#,
        )
        .unwrap();
        assert_eq!((ec.kid(), ec.algorithm()), ("ec", Algorithm::Es256));

        let mismatched = r#"{"kty":"OKP","crv":"Ed25519","kid":"ed","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4"}"#;
        assert!(matches!(
            SigningKey::from_jwk_json(mismatched),
            Err(KeyError::InvalidJwk { .. })
        ));
        let short = r#"{"kty":"oct","kid":"h","k":"c2hvcnQ"}"#;
        assert!(matches!(
            SigningKey::from_jwk_json(short),
            Err(KeyError::HmacSecretTooShort { len: 5 })
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
    fn debug_shows_no_material_and_bad_input_is_refused() {
        let key = SigningKey::generate(Algorithm::Hs256).unwrap();
        let debug = format!("{key:?}");
        assert!(
            debug.contains(key.kid()) && !debug.contains("secret"),
            "{debug}"
        );
        assert!(matches!(
            SigningKey::from_hmac_secret("k", &[0; 31]),
            Err(KeyError::HmacSecretTooShort { len: 31 })
        ));
        for pem in [
            "not a pem",
            "-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n",
        ] {
            assert!(matches!(
                SigningKey::from_pem("k", Algorithm::EdDsa, pem),
                Err(KeyError::InvalidPem { .. })
            ));
        }
        let rsa_pem = SigningKey::generate(Algorithm::Rs256)
            .unwrap()
            .to_pkcs8_pem()
            .unwrap()
            .unwrap();
        assert!(SigningKey::from_pem("k", Algorithm::Es256, &rsa_pem).is_err());
        assert!(matches!(
            SigningKey::from_pem("k", Algorithm::Hs256, &rsa_pem),
            Err(KeyError::WrongKeyKind { .. })
        ));
    }

    #[test]
    fn an_embedded_jwk_replaces_the_kid() {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let token = key
            .sign_jwt(
                JwsHeader {
                    typ: Some("dpop+jwt"),
                    embed_jwk: true,
                },
                &serde_json::json!({}),
            )
            .unwrap();
        let header = token.split('.').next().unwrap();
        let header: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
        assert_eq!(header["typ"], "dpop+jwt");
        assert_eq!(header["alg"], "ES256");
        assert!(header.get("kid").is_none());
        assert_eq!(header["jwk"]["crv"], "P-256");
        assert!(header["jwk"].get("d").is_none());
    }
}
