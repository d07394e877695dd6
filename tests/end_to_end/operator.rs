//! What a load balancer and an operator see of the example server: liveness, readiness, the opt-in
//! metrics, and the server on PostgreSQL.

use std::time::Duration;

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_examples::app::{self, App, AppConfig};
use tessera_examples::login;

use crate::support::store::FaultyStore;
use crate::support::{TestApi, login_as, me, me_with, postgres, revoke, signed_in};

async fn get_json(url: reqwest::Url) -> anyhow::Result<(StatusCode, Value)> {
    let response = reqwest::get(url).await?;
    let status = response.status();
    Ok((status, response.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn liveness_and_readiness_answer_without_a_token_and_readiness_follows_the_database()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = AppConfig::for_tests(dir.path().join("tessera.db"), Duration::from_secs(60))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    config.issuer = Some(format!("http://{}", listener.local_addr()?));
    let (store, faults) = FaultyStore::new(config.db.open_sqlite().await?);
    let server = App::start(&config, store).await?.serve(listener)?;

    assert_eq!(
        get_json(server.url("/healthz")).await?,
        (StatusCode::OK, json!({ "status": "ok" }))
    );
    assert_eq!(
        get_json(server.url("/readyz")).await?,
        (StatusCode::OK, json!({ "status": "ready" }))
    );

    faults.set_unreachable(true);
    let (status, body) = get_json(server.url("/readyz")).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["status"], "not_ready");
    let reason = body["reason"].as_str().context("no reason")?;
    assert!(reason.contains("store does not answer"), "{reason}");
    assert_eq!(
        get_json(server.url("/healthz")).await?.0,
        StatusCode::OK,
        "alive all the same: a restart would not help"
    );

    faults.set_unreachable(false);
    assert_eq!(get_json(server.url("/readyz")).await?.0, StatusCode::OK);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_only_when_asked_for() -> anyhow::Result<()> {
    let quiet = TestApi::start(Duration::from_secs(60)).await?;
    assert_eq!(
        reqwest::get(quiet.url("/metrics")).await?.status(),
        StatusCode::NOT_FOUND
    );
    quiet.stop().await?;

    let api = TestApi::start_with(Duration::from_secs(60), |config| config.metrics = true).await?;
    let (_auth, client, _) = signed_in(&api, "alice", "wonderland").await?;
    me(&client, &api).await?;
    let response = reqwest::get(api.url("/metrics")).await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await?;
    for expected in [
        "tessera_issuer_events_total{event=\"login_succeeded\"} 1",
        "tessera_auth_authenticated_total{layer=\"api\"} 1",
        "tessera_store_operation_seconds",
        "tessera_denylist_available 1",
    ] {
        assert!(text.contains(expected), "no `{expected}` in\n{text}");
    }
    api.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_the_server_keeps_sessions_keys_and_revocations_across_a_restart()
-> anyhow::Result<()> {
    let config = AppConfig::for_tests(postgres("restart")?, Duration::from_secs(60))?;
    let server = app::spawn(&config).await?;
    assert_eq!(get_json(server.url("/readyz")).await?.0, StatusCode::OK);
    let alice = login_as(&server, "alice", "wonderland").await?;
    let bob = login_as(&server, "bob", "builder").await?;
    revoke(&server, &bob.access_token, "access_token").await?;

    let addr = server.addr;
    server.stop().await?;
    let server = app::spawn_on(&config, addr).await?;
    assert_eq!(
        me_with(&server.base_url, &alice.access_token).await?,
        StatusCode::OK,
        "the signing keys live in the database"
    );
    assert_eq!(
        me_with(&server.base_url, &bob.access_token).await?,
        StatusCode::UNAUTHORIZED,
        "so do the revocations"
    );
    let refresh_token = alice.refresh_token.context("no refresh token")?;
    let rotated = login::refresh(
        &reqwest::Client::new(),
        &server.base_url,
        app::CLIENT_ID,
        &refresh_token,
    )
    .await?;
    assert_eq!(rotated.status(), StatusCode::OK, "and the sessions");
    server.stop().await
}
