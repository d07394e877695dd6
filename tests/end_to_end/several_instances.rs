//! The deployment of the README's "Running several instances", in one process: two instances of the
//! example server on one PostgreSQL database behind one issuer URL (the first instance's address stands in
//! for the load balancer's), and the api example's API process, which is not the token service.

use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use reqwest::StatusCode;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::Value;
use tessera_core::TokenResponse;
use tessera_examples::api::{self, ApiConfig};
use tessera_examples::app::{self, App, AppConfig};
use tessera_examples::login;
use tokio::net::TcpListener;

use crate::support::{login_as, logout_all, me_with, postgres};

/// The denials feed's bearer token every instance and the API process share.
const FEED_TOKEN: &str = "several-instances-denials-feed-token-0123456789";
/// 32 bytes, base64url: the key-encryption secret every instance shares.
const KEY_ENCRYPTION_SECRET: &str = "c2V2ZXJhbC1pbnN0YW5jZXMtdGVzdC1rZWstMzJieXQ";
/// The API process's poll interval, and what a refusal may take beyond it (the poll's request, the
/// probe's).
const POLL_INTERVAL: Duration = Duration::from_millis(500);
const POLL_MARGIN: Duration = Duration::from_secs(1);
/// The contract between instances: a revocation reaches every one within 2 s.
const BETWEEN_INSTANCES: Duration = Duration::from_secs(2);

async fn get_json(url: reqwest::Url) -> anyhow::Result<(StatusCode, Value)> {
    let response = reqwest::get(url).await?;
    Ok((response.status(), response.json().await?))
}

/// Calls `/api/me` at `base` with `access_token` until it is refused; fails unless that happens within
/// `limit` of `since`. Returns how long it took and the refusal's `WWW-Authenticate` and body.
async fn refused_within(
    base: &reqwest::Url,
    access_token: &str,
    since: Instant,
    limit: Duration,
) -> anyhow::Result<(Duration, String, Value)> {
    let http = reqwest::Client::new();
    loop {
        let response = http
            .get(base.join("/api/me")?)
            .bearer_auth(access_token)
            .send()
            .await?;
        let elapsed = since.elapsed();
        if response.status() != StatusCode::OK {
            ensure!(
                response.status() == StatusCode::UNAUTHORIZED,
                "{base} answered {}",
                response.status()
            );
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .context("a 401 without WWW-Authenticate")?
                .to_str()?
                .to_owned();
            return Ok((elapsed, challenge, response.json().await?));
        }
        ensure!(
            elapsed <= limit,
            "{base} still accepted the token {elapsed:?} after the logout (limit {limit:?})"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_and_an_api_process_share_sessions_keys_and_revocations() -> anyhow::Result<()>
{
    let listener_a = TcpListener::bind("127.0.0.1:0").await?;
    let listener_b = TcpListener::bind("127.0.0.1:0").await?;
    let issuer = format!("http://{}", listener_a.local_addr()?);
    let mut config = AppConfig::for_tests(postgres("instances")?, Duration::from_secs(60))?;
    config.issuer = Some(issuer.clone());
    config.key_encryption_secret = Some(KEY_ENCRYPTION_SECRET.parse().map_err(anyhow::Error::msg)?);
    let feed_token = FEED_TOKEN.parse().map_err(anyhow::Error::msg)?;
    config.denials_feed_token = Some(feed_token);
    // One schema, migrated once; then both instances start together and race to create the signing key.
    let store_a = config.db.open_postgres().await?;
    let store_b = config.db.open_postgres().await?;
    let (a, b) = tokio::try_join!(App::start(&config, store_a), App::start(&config, store_b))?;
    let (a, b) = (a.serve(listener_a)?, b.serve(listener_b)?);

    let (status, jwks_a) = get_json(a.url("/.well-known/jwks.json")).await?;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(jwks_a["keys"].as_array().map(Vec::len), Some(1), "{jwks_a}");
    assert_eq!(
        get_json(b.url("/.well-known/jwks.json")).await?,
        (StatusCode::OK, jwks_a),
        "both instances publish the same key set"
    );

    let api_config = ApiConfig {
        poll_interval: POLL_INTERVAL,
        leeway: Duration::ZERO,
        ..ApiConfig::new(
            issuer.clone(),
            FEED_TOKEN.parse().map_err(anyhow::Error::msg)?,
        )
    };
    let api = api::spawn_on(&api_config, "127.0.0.1:0".parse()?).await?;
    assert_eq!(get_json(api.url("/readyz")).await?.0, StatusCode::OK);

    // Logged in on A, refreshed on B, and the successor refreshed on A again: one family in the database.
    let http = reqwest::Client::new();
    let login = login_as(&a, "alice", "wonderland").await?;
    let refresh_token = login.refresh_token.context("no refresh token")?;
    let on_b = login::refresh(&http, &b.base_url, app::CLIENT_ID, &refresh_token).await?;
    assert_eq!(on_b.status(), StatusCode::OK, "B rotates A's refresh token");
    let on_b: TokenResponse = on_b.json().await?;
    let successor = on_b.refresh_token.context("no successor")?;
    let on_a = login::refresh(&http, &a.base_url, app::CLIENT_ID, &successor).await?;
    assert_eq!(on_a.status(), StatusCode::OK, "and A rotates B's");

    let access_token = on_b.access_token;
    assert_eq!(
        me_with(&a.base_url, &access_token).await?,
        StatusCode::OK,
        "A accepts B's token"
    );
    let me = http
        .get(api.url("/api/me"))
        .bearer_auth(&access_token)
        .send()
        .await?;
    assert_eq!(me.status(), StatusCode::OK, "so does the API process");
    let me: Value = me.json().await?;
    assert_eq!(me["sub"], "alice");

    logout_all(&b, &access_token).await?;
    let logged_out = Instant::now();
    let (on_api, on_a) = tokio::join!(
        refused_within(
            &api.base_url,
            &access_token,
            logged_out,
            POLL_INTERVAL + POLL_MARGIN
        ),
        refused_within(&a.base_url, &access_token, logged_out, BETWEEN_INSTANCES),
    );
    for (who, (_, challenge, body)) in [("the API process", on_api?), ("instance A", on_a?)] {
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
            "{who}: {challenge}"
        );
        assert_eq!(body["error"], "invalid_token", "{who}: {body}");
    }
    assert_eq!(
        get_json(api.url("/readyz")).await?.0,
        StatusCode::OK,
        "the API process stays ready"
    );

    api.stop().await?;
    a.stop().await?;
    b.stop().await
}
