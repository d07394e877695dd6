//! The example server's tower-http stack (`tessera_examples::app::http_stack`): CORS lets an allowed
//! origin read `Token-Expired`, and oversized bodies are refused. (That credentials never reach a log line
//! is `tests/trace_redaction.rs`, a binary of its own: a captured subscriber needs no sibling tests.)

use std::time::Duration;

use axum::http::HeaderValue;
use reqwest::StatusCode;
use reqwest::header::ORIGIN;
use tessera_examples::app::BODY_LIMIT;

use crate::support::TestApi;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_may_read_token_expired_and_others_get_no_cors_grant()
-> anyhow::Result<()> {
    let app_origin = "https://app.example";
    let api = TestApi::start_with(Duration::from_secs(60), |config| {
        config.cors_origins = vec![HeaderValue::from_static(app_origin)];
    })
    .await?;
    let http = reqwest::Client::new();

    let preflight = http
        .request(reqwest::Method::OPTIONS, api.url("/api/me"))
        .header(ORIGIN, app_origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await?;
    assert_eq!(preflight.status(), StatusCode::OK);
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        app_origin
    );
    let allowed = preflight.headers()["access-control-allow-headers"].to_str()?;
    assert!(allowed.contains("authorization"), "{allowed}");

    let refused = http
        .get(api.url("/api/me"))
        .header(ORIGIN, app_origin)
        .send()
        .await?;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let exposed = refused.headers()["access-control-expose-headers"].to_str()?;
    assert!(
        exposed.contains("token-expired") && exposed.contains("www-authenticate"),
        "{exposed}"
    );

    let foreign = http
        .get(api.url("/api/me"))
        .header(ORIGIN, "https://evil.example")
        .send()
        .await?;
    assert!(
        foreign
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_before_any_handler_reads_it() -> anyhow::Result<()> {
    let api = TestApi::start(Duration::from_secs(60)).await?;
    let response = reqwest::Client::new()
        .post(api.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; BODY_LIMIT + 1])
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    api.stop().await
}
