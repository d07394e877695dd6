//! Every row of the DESIGN.md answer table, and where tokens may (and may not) come from.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use common::*;
use http::{HeaderValue, Request, StatusCode};
use serde_json::json;
use tessera_server::{JwtAuthLayer, JwtKey};

fn layer(clock: &TestClock) -> JwtAuthLayer {
    JwtAuthLayer::builder()
        .key(JwtKey::hmac(SECRET).unwrap())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap()
}

fn app(clock: &TestClock) -> Router {
    let auth = layer(clock);
    routes().route_layer(auth)
}

#[tokio::test]
async fn valid_token_reaches_the_handler() {
    let clock = TestClock::at_unix(NOW);
    let answer = send(
        &app(&clock),
        get_with_token("/me", &Signer::hs256().sign(None, &claims())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body, "alice");
}

#[tokio::test]
async fn no_credentials_is_a_bare_challenge() {
    let answer = send(&app(&TestClock::at_unix(NOW)), get_plain("/me")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), r#"Bearer realm="api""#);
    assert_eq!(answer.json()["error"], "unauthorized");
    assert_eq!(answer.headers["content-type"], "application/json");
    assert!(!answer.token_expired());
}

#[tokio::test]
async fn malformed_authorization_is_invalid_request() {
    let app = app(&TestClock::at_unix(NOW));
    for value in [
        "Bearer",
        "Bearer ",
        "Bearer a b",
        "Bearer a\"b",
        "Bearer ===",
        "Bearer a=b",
    ] {
        let request = Request::get("/me")
            .header("authorization", value)
            .body(Body::empty())
            .unwrap();
        let answer = send(&app, request).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{value:?}");
        assert!(
            answer
                .challenge()
                .starts_with(r#"Bearer error="invalid_request", error_description=""#),
            "{value:?}"
        );
        assert_eq!(answer.json()["error"], "invalid_request");
        assert!(answer.json()["error_description"].is_string());
    }
}

#[tokio::test]
async fn non_utf8_authorization_is_invalid_request() {
    let mut request = get_plain("/me");
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_bytes(b"Bearer \xff\xfe.abc").unwrap(),
    );
    let answer = send(&app(&TestClock::at_unix(NOW)), request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.json()["error"], "invalid_request");
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_request() {
    let token = Signer::hs256().sign(None, &claims());
    let request = Request::get("/me")
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let answer = send(&app(&TestClock::at_unix(NOW)), request).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer.description(),
        "The request carries more than one access token"
    );
}

#[tokio::test]
async fn lowercase_and_uppercase_scheme_are_accepted() {
    let app = app(&TestClock::at_unix(NOW));
    let token = Signer::hs256().sign(None, &claims());
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let request = Request::get("/me")
            .header("authorization", format!("{scheme} {token}"))
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, request).await.status, StatusCode::OK, "{scheme}");
    }
}

#[tokio::test]
async fn other_schemes_are_treated_as_no_bearer_token() {
    let request = Request::get("/me")
        .header("authorization", "Basic YWxpY2U6cHc=")
        .body(Body::empty())
        .unwrap();
    let answer = send(&app(&TestClock::at_unix(NOW)), request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), r#"Bearer realm="api""#);
}

#[tokio::test]
async fn bad_signature_is_invalid_token_without_expiry_flag() {
    let token = Signer::hs256().sign(None, &claims());
    let (rest, signature) = token.rsplit_once('.').unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{rest}.{flipped}{}", &signature[1..]);
    let answer = send(
        &app(&TestClock::at_unix(NOW)),
        get_with_token("/me", &forged),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        r#"Bearer error="invalid_token", error_description="The access token signature is invalid""#
    );
    assert_eq!(answer.json()["error"], "invalid_token");
    assert!(!answer.token_expired());
}

#[tokio::test]
async fn expired_token_says_so_and_sets_token_expired() {
    let clock = TestClock::at_unix(NOW + 300 + 30);
    let answer = send(
        &app(&clock),
        get_with_token("/me", &Signer::hs256().sign(None, &claims())),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        r#"Bearer error="invalid_token", error_description="The access token expired""#
    );
    assert!(answer.token_expired());
    assert_eq!(
        answer.json(),
        json!({"error": "invalid_token", "error_description": "The access token expired"})
    );
}

#[tokio::test]
async fn expired_but_forged_or_foreign_tokens_never_claim_expiry() {
    let clock = TestClock::at_unix(NOW + 3600);
    let app = app(&clock);
    let forged = Signer::hs256()
        .sign(None, &claims())
        .replace('.', ".x")
        .replacen(".x", ".", 1);
    let wrong_issuer =
        Signer::hs256().sign(None, &claims_with(json!({"iss": "https://evil.example"})));
    let wrong_audience = Signer::hs256().sign(None, &claims_with(json!({"aud": "billing"})));
    let other_key = {
        let signer = Signer {
            alg: jsonwebtoken::Algorithm::HS256,
            key: jsonwebtoken::EncodingKey::from_secret(&[9; 32]),
        };
        signer.sign(None, &claims())
    };
    for token in [forged, wrong_issuer, wrong_audience, other_key] {
        let answer = send(&app, get_with_token("/me", &token)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(!answer.token_expired(), "{}", answer.description());
        assert_ne!(answer.description(), "The access token expired");
    }
}

#[tokio::test]
async fn wrong_issuer_and_audience_are_invalid_token() {
    let app = app(&TestClock::at_unix(NOW));
    let cases = [
        (
            json!({"iss": "https://evil.example"}),
            "The access token was issued by an untrusted issuer",
        ),
        (json!({"iss": null}), "The access token lacks the iss claim"),
        (
            json!({"aud": "billing"}),
            "The access token is not meant for this audience",
        ),
        (
            json!({"aud": ["billing", "reports"]}),
            "The access token is not meant for this audience",
        ),
        (json!({"aud": null}), "The access token lacks the aud claim"),
        (json!({"exp": null}), "The access token lacks the exp claim"),
    ];
    for (change, description) in cases {
        let answer = send(
            &app,
            get_with_token(
                "/me",
                &Signer::hs256().sign(None, &claims_with(change.clone())),
            ),
        )
        .await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{change}");
        assert_eq!(answer.description(), description, "{change}");
        assert_eq!(answer.json()["error"], "invalid_token");
    }
    let many = Signer::hs256().sign(None, &claims_with(json!({"aud": ["billing", AUDIENCE]})));
    assert_eq!(
        send(&app, get_with_token("/me", &many)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn not_yet_valid_is_invalid_token() {
    let token = Signer::hs256().sign(None, &claims_with(json!({"nbf": NOW + 600})));
    let answer = send(
        &app(&TestClock::at_unix(NOW)),
        get_with_token("/me", &token),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.description(), "The access token is not valid yet");
}

#[tokio::test]
async fn malformed_jwts_are_invalid_token() {
    let app = app(&TestClock::at_unix(NOW));
    let good = Signer::hs256().sign(None, &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        "abc".to_owned(),
        "abc.def".to_owned(),
        format!(
            "{}.{}.{}.{}.{}",
            parts[0], parts[1], parts[2], parts[2], parts[2]
        ),
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("e30.{}.{}", parts[1], parts[2]),
    ];
    for token in cases {
        let request = Request::get("/me")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let answer = send(&app, request).await;
        assert!(
            answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::BAD_REQUEST,
            "{token}"
        );
        assert!(!answer.token_expired());
    }
}

#[tokio::test]
async fn a_100_kb_token_is_refused_before_decoding() {
    let token = format!(
        "{}.{}.{}",
        "a".repeat(50_000),
        "b".repeat(50_000),
        "c".repeat(2_400)
    );
    let answer = send(
        &app(&TestClock::at_unix(NOW)),
        get_with_token("/me", &token),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.description(),
        "The access token is longer than 8192 bytes"
    );
}

#[tokio::test]
async fn cookie_source_is_opt_in_and_exclusive() {
    let clock = TestClock::at_unix(NOW);
    let auth = JwtAuthLayer::builder()
        .hmac_secret(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .token_cookie("access_token")
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = routes().route_layer(auth);
    let token = Signer::hs256().sign(None, &claims());
    let cookie = |value: String| {
        Request::get("/me")
            .header("cookie", value)
            .body(Body::empty())
            .unwrap()
    };
    let answer = send(&app, cookie(format!("theme=dark; access_token={token}"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let both = Request::get("/me")
        .header("cookie", format!("access_token={token}"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, both).await.status, StatusCode::BAD_REQUEST);
    // Without the option, the cookie is not a credential.
    let answer = send(&self::app(&clock), cookie(format!("access_token={token}"))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.json()["error"], "unauthorized");
}

#[tokio::test]
async fn query_parameter_is_off_by_default() {
    let clock = TestClock::at_unix(NOW);
    let token = Signer::hs256().sign(None, &claims());
    let query = |token: &str| {
        Request::get(format!("/me?x=1&access_token={token}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&app(&clock), query(&token)).await.status,
        StatusCode::UNAUTHORIZED
    );

    let auth = JwtAuthLayer::builder()
        .hmac_secret(SECRET)
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .query_parameter(true)
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = routes().route_layer(auth);
    assert_eq!(send(&app, query(&token)).await.status, StatusCode::OK);
    let twice = Request::get(format!("/me?access_token={token}&access_token={token}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&app, twice).await.status, StatusCode::BAD_REQUEST);
    let mut header_and_query = query(&token);
    header_and_query
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    assert_eq!(
        send(&app, header_and_query).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn layer_works_in_a_plain_tower_stack() {
    use tower::{ServiceBuilder, ServiceExt, service_fn};

    let clock = TestClock::at_unix(NOW);
    let service = ServiceBuilder::new()
        .layer(layer(&clock))
        .service(service_fn(|request: Request<String>| async move {
            let sub = request
                .extensions()
                .get::<tessera_server::VerifiedToken>()
                .and_then(|t| t.subject().map(str::to_owned));
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
                bytes::Bytes::from(sub.unwrap_or_default()),
            )))
        }));
    let token = Signer::hs256().sign(None, &claims());
    let request = Request::get("/")
        .header("authorization", format!("Bearer {token}"))
        .body(String::new())
        .unwrap();
    let response = service.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = service
        .oneshot(Request::get("/").body(String::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// A layer whose only key is `SECRET` with `kid` `k`, and the token it accepts, on the routes.
fn keyed_app(clock: &TestClock) -> (JwtAuthLayer, Router, String) {
    let auth = JwtAuthLayer::builder()
        .key(JwtKey::hmac(SECRET).unwrap().with_kid("k"))
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(clock.clone())
        .build()
        .unwrap();
    let app = routes().route_layer(auth.clone());
    (auth, app, Signer::hs256().sign(Some("k"), &claims()))
}

/// Sends every single-character mutation of `token` (to `A`, `B`, `.`, `-`, `~`, `=`), checks that each is
/// refused with 400 or 401 and never called expired, and counts the descriptions of the refusals.
async fn refuse_every_mutation(app: &Router, token: &str) -> BTreeMap<String, usize> {
    let mut descriptions = BTreeMap::new();
    for position in 0..token.len() {
        for replacement in ['A', 'B', '.', '-', '~', '='] {
            let mut mutated = token.to_owned().into_bytes();
            if mutated[position] == replacement as u8 {
                continue;
            }
            mutated[position] = replacement as u8;
            let mutated = String::from_utf8(mutated).unwrap();
            let answer = send(app, get_with_token("/me", &mutated)).await;
            assert!(
                answer.status == StatusCode::UNAUTHORIZED
                    || answer.status == StatusCode::BAD_REQUEST,
                "{mutated}: {} {}",
                answer.status,
                answer.body
            );
            assert!(!answer.token_expired(), "{mutated} was called expired");
            assert_ne!(answer.description(), "The access token expired");
            *descriptions.entry(answer.description()).or_insert(0) += 1;
        }
    }
    // The mutations exercise every stage: framing, header, key selection and signature.
    assert!(descriptions.len() >= 4, "{descriptions:?}");
    descriptions
}

#[tokio::test]
async fn every_single_character_mutation_is_refused_cleanly() {
    let (auth, app, token) = keyed_app(&TestClock::at_unix(NOW));
    // The genuine token goes first, so every mutation meets a cache that holds it: a mutated header or
    // payload keeps the cached signature, and must not be taken for the token it came from.
    assert_eq!(
        send(&app, get_with_token("/me", &token)).await.status,
        StatusCode::OK
    );
    refuse_every_mutation(&app, &token).await;
    assert_eq!(
        auth.stats().cache_hits,
        0,
        "a mutation was served from the cache"
    );
    assert_eq!(
        send(&app, get_with_token("/me", &token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        auth.stats().cache_hits,
        1,
        "the genuine token is still cached"
    );
}

#[tokio::test]
async fn after_a_genuine_token_expired_no_mutation_of_it_is_called_expired() {
    let clock = TestClock::at_unix(NOW);
    let (auth, app, token) = keyed_app(&clock);
    assert_eq!(
        send(&app, get_with_token("/me", &token)).await.status,
        StatusCode::OK
    );
    // The cache now holds the genuine token, expired: only that very token may be told "expired".
    clock.set_unix(NOW + 300 + 30);
    assert!(
        send(&app, get_with_token("/me", &token))
            .await
            .token_expired()
    );
    let hits = auth.stats().cache_hits;
    refuse_every_mutation(&app, &token).await;
    assert_eq!(
        auth.stats().cache_hits,
        hits,
        "a mutation was served from the cache"
    );
    assert!(
        send(&app, get_with_token("/me", &token))
            .await
            .token_expired()
    );
}
