//! Lifetimes and leeway, strict RFC 9068, scopes and roles, optional authentication, the extractors,
//! revocation, the verified-token cache, the body hook, and CORS.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns unwrap too: a failure is a failed test

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use common::*;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use serde::Deserialize;
use serde_json::json;
use tessera_core::header::TOKEN_EXPIRED;
use tessera_server::{
    AuthRejection, Claims, RenderedBody, RevocationAnswer, RevocationCheck, RevocationError,
    TokenStatus, VerifiedToken,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

#[tokio::test]
async fn leeway_edges_for_exp_and_nbf() {
    let clock = TestClock::at_unix(NOW);
    let app = routes().route_layer(builder(&clock).build().unwrap());
    let expiring = token(json!({"exp": NOW + 300}));
    clock.set_unix(NOW + 300 + 29);
    assert_eq!(
        send(&app, get_with_token("/me", &expiring)).await.status,
        StatusCode::OK
    );
    clock.set_unix(NOW + 300 + 30);
    let answer = send(&app, get_with_token("/me", &expiring)).await;
    assert!(
        answer.token_expired(),
        "exp + leeway is the first invalid second"
    );

    let early = token(json!({"nbf": NOW + 100}));
    clock.set_unix(NOW + 100 - 30);
    assert_eq!(
        send(&app, get_with_token("/me", &early)).await.status,
        StatusCode::OK
    );
    clock.set_unix(NOW + 100 - 31);
    assert_eq!(
        send(&app, get_with_token("/me", &early))
            .await
            .description(),
        "The access token is not valid yet"
    );
}

#[tokio::test]
async fn leeway_is_configurable() {
    let clock = TestClock::at_unix(NOW + 300);
    let app = routes().route_layer(builder(&clock).leeway(Duration::ZERO).build().unwrap());
    assert!(
        send(&app, get_with_token("/me", &token(json!({}))))
            .await
            .token_expired()
    );
    clock.set_unix(NOW + 299);
    assert_eq!(
        send(&app, get_with_token("/me", &token(json!({}))))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn cached_tokens_still_expire() {
    let clock = TestClock::at_unix(NOW);
    let auth = builder(&clock).build().unwrap();
    let app = routes().route_layer(auth.clone());
    let token = token(json!({}));
    assert_eq!(
        send(&app, get_with_token("/me", &token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_with_token("/me", &token)).await.status,
        StatusCode::OK
    );
    assert_eq!((auth.stats().cache_misses, auth.stats().cache_hits), (1, 1));
    clock.set_unix(NOW + 330);
    let answer = send(&app, get_with_token("/me", &token)).await;
    assert!(answer.token_expired());
    // Answered from the entry, with the answer a full verification gives (see tests/cache.rs).
    let stats = auth.stats();
    assert_eq!((stats.cache_misses, stats.cache_hits), (1, 2));
    assert_eq!((stats.authenticated, stats.rejected), (2, 1));
}

#[tokio::test]
async fn cache_can_be_turned_off() {
    let clock = TestClock::at_unix(NOW);
    let auth = builder(&clock).without_cache().build().unwrap();
    let app = routes().route_layer(auth.clone());
    let token = token(json!({}));
    for _ in 0..3 {
        assert_eq!(
            send(&app, get_with_token("/me", &token)).await.status,
            StatusCode::OK
        );
    }
    let stats = auth.stats();
    assert_eq!(
        (stats.cache_hits, stats.cache_misses, stats.authenticated),
        (0, 0, 3)
    );
}

#[tokio::test]
async fn strict_rfc9068_requires_type_and_claims() {
    let clock = TestClock::at_unix(NOW);
    let app = routes().route_layer(builder(&clock).strict_rfc9068(true).build().unwrap());
    assert_eq!(
        send(&app, get_with_token("/me", &token(json!({}))))
            .await
            .status,
        StatusCode::OK
    );
    let answer = send(
        &app,
        get_with_token("/me", &token(json!({"client_id": null}))),
    )
    .await;
    assert_eq!(
        answer.description(),
        "The access token lacks the client_id claim"
    );
    let plain_jwt = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims(),
        &jsonwebtoken::EncodingKey::from_secret(SECRET),
    )
    .unwrap();
    let answer = send(&app, get_with_token("/me", &plain_jwt)).await;
    assert_eq!(
        answer.description(),
        "The access token is not an RFC 9068 access token (typ must be at+jwt)"
    );
    // Lenient mode accepts the plain JWT.
    let lenient = routes().route_layer(builder(&clock).build().unwrap());
    assert_eq!(
        send(&lenient, get_with_token("/me", &plain_jwt))
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn scopes_and_roles_per_route() {
    let clock = TestClock::at_unix(NOW);
    let auth = builder(&clock).build().unwrap();
    let app = Router::new()
        .route(
            "/read",
            get(|| async { "read" }).route_layer(auth.require_scope("read")),
        )
        .route(
            "/admin",
            get(|| async { "admin" })
                .route_layer(auth.require_scope("read").require_scope("admin")),
        )
        .route(
            "/edit",
            get(|| async { "edit" }).route_layer(auth.require_role("editor")),
        )
        .route(
            "/owner",
            get(|| async { "owner" }).route_layer(auth.require_role("owner")),
        );
    let token = token(json!({}));
    assert_eq!(
        send(&app, get_with_token("/read", &token)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, get_with_token("/edit", &token)).await.status,
        StatusCode::OK
    );

    let answer = send(&app, get_with_token("/admin", &token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(
        answer.challenge(),
        r#"Bearer error="insufficient_scope", error_description="The access token lacks a required scope", scope="read admin""#
    );
    assert_eq!(
        answer.json(),
        json!({"error": "insufficient_scope", "error_description": "The access token lacks a required scope", "scope": "read admin"})
    );
    let answer = send(&app, get_with_token("/owner", &token)).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert_eq!(answer.json()["error"], "insufficient_scope");
    assert_eq!(
        answer.description(),
        "The access token lacks the required role owner"
    );
    // Missing credentials on a scoped route are still a 401, not a 403.
    assert_eq!(
        send(&app, get_plain("/admin")).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn optional_mode_lets_anonymous_through_but_not_bad_tokens() {
    let clock = TestClock::at_unix(NOW);
    let auth = builder(&clock).build().unwrap().optional();
    let app = routes().route_layer(auth);
    let answer = send(&app, get_plain("/maybe")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "anonymous")
    );
    let answer = send(&app, get_with_token("/maybe", &token(json!({})))).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::OK, "alice")
    );
    let answer = send(
        &app,
        get_with_token("/maybe", &token(json!({"aud": "billing"}))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    clock.set_unix(NOW + 1000);
    assert!(
        send(&app, get_with_token("/maybe", &token(json!({}))))
            .await
            .token_expired()
    );
    // A handler that requires claims behind an optional layer answers the missing-credentials challenge.
    let answer = send(&app, get_plain("/me")).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.challenge(), r#"Bearer realm="api""#);
}

#[tokio::test]
async fn claims_extractor_takes_any_deserializable_type() {
    #[derive(Deserialize)]
    struct Tenant {
        sub: String,
        tenant: String,
    }
    let clock = TestClock::at_unix(NOW);
    let app = Router::new()
        .route(
            "/tenant",
            get(|Claims(claims): Claims<Tenant>| async move {
                format!("{}@{}", claims.sub, claims.tenant)
            }),
        )
        .route_layer(builder(&clock).build().unwrap());
    let answer = send(
        &app,
        get_with_token("/tenant", &token(json!({"tenant": "acme"}))),
    )
    .await;
    assert_eq!(answer.body, "alice@acme");
    let answer = send(&app, get_with_token("/tenant", &token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        answer.description(),
        "The access token's claims do not have the shape this API expects"
    );
}

#[tokio::test]
async fn extractor_without_a_layer_is_a_server_error() {
    let answer = send(&routes(), get_plain("/me")).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.json()["error"], "server_error");
}

#[tokio::test]
async fn verified_token_exposes_registered_claims() {
    let clock = TestClock::at_unix(NOW);
    let app = Router::new()
        .route(
            "/",
            get(|token: VerifiedToken| async move {
                format!(
                    "{:?} {:?} {:?} {:?} {} {:?} {:?} {} {}",
                    token.issuer(),
                    token.subject(),
                    token.client_id(),
                    token.jti(),
                    token.expires_at(),
                    token.issued_at(),
                    token.scopes().collect::<Vec<_>>(),
                    token.has_role("editor"),
                    token.claims_json().contains("\"sub\""),
                )
            }),
        )
        .route_layer(builder(&clock).build().unwrap());
    let escaped = token(json!({"sub": "al\"ice", "roles": ["editor", "viewer"]}));
    let answer = send(&app, get_with_token("/", &escaped)).await;
    assert_eq!(
        answer.body,
        format!(
            "Some(\"https://auth.example\") Some(\"al\\\"ice\") Some(\"web\") Some(\"jti-1\") {} Some({NOW}) [\"read\", \"write\"] true true",
            NOW + 300
        )
    );
}

/// Revoked `jti`s and per-subject "revoked before" times, counting how often it is asked; looked up the
/// way a store is, asynchronously.
#[derive(Clone, Default)]
struct Denylist(Arc<Denials>);

#[derive(Default)]
struct Denials {
    jtis: Mutex<HashSet<String>>,
    subjects: Mutex<Vec<(String, i64)>>,
    failing: std::sync::atomic::AtomicBool,
    calls: AtomicUsize,
}

impl std::ops::Deref for Denylist {
    type Target = Denials;
    fn deref(&self) -> &Denials {
        &self.0
    }
}

impl Denials {
    fn status(&self, token: &VerifiedToken) -> Result<TokenStatus, RevocationError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(RevocationError::new("denylist store unreachable"));
        }
        let by_jti = token
            .jti()
            .is_some_and(|jti| self.jtis.lock().unwrap().contains(jti));
        let by_subject = self
            .subjects
            .lock()
            .unwrap()
            .iter()
            .any(|(subject, before)| {
                token.subject() == Some(subject)
                    && token.issued_at().is_some_and(|issued| issued < *before)
            });
        Ok(TokenStatus::revoked_if(by_jti || by_subject))
    }
}

impl RevocationCheck for Denylist {
    fn status(&self, token: &VerifiedToken) -> RevocationAnswer {
        let (denials, token) = (Arc::clone(&self.0), token.clone());
        RevocationAnswer::pending(async move {
            tokio::task::yield_now().await;
            denials.status(&token)
        })
    }
}

/// The same denylist, answering at once, as an in-memory one does.
#[derive(Clone, Default)]
struct InMemoryDenylist(Denylist);

impl RevocationCheck for InMemoryDenylist {
    fn status(&self, token: &VerifiedToken) -> RevocationAnswer {
        self.0.0.status(token).into()
    }
}

/// The asynchronous denylist and the same one answering at once, each with the handle that edits it.
fn both_checks() -> [(&'static str, Denylist, Arc<dyn RevocationCheck>); 2] {
    let (pending, ready) = (Denylist::default(), Denylist::default());
    [
        ("pending", pending.clone(), Arc::new(pending)),
        ("ready", ready.clone(), Arc::new(InMemoryDenylist(ready))),
    ]
}

#[tokio::test]
async fn revocation_by_jti_and_by_subject_is_checked_even_on_cache_hits() {
    for (name, denylist, check) in both_checks() {
        let clock = TestClock::at_unix(NOW);
        let auth = builder(&clock).revocation(check).build().unwrap();
        let app = routes().route_layer(auth.clone().require_scope("read"));
        let first = token(json!({"jti": "first"}));
        let second = token(json!({"jti": "second", "iat": NOW + 10}));
        assert_eq!(
            send(&app, get_with_token("/me", &first)).await.status,
            StatusCode::OK,
            "{name}"
        );
        assert_eq!(
            send(&app, get_with_token("/me", &first)).await.status,
            StatusCode::OK,
            "{name}"
        );
        assert_eq!(auth.stats().cache_hits, 1, "{name}");
        assert_eq!(denylist.calls.load(Ordering::SeqCst), 2, "{name}");

        denylist.jtis.lock().unwrap().insert("first".into());
        let answer = send(&app, get_with_token("/me", &first)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{name}");
        assert_eq!(answer.description(), "The access token has been revoked");
        assert!(!answer.token_expired());
        assert_eq!(
            send(&app, get_with_token("/me", &second)).await.status,
            StatusCode::OK,
            "{name}"
        );

        denylist
            .subjects
            .lock()
            .unwrap()
            .push(("alice".into(), NOW + 20));
        assert_eq!(
            send(&app, get_with_token("/me", &second))
                .await
                .description(),
            "The access token has been revoked",
            "{name}"
        );
        let after = token(json!({"jti": "third", "iat": NOW + 20}));
        assert_eq!(
            send(&app, get_with_token("/me", &after)).await.status,
            StatusCode::OK,
            "{name}"
        );

        // Expired tokens are refused before the denylist is asked.
        let calls = denylist.calls.load(Ordering::SeqCst);
        clock.set_unix(NOW + 1000);
        assert!(
            send(&app, get_with_token("/me", &after))
                .await
                .token_expired(),
            "{name}"
        );
        assert_eq!(denylist.calls.load(Ordering::SeqCst), calls, "{name}");
        let stats = auth.stats();
        assert_eq!((stats.authenticated, stats.rejected), (4, 3), "{name}");
    }
}

#[tokio::test]
async fn revocation_failure_fails_closed_with_503() {
    for (name, denylist, check) in both_checks() {
        let clock = TestClock::at_unix(NOW);
        denylist.failing.store(true, Ordering::SeqCst);
        let app = routes().route_layer(builder(&clock).revocation(check).build().unwrap());
        let answer = send(&app, get_with_token("/me", &token(json!({})))).await;
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{name}");
        assert_eq!(answer.json()["error"], "temporarily_unavailable");
    }
}

#[tokio::test]
async fn a_revocation_check_can_be_a_closure() {
    let clock = TestClock::at_unix(NOW);
    let check = |token: &VerifiedToken| TokenStatus::revoked_if(token.jti() == Some("bad")).into();
    let app = routes().route_layer(builder(&clock).revocation(Arc::new(check)).build().unwrap());
    let answer = send(&app, get_with_token("/me", &token(json!({"jti": "bad"})))).await;
    assert_eq!(answer.description(), "The access token has been revoked");
    let answer = send(&app, get_with_token("/me", &token(json!({"jti": "good"})))).await;
    assert_eq!(answer.status, StatusCode::OK);
}

/// An RFC 9457 problem body, for the tests of the body hook.
fn problem(rejection: &AuthRejection) -> RenderedBody {
    RenderedBody {
        content_type: HeaderValue::from_static("application/problem+json"),
        body: json!({"title": rejection.error_code().as_str(), "status": rejection.status().as_u16(), "detail": rejection.to_string()})
            .to_string()
            .into(),
    }
}

#[tokio::test]
async fn body_hook_changes_the_body_only() {
    let clock = TestClock::at_unix(NOW + 1000);
    let app = routes().route_layer(
        builder(&clock)
            .rejection_body(problem)
            .realm("tessera-demo")
            .build()
            .unwrap(),
    );
    let answer = send(&app, get_with_token("/me", &token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(answer.token_expired());
    assert_eq!(
        answer.challenge(),
        r#"Bearer error="invalid_token", error_description="The access token expired""#
    );
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    assert_eq!(
        answer.json(),
        json!({"title": "invalid_token", "status": 401, "detail": "The access token expired"})
    );
    let answer = send(&app, get_plain("/me")).await;
    assert_eq!(answer.challenge(), r#"Bearer realm="tessera-demo""#);
}

#[tokio::test]
async fn extractor_rejections_answer_like_the_layer_they_sit_behind() {
    #[derive(Deserialize)]
    struct Tenant {
        tenant: String,
    }
    let clock = TestClock::at_unix(NOW);
    let auth = builder(&clock)
        .rejection_body(problem)
        .realm("tessera-demo")
        .build()
        .unwrap();
    let app = routes()
        .route(
            "/tenant",
            get(|Claims(claims): Claims<Tenant>| async move { claims.tenant }),
        )
        .route_layer(auth.optional());

    // The token verifies, but its claims do not fit the handler's type.
    let answer = send(&app, get_with_token("/tenant", &token(json!({})))).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert_eq!(answer.headers["content-type"], "application/problem+json");
    let unexpected = "The access token's claims do not have the shape this API expects";
    assert_eq!(
        answer.json(),
        json!({"title": "invalid_token", "status": 401, "detail": unexpected})
    );
    assert_eq!(
        answer.challenge(),
        format!(r#"Bearer error="invalid_token", error_description="{unexpected}""#)
    );
    assert!(!answer.token_expired());

    // The optional layer lets an anonymous request through; the handler requires claims.
    for path in ["/me", "/raw"] {
        let answer = send(&app, get_plain(path)).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            answer.challenge(),
            r#"Bearer realm="tessera-demo""#,
            "{path}"
        );
        assert_eq!(answer.headers["content-type"], "application/problem+json");
        assert_eq!(answer.json()["title"], "unauthorized", "{path}");
    }

    let stats = auth.stats();
    assert_eq!(
        (stats.authenticated, stats.rejected),
        (1, 3),
        "every answer the extractors gave is counted as a rejection"
    );
}

#[tokio::test]
async fn cors_exposes_token_expired_to_browsers() {
    let clock = TestClock::at_unix(NOW + 1000);
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::exact(HeaderValue::from_static(
            "https://app.example",
        )))
        .allow_headers([http::header::AUTHORIZATION])
        .expose_headers([HeaderName::from_static(TOKEN_EXPIRED)]);
    let app = routes()
        .route_layer(builder(&clock).build().unwrap())
        .layer(cors);

    let request = Request::get("/me")
        .header("origin", "https://app.example")
        .header("authorization", format!("Bearer {}", token(json!({}))))
        .body(Body::empty())
        .unwrap();
    let answer = send(&app, request).await;
    assert!(answer.token_expired());
    assert_eq!(
        answer.headers["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        answer.headers["access-control-expose-headers"],
        "token-expired"
    );

    // The preflight never carries the token; it must not be refused by the layer.
    let preflight = Request::builder()
        .method(Method::OPTIONS)
        .uri("/me")
        .header("origin", "https://app.example")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .body(Body::empty())
        .unwrap();
    let answer = send(&app, preflight).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers["access-control-allow-headers"],
        "authorization"
    );
}

#[tokio::test]
async fn stats_count_outcomes() {
    let clock = TestClock::at_unix(NOW);
    let auth = builder(&clock).build().unwrap();
    let app = routes().route_layer(auth.clone());
    send(&app, get_with_token("/me", &token(json!({})))).await;
    send(&app, get_plain("/me")).await;
    send(&app, get_with_token("/me", &token(json!({"aud": "x"})))).await;
    let stats = auth.stats();
    assert_eq!((stats.authenticated, stats.rejected), (1, 2));
}

#[tokio::test]
async fn nested_clones_of_one_layer_verify_once() {
    let clock = TestClock::at_unix(NOW);
    let denylist = Arc::new(Denylist::default());
    let auth = builder(&clock)
        .revocation(denylist.clone())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/read",
            get(|| async { "read" }).route_layer(auth.require_scope("read")),
        )
        .route(
            "/admin",
            get(|| async { "admin" }).route_layer(auth.require_scope("admin")),
        )
        .layer(auth.clone());
    let token = token(json!({}));
    assert_eq!(
        send(&app, get_with_token("/read", &token)).await.status,
        StatusCode::OK
    );
    let stats = auth.stats();
    assert_eq!(
        (stats.authenticated, stats.cache_misses, stats.cache_hits),
        (1, 1, 0)
    );
    assert_eq!(denylist.calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        send(&app, get_with_token("/admin", &token)).await.status,
        StatusCode::FORBIDDEN
    );

    // A separately built layer does not trust the outer one's verification.
    let other = builder(&clock)
        .revocation(denylist.clone())
        .build()
        .unwrap();
    let app = Router::new()
        .route("/read", get(|| async { "read" }).route_layer(other.clone()))
        .layer(auth);
    assert_eq!(
        send(&app, get_with_token("/read", &token)).await.status,
        StatusCode::OK
    );
    assert_eq!(denylist.calls.load(Ordering::SeqCst), 4);
    assert_eq!(other.stats().authenticated, 1);
}

#[tokio::test]
async fn tokens_outside_requests_get_the_same_checks() {
    for (name, denylist, check) in both_checks() {
        let clock = TestClock::at_unix(NOW);
        let auth = builder(&clock).revocation(check).build().unwrap();
        let verified = auth.verify(&token(json!({}))).await.unwrap();
        assert_eq!(verified.subject(), Some("alice"), "{name}");
        assert_eq!(
            auth.require_scope("admin")
                .verify(&token(json!({})))
                .await
                .unwrap_err()
                .status(),
            StatusCode::FORBIDDEN,
            "{name}"
        );
        denylist.jtis.lock().unwrap().insert("jti-1".into());
        assert_eq!(
            auth.verify(&token(json!({}))).await.unwrap_err(),
            AuthRejection::Revoked,
            "{name}"
        );
        clock.set_unix(NOW + 1000);
        assert_eq!(
            auth.verify(&token(json!({"jti": "other"})))
                .await
                .unwrap_err(),
            AuthRejection::Expired,
            "{name}"
        );
        assert_eq!(
            auth.verify(&"a".repeat(9000)).await.unwrap_err(),
            AuthRejection::TokenTooLong { limit: 8192 },
            "{name}"
        );
        let stats = auth.stats();
        assert_eq!((stats.authenticated, stats.rejected), (1, 4), "{name}");
    }
}
