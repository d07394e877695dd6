//! The whole lifecycle through the demo server and `tessera-client`: login, calls, expiry and exactly one
//! refresh, roles, logout, reuse of a stolen refresh token, revocation.
//!
//! Access tokens live 2 s (4 s for the burst of 1000 calls) and the API allows no leeway, so each test
//! waits a few seconds for a real expiry.

use std::time::Duration;

use anyhow::{Context as _, ensure};
use futures_util::future::join_all;
use reqwest::StatusCode;
use tessera_client::{AuthOutcome, TokenSet};
use tessera_core::{ErrorCode, ErrorResponse, TokenResponse};
use tessera_examples::app::{self, RunningApp};
use tessera_examples::login;

use crate::support::{TestApi, login_as, me, revoke, signed_in, wait_past};

const ACCESS_TTL: Duration = Duration::from_secs(2);

/// Long enough for a burst of 1000 calls (debug build, loaded machine) to finish before the token they
/// refreshed to expires as well, which would rightly cause a second refresh.
const BURST_ACCESS_TTL: Duration = Duration::from_secs(4);

/// Presents `refresh_token` to the token endpoint directly.
async fn refresh_directly(
    server: &RunningApp,
    refresh_token: &str,
) -> anyhow::Result<reqwest::Response> {
    login::refresh(
        &reqwest::Client::new(),
        &server.base_url,
        app::CLIENT_ID,
        refresh_token,
    )
    .await
}

async fn expect_invalid_grant(response: reqwest::Response) -> anyhow::Result<()> {
    ensure!(
        response.status() == StatusCode::BAD_REQUEST,
        "expected 400, got {}",
        response.status()
    );
    let error: ErrorResponse = response.json().await?;
    ensure!(
        error.error == ErrorCode::InvalidGrant,
        "expected invalid_grant, got {error}"
    );
    Ok(())
}

fn is_reauthentication_required(
    result: &Result<reqwest::Response, reqwest_middleware::Error>,
) -> bool {
    matches!(
        result
            .as_ref()
            .err()
            .and_then(tessera_client::Error::from_middleware),
        Some(tessera_client::Error::ReauthenticationRequired { .. })
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_lifecycle_login_call_expire_refresh_authorize_logout() -> anyhow::Result<()> {
    let server = TestApi::start(ACCESS_TTL).await?;
    let (auth, api, _) = signed_in(&server, "alice", "wonderland").await?;

    let (profile, outcome) = me(&api, &server).await?;
    assert_eq!(profile["sub"], "alice");
    assert_eq!(profile["roles"], serde_json::json!(["admin"]));
    assert!(outcome.attached() && !outcome.refreshed() && !outcome.replayed());
    let first_generation = outcome.generation();

    // Role checks: alice is an admin, bob is not, nobody gets in without a token.
    assert_eq!(
        api.get(server.url("/api/admin")).send().await?.status(),
        StatusCode::OK
    );
    let (_, bob, _) = signed_in(&server, "bob", "builder").await?;
    let forbidden = bob.get(server.url("/api/admin")).send().await?;
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let challenge = forbidden.headers()["www-authenticate"].to_str()?;
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    let anonymous = reqwest::get(server.url("/api/me")).await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);

    // Expiry: the next call still works, through exactly one refresh.
    wait_past(&profile["exp"]).await?;
    let (profile, outcome) = me(&api, &server).await?;
    assert_eq!(profile["sub"], "alice");
    assert!(
        outcome.refreshed(),
        "the call after expiry went through a refresh"
    );
    assert!(outcome.generation() > first_generation);
    assert_eq!(server.events.snapshot().refreshed, 1);

    // The user's sessions, then logout: the family is revoked and its refresh token is dead.
    let sessions = api.get(server.url("/auth/sessions")).send().await?;
    assert_eq!(sessions.status(), StatusCode::OK);
    let refresh_token = auth
        .tokens()
        .and_then(|tokens| tokens.refresh_token().cloned())
        .context("no token")?;
    login::logout(
        &reqwest::Client::new(),
        &server.base_url,
        app::CLIENT_ID,
        refresh_token.as_str(),
    )
    .await?;
    assert_eq!(server.events.snapshot().revoked, 1);

    // Once the access token expires, the client is told to sign in again.
    wait_past(&profile["exp"]).await?;
    let result = api.get(server.url("/api/me")).send().await;
    assert!(is_reauthentication_required(&result), "{result:?}");
    assert_eq!(
        auth.tokens(),
        None,
        "the middleware dropped the dead tokens"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_concurrent_calls_across_an_expiry_cause_exactly_one_refresh()
-> anyhow::Result<()> {
    let server = TestApi::start(BURST_ACCESS_TTL).await?;
    let login = login_as(&server, "alice", "wonderland").await?;
    let (auth, api) = login::api_client(
        &reqwest::Client::new(),
        &server.base_url,
        app::CLIENT_ID,
        Duration::ZERO,
    )?;
    // No expiry given: the client learns of it only from the API's 401 + Token-Expired, so all 1000 calls
    // go out with the expired token and come back rejected together.
    let refresh_token = login.refresh_token.context("no refresh token")?;
    auth.set_tokens(TokenSet::new(login.access_token).with_refresh_token(refresh_token))
        .await?;
    let (profile, _) = me(&api, &server).await?;
    wait_past(&profile["exp"]).await?;

    let url = server.url("/api/me");
    let calls = (0..1000).map(|_| async {
        let response = api.get(url.clone()).send().await?;
        anyhow::Ok((
            response.status(),
            response.extensions().get::<AuthOutcome>().copied(),
        ))
    });
    let results = join_all(calls).await;
    let mut replayed = 0;
    for result in results {
        let (status, outcome) = result?;
        assert_eq!(status, StatusCode::OK);
        replayed += u64::from(outcome.context("no AuthOutcome")?.replayed());
    }
    let events = server.events.snapshot();
    assert_eq!(events.refreshed, 1, "exactly one refresh for 1000 calls");
    assert!(
        events.api_token_expired >= 1,
        "the expiry was reported by the API"
    );
    assert_eq!(
        replayed, events.api_token_expired,
        "every call rejected as expired was replayed once"
    );
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_of_a_stolen_refresh_token_ends_the_session_for_the_client() -> anyhow::Result<()> {
    let server = TestApi::start(ACCESS_TTL).await?;
    let (auth, api, login) = signed_in(&server, "alice", "wonderland").await?;
    let stolen = login.refresh_token.context("no refresh token")?;

    // The thief rotates the stolen token twice, so the client's copy is two generations old: not a retry
    // inside the grace window, a replay.
    let first: TokenResponse = refresh_directly(&server, &stolen).await?.json().await?;
    let second = refresh_directly(
        &server,
        first.refresh_token.as_deref().context("no successor")?,
    )
    .await?;
    assert_eq!(second.status(), StatusCode::OK);
    let thief: TokenResponse = second.json().await?;

    // The client refreshes with its (old) token once its access token expires: reuse, family revoked.
    let (profile, _) = me(&api, &server).await?;
    wait_past(&profile["exp"]).await?;
    let result = api.get(server.url("/api/me")).send().await;
    assert!(is_reauthentication_required(&result), "{result:?}");
    assert_eq!(auth.tokens(), None);
    assert_eq!(server.events.snapshot().reuse_detected, 1);

    // The thief's newest refresh token died with the family.
    expect_invalid_grant(
        refresh_directly(&server, thief.refresh_token.as_deref().context("no token")?).await?,
    )
    .await?;
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoking_the_refresh_token_ends_the_session_and_its_access_token_at_once()
-> anyhow::Result<()> {
    let server = TestApi::start(ACCESS_TTL).await?;
    let (auth, api, login) = signed_in(&server, "alice", "wonderland").await?;
    me(&api, &server).await?;

    let refresh_token = login.refresh_token.context("no refresh token")?;
    revoke(&server, &refresh_token, "refresh_token").await?;
    assert_eq!(server.events.snapshot().revoked, 1);

    // The family's access token dies with it (denied by its `sid`), long before it expires: the next call
    // is refused, the refresh it prompts is refused too, and the client is told to sign in again.
    let result = api.get(server.url("/api/me")).send().await;
    assert!(is_reauthentication_required(&result), "{result:?}");
    assert_eq!(auth.tokens(), None);
    expect_invalid_grant(refresh_directly(&server, &refresh_token).await?).await?;
    assert_eq!(server.events.snapshot().refreshed, 0);
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_access_token_is_refused_at_once_and_the_client_gets_a_new_one()
-> anyhow::Result<()> {
    let server = TestApi::start(ACCESS_TTL).await?;
    let (_auth, api, tokens) = signed_in(&server, "alice", "wonderland").await?;
    me(&api, &server).await?;

    // RFC 7009 for an access token: its `jti` goes on the denylist the API's JwtAuthLayer consults.
    revoke(&server, &tokens.access_token, "access_token").await?;
    let http = reqwest::Client::new();
    assert_eq!(server.events.snapshot().access_tokens_revoked, 1);

    // Refused at once, long before its expiry, as invalid rather than expired.
    let direct = http
        .get(server.url("/api/me"))
        .bearer_auth(&tokens.access_token)
        .send()
        .await?;
    assert_eq!(direct.status(), StatusCode::UNAUTHORIZED);
    assert!(direct.headers().get("token-expired").is_none());
    let error: ErrorResponse = direct.json().await?;
    assert_eq!(error.error, ErrorCode::InvalidToken);

    // The session itself (the refresh-token family) is alive: the middleware refreshes once on the
    // `invalid_token` answer and replays, so the user carries on.
    let (profile, outcome) = me(&api, &server).await?;
    assert_eq!(profile["sub"], "alice");
    assert!(outcome.refreshed() && outcome.replayed());
    assert_eq!(server.events.snapshot().refreshed, 1);
    server.stop().await
}
