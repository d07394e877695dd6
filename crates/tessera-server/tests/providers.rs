//! What the OAuth providers people already run put in their tokens and key sets (Keycloak, Auth0, Okta,
//! Entra ID, node's oidc-provider), checked offline; `interop_oidc_provider.rs` checks against a live one.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use axum::Router;
use axum::routing::get;
use common::*;
use http::StatusCode;
use serde_json::{Value, json};
use tessera_core::jose::{JwsHeader, SigningKey};
use tessera_server::{Algorithm, BuildError, JwtAuthLayer, JwtKey, KeySet, VerifiedToken};

/// Routes that echo what the layer read.
fn echo(layer: JwtAuthLayer) -> Router {
    Router::new()
        .route(
            "/scopes",
            get(|token: VerifiedToken| async move { token.scopes().collect::<Vec<_>>().join(",") }),
        )
        .route(
            "/roles",
            get(|token: VerifiedToken| async move { token.roles().collect::<Vec<_>>().join(",") }),
        )
        .route(
            "/alg",
            get(|token: VerifiedToken| async move { token.algorithm().to_string() }),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(layer.require_role("admin")),
        )
        .route(
            "/write",
            get(|| async { "write" }).route_layer(layer.require_scope("api.write")),
        )
        .layer(layer)
}

fn hs256_layer() -> tessera_server::JwtAuthBuilder {
    builder(&TestClock::at_unix(NOW))
}

#[tokio::test]
async fn audience_may_be_an_array() {
    let app = echo(hs256_layer().build().unwrap());
    for aud in [json!(["https://other.example", AUDIENCE]), json!(AUDIENCE)] {
        let answer = send(&app, get_with_token("/alg", &token(json!({ "aud": aud })))).await;
        assert_eq!(answer.status, StatusCode::OK, "{aud}");
    }
    let answer = send(
        &app,
        get_with_token("/alg", &token(json!({"aud": ["a", "b"]}))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn scopes_come_from_scope_or_from_scp() {
    let app = echo(hs256_layer().build().unwrap());
    let cases = [
        // RFC 9068, Keycloak, Auth0, oidc-provider.
        (json!({"scope": "api.read api.write"}), "api.read,api.write"),
        // Entra ID: `scp`, space-separated.
        (
            json!({"scope": null, "scp": "api.read api.write"}),
            "api.read,api.write",
        ),
        // Okta: `scp`, an array.
        (
            json!({"scope": null, "scp": ["api.read", "api.write"]}),
            "api.read,api.write",
        ),
        // Both: `scope` is the standard one.
        (
            json!({"scope": "api.read", "scp": ["api.write"]}),
            "api.read",
        ),
    ];
    for (changes, scopes) in cases {
        let token = token(changes.clone());
        let answer = send(&app, get_with_token("/scopes", &token)).await;
        assert_eq!(answer.body, scopes, "{changes}");
        let granted = scopes.contains("api.write");
        let status = send(&app, get_with_token("/write", &token)).await.status;
        assert_eq!(status == StatusCode::OK, granted, "{changes}");
    }
    let answer = send(
        &app,
        get_with_token("/scopes", &token(json!({"scope": null, "scp": 3}))),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::UNAUTHORIZED,
        "scp of the wrong type"
    );
}

#[tokio::test]
async fn roles_can_be_read_from_where_the_provider_puts_them() {
    // Keycloak: realm roles and one client's roles.
    let keycloak = echo(
        hs256_layer()
            .role_claims(["/realm_access/roles", "/resource_access/api/roles"])
            .build()
            .unwrap(),
    );
    let claims = json!({
        "roles": null,
        "realm_access": {"roles": ["offline_access", "admin"]},
        "resource_access": {"api": {"roles": ["reader"]}, "other": {"roles": ["owner"]}},
    });
    let token = token(claims);
    let answer = send(&keycloak, get_with_token("/roles", &token)).await;
    assert_eq!(answer.body, "offline_access,admin,reader");
    assert_eq!(
        send(&keycloak, get_with_token("/admin", &token))
            .await
            .status,
        StatusCode::OK
    );
    // The top-level `roles` no longer counts, and a token without the claims has no roles.
    let plain = self::token(json!({"roles": ["admin"]}));
    assert_eq!(
        send(&keycloak, get_with_token("/admin", &plain))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    // A pointer to something that is not roles is a malformed token, as a bad `roles` claim is.
    let odd = self::token(json!({"realm_access": {"roles": {"admin": true}}}));
    assert_eq!(
        send(&keycloak, get_with_token("/roles", &odd)).await.status,
        StatusCode::UNAUTHORIZED
    );

    // Entra ID and RFC 9068: the default, top-level `roles`.
    let default = echo(hs256_layer().build().unwrap());
    assert_eq!(
        send(&default, get_with_token("/roles", &plain)).await.body,
        "admin"
    );

    for bad in ["realm_access/roles", "/a~2b", "/a~"] {
        let error = hs256_layer().role_claims([bad]).build().unwrap_err();
        assert!(
            matches!(error, BuildError::InvalidRolePointer(_)),
            "{bad}: {error}"
        );
    }
}

fn jwks_app(
    jwks: &Value,
    configure: impl FnOnce(tessera_server::JwtAuthBuilder) -> tessera_server::JwtAuthBuilder,
) -> Router {
    let builder = JwtAuthLayer::builder()
        .jwks_json(&jwks.to_string())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(TestClock::at_unix(NOW));
    echo(configure(builder).build().unwrap())
}

/// A JWK of `signer` named `kid`, without `alg`, as oidc-provider and Keycloak publish RSA and OKP keys.
fn jwk_without_alg(signer: &Signer, kid: &str) -> Value {
    let mut jwk = signer.jwk(kid);
    jwk.as_object_mut().unwrap().remove("alg");
    jwk
}

#[tokio::test]
async fn a_key_without_alg_verifies_its_family_within_the_allow_list() {
    let jwks = json!({"keys": [jwk_without_alg(&Signer::rs256(), "rsa")]});
    let app = jwks_app(&jwks, |builder| builder);
    for signer in [Signer::rs256(), Signer::ps256()] {
        let answer = send(
            &app,
            get_with_token("/alg", &signer.sign(Some("rsa"), &claims())),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.body, format!("{:?}", signer.alg));
    }
    // The allow-list narrows what the keys accept.
    let rs256_only = jwks_app(&jwks, |builder| builder.algorithms([Algorithm::Rs256]));
    let answer = send(
        &rs256_only,
        get_with_token("/alg", &Signer::ps256().sign(Some("rsa"), &claims())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.description(),
        "The access token is signed with an algorithm its key does not accept"
    );
    // A key accepting none of the allowed algorithms, or an empty list, is a configuration error.
    let error = JwtAuthLayer::builder()
        .jwks_json(&jwks.to_string())
        .algorithms([Algorithm::Es256])
        .allow_any_issuer()
        .allow_any_audience()
        .build()
        .unwrap_err();
    assert!(matches!(error, BuildError::Algorithms(_)), "{error}");
    let error = hs256_layer().algorithms([]).build().unwrap_err();
    assert!(matches!(error, BuildError::Algorithms(_)), "{error}");
}

#[tokio::test]
async fn ed25519_is_a_fully_specified_algorithm_name() {
    // RFC 9864: a token may say `Ed25519` instead of `EdDSA`; a key without `alg` verifies both.
    let signing = SigningKey::from_pem("okp", Algorithm::Ed25519, ED25519_PRIVATE).unwrap();
    let token = signing
        .sign_jwt(JwsHeader::typed("at+jwt"), &claims())
        .unwrap();
    assert!(
        token.starts_with("eyJhbGciOiJFZDI1NTE5Ii"),
        "alg Ed25519 first"
    );
    let published = jwk_without_alg(&Signer::eddsa(), "okp");
    let app = jwks_app(&json!({"keys": [published]}), |builder| builder);
    let answer = send(&app, get_with_token("/alg", &token)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "Ed25519")
    );
    let eddsa = Signer::eddsa().sign(Some("okp"), &claims());
    let answer = send(&app, get_with_token("/alg", &eddsa)).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "EdDSA")
    );

    // A key that names one of the two verifies that one only.
    let mut named = jwk_without_alg(&Signer::eddsa(), "okp");
    named["alg"] = json!("Ed25519");
    let app = jwks_app(&json!({"keys": [named]}), |builder| builder);
    assert_eq!(
        send(&app, get_with_token("/alg", &token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_with_token("/alg", &eddsa)).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        "ed25519".parse::<Algorithm>().unwrap(),
        Algorithm::Ed25519,
        "configuration reads the name too"
    );
}

#[tokio::test]
async fn encryption_keys_in_a_key_set_are_skipped() {
    let jwks = json!({"keys": [
        {"kty": "RSA", "use": "enc", "kid": "enc-rsa", "alg": "RSA-OAEP-256",
         "n": Signer::rs256().jwk("x")["n"], "e": "AQAB"},
        {"kty": "EC", "kid": "enc-ec", "alg": "ECDH-ES", "crv": "P-256",
         "x": Signer::es256().jwk("x")["x"], "y": Signer::es256().jwk("x")["y"]},
        {"kty": "OKP", "use": "enc", "crv": "X25519", "kid": "enc-x25519",
         "x": "hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo"},
        Signer::es256().jwk("sig"),
    ]});
    let set = KeySet::from_published_jwks(jwks.to_string().as_bytes()).unwrap();
    assert_eq!(set.len(), 1);
    assert!(set.get("sig").is_some());
    let app = jwks_app(&jwks, |builder| builder);
    let answer = send(
        &app,
        get_with_token("/alg", &Signer::es256().sign(Some("sig"), &claims())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    // A token naming the encryption key's kid is refused: that key is not there.
    let answer = send(
        &app,
        get_with_token("/alg", &Signer::es256().sign(Some("enc-ec"), &claims())),
    )
    .await;
    assert_eq!(
        answer.description(),
        "The access token is signed by an unknown key"
    );
}

/// The base64 DER of a PEM certificate: what a JWK's `x5c` holds.
fn x5c(pem: &str) -> String {
    pem.lines()
        .filter(|line| !line.starts_with("-----"))
        .collect()
}

#[tokio::test]
async fn keys_given_only_as_certificates_are_read_from_the_first_one() {
    let jwks = json!({"keys": [
        {"kty": "RSA", "use": "sig", "kid": "rsa-cert", "x5c": [x5c(RSA_CERT)]},
        {"kty": "EC", "crv": "P-256", "kid": "ec-cert", "x5c": [x5c(P256_CERT)]},
        {"kty": "OKP", "crv": "Ed25519", "kid": "okp-cert", "x5c": [x5c(ED25519_CERT)]},
    ]});
    let app = jwks_app(&jwks, |builder| builder);
    for (signer, kid) in [
        (Signer::rs256(), "rsa-cert"),
        (Signer::ps256(), "rsa-cert"),
        (Signer::es256(), "ec-cert"),
        (Signer::eddsa(), "okp-cert"),
    ] {
        let answer = send(
            &app,
            get_with_token("/alg", &signer.sign(Some(kid), &claims())),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{kid}: {}", answer.body);
    }
    // A certificate of another key type than the JWK says, or not a certificate, makes the entry unusable.
    for (jwk, reason) in [
        (
            json!({"kty": "EC", "crv": "P-256", "kid": "k", "x5c": [x5c(RSA_CERT)]}),
            "rejected",
        ),
        (
            json!({"kty": "RSA", "kid": "k", "x5c": ["AAAA"]}),
            "not a DER X.509 certificate",
        ),
        (
            json!({"kty": "RSA", "kid": "k", "x5c": ["%%%"]}),
            "not base64",
        ),
    ] {
        let error = JwtKey::from_jwk_json(&jwk.to_string()).unwrap_err();
        assert!(error.to_string().contains(reason), "{jwk}: {error}");
    }
}
