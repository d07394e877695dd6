//! DPoP proofs (RFC 9449 §4): the checks a resource server and a token endpoint make alike.
//!
//! What stays with the caller, because it differs between the two: remembering `jti`s to refuse replays
//! (bounded memory on one resource server, a shared store for several token-service instances), server
//! nonces, and comparing [`VerifiedProof::thumbprint`] with the access token's `cnf.jkt`.

use std::borrow::Cow;

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde::de::IgnoredAny;

use super::compact::CompactParts;
use super::jwk::thumbprint_of;
use super::{Algorithm, JwtKey, der};
use crate::NumericDate;

/// The `typ` header of a DPoP proof (RFC 9449 §4.2).
pub const DPOP_PROOF_TYPE: &str = "dpop+jwt";

/// The longest proof [`ProofRequirements::verify`] reads: an RSA-8192 proof fits.
pub const MAX_PROOF_LEN: usize = 8 * 1024;

/// Largest decoded proof header: an RSA-8192 `jwk` takes 1.5 KiB.
const MAX_HEADER_LEN: usize = 2048;
/// Largest decoded signature: RSA-4096.
const MAX_SIGNATURE_LEN: usize = 512;

/// What a DPoP proof must match: the request it came with, and the server's rules.
///
/// ```
/// use tessera_core::jose::{Algorithm, JwsHeader, ProofError, ProofRequirements, SigningKey};
///
/// let key = SigningKey::generate(Algorithm::Es256)?;
/// let now = 1_767_225_600;
/// let proof = key.sign_jwt(
///     JwsHeader { typ: Some("dpop+jwt"), embed_jwk: true },
///     &serde_json::json!({"jti": "p1", "htm": "GET", "htu": "https://api.example/me", "iat": now,
///                         "ath": "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"}),
/// )?;
/// let requirements = ProofRequirements {
///     method: "GET",
///     url: "https://api.example/me?page=2",
///     access_token: Some("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
///     algorithms: &[Algorithm::Es256, Algorithm::EdDsa],
///     now,
///     max_age: 60,
/// };
/// let verified = requirements.verify(&proof)?;
/// assert_eq!(verified.thumbprint(), key.public_jwk().unwrap().thumbprint()?);
/// assert_eq!(verified.jti(), "p1");
///
/// let elsewhere = ProofRequirements { url: "https://api.example/admin", ..requirements };
/// assert_eq!(elsewhere.verify(&proof), Err(ProofError::Url));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ProofRequirements<'a> {
    /// The request's method, which `htm` must equal.
    pub method: &'a str,
    /// The URL the client sent the request to, as the client addressed it (the public origin, not the
    /// address a proxy forwarded it to). `htu` must be it, ignoring query and fragment, the case of scheme
    /// and host, and a default port.
    pub url: &'a str,
    /// The access token sent with the proof, whose SHA-256 `ath` must carry (a resource request); `None`
    /// at the token endpoint.
    pub access_token: Option<&'a str>,
    /// The signature algorithms accepted. Symmetric ones are refused whatever this says: a proof is
    /// signed with a key only the client holds.
    pub algorithms: &'a [Algorithm],
    /// Now, in seconds since the Unix epoch.
    pub now: i64,
    /// How far `iat` may lie from `now`, either way, in seconds.
    pub max_age: i64,
}

/// A proof whose signature, type, algorithm, key, `htm`, `htu`, `iat` and `ath` checked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    thumbprint: String,
    jti: String,
    issued_at: i64,
    nonce: Option<String>,
}

/// Why a DPoP proof was refused. The `Display` text is the `error_description` of an
/// `invalid_dpop_proof` answer (RFC 9449 §7.1); it never contains the proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// No `DPoP` header.
    #[error("The request carries no DPoP proof")]
    Missing,
    /// More than one `DPoP` header (RFC 9449 §4.3, check 1).
    #[error("The request carries more than one DPoP proof")]
    Multiple,
    /// Not a compact JWS with JSON header and claims, or a required claim is missing.
    #[error("The DPoP proof is not well formed: {0}")]
    Malformed(&'static str),
    /// `typ` is not `dpop+jwt`.
    #[error("The DPoP proof's typ is not dpop+jwt")]
    WrongType,
    /// `alg` is symmetric, unsupported or not among the accepted ones.
    #[error("The DPoP proof is signed with an algorithm this server does not accept")]
    Algorithm,
    /// The `jwk` header is missing, holds a private key, or is not a public key for `alg`.
    #[error("The DPoP proof's jwk is not a usable public key: {0}")]
    Key(&'static str),
    /// The signature does not verify with the embedded key.
    #[error("The DPoP proof's signature is invalid")]
    InvalidSignature,
    /// `htm` is not the request's method.
    #[error("The DPoP proof's htm does not match the request method")]
    Method,
    /// `htu` is not the request's URL.
    #[error("The DPoP proof's htu does not match the request URL")]
    Url,
    /// `iat` is too far from now: an old proof, or a client clock far off.
    #[error("The DPoP proof's iat is outside the accepted window")]
    IssuedAt,
    /// `ath` is missing or is not the hash of the access token sent with the proof.
    #[error("The DPoP proof's ath does not match the access token")]
    TokenHash,
    /// The proof's `jti` was seen before, within its window.
    #[error("The DPoP proof's jti was already used")]
    Replayed,
    /// The proof's key is not the one the access token is bound to (`cnf.jkt`).
    #[error("The DPoP proof's key is not the key the access token is bound to")]
    KeyMismatch,
}

impl VerifiedProof {
    /// The RFC 7638 SHA-256 thumbprint of the proof's key: what `cnf.jkt` binds a token to.
    pub fn thumbprint(&self) -> &str {
        &self.thumbprint
    }

    /// The proof's `jti`, for replay detection.
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The proof's `iat`, seconds since the Unix epoch.
    pub fn issued_at(&self) -> i64 {
        self.issued_at
    }

    /// The proof's `nonce`, for a server that hands out nonces.
    pub fn nonce(&self) -> Option<&str> {
        self.nonce.as_deref()
    }
}

#[derive(Deserialize)]
struct ProofHeader<'a> {
    #[serde(borrow, default)]
    typ: Cow<'a, str>,
    #[serde(borrow, default)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    jwk: Option<ProofJwk<'a>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The public members of the embedded key, and the private ones only to notice them.
#[derive(Deserialize)]
struct ProofJwk<'a> {
    #[serde(borrow, default)]
    kty: Cow<'a, str>,
    /// The algorithm the key is meant for (RFC 7517 §4.4), if it names one.
    #[serde(borrow, default)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    crv: Cow<'a, str>,
    #[serde(borrow, default)]
    x: Cow<'a, str>,
    #[serde(borrow, default)]
    y: Cow<'a, str>,
    #[serde(borrow, default)]
    n: Cow<'a, str>,
    #[serde(borrow, default)]
    e: Cow<'a, str>,
    #[serde(default)]
    d: Option<IgnoredAny>,
    #[serde(default)]
    p: Option<IgnoredAny>,
    #[serde(default)]
    q: Option<IgnoredAny>,
    #[serde(default)]
    k: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct ProofClaims<'a> {
    #[serde(borrow, default)]
    jti: Cow<'a, str>,
    #[serde(borrow, default)]
    htm: Cow<'a, str>,
    #[serde(borrow, default)]
    htu: Cow<'a, str>,
    #[serde(default)]
    iat: Option<NumericDate>,
    #[serde(borrow, default)]
    ath: Cow<'a, str>,
    #[serde(borrow, default)]
    nonce: Cow<'a, str>,
}

impl ProofRequirements<'_> {
    /// Checks `proof` (the value of the request's one `DPoP` header) in RFC 9449 §4.3's order: its form,
    /// `typ`, `alg`, the embedded public key, the signature, then `htm`, `htu`, `iat` and `ath`.
    ///
    /// # Errors
    /// The first check that fails, as a [`ProofError`].
    pub fn verify(&self, proof: &str) -> Result<VerifiedProof, ProofError> {
        if proof.len() > MAX_PROOF_LEN {
            return Err(ProofError::Malformed("the proof is longer than 8 KiB"));
        }
        let CompactParts {
            signing_input,
            header,
            payload,
            signature,
        } = CompactParts::of(proof)
            .ok_or(ProofError::Malformed("a JWS has three dot-separated parts"))?;

        let mut header_bytes = [0; MAX_HEADER_LEN];
        let header_len = decode_into(header, &mut header_bytes).ok_or(ProofError::Malformed(
            "the header is not base64url of at most 2 KiB",
        ))?;
        let header: ProofHeader<'_> = serde_json::from_slice(&header_bytes[..header_len])
            .map_err(|_| ProofError::Malformed("the header is not a JSON object"))?;
        if header.crit.is_some() {
            return Err(ProofError::Malformed(
                "critical header extensions are not supported",
            ));
        }
        if !header.typ.eq_ignore_ascii_case(DPOP_PROOF_TYPE) {
            return Err(ProofError::WrongType);
        }
        let algorithm = Algorithm::from_name(&header.alg)
            .filter(|algorithm| !algorithm.is_symmetric() && self.algorithms.contains(algorithm))
            .ok_or(ProofError::Algorithm)?;
        let jwk = header.jwk.ok_or(ProofError::Key("the header has no jwk"))?;
        if jwk.d.is_some() || jwk.p.is_some() || jwk.q.is_some() || jwk.k.is_some() {
            return Err(ProofError::Key("it holds private key material"));
        }
        if jwk.alg.as_ref().is_some_and(|alg| *alg != header.alg) {
            return Err(ProofError::Key(
                "it names another alg than the proof's header",
            ));
        }
        let key = proof_key(algorithm, &jwk)?;

        let mut signature_bytes = [0; MAX_SIGNATURE_LEN];
        let signature_len =
            decode_into(signature, &mut signature_bytes).ok_or(ProofError::InvalidSignature)?;
        if !key.verify(
            algorithm,
            signing_input.as_bytes(),
            &signature_bytes[..signature_len],
        ) {
            return Err(ProofError::InvalidSignature);
        }

        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| ProofError::Malformed("the claims are not base64url"))?;
        let claims: ProofClaims<'_> = serde_json::from_slice(&payload).map_err(|_| {
            ProofError::Malformed("the claims are not a JSON object of the DPoP shape")
        })?;
        let required = [
            ("the jti claim is missing", claims.jti.is_empty()),
            ("the htm claim is missing", claims.htm.is_empty()),
            ("the htu claim is missing", claims.htu.is_empty()),
            ("the iat claim is missing", claims.iat.is_none()),
        ];
        if let Some((missing, _)) = required.into_iter().find(|(_, absent)| *absent) {
            return Err(ProofError::Malformed(missing));
        }
        if claims.htm != self.method {
            return Err(ProofError::Method);
        }
        if !same_url(&claims.htu, self.url) {
            return Err(ProofError::Url);
        }
        let issued_at = claims.iat.map_or(0, |NumericDate(iat)| iat);
        if self.now.abs_diff(issued_at) > self.max_age.unsigned_abs() {
            return Err(ProofError::IssuedAt);
        }
        if let Some(token) = self.access_token
            && claims.ath != token_hash(token)
        {
            return Err(ProofError::TokenHash);
        }
        Ok(VerifiedProof {
            thumbprint: thumbprint(&jwk),
            jti: claims.jti.into_owned(),
            issued_at,
            nonce: (!claims.nonce.is_empty()).then(|| claims.nonce.into_owned()),
        })
    }
}

/// The public key of a proof, for `algorithm` only: the key type and curve must fit it.
fn proof_key(algorithm: Algorithm, jwk: &ProofJwk<'_>) -> Result<JwtKey, ProofError> {
    let member = |value: &str| {
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| ProofError::Key("a key member is not base64url"))
    };
    let bytes = match (algorithm, &*jwk.kty) {
        (Algorithm::Es256 | Algorithm::Es384, "EC") => {
            let (curve, len) = if algorithm == Algorithm::Es256 {
                ("P-256", 32)
            } else {
                ("P-384", 48)
            };
            if jwk.crv != curve {
                return Err(ProofError::Key("its curve does not fit the algorithm"));
            }
            let (x, y) = (member(&jwk.x)?, member(&jwk.y)?);
            if x.len() != len || y.len() != len {
                return Err(ProofError::Key("its coordinates have the wrong length"));
            }
            [&[0x04][..], &x, &y].concat()
        }
        (Algorithm::EdDsa | Algorithm::Ed25519, "OKP") if jwk.crv == "Ed25519" => member(&jwk.x)?,
        (Algorithm::Rs256 | Algorithm::Ps256, "RSA") => {
            der::rsa_public_key(&member(&jwk.n)?, &member(&jwk.e)?)
        }
        _ => return Err(ProofError::Key("its key type does not fit the algorithm")),
    };
    JwtKey::from_public_bytes(algorithm, &bytes)
        .map_err(|_| ProofError::Key("the crypto library refused the key"))
}

/// The RFC 7638 thumbprint of a key that [`proof_key`] accepted, so every member it needs is there.
fn thumbprint(jwk: &ProofJwk<'_>) -> String {
    match &*jwk.kty {
        "RSA" => thumbprint_of(&[("e", &jwk.e), ("kty", "RSA"), ("n", &jwk.n)]),
        "EC" => thumbprint_of(&[
            ("crv", &jwk.crv),
            ("kty", "EC"),
            ("x", &jwk.x),
            ("y", &jwk.y),
        ]),
        _ => thumbprint_of(&[("crv", &jwk.crv), ("kty", &jwk.kty), ("x", &jwk.x)]),
    }
}

/// `ath`: base64url of the SHA-256 of the access token (RFC 9449 §4.2).
fn token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, token.as_bytes()))
}

/// Decodes unpadded base64url into `out`, or `None` when it is not base64url or does not fit.
fn decode_into(encoded: &str, out: &mut [u8]) -> Option<usize> {
    if encoded.len() / 4 * 3 + 2 > out.len() {
        return None;
    }
    URL_SAFE_NO_PAD.decode_slice(encoded, out).ok()
}

/// Whether `claimed` (a proof's `htu`) names `expected` (RFC 9449 §4.3, check 9): query and fragment are
/// ignored, scheme and host compared without case, a default port is the same as none, and an empty path
/// is `/`. The path is compared as sent. A URL with user information never matches.
fn same_url(claimed: &str, expected: &str) -> bool {
    match (UrlParts::of(claimed), UrlParts::of(expected)) {
        (Some(claimed), Some(expected)) => claimed.same_as(&expected),
        _ => false,
    }
}

#[derive(Debug)]
struct UrlParts<'a> {
    scheme: &'a str,
    host: &'a str,
    /// `None` for the scheme's default port.
    port: Option<&'a str>,
    path: &'a str,
}

impl<'a> UrlParts<'a> {
    fn of(url: &'a str) -> Option<UrlParts<'a>> {
        let url = url.split(['?', '#']).next().unwrap_or_default();
        let (scheme, rest) = url.split_once("://")?;
        let (authority, path) = rest.find('/').map_or((rest, "/"), |at| rest.split_at(at));
        if authority.is_empty() || authority.contains('@') {
            return None;
        }
        // The port follows the last `:` outside an IPv6 literal's brackets.
        let (host, port) = match authority.rfind(':') {
            Some(at) if !authority[at..].contains(']') => {
                (&authority[..at], Some(&authority[at + 1..]))
            }
            _ => (authority, None),
        };
        let default = if scheme.eq_ignore_ascii_case("https") {
            "443"
        } else if scheme.eq_ignore_ascii_case("http") {
            "80"
        } else {
            return None;
        };
        let port = port.filter(|port| *port != default && !port.is_empty());
        Some(UrlParts {
            scheme,
            host,
            port,
            path,
        })
    }

    fn same_as(&self, other: &UrlParts<'_>) -> bool {
        self.scheme.eq_ignore_ascii_case(other.scheme)
            && self.host.eq_ignore_ascii_case(other.host)
            && self.port == other.port
            && self.path == other.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jose::{JwsHeader, SigningKey};

    const NOW: i64 = 1_767_225_600;
    const TOKEN: &str = "an.access.token";

    fn requirements() -> ProofRequirements<'static> {
        ProofRequirements {
            method: "POST",
            url: "https://api.example/orders",
            access_token: Some(TOKEN),
            algorithms: &[
                Algorithm::Es256,
                Algorithm::Es384,
                Algorithm::EdDsa,
                Algorithm::Ed25519,
                Algorithm::Rs256,
                Algorithm::Ps256,
            ],
            now: NOW,
            max_age: 60,
        }
    }

    fn claims() -> serde_json::Value {
        serde_json::json!({
            "jti": "j1", "htm": "POST", "htu": "https://api.example/orders", "iat": NOW,
            "ath": token_hash(TOKEN),
        })
    }

    fn proof(key: &SigningKey, claims: &serde_json::Value) -> String {
        key.sign_jwt(
            JwsHeader {
                typ: Some(DPOP_PROOF_TYPE),
                embed_jwk: true,
            },
            claims,
        )
        .unwrap()
    }

    /// A proof with a hand-written header, signed by `key`.
    fn proof_with_header(key: &SigningKey, header: &serde_json::Value) -> String {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims().to_string())
        );
        let signature = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    #[test]
    fn every_asymmetric_algorithm_verifies_and_thumbprints_like_the_jwk() {
        for algorithm in [
            Algorithm::Es256,
            Algorithm::Es384,
            Algorithm::EdDsa,
            Algorithm::Ed25519,
            Algorithm::Rs256,
            Algorithm::Ps256,
        ] {
            let key = SigningKey::generate(algorithm).unwrap();
            let verified = requirements().verify(&proof(&key, &claims())).unwrap();
            assert_eq!(
                verified.thumbprint(),
                key.public_jwk().unwrap().thumbprint().unwrap(),
                "{algorithm}"
            );
            assert_eq!(
                (verified.jti(), verified.issued_at(), verified.nonce()),
                ("j1", NOW, None)
            );
        }
    }

    #[test]
    fn each_claim_is_checked() {
        let key = SigningKey::generate(Algorithm::EdDsa).unwrap();
        let with = |changes: serde_json::Value| {
            let mut claims = claims();
            for (name, value) in changes.as_object().unwrap() {
                if value.is_null() {
                    claims.as_object_mut().unwrap().remove(name);
                } else {
                    claims[name] = value.clone();
                }
            }
            requirements().verify(&proof(&key, &claims))
        };
        assert_eq!(
            with(serde_json::json!({"htm": "GET"})),
            Err(ProofError::Method)
        );
        assert_eq!(
            with(serde_json::json!({"htu": "https://api.example/other"})),
            Err(ProofError::Url)
        );
        assert_eq!(
            with(serde_json::json!({"iat": NOW - 61})),
            Err(ProofError::IssuedAt)
        );
        assert_eq!(
            with(serde_json::json!({"iat": NOW + 61})),
            Err(ProofError::IssuedAt)
        );
        assert_eq!(
            with(serde_json::json!({"ath": token_hash("another.token")})),
            Err(ProofError::TokenHash)
        );
        assert_eq!(
            with(serde_json::json!({"ath": null})),
            Err(ProofError::TokenHash)
        );
        for missing in ["jti", "htm", "htu", "iat"] {
            let error = with(serde_json::json!({ missing: null })).unwrap_err();
            assert!(
                matches!(error, ProofError::Malformed(reason) if reason.contains(missing)),
                "{missing}: {error}"
            );
        }
        // Query and fragment, case and default port do not matter; the path does, exactly.
        let verified = with(serde_json::json!({
            "htu": "HTTPS://API.example:443/orders?x=1#top", "nonce": "n-1",
        }))
        .unwrap();
        assert_eq!(verified.nonce(), Some("n-1"));
        assert_eq!(
            with(serde_json::json!({"htu": "https://api.example/Orders"})),
            Err(ProofError::Url)
        );
        // At the token endpoint there is no access token, and no ath to check.
        let token_endpoint = ProofRequirements {
            access_token: None,
            ..requirements()
        };
        let mut claims = claims();
        claims.as_object_mut().unwrap().remove("ath");
        assert!(token_endpoint.verify(&proof(&key, &claims)).is_ok());
    }

    #[test]
    fn the_header_and_key_are_checked() {
        let key = SigningKey::generate(Algorithm::Es256).unwrap();
        let jwk = serde_json::to_value(key.public_jwk().unwrap().thumbprint_members()).unwrap();
        let header = |typ: &str, alg: &str, jwk: serde_json::Value| serde_json::json!({"typ": typ, "alg": alg, "jwk": jwk});
        let check =
            |header: serde_json::Value| requirements().verify(&proof_with_header(&key, &header));
        assert!(check(header("dpop+jwt", "ES256", jwk.clone())).is_ok());
        assert_eq!(
            check(header("JWT", "ES256", jwk.clone())),
            Err(ProofError::WrongType)
        );
        assert_eq!(
            check(header("dpop+jwt", "HS256", jwk.clone())),
            Err(ProofError::Algorithm)
        );
        assert_eq!(
            check(header("dpop+jwt", "none", jwk.clone())),
            Err(ProofError::Algorithm)
        );
        assert_eq!(
            check(serde_json::json!({"typ": "dpop+jwt", "alg": "ES256"})),
            Err(ProofError::Key("the header has no jwk"))
        );
        let mut private = jwk.clone();
        private["d"] = "AAAA".into();
        assert_eq!(
            check(header("dpop+jwt", "ES256", private)),
            Err(ProofError::Key("it holds private key material"))
        );
        let other = SigningKey::generate(Algorithm::Es256).unwrap();
        let other_jwk =
            serde_json::to_value(other.public_jwk().unwrap().thumbprint_members()).unwrap();
        assert_eq!(
            check(header("dpop+jwt", "ES256", other_jwk)),
            Err(ProofError::InvalidSignature)
        );
        assert_eq!(
            check(header("dpop+jwt", "ES384", jwk.clone())),
            Err(ProofError::Key("its curve does not fit the algorithm"))
        );
        let mut naming = jwk.clone();
        naming["alg"] = "ES256".into();
        assert!(check(header("dpop+jwt", "ES256", naming.clone())).is_ok());
        naming["alg"] = "ES384".into();
        assert_eq!(
            check(header("dpop+jwt", "ES256", naming)),
            Err(ProofError::Key(
                "it names another alg than the proof's header"
            ))
        );
        let only_eddsa = ProofRequirements {
            algorithms: &[Algorithm::EdDsa],
            ..requirements()
        };
        assert_eq!(
            only_eddsa.verify(&proof_with_header(&key, &header("dpop+jwt", "ES256", jwk))),
            Err(ProofError::Algorithm)
        );
        for garbage in [
            "",
            "a.b",
            "a.b.c.d",
            "!!.e30.AA",
            &"a".repeat(MAX_PROOF_LEN + 1),
        ] {
            assert!(
                matches!(
                    requirements().verify(garbage),
                    Err(ProofError::Malformed(_))
                ),
                "{garbage}"
            );
        }
    }

    #[test]
    fn every_reason_is_error_description_text() {
        let reasons = [
            ProofError::Missing,
            ProofError::Multiple,
            ProofError::Malformed("the jti claim is missing"),
            ProofError::WrongType,
            ProofError::Algorithm,
            ProofError::Key("it names another alg than the proof's header"),
            ProofError::InvalidSignature,
            ProofError::Method,
            ProofError::Url,
            ProofError::IssuedAt,
            ProofError::TokenHash,
            ProofError::Replayed,
            ProofError::KeyMismatch,
        ];
        for reason in reasons {
            // RFC 6749 §5.2: `error_description` is %x20-21 / %x23-5B / %x5D-7E.
            assert!(
                reason
                    .to_string()
                    .bytes()
                    .all(|b| matches!(b, 0x20..=0x21 | 0x23..=0x5b | 0x5d..=0x7e)),
                "{reason:?}"
            );
        }
    }

    #[test]
    fn urls_compare_as_rfc_9449_says() {
        assert!(same_url("https://a.example/p", "https://A.EXAMPLE:443/p?q"));
        assert!(same_url("http://127.0.0.1:8080", "http://127.0.0.1:8080/"));
        assert!(same_url("https://[::1]:8443/x", "https://[::1]:8443/x"));
        assert!(same_url("http://127.0.0.1:80", "http://127.0.0.1/"));
        assert!(!same_url("https://a.example/p/", "https://a.example/p"));
        assert!(!same_url("https://a.example/p", "http://a.example/p"));
        assert!(!same_url("https://a.example:8443/p", "https://a.example/p"));
        assert!(!same_url("https://user@a.example/p", "https://a.example/p"));
        assert!(!same_url("ftp://a.example/p", "ftp://a.example/p"));
        assert!(!same_url("/p", "/p"));
    }
}
