//! JWK (RFC 7517) and JWKS documents to [`JwtKey`]s.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::{Algorithm, JwtKey, KeyError};

/// The members of a JWK that verification needs. Deliberately not `Debug`: `k` is a secret.
#[derive(Deserialize)]
struct JwkFields {
    kty: String,
    #[serde(rename = "use", default)]
    public_key_use: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    k: Option<String>,
}

/// Whether a JWK may hold a shared secret (`kty: oct`). A remote JWKS is public, so it never may.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secrets {
    Allowed,
    Refused,
}

impl JwtKey {
    /// A key from one JWK (RFC 7517) in JSON.
    ///
    /// The algorithm is the JWK's `alg` when present and otherwise follows from the key: the curve for EC
    /// and OKP keys, HS256 for `oct`, RS256 for RSA (use `alg` to pick PS256). The `kid` is kept.
    ///
    /// # Errors
    /// [`KeyError::InvalidJwk`] when the JSON is not a JWK, names an algorithm that does not fit its key
    /// type, is an encryption key (`use: enc`), or its key material is invalid.
    pub fn from_jwk_json(json: &str) -> Result<JwtKey, KeyError> {
        let fields: JwkFields =
            serde_json::from_str(json).map_err(|error| KeyError::InvalidJwk {
                kid: None,
                reason: error.to_string(),
            })?;
        key_from_fields(fields, Secrets::Allowed)
    }
}

/// Parses a JWKS document, keeping every usable signature key and skipping (with a `debug` event) the
/// ones that are not: encryption keys, unsupported key types or algorithms.
pub(crate) fn keys_from_jwks(json: &[u8], secrets: Secrets) -> Result<Vec<JwtKey>, KeyError> {
    #[derive(Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    let document: Document =
        serde_json::from_slice(json).map_err(|error| KeyError::InvalidJwks(error.to_string()))?;
    let mut keys = Vec::with_capacity(document.keys.len());
    for value in document.keys {
        let parsed = serde_json::from_value::<JwkFields>(value)
            .map_err(|error| KeyError::InvalidJwk {
                kid: None,
                reason: error.to_string(),
            })
            .and_then(|fields| key_from_fields(fields, secrets));
        match parsed {
            Ok(key) => keys.push(key),
            Err(error) => tracing::debug!(%error, "skipping a JWKS entry"),
        }
    }
    if keys.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(keys)
}

fn key_from_fields(fields: JwkFields, secrets: Secrets) -> Result<JwtKey, KeyError> {
    let kid = fields.kid.clone();
    let invalid = |reason: String| KeyError::InvalidJwk {
        kid: kid.clone(),
        reason,
    };
    if fields
        .public_key_use
        .as_deref()
        .is_some_and(|usage| usage != "sig")
    {
        return Err(invalid(
            "the key is not a signature key (`use` is not `sig`)".into(),
        ));
    }
    let named = match fields.alg.as_deref() {
        Some(name) => Some(
            Algorithm::from_name(name)
                .ok_or_else(|| invalid(format!("the algorithm {name:?} is not supported")))?,
        ),
        None => None,
    };
    let member = |value: &Option<String>, name: &str| {
        let text = value
            .as_deref()
            .ok_or_else(|| invalid(format!("the `{name}` member is missing")))?;
        URL_SAFE_NO_PAD
            .decode(text)
            .map_err(|_| invalid(format!("the `{name}` member is not base64url")))
    };
    let key = match fields.kty.as_str() {
        "RSA" => {
            let algorithm = match named {
                None => Algorithm::Rs256,
                Some(alg @ (Algorithm::Rs256 | Algorithm::Ps256)) => alg,
                Some(other) => return Err(invalid(format!("{other} does not fit an RSA key"))),
            };
            let der = rsa_public_key_der(&member(&fields.n, "n")?, &member(&fields.e, "e")?);
            JwtKey::from_public_bytes(algorithm, &der)?
        }
        "EC" => {
            let (algorithm, coordinate_len) = match fields.crv.as_deref() {
                Some("P-256") => (Algorithm::Es256, 32),
                Some("P-384") => (Algorithm::Es384, 48),
                other => return Err(invalid(format!("the EC curve {other:?} is not supported"))),
            };
            if named.is_some_and(|named| named != algorithm) {
                return Err(invalid(format!(
                    "`alg` does not fit the curve, which needs {algorithm}"
                )));
            }
            let (x, y) = (member(&fields.x, "x")?, member(&fields.y, "y")?);
            if x.len() != coordinate_len || y.len() != coordinate_len {
                return Err(invalid(format!(
                    "coordinates must be {coordinate_len} bytes for {algorithm}"
                )));
            }
            let mut point = Vec::with_capacity(1 + 2 * coordinate_len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            JwtKey::from_public_bytes(algorithm, &point)?
        }
        "OKP" => {
            if fields.crv.as_deref() != Some("Ed25519") {
                return Err(invalid(format!(
                    "the OKP curve {:?} is not supported",
                    fields.crv
                )));
            }
            if named.is_some_and(|named| named != Algorithm::EdDsa) {
                return Err(invalid("`alg` must be EdDSA for an Ed25519 key".into()));
            }
            JwtKey::from_public_bytes(Algorithm::EdDsa, &member(&fields.x, "x")?)?
        }
        "oct" => {
            if secrets == Secrets::Refused {
                return Err(invalid(
                    "a published key set must not carry shared secrets (`kty: oct`)".into(),
                ));
            }
            if named.is_some_and(|named| named != Algorithm::Hs256) {
                return Err(invalid("`alg` must be HS256 for an `oct` key".into()));
            }
            JwtKey::hmac(member(&fields.k, "k")?)?
        }
        other => return Err(invalid(format!("the key type {other:?} is not supported"))),
    };
    Ok(match fields.kid {
        Some(kid) => key.with_kid(kid),
        None => key,
    })
}

/// DER `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` (RFC 8017 A.1.1).
fn rsa_public_key_der(modulus: &[u8], exponent: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(modulus.len() + exponent.len() + 16);
    der_unsigned_integer(&mut body, modulus);
    der_unsigned_integer(&mut body, exponent);
    let mut der = Vec::with_capacity(body.len() + 6);
    der.push(0x30);
    der_length(&mut der, body.len());
    der.extend_from_slice(&body);
    der
}

fn der_unsigned_integer(out: &mut Vec<u8>, big_endian: &[u8]) {
    let first_nonzero = big_endian
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(big_endian.len());
    let digits = &big_endian[first_nonzero..];
    let pad = digits.first().is_none_or(|&byte| byte & 0x80 != 0);
    out.push(0x02);
    der_length(out, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

fn der_length(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let skip = bytes
        .iter()
        .position(|&byte| byte != 0)
        .unwrap_or(bytes.len() - 1);
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_integers_are_minimal_and_positive() {
        let mut out = Vec::new();
        der_unsigned_integer(&mut out, &[0, 0, 0x01, 0x00, 0x01]);
        assert_eq!(out, [0x02, 0x03, 0x01, 0x00, 0x01]);
        out.clear();
        der_unsigned_integer(&mut out, &[0x80]);
        assert_eq!(out, [0x02, 0x02, 0x00, 0x80]);
        out.clear();
        der_length(&mut out, 0x1_02);
        assert_eq!(out, [0x82, 0x01, 0x02]);
    }

    #[test]
    fn encryption_keys_and_unknown_algorithms_are_refused() {
        let enc = r#"{"kty":"oct","use":"enc","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
        assert!(
            JwtKey::from_jwk_json(enc)
                .unwrap_err()
                .to_string()
                .contains("signature key")
        );
        let none =
            r#"{"kty":"oct","alg":"none","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#;
        assert!(JwtKey::from_jwk_json(none).is_err());
    }

    #[test]
    fn oct_keys_need_32_bytes_and_are_refused_in_published_sets() {
        let short = r#"{"kty":"oct","k":"c2hvcnQ"}"#;
        assert!(matches!(
            JwtKey::from_jwk_json(short),
            Err(KeyError::HmacSecretTooShort { len: 5 })
        ));
        let long = r#"{"keys":[{"kty":"oct","kid":"h","k":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]}"#;
        assert_eq!(
            keys_from_jwks(long.as_bytes(), Secrets::Allowed).unwrap()[0].kid(),
            Some("h")
        );
        assert!(matches!(
            keys_from_jwks(long.as_bytes(), Secrets::Refused),
            Err(KeyError::Empty)
        ));
    }

    #[test]
    fn jwks_that_is_not_a_key_set_is_an_error() {
        assert!(matches!(
            keys_from_jwks(b"[]", Secrets::Allowed),
            Err(KeyError::InvalidJwks(_))
        ));
    }
}
