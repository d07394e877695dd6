//! DPoP (RFC 9449) across the three crates through real listeners: the example server (token service and
//! `JwtAuthLayer` API, DPoP accepted beside bearer tokens) and `tessera-client`'s middleware with a key.

use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use futures_util::future::join_all;
use reqwest::{Method, StatusCode};
use reqwest_middleware::ClientWithMiddleware;
use serde_json::Value;
use tessera_client::{AuthMiddleware, AuthOutcome, DpopKey, FileTokenStore, TokenSet};
use tessera_core::TokenResponse;
use tessera_core::header::{DPOP, DPOP_NONCE};
use tessera_core::jose::{Algorithm, Jws};
use tessera_examples::app::{self, RunningApp};
use tessera_examples::login;

use crate::support::{TestApi, me, wait_past};

/// Lifetime of the access tokens: long enough for a login and a first call, short enough to wait out.
const ACCESS_TTL: Duration = Duration::from_secs(3);

/// The JWT claims of `token`, read without verifying (the server did).
fn claims(token: &str) -> anyhow::Result<Value> {
    Ok(Jws::parse(token)?.unverified_claims()?)
}

/// A middleware holding `key`, logged in as alice with a proof of that key: the login answer too.
async fn bound_session(
    server: &RunningApp,
    key: DpopKey,
) -> anyhow::Result<(AuthMiddleware, ClientWithMiddleware, TokenResponse)> {
    let http = reqwest::Client::new();
    let (auth, api) =
        login::dpop_api_client(&http, &server.base_url, app::CLIENT_ID, Duration::ZERO, key)?;
    let dpop = auth.dpop().context("DPoP is on")?;
    let login = login::dpop_password_login(
        &http,
        &server.base_url,
        app::CLIENT_ID,
        "alice",
        "wonderland",
        &dpop,
    )
    .await?;
    anyhow::ensure!(login.token_type == "DPoP", "a {} token", login.token_type);
    Ok((auth, api, login))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bound_session_across_an_expiry_wave_refreshes_once_and_replays_with_fresh_proofs()
-> anyhow::Result<()> {
    let server = TestApi::start(ACCESS_TTL).await?;
    let key = DpopKey::generate(Algorithm::EdDsa)?;
    let thumbprint = key.thumbprint().to_owned();
    let (auth, api, login) = bound_session(&server, key).await?;
    // No expiry given: all 1000 calls go out with the expired token, and the API's 401 with
    // `Token-Expired` (for a DPoP-bound token with a valid proof) is the only signal.
    auth.set_tokens(
        TokenSet::new(login.access_token.clone())
            .with_token_type("DPoP")
            .with_refresh_token(login.refresh_token.clone().context("no refresh token")?),
    )
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
    let mut replayed = 0;
    for result in join_all(calls).await {
        let (status, outcome) = result?;
        // A replay carrying its first proof again would be refused as replayed (the layer remembers
        // every proof's jti): each 200 is a fresh proof.
        assert_eq!(status, StatusCode::OK);
        replayed += u64::from(outcome.context("no AuthOutcome")?.replayed());
    }
    let events = server.events.snapshot();
    assert_eq!(events.refreshed, 1, "exactly one refresh for 1000 calls");
    assert!(events.api_token_expired >= 1, "the API reported the expiry");
    assert_eq!(replayed, events.api_token_expired);

    let tokens = auth.tokens().context("signed in")?;
    assert_eq!(tokens.token_type(), "DPoP");
    assert_eq!(
        claims(tokens.access_token())?["cnf"]["jkt"],
        thumbprint.as_str(),
        "the refreshed token is bound to the same key"
    );
    server.stop().await
}

/// `GET /api/me` presenting `token` with `authorization` scheme and these `DPoP` headers: status and
/// challenge.
async fn present(
    server: &RunningApp,
    method: Method,
    scheme: &str,
    token: &str,
    proofs: &[&reqwest::header::HeaderValue],
) -> anyhow::Result<(StatusCode, String)> {
    let mut request = reqwest::Client::new()
        .request(method, server.url("/api/me"))
        .header("authorization", format!("{scheme} {token}"));
    for proof in proofs {
        request = request.header(DPOP, (*proof).clone());
    }
    let response = request.send().await?;
    let challenge = response
        .headers()
        .get("www-authenticate")
        .map(|value| value.to_str().unwrap_or_default().to_owned())
        .unwrap_or_default();
    Ok((response.status(), challenge))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stolen_bound_token_is_refused_in_every_form() -> anyhow::Result<()> {
    let server = TestApi::start(Duration::from_secs(60)).await?;
    let (auth, _, login) = bound_session(&server, DpopKey::generate(Algorithm::Es256)?).await?;
    let token = login.access_token.as_str();
    let dpop = auth.dpop().context("DPoP is on")?;
    let me_url = server.url("/api/me");
    let legitimate = dpop.proof(&Method::GET, &me_url, Some(token))?;
    assert_eq!(
        present(&server, Method::GET, "DPoP", token, &[&legitimate])
            .await?
            .0,
        StatusCode::OK
    );

    let refused = |(status, challenge): (StatusCode, String), error: &str| {
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{challenge}");
        assert!(
            challenge.starts_with(&format!(r#"DPoP error="{error}""#)),
            "{challenge}"
        );
    };
    // As a bearer token.
    refused(
        present(&server, Method::GET, "Bearer", token, &[]).await?,
        "invalid_token",
    );
    // With the thief's own key.
    let thief = tessera_client::Dpop::new(
        DpopKey::generate(Algorithm::Es256)?,
        std::sync::Arc::new(tessera_core::SystemClock),
    );
    let own = thief.proof(&Method::GET, &me_url, Some(token))?;
    refused(
        present(&server, Method::GET, "DPoP", token, &[&own]).await?,
        "invalid_dpop_proof",
    );
    // With the proof the client sent, copied.
    refused(
        present(&server, Method::GET, "DPoP", token, &[&legitimate]).await?,
        "invalid_dpop_proof",
    );
    // With proofs the client made for another URL, or another method.
    let for_admin = dpop.proof(&Method::GET, &server.url("/api/admin"), Some(token))?;
    refused(
        present(&server, Method::GET, "DPoP", token, &[&for_admin]).await?,
        "invalid_dpop_proof",
    );
    let for_post = dpop.proof(&Method::POST, &me_url, Some(token))?;
    refused(
        present(&server, Method::GET, "DPoP", token, &[&for_post]).await?,
        "invalid_dpop_proof",
    );

    // The stolen refresh token, inside the grace window of nothing yet and of a rotation: without a
    // proof, or with the thief's, it is `invalid_grant`.
    let refresh_token = login.refresh_token.context("no refresh token")?;
    let http = reqwest::Client::new();
    let endpoint = server.url("/auth/token");
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", app::CLIENT_ID),
    ];
    let bare = http.post(endpoint.clone()).form(&form).send().await?;
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
    assert_eq!(bare.json::<Value>().await?["error"], "invalid_grant");
    let with_thief = http
        .post(endpoint.clone())
        .header(DPOP, thief.token_request_proof(&endpoint)?)
        .form(&form)
        .send()
        .await?;
    assert_eq!(with_thief.status(), StatusCode::BAD_REQUEST);
    assert_eq!(with_thief.json::<Value>().await?["error"], "invalid_grant");
    assert_eq!(server.events.snapshot().refreshed, 0, "no successor issued");
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonces_are_demanded_and_answered_at_the_token_endpoint_and_the_api() -> anyhow::Result<()>
{
    let server = TestApi::start_with(Duration::from_secs(60), |config| {
        config.dpop_nonces = true;
    })
    .await?;
    // A proof without a nonce is answered with one, at both ends.
    let key = DpopKey::generate(Algorithm::EdDsa)?;
    let bare =
        tessera_client::Dpop::new(key.clone(), std::sync::Arc::new(tessera_core::SystemClock));
    let endpoint = server.url("/auth/token");
    let first = reqwest::Client::new()
        .post(endpoint.clone())
        .header(DPOP, bare.token_request_proof(&endpoint)?)
        .form(&[
            ("grant_type", "password"),
            ("username", "alice"),
            ("password", "wonderland"),
            ("client_id", app::CLIENT_ID),
        ])
        .send()
        .await?;
    assert_eq!(first.status(), StatusCode::BAD_REQUEST);
    assert!(first.headers().contains_key(DPOP_NONCE));
    assert_eq!(first.json::<Value>().await?["error"], "use_dpop_nonce");

    // The client's login and its API calls learn the nonces and retry once.
    let (auth, api, login) = bound_session(&server, key).await?;
    auth.set_tokens(TokenSet::from_response(login.clone(), SystemTime::now()))
        .await?;
    let without_nonce = present(
        &server,
        Method::GET,
        "DPoP",
        &login.access_token,
        &[&bare.proof(
            &Method::GET,
            &server.url("/api/me"),
            Some(&login.access_token),
        )?],
    )
    .await?;
    assert_eq!(without_nonce.0, StatusCode::UNAUTHORIZED);
    assert!(
        without_nonce
            .1
            .starts_with(r#"DPoP error="use_dpop_nonce""#),
        "{}",
        without_nonce.1
    );
    let (profile, outcome) = me(&api, &server).await?;
    assert_eq!(profile["sub"], "alice");
    assert!(outcome.attached());
    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_restarted_on_its_token_file_keeps_its_key_and_its_session() -> anyhow::Result<()>
{
    let server = TestApi::start(ACCESS_TTL).await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tokens.json");
    let key = DpopKey::generate(Algorithm::Es256)?;
    let thumbprint = key.thumbprint().to_owned();
    let http = reqwest::Client::new();
    let build = |key: DpopKey| -> anyhow::Result<(AuthMiddleware, ClientWithMiddleware)> {
        let grant = tessera_client::RefreshTokenGrant::new(http.clone(), server.url("/auth/token"))
            .client_auth(tessera_client::ClientAuth::public(app::CLIENT_ID));
        let auth = AuthMiddleware::builder(grant)
            .allow_origin(server.base_url.origin().ascii_serialization())
            .store(FileTokenStore::new(&path))
            .dpop(key)
            .build()?;
        let api = reqwest_middleware::ClientBuilder::new(http.clone())
            .with(auth.clone())
            .build();
        Ok((auth, api))
    };
    let exp = {
        let (auth, api) = build(key)?;
        let dpop = auth.dpop().context("DPoP is on")?;
        let login = login::dpop_password_login(
            &http,
            &server.base_url,
            app::CLIENT_ID,
            "alice",
            "wonderland",
            &dpop,
        )
        .await?;
        auth.set_tokens(TokenSet::from_response(login, SystemTime::now()))
            .await?;
        me(&api, &server).await?.0["exp"].clone()
    };
    wait_past(&exp).await?;

    // The next process starts with another key; the stored tokens bring the one they are bound to, and
    // the refresh its expiry calls for is accepted with it.
    let (auth, api) = build(DpopKey::generate(Algorithm::Es256)?)?;
    let (profile, outcome) = me(&api, &server).await?;
    assert_eq!(profile["sub"], "alice");
    assert!(outcome.refreshed(), "{outcome:?}");
    assert_eq!(server.events.snapshot().refreshed, 1);
    let tokens = auth.tokens().context("signed in")?;
    assert_eq!(
        tokens.dpop_key().map(DpopKey::thumbprint),
        Some(thumbprint.as_str())
    );
    assert_eq!(
        claims(tokens.access_token())?["cnf"]["jkt"],
        thumbprint.as_str()
    );
    server.stop().await
}
