//! JWK (RFC 7517) and JWKS documents: parsed into [`JwtKey`]s, published as [`Jwk`]s.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};

use super::algorithm::AlgorithmSet;
use super::{Algorithm, JwtKey, KeyError, der};

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
                x5c: None,
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
        fn present<'a>(
            value: &'a Option<String>,
            name: &str,
            missing: impl Fn(&str) -> KeyError,
        ) -> Result<&'a str, KeyError> {
            value.as_deref().ok_or_else(|| missing(name))
        }
        let member = |value, name| present(value, name, missing);
        Ok(match self.kty.as_str() {
            "RSA" => thumbprint_of(&[
                ("e", member(&self.e, "e")?),
                ("kty", "RSA"),
                ("n", member(&self.n, "n")?),
            ]),
            "EC" => thumbprint_of(&[
                ("crv", member(&self.crv, "crv")?),
                ("kty", "EC"),
                ("x", member(&self.x, "x")?),
                ("y", member(&self.y, "y")?),
            ]),
            "OKP" => thumbprint_of(&[
                ("crv", member(&self.crv, "crv")?),
                ("kty", "OKP"),
                ("x", member(&self.x, "x")?),
            ]),
            other => {
                return Err(KeyError::InvalidJwk {
                    kid: self.kid.clone(),
                    reason: format!("no thumbprint for the key type {other:?}"),
                });
            }
        })
    }
}

/// RFC 7638 §3: base64url of the SHA-256 of the JSON object of `members` (given in lexicographic order of
/// their names), written without whitespace.
pub(super) fn thumbprint_of(members: &[(&str, &str)]) -> String {
    let mut canonical = Vec::with_capacity(
        members
            .iter()
            .map(|(name, value)| name.len() + value.len() + 6)
            .sum::<usize>()
            + 2,
    );
    canonical.push(b'{');
    for (index, (name, value)) in members.iter().enumerate() {
        if index > 0 {
            canonical.push(b',');
        }
        // Writing a string into a Vec cannot fail; the escaping is JSON's own.
        let _ = serde_json::to_writer(&mut canonical, name);
        canonical.push(b':');
        let _ = serde_json::to_writer(&mut canonical, value);
    }
    canonical.push(b'}');
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, &canonical))
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
    /// The certificate chain; the first certificate's key is used when the key members are absent.
    #[serde(default)]
    x5c: Option<Vec<String>>,
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
    /// With `alg`, the key verifies that algorithm only. Without, it verifies its key type's family: RS256
    /// and PS256 for RSA, EdDSA and Ed25519 (RFC 9864) for an Ed25519 OKP key, the curve's one algorithm
    /// for EC, HS256 for `oct`. A key given only as a certificate chain (`x5c`, no `n`/`e` or `x`/`y`) is
    /// read from its first certificate. The `kid` is kept.
    ///
    /// ```
    /// use tessera_core::jose::{Algorithm, JwtKey};
    ///
    /// // RFC 8037 §A.2's Ed25519 key, published without `alg`.
    /// let key = JwtKey::from_jwk_json(
    ///     r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
    /// )?;
    /// assert_eq!(key.algorithms().collect::<Vec<_>>(), [Algorithm::EdDsa, Algorithm::Ed25519]);
    /// # Ok::<(), tessera_core::jose::KeyError>(())
    /// ```
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
    // RFC 7517 §4.7: the first certificate holds the key, for JWKs that carry no other key members.
    let certificate = |present: bool| -> Result<Option<Vec<u8>>, KeyError> {
        let Some(first) = fields.x5c.as_ref().and_then(|chain| chain.first()) else {
            return Ok(None);
        };
        if present {
            return Ok(None);
        }
        let der = STANDARD
            .decode(first)
            .map_err(|_| invalid("the first `x5c` certificate is not base64".into()))?;
        let key = der::certificate_public_key(&der).ok_or_else(|| {
            invalid("the first `x5c` certificate is not a DER X.509 certificate".into())
        })?;
        Ok(Some(key.to_vec()))
    };
    let key = match fields.kty.as_str() {
        "RSA" => {
            let algorithms = match named {
                None => AlgorithmSet::one(Algorithm::Rs256).with(Algorithm::Ps256),
                Some(alg @ (Algorithm::Rs256 | Algorithm::Ps256)) => AlgorithmSet::one(alg),
                Some(other) => return Err(invalid(format!("{other} does not fit an RSA key"))),
            };
            let der = match certificate(fields.n.is_some() || fields.e.is_some())? {
                Some(spki) => spki,
                None => der::rsa_public_key(&member(&fields.n, "n")?, &member(&fields.e, "e")?),
            };
            JwtKey::public(algorithms, &der)?
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
            if let Some(spki) = certificate(fields.x.is_some() || fields.y.is_some())? {
                JwtKey::from_public_bytes(algorithm, &spki)?
            } else {
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
        }
        "OKP" => {
            if fields.crv.as_deref() != Some("Ed25519") {
                return Err(invalid(format!(
                    "the OKP curve {:?} is not supported",
                    fields.crv
                )));
            }
            let algorithms = match named {
                None => AlgorithmSet::one(Algorithm::EdDsa).with(Algorithm::Ed25519),
                Some(alg @ (Algorithm::EdDsa | Algorithm::Ed25519)) => AlgorithmSet::one(alg),
                Some(_) => {
                    return Err(invalid(
                        "`alg` must be EdDSA or Ed25519 for an Ed25519 key".into(),
                    ));
                }
            };
            let bytes = match certificate(fields.x.is_some())? {
                Some(spki) => spki,
                None => member(&fields.x, "x")?,
            };
            JwtKey::public(algorithms, &bytes)?
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

#[cfg(test)]
mod tests {
    use super::*;

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
