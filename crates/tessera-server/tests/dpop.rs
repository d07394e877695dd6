//! DPoP (RFC 9449) at the resource server: every rule of a proof, the binding of a token to its key, the
//! challenges of the wire contract, server nonces, and the expiry signal for bound tokens.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::{get, post};
use common::*;
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use tessera_core::jose::{Algorithm, JwsHeader, SigningKey};
use tessera_server::{
    AuthRejection, BuildError, Dpop, JwtAuthBuilder, JwtAuthLayer, KeySet, ProofError,
    VerifiedToken,
};

const API: &str = "https://api.example";
const ALGS: &str = "ES256 ES384 EdDSA Ed25519 PS256 RS256";

/// The token service's key, a client's DPoP key, and a layer trusting the one and knowing neither.
struct Fixture {
    issuer: SigningKey,
    client: SigningKey,
    clock: TestClock,
}

impl Fixture {
    fn new(proof_algorithm: Algorithm) -> Fixture {
        Fixture {
            issuer: SigningKey::generate(Algorithm::EdDsa).unwrap(),
            client: SigningKey::generate(proof_algorithm).unwrap(),
            clock: TestClock::at_unix(NOW),
        }
    }

    fn builder(&self) -> JwtAuthBuilder {
        let keys = KeySet::from_shared(vec![self.issuer.verifying_key().clone()]).unwrap();
        JwtAuthLayer::builder()
            .key_set(keys)
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .clock(self.clock.clone())
    }

    fn app(&self, dpop: Dpop) -> Router {
        app(self.builder().dpop(dpop).build().unwrap())
    }

    /// An access token bound to `key` (`cnf.jkt`), with `changes` to the usual claims.
    fn token_bound_to(&self, key: &SigningKey, changes: Value) -> String {
        let mut claims = claims_with(changes);
        claims["cnf"] = json!({"jkt": key.public_jwk().unwrap().thumbprint().unwrap()});
        self.issuer
            .sign_jwt(JwsHeader::typed("at+jwt"), &claims)
            .unwrap()
    }

    fn token(&self) -> String {
        self.token_bound_to(&self.client, json!({}))
    }

    /// A token without `cnf`: a bearer token.
    fn bearer_token(&self) -> String {
        self.issuer
            .sign_jwt(JwsHeader::typed("at+jwt"), &claims())
            .unwrap()
    }

    fn now(&self) -> i64 {
        tessera_core::unix_seconds(tessera_core::Clock::now(&self.clock))
    }

    /// A fresh proof by the client's key for `method` and `url`, carrying `ath` of `token`.
    fn proof(&self, method: &str, url: &str, token: &str) -> String {
        proof_by(&self.client, self.proof_claims(method, url, token))
    }

    fn proof_claims(&self, method: &str, url: &str, token: &str) -> Value {
        json!({
            "jti": tessera_core::random::id::<12>().unwrap(), "htm": method, "htu": url,
            "iat": self.now(), "ath": ath(token),
        })
    }
}

fn proof_by(key: &SigningKey, claims: Value) -> String {
    dpop_proof(key, &claims)
}

fn app(layer: JwtAuthLayer) -> Router {
    routes()
        .route("/orders", post(|| async { "ordered" }))
        .route(
            "/thumbprint",
            get(|token: VerifiedToken| async move { token.jkt().unwrap_or("-").to_owned() }),
        )
        .layer(layer)
}

/// `Authorization: DPoP <token>` and one `DPoP` header per proof.
fn dpop_request(method: Method, path: &str, token: &str, proofs: &[&str]) -> Request<Body> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("DPoP {token}"));
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    request.body(Body::empty()).unwrap()
}

fn get_dpop(path: &str, token: &str, proof: &str) -> Request<Body> {
    dpop_request(Method::GET, path, token, &[proof])
}

fn invalid_proof(description: &str) -> String {
    format!(r#"DPoP error="invalid_dpop_proof", error_description="{description}", algs="{ALGS}""#)
}

/// The answer for `request` is 401 `invalid_dpop_proof` with `reason`, and no expiry signal.
async fn assert_invalid_proof(app: &Router, request: Request<Body>, reason: ProofError) {
    let answer = send(app, request).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{reason:?}");
    assert_eq!(answer.challenge(), invalid_proof(&reason.to_string()));
    assert_eq!(answer.json()["error"], "invalid_dpop_proof");
    assert!(!answer.token_expired(), "{reason:?}");
}

#[tokio::test]
async fn a_bound_token_with_a_proof_of_its_key_passes_for_each_proof_algorithm() {
    for algorithm in [
        Algorithm::EdDsa,
        Algorithm::Ed25519,
        Algorithm::Es256,
        Algorithm::Ps256,
    ] {
        let fixture = Fixture::new(algorithm);
        let app = fixture.app(Dpop::new(API));
        let token = fixture.token();
        let proof = fixture.proof("GET", "https://api.example/thumbprint", &token);
        let answer = send(&app, get_dpop("/thumbprint", &token, &proof)).await;
        assert_eq!(
            answer.status,
            StatusCode::OK,
            "{algorithm}: {}",
            answer.body
        );
        assert_eq!(
            answer.body,
            fixture.client.public_jwk().unwrap().thumbprint().unwrap()
        );
        // The scheme name is case-insensitive, like every HTTP authentication scheme.
        let proof = fixture.proof("POST", "https://api.example/orders", &token);
        let request = Request::post("/orders")
            .header("authorization", format!("dpop {token}"))
            .header("dpop", proof)
            .body(Body::empty())
            .unwrap();
        assert_eq!(send(&app, request).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn every_rule_of_a_proof_is_checked() {
    let fixture = Fixture::new(Algorithm::Es256);
    let app = fixture.app(Dpop::new(API));
    let token = fixture.token();
    let me = "https://api.example/me";

    assert_invalid_proof(
        &app,
        dpop_request(Method::GET, "/me", &token, &[]),
        ProofError::Missing,
    )
    .await;
    let (one, two) = (
        fixture.proof("GET", me, &token),
        fixture.proof("GET", me, &token),
    );
    assert_invalid_proof(
        &app,
        dpop_request(Method::GET, "/me", &token, &[&one, &two]),
        ProofError::Multiple,
    )
    .await;
    let stale = |iat: i64| {
        let mut claims = fixture.proof_claims("GET", me, &token);
        claims["iat"] = json!(iat);
        proof_by(&fixture.client, claims)
    };
    // A proof made for another access token of the same key, by a key the token is not bound to, and an
    // HMAC "proof" (whoever knows the secret could have made it).
    let other_token = fixture.token_bound_to(&fixture.client, json!({"jti": "jti-2"}));
    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
    let hmac = SigningKey::generate(Algorithm::Hs256).unwrap();
    let cases = [
        (fixture.proof("POST", me, &token), ProofError::Method),
        (
            fixture.proof("GET", "https://api.example/raw", &token),
            ProofError::Url,
        ),
        (
            fixture.proof("GET", "https://other.example/me", &token),
            ProofError::Url,
        ),
        (stale(fixture.now() - 61), ProofError::IssuedAt),
        (stale(fixture.now() + 61), ProofError::IssuedAt),
        (
            fixture.proof("GET", me, &other_token),
            ProofError::TokenHash,
        ),
        (
            proof_by(&stranger, fixture.proof_claims("GET", me, &token)),
            ProofError::KeyMismatch,
        ),
        (
            proof_by(&hmac, fixture.proof_claims("GET", me, &token)),
            ProofError::Algorithm,
        ),
    ];
    for (proof, reason) in cases {
        assert_invalid_proof(&app, get_dpop("/me", &token, &proof), reason).await;
    }
    // A proof replayed: accepted once, refused after.
    let proof = fixture.proof("GET", me, &token);
    assert_eq!(
        send(&app, get_dpop("/me", &token, &proof)).await.status,
        StatusCode::OK
    );
    assert_invalid_proof(&app, get_dpop("/me", &token, &proof), ProofError::Replayed).await;
    // Still good with a fresh one: the proof is checked per request, the token comes from the cache.
    let answer = send(
        &app,
        get_dpop("/me", &token, &fixture.proof("GET", me, &token)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stolen_bound_token_is_useless_without_the_key() {
    let fixture = Fixture::new(Algorithm::EdDsa);
    let app = fixture.app(Dpop::new(API));
    let token = fixture.token();
    let url = "https://api.example/orders";
    let legitimate = fixture.proof("POST", url, &token);
    assert_eq!(
        send(
            &app,
            dpop_request(Method::POST, "/orders", &token, &[&legitimate])
        )
        .await
        .status,
        StatusCode::OK
    );

    // Replayed as a bearer token.
    let answer = send(&app, get_with_token("/me", &token)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        format!(
            r#"DPoP error="invalid_token", error_description="{}", algs="{ALGS}""#,
            AuthRejection::BoundTokenAsBearer
        )
    );
    // With a proof of the thief's own key.
    let thief = SigningKey::generate(Algorithm::EdDsa).unwrap();
    let own = proof_by(&thief, fixture.proof_claims("POST", url, &token));
    assert_invalid_proof(
        &app,
        dpop_request(Method::POST, "/orders", &token, &[&own]),
        ProofError::KeyMismatch,
    )
    .await;
    // With the proof the client sent, copied.
    assert_invalid_proof(
        &app,
        dpop_request(Method::POST, "/orders", &token, &[&legitimate]),
        ProofError::Replayed,
    )
    .await;
    // With a copied proof the client made for another URL, or another method.
    let for_me = fixture.proof("POST", "https://api.example/me", &token);
    assert_invalid_proof(
        &app,
        dpop_request(Method::POST, "/orders", &token, &[&for_me]),
        ProofError::Url,
    )
    .await;
    let for_get = fixture.proof("GET", url, &token);
    assert_invalid_proof(
        &app,
        dpop_request(Method::POST, "/orders", &token, &[&for_get]),
        ProofError::Method,
    )
    .await;

    // A layer without DPoP refuses a bound token as a bearer token too: it cannot check the binding.
    let bearer_only = app_with_layer(fixture.builder().build().unwrap());
    let answer = send(&bearer_only, get_with_token("/me", &token)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        format!(
            r#"DPoP error="invalid_token", error_description="{}""#,
            AuthRejection::BoundTokenAsBearer
        )
    );
    let verify = fixture.builder().build().unwrap().verify(&token).await;
    assert_eq!(verify.unwrap_err(), AuthRejection::BoundTokenAsBearer);
}

fn app_with_layer(layer: JwtAuthLayer) -> Router {
    app(layer)
}

#[tokio::test]
async fn modes_and_their_challenges() {
    let fixture = Fixture::new(Algorithm::Es256);
    let bearer = fixture.bearer_token();

    // Both schemes accepted: a request without a token learns both; a bearer token still works.
    let both = fixture.app(Dpop::new(API));
    let answer = send(&both, get_plain("/me")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        format!(r#"Bearer realm="api", DPoP realm="api", algs="{ALGS}""#)
    );
    assert_eq!(
        send(&both, get_with_token("/me", &bearer)).await.status,
        StatusCode::OK
    );
    // An unbound token sent with the DPoP scheme is bound to no key a proof could show.
    let proof = fixture.proof("GET", "https://api.example/me", &bearer);
    let answer = send(&both, get_dpop("/me", &bearer, &proof)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        format!(
            r#"DPoP error="invalid_token", error_description="{}", algs="{ALGS}""#,
            AuthRejection::UnboundToken
        )
    );
    // A bad bearer token gets the Bearer challenge; a bad DPoP token the DPoP one.
    let answer = send(&both, get_with_token("/me", "a.b.c")).await;
    assert!(
        answer
            .challenge()
            .starts_with("Bearer error=\"invalid_token\"")
    );
    let proof = fixture.proof("GET", "https://api.example/me", "a.b.c");
    let answer = send(&both, get_dpop("/me", "a.b.c", &proof)).await;
    assert!(
        answer
            .challenge()
            .starts_with("DPoP error=\"invalid_token\"")
            && answer.challenge().ends_with(&format!(r#"algs="{ALGS}""#)),
        "{}",
        answer.challenge()
    );

    // DPoP required: only the DPoP challenge, and bearer tokens are refused.
    let required = fixture.app(
        Dpop::new(API)
            .required()
            .proof_algorithms([Algorithm::EdDsa, Algorithm::Es256]),
    );
    let answer = send(&required, get_plain("/me")).await;
    assert_eq!(
        answer.challenge(),
        r#"DPoP realm="api", algs="EdDSA ES256""#
    );
    let answer = send(&required, get_with_token("/me", &bearer)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        format!(
            r#"DPoP error="invalid_token", error_description="{}", algs="EdDSA ES256""#,
            AuthRejection::DpopRequired
        )
    );
    let token = fixture.token();
    let proof = fixture.proof("GET", "https://api.example/me", &token);
    assert_eq!(
        send(&required, get_dpop("/me", &token, &proof))
            .await
            .status,
        StatusCode::OK
    );

    // Bearer only (no DPoP): the DPoP scheme is one the layer does not take, as if no token came.
    let bearer_only = app_with_layer(fixture.builder().build().unwrap());
    let proof = fixture.proof("GET", "https://api.example/me", &token);
    let answer = send(&bearer_only, get_dpop("/me", &token, &proof)).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), r#"Bearer realm="api""#);
}

#[tokio::test]
async fn an_expired_bound_token_with_a_valid_proof_gets_the_expiry_signal() {
    let fixture = Fixture::new(Algorithm::Es256);
    let app = fixture.app(Dpop::new(API));
    let me = "https://api.example/me";
    let expired = fixture.token_bound_to(&fixture.client, json!({"exp": NOW - 60}));
    let answer = send(
        &app,
        get_dpop("/me", &expired, &fixture.proof("GET", me, &expired)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.token_expired());
    assert_eq!(
        answer.challenge(),
        format!(
            r#"DPoP error="invalid_token", error_description="The access token expired", algs="{ALGS}""#
        )
    );
    // Not with a bad proof, nor with a proof of another key, nor as a bearer token.
    let stranger = SigningKey::generate(Algorithm::Es256).unwrap();
    let mut bad = fixture.proof_claims("GET", me, &expired);
    bad["htm"] = json!("POST");
    for proof in [
        proof_by(&fixture.client, bad),
        proof_by(&stranger, fixture.proof_claims("GET", me, &expired)),
    ] {
        let answer = send(&app, get_dpop("/me", &expired, &proof)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert!(!answer.token_expired(), "{}", answer.challenge());
    }
    assert!(
        !send(&app, get_with_token("/me", &expired))
            .await
            .token_expired()
    );

    // Seen valid, then expired: answered from the cache, with the proof still checked.
    let token = fixture.token();
    let answer = send(
        &app,
        get_dpop("/me", &token, &fixture.proof("GET", me, &token)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    fixture.clock.advance(Duration::from_secs(300 + 30));
    let answer = send(
        &app,
        get_dpop("/me", &token, &fixture.proof("GET", me, &token)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.token_expired());
    let answer = send(
        &app,
        get_dpop(
            "/me",
            &token,
            &proof_by(&stranger, fixture.proof_claims("GET", me, &token)),
        ),
    )
    .await;
    assert!(!answer.token_expired());
    assert_eq!(answer.json()["error"], "invalid_dpop_proof");
}

#[tokio::test]
async fn server_nonces_round_trip_and_rotate() {
    let fixture = Fixture::new(Algorithm::EdDsa);
    let app = fixture.app(
        Dpop::new(API)
            .nonce_secret([9; 32])
            .nonce_rotation(Duration::from_secs(300)),
    );
    let token = fixture.token();
    let me = "https://api.example/me";
    let with_nonce = |nonce: &str| {
        let mut claims = fixture.proof_claims("GET", me, &token);
        claims["nonce"] = json!(nonce);
        proof_by(&fixture.client, claims)
    };

    // No nonce yet: 401 use_dpop_nonce with one to use.
    let answer = send(
        &app,
        get_dpop("/me", &token, &fixture.proof("GET", me, &token)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.challenge(),
        format!(
            r#"DPoP error="use_dpop_nonce", error_description="{}", algs="{ALGS}""#,
            AuthRejection::UseDpopNonce { nonce: "".into() }
        )
    );
    assert_eq!(answer.json()["error"], "use_dpop_nonce");
    let nonce = answer.headers["dpop-nonce"].to_str().unwrap().to_owned();

    // The retry with it passes, and needs no new one.
    let answer = send(&app, get_dpop("/me", &token, &with_nonce(&nonce))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.headers.get("dpop-nonce").is_none());

    // A rotation later the nonce is the previous one: accepted, and the answer carries the next.
    fixture.clock.advance(Duration::from_secs(300));
    let answer = send(&app, get_dpop("/me", &token, &with_nonce(&nonce))).await;
    assert_eq!(answer.status, StatusCode::OK);
    let next = answer.headers["dpop-nonce"].to_str().unwrap().to_owned();
    assert_ne!(next, nonce);

    // Two rotations later it is stale; a made-up one never works.
    fixture.clock.advance(Duration::from_secs(300));
    for stale in [nonce.as_str(), "made-up"] {
        let answer = send(&app, get_dpop("/me", &token, &with_nonce(stale))).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.json()["error"], "use_dpop_nonce");
        assert!(answer.headers.contains_key("dpop-nonce"));
    }
}

#[tokio::test]
async fn htu_is_the_public_url_of_the_original_request() {
    let fixture = Fixture::new(Algorithm::Es256);
    // Behind a proxy that serves the API under /api of the public origin, and nested under /v1 here.
    let layer = fixture
        .builder()
        .dpop(Dpop::new("https://example.com/api/"))
        .build()
        .unwrap();
    let app = Router::new().nest(
        "/v1",
        Router::new()
            .route("/me", get(|| async { "me" }))
            .layer(layer),
    );
    let token = fixture.token();
    let proof = fixture.proof("GET", "https://example.com/api/v1/me", &token);
    let answer = send(&app, get_dpop("/v1/me?page=2", &token, &proof)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.challenge());
    let proof = fixture.proof("GET", "https://example.com/api/me", &token);
    let answer = send(&app, get_dpop("/v1/me", &token, &proof)).await;
    assert_eq!(answer.json()["error"], "invalid_dpop_proof");
}

#[test]
fn settings_are_checked_when_the_layer_is_built() {
    let fixture = Fixture::new(Algorithm::Es256);
    let build = |dpop: Dpop| fixture.builder().dpop(dpop).build().unwrap_err();
    for url in [
        "api.example",
        "https://",
        "https://api.example?x",
        "ftp://api.example",
    ] {
        assert!(
            matches!(build(Dpop::new(url)), BuildError::InvalidDpopUrl(_)),
            "{url}"
        );
    }
    assert!(matches!(
        build(Dpop::new(API).proof_algorithms([Algorithm::Hs256])),
        BuildError::InvalidDpop(_)
    ));
    assert!(matches!(
        build(Dpop::new(API).proof_algorithms([])),
        BuildError::InvalidDpop(_)
    ));
    assert!(matches!(
        build(Dpop::new(API).nonce_secret([1; 8])),
        BuildError::InvalidDpop(_)
    ));
    assert!(matches!(
        build(Dpop::new(API).replay_capacity(0)),
        BuildError::Zero(_)
    ));
    assert!(matches!(
        build(Dpop::new(API).proof_window(Duration::ZERO)),
        BuildError::Zero(_)
    ));
}
