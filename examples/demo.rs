//! The whole Tessera story in one command, with nothing to set up:
//!
//! ```sh
//! cargo run --release --example demo
//! ```
//!
//! It starts the token service and an API in-process on a free loopback port (temporary SQLite file,
//! 3-second access tokens), then plays a client through login, concurrent calls, expiry and a single
//! refresh, a stolen refresh token being replayed, and logout. Every number printed is counted as it
//! happens: by the token service's event hook, the API, and the client middleware's per-response reports.
#![allow(clippy::print_stdout, reason = "narrating is what this example is for")]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail, ensure};
use futures_util::future::join_all;
use reqwest_middleware::ClientWithMiddleware;
use tessera_client::{AuthMiddleware, AuthOutcome, RefreshError, TokenSet};
use tessera_core::{ErrorCode, ErrorResponse};
use tessera_examples::{app, login, progress};

const ACCESS_TTL: Duration = Duration::from_secs(3);
const GRACE: Duration = Duration::from_secs(1);
const CALLS: usize = 100;

/// What the client saw, counted from the middleware's per-response reports.
#[derive(Debug, Default)]
struct ClientTally {
    ok: u64,
    replayed: u64,
    /// Calls that waited for a refresh another call started, without being rejected first.
    waited: u64,
    reauthentication_required: u64,
    refused_token_requests: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "error".into()),
        )
        .init();
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let mut config = app::AppConfig::new(dir.path().join("tessera.db"));
    config.access_ttl = ACCESS_TTL;
    config.grace = GRACE;
    config.leeway = Duration::ZERO;
    let server = app::spawn(&config).await?;
    let http = reqwest::Client::new();

    println!(
        "Tessera demo: short-lived access tokens, rotating refresh tokens, replay detection.\n"
    );
    let origin = server.base_url.origin().ascii_serialization();
    println!("  server  {origin} (token service under /auth, API under /api)");
    println!("  store   {} (temporary SQLite file)", config.db);
    println!(
        "  tokens  {} access tokens, {}, grace window {} s\n",
        humantime::format_duration(ACCESS_TTL),
        config.alg,
        GRACE.as_secs()
    );

    let mut tally = ClientTally::default();

    // 1. Login. The client is handed no expiry for the access token, so the only thing that tells it the
    //    token expired is the API's `401` + `Token-Expired: true`: the path this demo is about.
    let login = login::password_login(
        &http,
        &server.base_url,
        app::CLIENT_ID,
        "alice",
        "wonderland",
    )
    .await?;
    let first_refresh_token = login
        .refresh_token
        .clone()
        .context("the login answer has no refresh token")?;
    let (auth, api) = login::api_client(&http, &server.base_url, app::CLIENT_ID, Duration::ZERO)?;
    auth.set_tokens(
        TokenSet::new(login.access_token).with_refresh_token(first_refresh_token.as_str()),
    )
    .await?;
    step(
        1,
        "login",
        "alice signs in with the password grant",
        "access + refresh token",
    );

    // 2. Concurrent calls with a fresh token.
    let exp = concurrent_calls(&api, &server, &mut tally).await?;
    let events = server.events.snapshot();
    step(
        2,
        "100 calls",
        "GET /api/me x 100, all at once",
        &format!("{} x 200, {} refreshes", tally.ok, events.refreshed),
    );

    // 3. Wait for the access token to expire (the API allows no leeway here).
    let expired_at = UNIX_EPOCH + Duration::from_secs(u64::try_from(exp)?) + Duration::from_secs(1);
    progress::wait_until(expired_at, "    waiting for the access token to expire").await;
    step(
        3,
        "expiry",
        "the access token is now expired",
        "the API allows no leeway",
    );

    // 4. Concurrent calls with the expired token: one refresh for all of them.
    let before = tally.ok;
    concurrent_calls(&api, &server, &mut tally).await?;
    let events = server.events.snapshot();
    ensure!(
        events.refreshed == 1,
        "expected exactly one refresh, the token service saw {}",
        events.refreshed
    );
    step(
        4,
        "100 calls",
        "GET /api/me x 100 with the expired token",
        &format!(
            "{} x 200, {} refresh ({} replayed after 401 Token-Expired, {} waited)",
            tally.ok - before,
            events.refreshed,
            tally.replayed,
            tally.waited
        ),
    );

    // 5. Someone replays the first refresh token, consumed by that refresh, once the grace window is over
    //    (inside it, a client retrying a lost response would get the same successor back).
    tokio::time::sleep(GRACE + Duration::from_millis(100)).await;
    let replay = refresh_with(&http, &server, &first_refresh_token, &mut tally).await?;
    let events = server.events.snapshot();
    ensure!(events.reuse_detected == 1, "the replay was not detected");
    step(
        5,
        "replay",
        "the first refresh token is presented again",
        &format!("{replay}: reuse detected, family revoked"),
    );

    // 6. The family is revoked: alice's own next refresh is refused, and the client says so.
    let expires = auth
        .tokens()
        .and_then(|tokens| tokens.expires_at())
        .context("the client holds no tokens")?;
    progress::wait_until(
        expires + Duration::from_secs(1),
        "    waiting for the access token to expire again",
    )
    .await;
    let lockout = match api.get(server.url("/api/me")).send().await {
        Err(error) if is_reauthentication_required(&error) => {
            // The middleware's refresh was refused: one more token request turned down.
            tally.reauthentication_required += 1;
            tally.refused_token_requests += 1;
            "ReauthenticationRequired: sign in again"
        }
        Err(error) => bail!("expected ReauthenticationRequired, got {error}"),
        Ok(response) => bail!(
            "expected ReauthenticationRequired, got {}",
            response.status()
        ),
    };
    step(
        6,
        "locked out",
        "alice's next refresh (her family was revoked)",
        lockout,
    );

    // 7. A new login, then logout: the new family is revoked and its refresh token is dead.
    logout_story(&http, &server, &auth, &mut tally).await?;
    let events = server.events.snapshot();
    step(
        7,
        "logout",
        "alice signs in again, then logs out",
        "family revoked; refresh -> invalid_grant",
    );

    server.stop().await?;
    println!("\nSummary (counted, not scripted)");
    let rows = [
        ("API calls answered 200", tally.ok, "client"),
        (
            "401 Token-Expired answers from the API",
            events.api_token_expired,
            "API",
        ),
        (
            "calls replayed with the new token",
            tally.replayed,
            "client middleware",
        ),
        (
            "calls that waited for the refresh instead",
            tally.waited,
            "client middleware",
        ),
        (
            "token refreshes (rotations)",
            events.refreshed,
            "token service",
        ),
        (
            "refresh-token replays detected",
            events.reuse_detected,
            "token service (family revoked)",
        ),
        (
            "families revoked by logout",
            events.revoked,
            "token service",
        ),
        (
            "token requests refused (invalid_grant)",
            tally.refused_token_requests,
            "token endpoint answers",
        ),
        (
            "calls refused: sign in again",
            tally.reauthentication_required,
            "client middleware",
        ),
        ("logins", events.logins, "token service"),
    ];
    for (what, count, source) in rows {
        println!("  {what:<42}{count:>6}   {source}");
    }
    println!("\nDone in {:.1} s.", started.elapsed().as_secs_f64());
    Ok(())
}

fn step(number: u32, name: &str, what: &str, outcome: &str) {
    println!("{number:>2}  {name:<11} {what:<46} {outcome}");
}

/// Fires `CALLS` requests at once; returns the token's `exp`.
async fn concurrent_calls(
    api: &ClientWithMiddleware,
    server: &app::RunningApp,
    tally: &mut ClientTally,
) -> anyhow::Result<i64> {
    let url = server.url("/api/me");
    let calls = (0..CALLS).map(|_| async {
        let response = api.get(url.clone()).send().await?;
        let outcome = response.extensions().get::<AuthOutcome>().copied();
        let status = response.status();
        let body: serde_json::Value = response.json().await?;
        anyhow::Ok((status, outcome, body))
    });
    let mut exp = 0;
    for result in join_all(calls).await {
        let (status, outcome, body) = result?;
        ensure!(status.is_success(), "GET /api/me answered {status}: {body}");
        tally.ok += 1;
        if let Some(outcome) = outcome {
            tally.replayed += u64::from(outcome.replayed());
            tally.waited += u64::from(outcome.refreshed() && !outcome.replayed());
        }
        exp = exp.max(body["exp"].as_i64().context("/api/me answered no exp")?);
    }
    Ok(exp)
}

/// Presents `refresh_token` to the token endpoint directly; returns the error code it is refused with.
async fn refresh_with(
    http: &reqwest::Client,
    server: &app::RunningApp,
    refresh_token: &str,
    tally: &mut ClientTally,
) -> anyhow::Result<String> {
    let response = login::refresh(http, &server.base_url, app::CLIENT_ID, refresh_token).await?;
    let status = response.status();
    ensure!(
        !status.is_success(),
        "the token endpoint accepted a consumed refresh token"
    );
    let error: ErrorResponse = response.json().await?;
    ensure!(
        error.error == ErrorCode::InvalidGrant,
        "expected invalid_grant, got {error}"
    );
    tally.refused_token_requests += 1;
    Ok(format!("{} {}", status.as_u16(), error.error))
}

async fn logout_story(
    http: &reqwest::Client,
    server: &app::RunningApp,
    auth: &AuthMiddleware,
    tally: &mut ClientTally,
) -> anyhow::Result<()> {
    let login = login::password_login(
        http,
        &server.base_url,
        app::CLIENT_ID,
        "alice",
        "wonderland",
    )
    .await?;
    auth.set_tokens(TokenSet::from_response(login, SystemTime::now()))
        .await?;
    let refresh_token = auth
        .tokens()
        .and_then(|tokens| tokens.refresh_token().cloned())
        .context("the login answer has no refresh token")?;
    login::logout(
        http,
        &server.base_url,
        app::CLIENT_ID,
        refresh_token.as_str(),
    )
    .await?;
    auth.clear().await?;
    refresh_with(http, server, refresh_token.as_str(), tally).await?;
    Ok(())
}

/// Whether the middleware ended the session because the token endpoint refused its refresh.
fn is_reauthentication_required(error: &reqwest_middleware::Error) -> bool {
    matches!(
        tessera_client::Error::from_middleware(error),
        Some(tessera_client::Error::ReauthenticationRequired { source })
            if matches!(**source, RefreshError::Rejected { .. })
    )
}
