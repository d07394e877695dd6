//! The harness every end-to-end test shares: the demo server on a temporary database, a signed-in client,
//! the SPA proxy in front of it, and waiting for a real expiry.

pub(crate) mod browser;
pub(crate) mod store;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, ensure};
use reqwest::StatusCode;
use reqwest_middleware::ClientWithMiddleware;
use serde_json::Value;
use tessera_client::{AuthMiddleware, AuthOutcome, TokenSet};
use tessera_core::TokenResponse;
use tessera_examples::app::{self, AppConfig, Database, RunningApp};
use tessera_examples::bff;
use tessera_examples::login;

/// The demo server on a SQLite file in its own temporary directory (removed when this drops).
pub(crate) struct TestApi {
    server: RunningApp,
    config: AppConfig,
    dir: tempfile::TempDir,
}

impl TestApi {
    /// Access tokens live `access_ttl`, the API allows no leeway, users are alice (admin) and bob.
    pub(crate) async fn start(access_ttl: Duration) -> anyhow::Result<Self> {
        TestApi::start_with(access_ttl, |_| {}).await
    }

    /// As [`TestApi::start`], with `configure` changing the configuration first.
    pub(crate) async fn start_with(
        access_ttl: Duration,
        configure: impl FnOnce(&mut AppConfig),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = AppConfig::for_tests(dir.path().join("tessera.db"), access_ttl)?;
        configure(&mut config);
        let server = app::spawn(&config).await?;
        // What a restart on the same address needs: the issuer the first start derived from it.
        config
            .issuer
            .get_or_insert_with(|| format!("http://{}", server.addr));
        Ok(TestApi {
            server,
            config,
            dir,
        })
    }

    /// Stops the server gracefully (and removes its database).
    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        self.server.stop().await
    }

    /// Stops the server gracefully and keeps what a restart needs: the temporary directory, the
    /// configuration and the address.
    pub(crate) async fn stop_for_restart(self) -> anyhow::Result<Stopped> {
        let addr = self.server.addr;
        self.server.stop().await?;
        Ok(Stopped {
            config: self.config,
            addr,
            dir: self.dir,
        })
    }
}

impl Deref for TestApi {
    type Target = RunningApp;

    fn deref(&self) -> &RunningApp {
        &self.server
    }
}

/// A [`TestApi`] that was stopped; its database and keys are still there.
pub(crate) struct Stopped {
    pub(crate) config: AppConfig,
    pub(crate) addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Stopped {
    /// Starts the example server again on the same address, database and keys.
    pub(crate) async fn restart(self) -> anyhow::Result<TestApi> {
        let server = app::spawn_on(&self.config, self.addr).await?;
        Ok(TestApi {
            server,
            config: self.config,
            dir: self.dir,
        })
    }
}

/// The test database `scripts/test.sh` starts, in a schema of this test's own. Fails (never skips)
/// without one.
pub(crate) fn postgres(test: &str) -> anyhow::Result<Database> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let url = std::env::var("TESSERA_TEST_POSTGRES_URL").context(
        "TESSERA_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which starts a \
         throwaway PostgreSQL",
    )?;
    let schema = format!(
        "examples_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Ok(Database::Postgres {
        url,
        schema: Some(schema),
    })
}

/// `username` logs in at `server` with the password grant: the token answer.
pub(crate) async fn login_as(
    server: &RunningApp,
    username: &str,
    password: &str,
) -> anyhow::Result<TokenResponse> {
    let http = reqwest::Client::new();
    login::password_login(&http, &server.base_url, app::CLIENT_ID, username, password).await
}

/// RFC 7009 revocation of `token` at `server`; `hint` is `access_token` or `refresh_token`.
pub(crate) async fn revoke(server: &RunningApp, token: &str, hint: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    login::revoke(&http, &server.base_url, app::CLIENT_ID, token, hint).await
}

/// A client of `server` logged in as `username`, holding the login's tokens; the third value is the
/// login answer itself.
pub(crate) async fn signed_in(
    server: &RunningApp,
    username: &str,
    password: &str,
) -> anyhow::Result<(AuthMiddleware, ClientWithMiddleware, TokenResponse)> {
    let http = reqwest::Client::new();
    let login =
        login::password_login(&http, &server.base_url, app::CLIENT_ID, username, password).await?;
    let (auth, api) = login::api_client(&http, &server.base_url, app::CLIENT_ID, Duration::ZERO)?;
    auth.set_tokens(TokenSet::from_response(login.clone(), SystemTime::now()))
        .await?;
    Ok((auth, api, login))
}

/// `GET /api/me` through the middleware: the body and what the middleware did.
pub(crate) async fn me(
    api: &ClientWithMiddleware,
    server: &RunningApp,
) -> anyhow::Result<(Value, AuthOutcome)> {
    let response = api.get(server.url("/api/me")).send().await?;
    ensure!(
        response.status() == StatusCode::OK,
        "/api/me answered {}",
        response.status()
    );
    let outcome = *response
        .extensions()
        .get::<AuthOutcome>()
        .context("no AuthOutcome on the response")?;
    Ok((response.json().await?, outcome))
}

/// `GET /api/me` on the server at `base` with `access_token` as is, no middleware: the status.
pub(crate) async fn me_with(base: &reqwest::Url, access_token: &str) -> anyhow::Result<StatusCode> {
    Ok(reqwest::Client::new()
        .get(base.join("/api/me")?)
        .bearer_auth(access_token)
        .send()
        .await?
        .status())
}

/// Sleeps until an access token with this `exp` (as `/api/me` reports it) is expired for a server without
/// leeway.
pub(crate) async fn wait_past(exp: &Value) -> anyhow::Result<()> {
    let expired_at =
        UNIX_EPOCH + Duration::from_secs(exp.as_u64().context("exp is not a number")? + 1);
    if let Ok(wait) = expired_at.duration_since(SystemTime::now()) {
        tokio::time::sleep(wait + Duration::from_millis(50)).await;
    }
    Ok(())
}

/// `username` signs in on another device and ends all their sessions from there.
pub(crate) async fn logout_everywhere(
    server: &RunningApp,
    username: &str,
    password: &str,
) -> anyhow::Result<()> {
    let login = login_as(server, username, password).await?;
    logout_all(server, &login.access_token).await
}

/// `POST /auth/logout-all` with `access_token`: ends every session of its user and denies their access
/// tokens.
pub(crate) async fn logout_all(server: &RunningApp, access_token: &str) -> anyhow::Result<()> {
    let response = reqwest::Client::new()
        .post(server.url("/auth/logout-all"))
        .bearer_auth(access_token)
        .send()
        .await?;
    ensure!(
        response.status().is_success(),
        "logout-all answered {}",
        response.status()
    );
    Ok(())
}

/// The SPA proxy on a free loopback port in front of `upstream`, refreshing only once a token is past its
/// expiry (zero skew); `configure` adjusts its configuration (public origin preset to its own address).
pub(crate) async fn spawn_proxy(
    upstream: &reqwest::Url,
    configure: impl FnOnce(&mut bff::ProxyConfig),
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let origin = format!("http://{}", listener.local_addr()?);
    let mut config = bff::ProxyConfig::new(origin.clone());
    configure(&mut config);
    let upstream =
        bff::Upstream::new(upstream.clone(), app::CLIENT_ID)?.refresh_skew(Duration::ZERO);
    let router = bff::router(config, upstream);
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok(origin)
}
