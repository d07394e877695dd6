//! JWK (RFC 7517) and JWKS documents: parsed into [`JwtKey`]s, published as [`Jwk`]s.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::{Algorithm, JwtKey, KeyError};

/// A public JWK (RFC 7517 §4) as Tessera publishes and reads it: the members of RSA, EC and OKP public keys.
///
/// ```
/// use tessera_core::jose::Jwk;
///
/// // RFC 7638 §3.1's example key and thumbprint.
/// let jwk: Jwk = serde_json::from_str(r#"{"kty":"RSA","e":"AQAB","alg":"RS256","kid":"2011-04-29",
///     "n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}"#)?;
/// assert_eq!(jwk.thumbprint()?, "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// The key type: `RSA`, `EC`, `OKP`.
    pub kty: String,
    /// The intended use; `sig` for every key Tessera publishes.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
    /// The algorithm the key is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// The key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The curve of an EC or OKP key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// The x coordinate (EC) or public key (OKP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// The y coordinate (EC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// The modulus (RSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// The exponent (RSA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
}

/// A JWKS document (RFC 7517 §5).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The verification key this JWK describes (see [`JwtKey::from_jwk_json`] for how its algorithm is
    /// chosen).
    ///
    /// # Errors
    /// [`KeyError::InvalidJwk`] when a member is missing or the key is unusable.
    pub fn to_key(&self) -> Result<JwtKey, KeyError> {
        key_from_fields(
            JwkFields {
                kty: self.kty.clone(),
                public_key_use: self.key_use.clone(),
                alg: self.alg.clone(),
                kid: self.kid.clone(),
                crv: self.crv.clone(),
                x: self.x.clone(),
                y: self.y.clone(),
                n: self.n.clone(),
                e: self.e.clone(),
                k: None,
            },
            Secrets::Refused,
        )
    }

    /// The JWK with only the members RFC 7638 §3.2 requires for its key type: what a DPoP proof embeds and
    /// what the thumbprint hashes.
    pub fn thumbprint_members(&self) -> Jwk {
        let (crv, x, y, n, e) = match self.kty.as_str() {
            "RSA" => (None, None, None, self.n.clone(), self.e.clone()),
            "EC" => (self.crv.clone(), self.x.clone(), self.y.clone(), None, None),
            _ => (self.crv.clone(), self.x.clone(), None, None, None),
        };
        Jwk {
            kty: self.kty.clone(),
            key_use: None,
            alg: None,
            kid: None,
            crv,
            x,
            y,
            n,
            e,
        }
    }

    /// The RFC 7638 thumbprint: base64url of the SHA-256 of the required members, in lexicographic order,
    /// without whitespace. DPoP binds tokens to it (`cnf.jkt`, RFC 9449 §6.1).
    ///
    /// # Errors
    /// [`KeyError::InvalidJwk`] when a required member is missing or the key type is not RSA, EC or OKP.
    pub fn thumbprint(&self) -> Result<String, KeyError> {
        let missing = |name: &str| KeyError::InvalidJwk {
            kid: self.kid.clone(),
            reason: format!("the `{name}` member is missing"),
        };
        let member =
            |value: &Option<String>, name: &str| value.clone().ok_or_else(|| missing(name));
        // serde_json writes a `json!` object's members in lexicographic order (no `preserve_order`), which
        // is exactly RFC 7638's canonical form.
        let canonical = match self.kty.as_str() {
            "RSA" => {
                serde_json::json!({"e": member(&self.e, "e")?, "kty": "RSA", "n": member(&self.n, "n")?})
            }
            "EC" => serde_json::json!({
                "crv": member(&self.crv, "crv")?, "kty": "EC",
                "x": member(&self.x, "x")?, "y": member(&self.y, "y")?,
            }),
            "OKP" => {
                serde_json::json!({"crv": member(&self.crv, "crv")?, "kty": "OKP", "x": member(&self.x, "x")?})
            }
            other => {
                return Err(KeyError::InvalidJwk {
                    kid: self.kid.clone(),
                    reason: format!("no thumbprint for the key type {other:?}"),
                });
            }
        };
        let digest = digest::digest(&digest::SHA256, canonical.to_string().as_bytes());
        Ok(URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }
}

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
pub(super) enum Secrets {
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
pub(super) fn keys_from_jwks(json: &[u8], secrets: Secrets) -> Result<Vec<JwtKey>, KeyError> {
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
