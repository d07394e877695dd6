//! A client of a running `server` example: login, concurrent calls, expiry and one refresh, rotation, the
//! grace window, and a reuse attempt being rejected.
//!
//! ```sh
//! cargo run --release --example server -- --access-ttl 10s     # in one terminal
//! cargo run --release --example client -- --calls 50            # in another
//! ```
#![allow(clippy::print_stdout, reason = "narrating is what this example is for")]

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail, ensure};
use clap::Parser;
use futures_util::future::join_all;
use reqwest_middleware::ClientWithMiddleware;
use tessera_client::{AuthOutcome, TokenSet};
use tessera_core::{ErrorResponse, TokenResponse};
use tessera_examples::{login, progress};

/// Plays the refresh-token story against a running Tessera server.
#[derive(Debug, Parser)]
#[command(name = "client", version)]
struct Args {
    /// Base URL of the server (token service under /auth, API under /api).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: reqwest::Url,
    /// User to log in as.
    #[arg(long, default_value = "alice")]
    user: String,
    /// The user's password.
    #[arg(long, default_value = "wonderland")]
    password: String,
    /// Public client id to log in with.
    #[arg(long, default_value = "demo")]
    client_id: String,
    /// Concurrent calls per burst.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=5000))]
    calls: u16,
    /// Give up rather than wait longer than this for the access token to expire (start the server with a
    /// short --access-ttl).
    #[arg(long, default_value = "2m", value_parser = humantime::parse_duration)]
    max_wait: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::new();
    let base = &args.server;

    let login =
        login::password_login(&http, base, &args.client_id, &args.user, &args.password).await?;
    let first_refresh = login
        .refresh_token
        .clone()
        .context("the server issued no refresh token")?;
    let (auth, api) = login::api_client(&http, base, &args.client_id, Duration::ZERO)?;
    auth.set_tokens(TokenSet::from_response(login, SystemTime::now()))
        .await?;
    println!("logged in as {} at {base}", args.user);

    let ok = burst(&api, base, args.calls).await?.0;
    println!("{} concurrent calls to /api/me: {ok} x 200", args.calls);

    // Wait out the lifetime the token endpoint announced (`expires_in`): then the middleware refreshes
    // before sending, whatever leeway the server allows.
    let expires_at = auth
        .tokens()
        .and_then(|tokens| tokens.expires_at())
        .context("no expiry announced")?;
    let wait = expires_at
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    if wait > args.max_wait {
        bail!(
            "the access token expires in {}; restart the server with e.g. --access-ttl 10s, or raise --max-wait",
            humantime::format_duration(Duration::from_secs(wait.as_secs()))
        );
    }
    progress::wait_until(
        expires_at + Duration::from_millis(100),
        "waiting for the access token to expire",
    )
    .await;

    let (ok, refreshed, replayed) = burst(&api, base, args.calls).await?;
    println!(
        "{} concurrent calls after expiry: {ok} x 200; {refreshed} waited for the one refresh, {replayed} replayed",
        args.calls
    );
    let second_refresh = current_refresh_token(&auth)?;
    ensure!(
        second_refresh != first_refresh,
        "the refresh token was not rotated"
    );
    println!("rotation: the refresh returned a new refresh token; the first one is now consumed");

    // The first token again, as a client would after a lost response: inside the server's grace window it
    // gets the same successor (the family does not fork); after it, it is a replay.
    let retry = token_request(&http, base, &args.client_id, &first_refresh).await?;
    match retry {
        Ok(answer) if answer.refresh_token.as_deref() == Some(second_refresh.as_str()) => {
            println!(
                "retry of the consumed token inside the grace window: same successor returned, no fork"
            );
        }
        Ok(_) => bail!("the retry was answered with a different successor: the family forked"),
        Err(error) => {
            println!("retry of the consumed token after the grace window: refused ({error})")
        }
    }

    // Move the family on once more, so the first token is two generations old: presenting it is theft.
    let third = token_request(&http, base, &args.client_id, &second_refresh)
        .await?
        .map_err(|error| anyhow::anyhow!("rotating the current token failed: {error}"))?;
    let reuse = token_request(&http, base, &args.client_id, &first_refresh).await?;
    let Err(error) = reuse else {
        bail!("the server accepted a replayed refresh token")
    };
    println!(
        "reuse of the first refresh token: rejected ({error}); the server revoked the whole family"
    );
    let newest = third
        .refresh_token
        .context("the rotation issued no refresh token")?;
    match token_request(&http, base, &args.client_id, &newest).await? {
        Err(error) => {
            println!(
                "the family's newest refresh token is dead too ({error}): the user must log in again"
            )
        }
        Ok(_) => bail!("the family's newest refresh token still works after reuse detection"),
    }
    Ok(())
}

/// Fires `calls` concurrent `GET /api/me`; returns how many answered 200, waited for a refresh, and were
/// replayed.
async fn burst(
    api: &ClientWithMiddleware,
    base: &reqwest::Url,
    calls: u16,
) -> anyhow::Result<(u64, u64, u64)> {
    let url = base.join("/api/me")?;
    let requests = (0..calls).map(|_| async {
        let response = api.get(url.clone()).send().await?;
        let status = response.status();
        let outcome = response.extensions().get::<AuthOutcome>().copied();
        let body: serde_json::Value = response.json().await?;
        ensure!(status.is_success(), "GET /api/me answered {status}: {body}");
        anyhow::Ok(outcome)
    });
    let (mut ok, mut refreshed, mut replayed) = (0, 0, 0);
    for outcome in join_all(requests).await {
        let outcome = outcome?;
        ok += 1;
        refreshed += outcome.map_or(0, |outcome| u64::from(outcome.refreshed()));
        replayed += outcome.map_or(0, |outcome| u64::from(outcome.replayed()));
    }
    Ok((ok, refreshed, replayed))
}

fn current_refresh_token(auth: &tessera_client::AuthMiddleware) -> anyhow::Result<String> {
    let tokens = auth.tokens().context("the client holds no tokens")?;
    Ok(tokens
        .refresh_token()
        .context("the client holds no refresh token")?
        .as_str()
        .to_owned())
}

/// One `grant_type=refresh_token` request: the token answer, or the server's OAuth error.
async fn token_request(
    http: &reqwest::Client,
    base: &reqwest::Url,
    client_id: &str,
    refresh_token: &str,
) -> anyhow::Result<Result<TokenResponse, ErrorResponse>> {
    let response = login::refresh(http, base, client_id, refresh_token).await?;
    if response.status().is_success() {
        Ok(Ok(response.json().await?))
    } else {
        Ok(Err(response.json().await?))
    }
}
