//! One DPoP proof (RFC 9449 §4): its checks that need no state, in the order of §4.3.

use serde::Deserialize;
use serde_json::Value;
use tessera_core::jose::{Algorithm, Jwk, Jws};

use crate::endpoints::same_resource;

/// The `typ` of a DPoP proof (RFC 9449 §4.2).
pub(crate) const PROOF_TYPE: &str = "dpop+jwt";

/// The members of a private JWK (RFC 7518 §6): a proof must embed only the public key.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Why a proof was refused: one variant per check, each with the `error_description` it is answered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProofError {
    /// The client must send a proof and sent none.
    Missing,
    /// More than one `DPoP` header, or one that is not visible ASCII.
    Header,
    Malformed,
    Type,
    Symmetric,
    Algorithm,
    Jwk,
    PrivateJwk,
    Signature,
    Claims,
    Method,
    Target,
    IssuedAt,
    Replayed,
}

impl ProofError {
    /// The `error_description` of the `invalid_dpop_proof` answer.
    pub(crate) fn description(self) -> &'static str {
        match self {
            ProofError::Missing => "this client must send a DPoP proof with every token request",
            ProofError::Header => "send exactly one DPoP header",
            ProofError::Malformed => "the DPoP proof is not a well-formed JWS",
            ProofError::Type => "the DPoP proof's typ header is not dpop+jwt",
            ProofError::Symmetric => {
                "the DPoP proof is signed with a symmetric algorithm; use EdDSA or ES256"
            }
            ProofError::Algorithm => {
                "the DPoP proof's algorithm is not accepted here; see dpop_signing_alg_values_supported"
            }
            ProofError::Jwk => {
                "the DPoP proof's jwk header is missing, unusable, or does not fit its alg"
            }
            ProofError::PrivateJwk => "the DPoP proof's jwk header holds a private key",
            ProofError::Signature => "the DPoP proof's signature does not verify with its jwk",
            ProofError::Claims => {
                "the DPoP proof lacks jti, htm, htu or iat, or one of them has the wrong type"
            }
            ProofError::Method => "the DPoP proof's htm is not the method of this request",
            ProofError::Target => "the DPoP proof's htu is not the URL of this endpoint",
            ProofError::IssuedAt => "the DPoP proof's iat is too far from the current time",
            ProofError::Replayed => "the DPoP proof's jti was already used",
        }
    }
}

/// A proof whose signature, header and claims checked out: the key it proves possession of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Proof {
    /// The RFC 7638 thumbprint of the proof's key: what tokens are bound to (`cnf.jkt`).
    pub(crate) jkt: String,
    pub(crate) jti: String,
    pub(crate) iat: i64,
    /// The server nonce the proof carries, if any.
    pub(crate) nonce: Option<String>,
}

/// What a proof must match.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Expected<'a> {
    /// The request's method.
    pub(crate) method: &'a str,
    /// The public URL of the endpoint.
    pub(crate) url: &'a str,
    /// The current time.
    pub(crate) now: i64,
    /// How far `iat` may be from `now`, either way, seconds.
    pub(crate) window: i64,
    /// The algorithms accepted.
    pub(crate) algorithms: &'a [Algorithm],
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    nonce: Option<String>,
}

/// Checks `proof` against `expected`: everything RFC 9449 §4.3 asks except the nonce and the `jti`
/// replay, which need state (see [`ProofChecker`](super::ProofChecker)).
pub(crate) fn verify(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    let jws = Jws::parse(proof).map_err(|_| ProofError::Malformed)?;
    if !jws
        .typ()
        .is_some_and(|typ| typ.eq_ignore_ascii_case(PROOF_TYPE))
    {
        return Err(ProofError::Type);
    }
    let algorithm = jws.algorithm();
    if algorithm.is_symmetric() {
        return Err(ProofError::Symmetric);
    }
    if !expected.algorithms.contains(&algorithm) {
        return Err(ProofError::Algorithm);
    }
    let jwk = embedded_jwk(jws.header().get("jwk"), algorithm)?;
    let key = jwk.to_key().map_err(|_| ProofError::Jwk)?;
    let jkt = jwk.thumbprint().map_err(|_| ProofError::Jwk)?;
    let claims: Claims = jws
        .verify_with(&key)
        .map_err(|_| ProofError::Signature)?
        .claims()
        .map_err(|_| ProofError::Claims)?;
    if claims.jti.is_empty() {
        return Err(ProofError::Claims);
    }
    if claims.htm != expected.method {
        return Err(ProofError::Method);
    }
    if !same_resource(&claims.htu, expected.url) {
        return Err(ProofError::Target);
    }
    if claims.iat.abs_diff(expected.now) > expected.window.unsigned_abs() {
        return Err(ProofError::IssuedAt);
    }
    Ok(Proof {
        jkt,
        jti: claims.jti,
        iat: claims.iat,
        nonce: claims.nonce,
    })
}

/// The public key a proof embeds, its `alg` set to the header's when it names none (an RSA key without
/// `alg` would otherwise default to RS256 and refuse a PS256 proof).
fn embedded_jwk(member: Option<&Value>, algorithm: Algorithm) -> Result<Jwk, ProofError> {
    let object = member.and_then(Value::as_object).ok_or(ProofError::Jwk)?;
    if PRIVATE_MEMBERS
        .iter()
        .any(|name| object.contains_key(*name))
    {
        return Err(ProofError::PrivateJwk);
    }
    let mut jwk: Jwk =
        serde_json::from_value(Value::Object(object.clone())).map_err(|_| ProofError::Jwk)?;
    match jwk.alg.as_deref() {
        None => jwk.alg = Some(algorithm.as_str().to_owned()),
        Some(named) if named == algorithm.as_str() => {}
        Some(_) => return Err(ProofError::Jwk),
    }
    Ok(jwk)
}

#[cfg(test)]
pub(crate) mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;
    use tessera_core::jose::{JwsHeader, SigningKey};

    use super::*;

    pub(crate) const URL: &str = "https://auth.test/auth/token";
    pub(crate) const NOW: i64 = 1_800_000_000;
    const ALGORITHMS: [Algorithm; 5] = [
        Algorithm::EdDsa,
        Algorithm::Es256,
        Algorithm::Es384,
        Algorithm::Rs256,
        Algorithm::Ps256,
    ];

    fn expected() -> Expected<'static> {
        Expected {
            method: "POST",
            url: URL,
            now: NOW,
            window: 60,
            algorithms: &ALGORITHMS,
        }
    }

    /// A proof by `key` with `claims`, embedding its public key.
    pub(crate) fn signed(key: &SigningKey, claims: &Value) -> String {
        let header = JwsHeader {
            typ: Some(PROOF_TYPE),
            embed_jwk: true,
        };
        key.sign_jwt(header, claims).unwrap()
    }

    pub(crate) fn claims(jti: &str) -> Value {
        json!({"jti": jti, "htm": "POST", "htu": URL, "iat": NOW})
    }

    /// A compact JWS with exactly this header and these claims, signed by `key`.
    fn with_header(key: &SigningKey, header: &Value, claims: &Value) -> String {
        let encode = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
        let input = format!("{}.{}", encode(header), encode(claims));
        let signature = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn a_proof_of_every_asymmetric_algorithm_verifies_and_names_its_key() {
        for algorithm in ALGORITHMS {
            let key = SigningKey::generate(algorithm).unwrap();
            let proof = verify(&signed(&key, &claims("j1")), &expected())
                .unwrap_or_else(|error| panic!("{algorithm}: {error:?}"));
            assert_eq!(proof.jkt, key.public_jwk().unwrap().thumbprint().unwrap());
            assert_eq!((proof.jti.as_str(), proof.iat), ("j1", NOW));
            assert_eq!(proof.nonce, None);
        }
    }

    #[test]
    fn every_check_refuses_with_its_own_reason() {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let jwk = serde_json::to_value(key.public_jwk().unwrap().thumbprint_members()).unwrap();
        let header = |extra: Value| {
            let mut header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
            header.as_object_mut().unwrap().extend(
                extra
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            header
        };
        let mut private = jwk.clone();
        private["d"] = json!("AAAA");
        let claimed = |change: &dyn Fn(&mut Value)| {
            let mut claims = claims("j1");
            change(&mut claims);
            signed(&key, &claims)
        };
        let hmac = SigningKey::from_hmac_secret("h", &[7; 32]).unwrap();
        let other = SigningKey::generate(Algorithm::Es256).unwrap();
        let cases: Vec<(String, ProofError)> = vec![
            ("not.a.jws".into(), ProofError::Malformed),
            (
                with_header(&key, &header(json!({"typ": "JWT"})), &claims("j1")),
                ProofError::Type,
            ),
            (
                with_header(
                    &hmac,
                    &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "AAAA"}}),
                    &claims("j1"),
                ),
                ProofError::Symmetric,
            ),
            (
                with_header(&key, &header(json!({"jwk": null})), &claims("j1")),
                ProofError::Jwk,
            ),
            (
                with_header(&key, &header(json!({"jwk": private})), &claims("j1")),
                ProofError::PrivateJwk,
            ),
            (
                with_header(
                    &key,
                    &header(json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}})),
                    &claims("j1"),
                ),
                ProofError::Jwk,
            ),
            (
                with_header(&other, &header(json!({})), &claims("j1")),
                ProofError::Signature,
            ),
            (
                claimed(&|claims| {
                    claims.as_object_mut().unwrap().remove("jti");
                }),
                ProofError::Claims,
            ),
            (
                claimed(&|claims| claims["iat"] = json!("now")),
                ProofError::Claims,
            ),
            (
                claimed(&|claims| claims["htm"] = json!("GET")),
                ProofError::Method,
            ),
            (
                claimed(&|claims| claims["htu"] = json!("https://auth.test/auth/revoke")),
                ProofError::Target,
            ),
            (
                claimed(&|claims| claims["iat"] = json!(NOW - 61)),
                ProofError::IssuedAt,
            ),
            (
                claimed(&|claims| claims["iat"] = json!(NOW + 61)),
                ProofError::IssuedAt,
            ),
        ];
        for (proof, reason) in cases {
            assert_eq!(verify(&proof, &expected()), Err(reason), "{reason:?}");
        }
        let eddsa_only = Expected {
            algorithms: &[Algorithm::EdDsa],
            ..expected()
        };
        assert_eq!(
            verify(&signed(&key, &claims("j1")), &eddsa_only),
            Err(ProofError::Algorithm)
        );
        assert!(
            verify(
                &claimed(&|claims| claims["iat"] = json!(NOW - 60)),
                &expected()
            )
            .is_ok(),
            "the window is inclusive"
        );
    }

    #[test]
    fn a_jwk_naming_another_alg_than_the_header_is_refused() {
        let key = SigningKey::generate(Algorithm::Rs256).unwrap();
        let mut jwk = serde_json::to_value(key.public_jwk().unwrap().thumbprint_members()).unwrap();
        jwk["alg"] = json!("PS256");
        let header = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": jwk});
        assert_eq!(
            verify(&with_header(&key, &header, &claims("j1")), &expected()),
            Err(ProofError::Jwk)
        );
    }

    #[test]
    fn descriptions_are_rfc6749_text() {
        for reason in [
            ProofError::Missing,
            ProofError::Header,
            ProofError::Malformed,
            ProofError::Type,
            ProofError::Symmetric,
            ProofError::Algorithm,
            ProofError::Jwk,
            ProofError::PrivateJwk,
            ProofError::Signature,
            ProofError::Claims,
            ProofError::Method,
            ProofError::Target,
            ProofError::IssuedAt,
            ProofError::Replayed,
        ] {
            assert!(
                reason
                    .description()
                    .bytes()
                    .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)),
                "{reason:?}"
            );
        }
    }
}
