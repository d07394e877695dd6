//! Targets that are plain function calls: token verification, key documents, compact JWS, challenges.

use tessera_core::challenge::Challenge;
use tessera_core::jose::{Algorithm, Jwk, Jws, JwtKey, KeySet, ProofRequirements, SigningKey};
use tessera_server::AuthRejection;

use crate::{block_on, fixtures};

/// A token, as `JwtAuthLayer::verify` receives it from a WebSocket message or a job payload.
pub fn jwt(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let genuine = fixtures::genuine();
    let is = |tokens: &[String]| tokens.iter().any(|genuine| genuine == token);
    match block_on(fixtures::layer().verify(token)) {
        Ok(verified) => {
            assert!(is(&genuine.valid), "a forged token verified");
            assert_eq!(verified.subject(), Some("alice"));
        }
        Err(AuthRejection::Expired) => {
            assert!(
                is(&genuine.expired),
                "expired said of a token that was never genuine"
            );
        }
        Err(_) => {}
    }
}

/// A JWKS document, and the same bytes as one public or private JWK.
pub fn jwks(data: &[u8]) {
    let _ = KeySet::from_published_jwks(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = KeySet::from_jwks_json(text);
        let _ = JwtKey::from_jwk_json(text);
        let _ = SigningKey::from_jwk_json(text);
    }
    if let Ok(jwk) = serde_json::from_slice::<Jwk>(data) {
        let _ = jwk.thumbprint();
        let _ = jwk.thumbprint_members().thumbprint();
        let _ = jwk.to_key();
    }
}

/// A compact JWS checked with the HMAC key: it verifies only if it is one the key signed.
pub fn jws(data: &[u8]) {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = Jws::parse(token) else {
        return;
    };
    let _ = parsed.kid();
    let _ = parsed.unverified_claims::<serde_json::Value>();
    let keys = fixtures::keys();
    if parsed.verify_with(keys.hmac.verifying_key()).is_ok() {
        let genuine = fixtures::genuine();
        assert!(
            genuine
                .valid
                .iter()
                .chain(&genuine.expired)
                .any(|genuine| genuine == token),
            "a forged JWS verified"
        );
    }
}

/// A `WWW-Authenticate` value: it parses, and every challenge Tessera could have written reads back as
/// itself.
pub fn challenge(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    for parsed in Challenge::parse_list(&value) {
        if parsed.token68().is_some() {
            continue;
        }
        let writable = parsed
            .params()
            .all(|(_, value)| value.chars().all(|c| c == '\t' || (' '..='~').contains(&c)));
        if writable {
            let written = parsed.to_string();
            assert_eq!(
                Challenge::parse_list(&written),
                std::slice::from_ref(&parsed),
                "{written:?} did not read back"
            );
        }
    }
}

/// A `DPoP` proof header for `GET https://api.fuzz/me` with an access token: it verifies only if it is one
/// of the genuine proofs the harness signed.
pub fn dpop_proof(data: &[u8]) {
    let Ok(proof) = std::str::from_utf8(data) else {
        return;
    };
    let requirements = ProofRequirements {
        method: "GET",
        url: fixtures::DPOP_URL,
        access_token: Some(fixtures::DPOP_ACCESS_TOKEN),
        algorithms: &[
            Algorithm::EdDsa,
            Algorithm::Ed25519,
            Algorithm::Es256,
            Algorithm::Rs256,
        ],
        now: fixtures::DPOP_NOW,
        max_age: 60,
    };
    if let Ok(verified) = requirements.verify(proof) {
        assert!(
            fixtures::genuine_proofs()
                .iter()
                .any(|genuine| genuine == proof),
            "a forged DPoP proof verified"
        );
        assert!(!verified.jti().is_empty());
    }
}

/// What the `dpop_proof` target checks proofs against.
pub(crate) fn dpop_requirements() -> ProofRequirements<'static> {
    ProofRequirements {
        method: "GET",
        url: fixtures::DPOP_URL,
        access_token: Some(fixtures::DPOP_ACCESS_TOKEN),
        algorithms: &[
            Algorithm::EdDsa,
            Algorithm::Ed25519,
            Algorithm::Es256,
            Algorithm::Rs256,
        ],
        now: fixtures::DPOP_NOW,
        max_age: 60,
    }
}
