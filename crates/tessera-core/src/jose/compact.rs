use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{Algorithm, JwtKey, KeySet, Selection};

/// The longest compact JWS [`Jws::parse`] reads: larger inputs are refused before any decoding.
pub const MAX_JWS_LEN: usize = 16 * 1024;

/// Why a compact JWS was refused. The `Display` text says what is wrong, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JwsError {
    /// Not three base64url parts with a JSON object header naming a supported `alg`.
    #[error("not a well-formed JWS: {0}")]
    Malformed(&'static str),
    /// The `alg` header is not the algorithm of the key that must verify it.
    #[error("the JWS is signed with an algorithm its key does not accept")]
    AlgorithmMismatch,
    /// No key of the set has the header's `kid`.
    #[error("the JWS is signed by an unknown key")]
    UnknownKey,
    /// The signature does not verify.
    #[error("the JWS signature is invalid")]
    InvalidSignature,
}

/// A compact JWS (RFC 7515 §7.1), split and its header decoded, its signature not yet checked.
///
/// For access tokens use tessera-server's `JwtAuthLayer`, which also checks the registered claims in the
/// order that keeps "expired" honest. This type serves the other JWTs Tessera reads: client assertions
/// (RFC 7523) and DPoP proofs (RFC 9449), whose claims each have their own rules.
///
/// ```
/// use tessera_core::jose::{Algorithm, Jws, JwsHeader, SigningKey};
///
/// let key = SigningKey::generate(Algorithm::Es256)?;
/// let token = key.sign_jwt(JwsHeader::typed("JWT"), &serde_json::json!({"sub": "svc"}))?;
/// let jws = Jws::parse(&token)?;
/// assert_eq!(jws.kid(), Some(key.kid()));
/// let claims: serde_json::Value = jws.verify_with(key.verifying_key())?.claims()?;
/// assert_eq!(claims["sub"], "svc");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Jws<'t> {
    signing_input: &'t str,
    payload: &'t str,
    signature: Vec<u8>,
    header: Map<String, Value>,
    algorithm: Algorithm,
}

/// A JWS whose signature verified: its header and payload may be trusted as far as the key is.
#[derive(Debug)]
pub struct VerifiedJws {
    header: Map<String, Value>,
    payload: Vec<u8>,
    algorithm: Algorithm,
}

/// The three parts of a compact JWS (RFC 7515 §7.1), not decoded.
pub(super) struct CompactParts<'t> {
    /// `header.payload`, what the signature signs.
    pub(super) signing_input: &'t str,
    pub(super) header: &'t str,
    pub(super) payload: &'t str,
    pub(super) signature: &'t str,
}

impl<'t> CompactParts<'t> {
    /// `token` split at its two dots; `None` unless there are exactly two.
    pub(super) fn of(token: &'t str) -> Option<CompactParts<'t>> {
        let (signing_input, signature) = token.rsplit_once('.')?;
        let (header, payload) = signing_input
            .split_once('.')
            .filter(|(_, payload)| !payload.contains('.'))?;
        Some(CompactParts {
            signing_input,
            header,
            payload,
            signature,
        })
    }
}

impl<'t> Jws<'t> {
    /// Splits `token` and decodes its header.
    ///
    /// # Errors
    /// [`JwsError::Malformed`] for anything but three base64url parts under [`MAX_JWS_LEN`] bytes whose
    /// header is a JSON object with a supported `alg` and no `crit`.
    pub fn parse(token: &'t str) -> Result<Jws<'t>, JwsError> {
        if token.len() > MAX_JWS_LEN {
            return Err(JwsError::Malformed("longer than 16 KiB"));
        }
        let CompactParts {
            signing_input,
            header,
            payload,
            signature,
        } = CompactParts::of(token)
            .ok_or(JwsError::Malformed("a JWS has three dot-separated parts"))?;
        let header = URL_SAFE_NO_PAD
            .decode(header)
            .map_err(|_| JwsError::Malformed("the header is not base64url"))?;
        let header: Map<String, Value> = serde_json::from_slice(&header)
            .map_err(|_| JwsError::Malformed("the header is not a JSON object"))?;
        if header.contains_key("crit") {
            return Err(JwsError::Malformed(
                "critical header extensions are not supported",
            ));
        }
        let algorithm = header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(Algorithm::from_name)
            .ok_or(JwsError::Malformed(
                "the header's alg is missing or not supported",
            ))?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| JwsError::Malformed("the signature is not base64url"))?;
        Ok(Jws {
            signing_input,
            payload,
            signature,
            header,
            algorithm,
        })
    }

    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The `alg` header.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The `kid` header, if it is a string.
    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// The `typ` header, if it is a string.
    pub fn typ(&self) -> Option<&str> {
        self.header.get("typ").and_then(Value::as_str)
    }

    /// The payload decoded without checking the signature: only for choosing which key to verify with
    /// (an assertion's `iss`), never for a decision.
    ///
    /// # Errors
    /// [`JwsError::Malformed`] when it is not base64url JSON of the shape `T`.
    pub fn unverified_claims<T: DeserializeOwned>(&self) -> Result<T, JwsError> {
        decode_claims(&decode_payload(self.payload)?)
    }

    /// Checks the signature with `key`, which must [accept](JwtKey::accepts) the header's algorithm.
    ///
    /// # Errors
    /// [`JwsError::AlgorithmMismatch`] or [`JwsError::InvalidSignature`]; [`JwsError::Malformed`] when the
    /// payload is not base64url.
    pub fn verify_with(self, key: &JwtKey) -> Result<VerifiedJws, JwsError> {
        if !key.accepts(self.algorithm) {
            return Err(JwsError::AlgorithmMismatch);
        }
        if !key.verify(
            self.algorithm,
            self.signing_input.as_bytes(),
            &self.signature,
        ) {
            return Err(JwsError::InvalidSignature);
        }
        Ok(VerifiedJws {
            payload: decode_payload(self.payload)?,
            header: self.header,
            algorithm: self.algorithm,
        })
    }

    /// Checks the signature with the key of `keys` the header selects (by `kid`, or the only key accepting
    /// the header's algorithm), as [`KeySet::select`] picks it for an access token.
    ///
    /// # Errors
    /// [`JwsError::UnknownKey`], [`JwsError::AlgorithmMismatch`], [`JwsError::InvalidSignature`].
    pub fn verify_in(self, keys: &KeySet) -> Result<VerifiedJws, JwsError> {
        match keys.select(self.kid(), self.algorithm) {
            Selection::One(key) => {
                let key = std::sync::Arc::clone(key);
                self.verify_with(&key)
            }
            Selection::Candidates => {
                let message = self.signing_input.as_bytes();
                let key = keys
                    .candidates(self.algorithm)
                    .find(|key| key.verify(self.algorithm, message, &self.signature))
                    .cloned()
                    .ok_or(JwsError::InvalidSignature)?;
                self.verify_with(&key)
            }
            Selection::UnknownKid => Err(JwsError::UnknownKey),
            Selection::AlgorithmMismatch => Err(JwsError::AlgorithmMismatch),
        }
    }
}

impl VerifiedJws {
    /// The protected header.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// The algorithm that verified.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// The payload as JSON claims of the shape `T`.
    ///
    /// # Errors
    /// [`JwsError::Malformed`] when the payload is not JSON of that shape.
    pub fn claims<T: DeserializeOwned>(&self) -> Result<T, JwsError> {
        decode_claims(&self.payload)
    }
}

fn decode_payload(encoded: &str) -> Result<Vec<u8>, JwsError> {
    URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| JwsError::Malformed("the payload is not base64url"))
}

fn decode_claims<T: DeserializeOwned>(payload: &[u8]) -> Result<T, JwsError> {
    serde_json::from_slice(payload)
        .map_err(|_| JwsError::Malformed("the claims are not a JSON object of the expected shape"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{JwsHeader, SigningKey};

    #[test]
    fn every_part_is_checked() {
        let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
        let token = key
            .sign_jwt(JwsHeader::typed("JWT"), &serde_json::json!({"a": 1}))
            .unwrap();
        assert!(
            Jws::parse(&token)
                .unwrap()
                .verify_with(key.verifying_key())
                .is_ok()
        );

        let other = SigningKey::generate(Algorithm::EdDsa).unwrap();
        assert_eq!(
            Jws::parse(&token)
                .unwrap()
                .verify_with(other.verifying_key())
                .unwrap_err(),
            JwsError::InvalidSignature
        );
        let hmac = SigningKey::generate(Algorithm::Hs256).unwrap();
        assert_eq!(
            Jws::parse(&token)
                .unwrap()
                .verify_with(hmac.verifying_key())
                .unwrap_err(),
            JwsError::AlgorithmMismatch
        );
        let keys = KeySet::from_shared(vec![other.verifying_key().clone()]).unwrap();
        assert_eq!(
            Jws::parse(&token).unwrap().verify_in(&keys).unwrap_err(),
            JwsError::UnknownKey
        );
        for bad in [
            "",
            "a.b",
            "a.b.c.d",
            "!.e30.AA",
            "e30.e30.AA",
            &"a".repeat(MAX_JWS_LEN + 1),
        ] {
            assert!(
                matches!(Jws::parse(bad), Err(JwsError::Malformed(_))),
                "{bad}"
            );
        }
        let none = format!("{}.e30.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#));
        assert!(matches!(Jws::parse(&none), Err(JwsError::Malformed(_))));
        let crit = format!(
            "{}.e30.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","crit":["x"]}"#)
        );
        assert!(matches!(Jws::parse(&crit), Err(JwsError::Malformed(_))));
    }
}
