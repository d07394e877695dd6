//! Each algorithm, key selection by `kid`, rotation, and the classic attacks on algorithm handling.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use axum::Router;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::StatusCode;
use serde_json::json;
use tessera_server::{Algorithm, JwtAuthLayer, JwtKey, KeyRing, KeySet};

fn app_with(keys: impl IntoIterator<Item = JwtKey>) -> Router {
    let auth = JwtAuthLayer::builder()
        .keys(keys)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(TestClock::at_unix(NOW))
        .build()
        .unwrap();
    routes().route_layer(auth)
}

fn pem(algorithm: Algorithm, pem: &str) -> JwtKey {
    JwtKey::from_pem(algorithm, pem).unwrap()
}

#[tokio::test]
async fn every_algorithm_verifies_with_its_key() {
    let cases = [
        (Signer::hs256(), JwtKey::hmac(SECRET).unwrap()),
        (Signer::rs256(), pem(Algorithm::Rs256, RSA_PUBLIC)),
        (Signer::ps256(), pem(Algorithm::Ps256, RSA_PUBLIC)),
        (Signer::es256(), pem(Algorithm::Es256, P256_PUBLIC)),
        (Signer::es384(), pem(Algorithm::Es384, P384_PUBLIC)),
        (Signer::eddsa(), pem(Algorithm::EdDsa, ED25519_PUBLIC)),
    ];
    for (signer, key) in cases {
        let expected = key.algorithms().collect::<Vec<_>>();
        let app = app_with([key]);
        let answer = send(&app, get_with_token("/raw", &signer.sign(None, &claims()))).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{expected:?}: {}",
            answer.body
        );
        assert_eq!(answer.body, "alice|jti-1|None");
    }
}

#[tokio::test]
async fn a_key_accepts_only_its_own_algorithm() {
    // RS256 and PS256 share RSA key material; a key bound to RS256 must refuse a PS256 signature.
    let app = app_with([pem(Algorithm::Rs256, RSA_PUBLIC)]);
    let answer = send(
        &app,
        get_with_token("/me", &Signer::ps256().sign(None, &claims())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.description(),
        "The access token is signed with an algorithm its key does not accept"
    );
}

#[tokio::test]
async fn jwk_and_jwks_documents_load() {
    let rsa = Signer::rs256().jwk("rsa-1");
    let ec = Signer::es256().jwk("ec-1");
    let ed = Signer::eddsa().jwk("ed-1");
    let jwks =
        json!({"keys": [rsa, ec, ed, {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]})
            .to_string();
    let set = KeySet::from_jwks_json(&jwks).unwrap();
    assert_eq!(set.len(), 3);
    let ec = set.get("ec-1").unwrap();
    assert_eq!(ec.algorithms().collect::<Vec<_>>(), [Algorithm::Es256]);

    let auth = JwtAuthLayer::builder()
        .jwks_json(&jwks)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(TestClock::at_unix(NOW))
        .build()
        .unwrap();
    let app = routes().route_layer(auth);
    for (signer, kid) in [
        (Signer::rs256(), "rsa-1"),
        (Signer::es256(), "ec-1"),
        (Signer::eddsa(), "ed-1"),
    ] {
        let answer = send(
            &app,
            get_with_token("/raw", &signer.sign(Some(kid), &claims())),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{kid}");
        assert_eq!(answer.body, format!("alice|jti-1|Some({kid:?})"));
    }
    let single = JwtKey::from_jwk_json(&Signer::es384().jwk("p384").to_string()).unwrap();
    assert_eq!(
        (single.algorithms().collect::<Vec<_>>(), single.kid()),
        (vec![Algorithm::Es384], Some("p384"))
    );
}

#[tokio::test]
async fn pkcs1_rsa_pem_and_jwk_algorithm_inference() {
    let pkcs1 = app_with([pem(Algorithm::Rs256, RSA_PKCS1_PUBLIC)]);
    let answer = send(
        &pkcs1,
        get_with_token("/me", &Signer::rs256().sign(None, &claims())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);

    // An RSA JWK without `alg` (oidc-provider's, Keycloak's default) verifies the RSA family: RS256 and
    // PS256, the FAPI 2.0 choice. With `alg: PS256` it verifies PS256, and nothing else.
    let mut jwk = Signer::rs256().jwk("r");
    jwk.as_object_mut().unwrap().remove("alg");
    let family = JwtKey::from_jwk_json(&jwk.to_string()).unwrap();
    assert_eq!(
        family.algorithms().collect::<Vec<_>>(),
        [Algorithm::Rs256, Algorithm::Ps256]
    );
    let either = app_with([family]);
    for signer in [Signer::rs256(), Signer::ps256()] {
        let token = signer.sign(Some("r"), &claims());
        let answer = send(&either, get_with_token("/me", &token)).await;
        assert_eq!(answer.status, StatusCode::OK, "{:?}", signer.alg);
    }
    let es256 = Signer::es256().sign(Some("r"), &claims());
    let answer = send(&either, get_with_token("/me", &es256)).await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "never across families"
    );
    jwk["alg"] = json!("PS256");
    let ps256 = app_with([JwtKey::from_jwk_json(&jwk.to_string()).unwrap()]);
    let token = Signer::ps256().sign(Some("r"), &claims());
    assert_eq!(
        send(&ps256, get_with_token("/me", &token)).await.status,
        StatusCode::OK
    );
    let token = Signer::rs256().sign(Some("r"), &claims());
    assert_eq!(
        send(&ps256, get_with_token("/me", &token)).await.status,
        StatusCode::UNAUTHORIZED
    );
    jwk["alg"] = json!("ES256");
    assert!(JwtKey::from_jwk_json(&jwk.to_string()).is_err());
}

#[tokio::test]
async fn kid_selects_among_live_keys_and_unknown_kid_is_401() {
    let app = app_with([
        pem(Algorithm::Es256, P256_PUBLIC).with_kid("a"),
        pem(Algorithm::Es256, P256B_PUBLIC).with_kid("b"),
    ]);
    assert_eq!(
        send(
            &app,
            get_with_token("/me", &Signer::es256().sign(Some("a"), &claims()))
        )
        .await
        .status,
        StatusCode::OK
    );
    assert_eq!(
        send(
            &app,
            get_with_token("/me", &Signer::es256_second().sign(Some("b"), &claims()))
        )
        .await
        .status,
        StatusCode::OK
    );
    // Right key material, wrong name: the named key does not verify it.
    let crossed = send(
        &app,
        get_with_token("/me", &Signer::es256().sign(Some("b"), &claims())),
    )
    .await;
    assert_eq!(
        crossed.description(),
        "The access token signature is invalid"
    );
    let unknown = send(
        &app,
        get_with_token("/me", &Signer::es256().sign(Some("zzz"), &claims())),
    )
    .await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        unknown.description(),
        "The access token is signed by an unknown key"
    );
    // Without a kid, every key of the token's algorithm is tried.
    assert_eq!(
        send(
            &app,
            get_with_token("/me", &Signer::es256_second().sign(None, &claims()))
        )
        .await
        .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn kid_rotation_two_live_keys_then_the_old_one_removed() {
    let old = || pem(Algorithm::Rs256, RSA_PUBLIC).with_kid("2026-01");
    let new = || pem(Algorithm::Rs256, RSA2_PUBLIC).with_kid("2026-02");
    let ring = KeyRing::new(KeySet::new([old()]).unwrap());
    let auth = JwtAuthLayer::builder()
        .key_ring(ring.clone())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(TestClock::at_unix(NOW))
        .build()
        .unwrap();
    let app = routes().route_layer(auth);
    let old_token = Signer::rs256().sign(Some("2026-01"), &claims());
    let new_signer = jsonwebtoken::EncodingKey::from_rsa_pem(RSA2_PRIVATE.as_bytes()).unwrap();
    let new_token = Signer {
        alg: jsonwebtoken::Algorithm::RS256,
        key: new_signer,
    }
    .sign(Some("2026-02"), &claims());

    assert_eq!(
        send(&app, get_with_token("/me", &old_token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_with_token("/me", &new_token)).await.status,
        StatusCode::UNAUTHORIZED
    );

    ring.replace(KeySet::new([old(), new()]).unwrap());
    assert_eq!(
        send(&app, get_with_token("/me", &old_token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_with_token("/me", &new_token)).await.status,
        StatusCode::OK
    );

    ring.replace(KeySet::new([new()]).unwrap());
    // The old token was cached as verified; removing its key must still end it.
    let answer = send(&app, get_with_token("/me", &old_token)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.description(),
        "The access token is signed by an unknown key"
    );
    assert_eq!(
        send(&app, get_with_token("/me", &new_token)).await.status,
        StatusCode::OK
    );
}

fn encode_part(value: &serde_json::Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

#[tokio::test]
async fn alg_none_is_refused() {
    let app = app_with([JwtKey::hmac(SECRET).unwrap()]);
    let payload = encode_part(&claims());
    for alg in ["none", "None", "NONE"] {
        let header = encode_part(&json!({"alg": alg, "typ": "JWT"}));
        for token in [
            format!("{header}.{payload}."),
            format!("{header}.{payload}.c2ln"),
        ] {
            let answer = send(&app, get_with_token("/me", &token)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{token}");
            assert_eq!(answer.json()["error"], "invalid_token");
        }
    }
}

#[tokio::test]
async fn algorithm_confusion_hs256_with_the_public_key_is_refused() {
    for (algorithm, public) in [
        (Algorithm::Rs256, RSA_PUBLIC),
        (Algorithm::Es256, P256_PUBLIC),
        (Algorithm::EdDsa, ED25519_PUBLIC),
    ] {
        let app = app_with([pem(algorithm, public).with_kid("k")]);
        let attacker = Signer {
            alg: jsonwebtoken::Algorithm::HS256,
            key: jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
        };
        for kid in [Some("k"), None] {
            let answer = send(&app, get_with_token("/me", &attacker.sign(kid, &claims()))).await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{algorithm} {kid:?}"
            );
            assert_eq!(
                answer.description(),
                "The access token is signed with an algorithm its key does not accept"
            );
        }
    }
}

#[tokio::test]
async fn tampered_payload_is_refused() {
    let app = app_with([pem(Algorithm::Es256, P256_PUBLIC)]);
    let token = Signer::es256().sign(None, &claims());
    let parts: Vec<&str> = token.split('.').collect();
    let elevated = encode_part(&claims_with(json!({"sub": "root", "scope": "admin"})));
    let tampered = format!("{}.{elevated}.{}", parts[0], parts[2]);
    let answer = send(&app, get_with_token("/me", &tampered)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.description(),
        "The access token signature is invalid"
    );
}

#[tokio::test]
async fn critical_headers_and_unsupported_algorithms_are_refused() {
    let app = app_with([JwtKey::hmac(SECRET).unwrap()]);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.crit = Some(vec!["exp".into()]);
    let token = jsonwebtoken::encode(
        &header,
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let answer = send(&app, get_with_token("/me", &token)).await;
    assert_eq!(
        answer.description(),
        "The access token is not a well-formed JWT: critical header extensions are not supported"
    );
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    assert_eq!(
        send(&app, get_with_token("/me", &hs512)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[test]
fn short_hmac_secrets_fail_the_build() {
    let error = JwtAuthLayer::builder()
        .hmac_secret(b"short")
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "the HMAC secret is 5 bytes; HS256 needs at least 32 random bytes"
    );
}

#[test]
fn issuer_and_audience_are_required_unless_waived() {
    let base = || JwtAuthLayer::builder().hmac_secret(SECRET);
    assert!(matches!(
        base().audience(AUDIENCE).build(),
        Err(tessera_server::BuildError::IssuerRequired)
    ));
    assert!(matches!(
        base().issuer(ISSUER).build(),
        Err(tessera_server::BuildError::AudienceRequired)
    ));
    assert!(
        base()
            .allow_any_issuer()
            .allow_any_audience()
            .build()
            .is_ok()
    );
    assert!(matches!(
        JwtAuthLayer::builder()
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .build(),
        Err(tessera_server::BuildError::NoKeys)
    ));
}
