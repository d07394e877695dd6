//! The demo API server, assembled once for the `server` and `demo` examples and the end-to-end tests:
//! the token service under `/auth`, its JWKS at `/.well-known/jwks.json`, and `/api/me` and `/api/admin`
//! behind `JwtAuthLayer`.
#![allow(
    dead_code,
    reason = "included by the server and demo examples and by several test targets, each using a different part"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tessera_core::AccessTokenClaims;
use tessera_core::header::TOKEN_EXPIRED;
use tessera_issuer::{Algorithm, AuthEvent, Issuer, PasswordHashing, SqliteStore};
use tessera_server::Claims;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

#[path = "users.rs"]
mod users;

pub(crate) use users::UserSpec;

/// The `iss` of the demo's access tokens: the token service's identifier, a URL (RFC 8414 §2), here the
/// server example's default address.
pub(crate) const ISSUER: &str = "http://127.0.0.1:8080";
/// The `aud` of the demo's access tokens: the API below.
pub(crate) const AUDIENCE: &str = "tessera-demo-api";
/// The public client the examples log in as.
pub(crate) const CLIENT_ID: &str = "demo";

/// Everything the server example's flags set.
#[derive(Debug, Clone)]
pub(crate) struct AppConfig {
    /// The SQLite file; signing keys are kept in `<db>.keys/` beside it.
    pub(crate) db: PathBuf,
    pub(crate) access_ttl: Duration,
    pub(crate) refresh_ttl: Duration,
    pub(crate) idle_ttl: Duration,
    pub(crate) grace: Duration,
    pub(crate) leeway: Duration,
    pub(crate) alg: Algorithm,
    pub(crate) users: Vec<UserSpec>,
    pub(crate) client_id: String,
    /// argon2id cost of the user table; the default is the production one, tests use a cheaper one
    /// because their debug builds hash a hundred times slower.
    pub(crate) password_hashing: PasswordHashing,
}

impl AppConfig {
    /// The server example's defaults, storing into `db`.
    pub(crate) fn new(db: impl Into<PathBuf>) -> AppConfig {
        AppConfig {
            db: db.into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            idle_ttl: Duration::from_secs(14 * 24 * 3600),
            grace: Duration::from_secs(30),
            leeway: Duration::from_secs(30),
            alg: Algorithm::EdDsa,
            users: vec![UserSpec::demo()],
            client_id: CLIENT_ID.to_owned(),
            password_hashing: PasswordHashing::default(),
        }
    }

    /// For tests: `access_ttl` tokens, no leeway (so a token is expired one second after its `exp`), cheap
    /// password hashing, and a second user `bob:builder` without roles.
    pub(crate) fn for_tests(
        db: impl Into<PathBuf>,
        access_ttl: Duration,
    ) -> anyhow::Result<AppConfig> {
        let mut config = AppConfig::new(db);
        config.access_ttl = access_ttl;
        config.leeway = Duration::ZERO;
        config
            .users
            .push("bob:builder".parse().map_err(anyhow::Error::msg)?);
        config.password_hashing = PasswordHashing::new(64, 1)?;
        Ok(config)
    }

    /// Where the signing keys live: next to the database, so a restart keeps every token valid.
    pub(crate) fn key_dir(&self) -> PathBuf {
        let mut dir = self.db.clone().into_os_string();
        dir.push(".keys");
        PathBuf::from(dir)
    }
}

/// What the token service reported through its event hook, counted.
#[derive(Debug, Default)]
pub(crate) struct EventCounts {
    logins: AtomicU64,
    login_failures: AtomicU64,
    refreshed: AtomicU64,
    retries_served: AtomicU64,
    reuse_detected: AtomicU64,
    revoked: AtomicU64,
    access_tokens_revoked: AtomicU64,
    api_token_expired: AtomicU64,
}

/// A snapshot of [`EventCounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct EventSnapshot {
    /// Successful password logins (new families).
    pub(crate) logins: u64,
    /// Refused logins.
    pub(crate) login_failures: u64,
    /// Refresh-token rotations.
    pub(crate) refreshed: u64,
    /// Previous-generation tokens answered with the same successor inside the grace window.
    pub(crate) retries_served: u64,
    /// Replays of consumed refresh tokens (each revoked its family).
    pub(crate) reuse_detected: u64,
    /// Families revoked by logout, revocation or session ending (a replay reports `reuse_detected`
    /// instead).
    pub(crate) revoked: u64,
    /// Access tokens put on the denylist (RFC 7009 revocation of an access token).
    pub(crate) access_tokens_revoked: u64,
    /// `401` + `Token-Expired: true` answers of the API.
    pub(crate) api_token_expired: u64,
}

impl EventCounts {
    pub(crate) fn snapshot(&self) -> EventSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::SeqCst);
        EventSnapshot {
            logins: get(&self.logins),
            login_failures: get(&self.login_failures),
            refreshed: get(&self.refreshed),
            retries_served: get(&self.retries_served),
            reuse_detected: get(&self.reuse_detected),
            revoked: get(&self.revoked),
            access_tokens_revoked: get(&self.access_tokens_revoked),
            api_token_expired: get(&self.api_token_expired),
        }
    }
}

impl EventCounts {
    fn record(&self, event: &AuthEvent) {
        let counter = match event {
            AuthEvent::LoginSucceeded { .. } => &self.logins,
            AuthEvent::LoginFailed { .. } => &self.login_failures,
            AuthEvent::Refreshed { .. } => &self.refreshed,
            AuthEvent::RetryServed { .. } => &self.retries_served,
            AuthEvent::ReuseDetected { .. } => &self.reuse_detected,
            AuthEvent::Revoked { .. } => &self.revoked,
            AuthEvent::AccessTokenRevoked { .. } => &self.access_tokens_revoked,
            _ => return,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// The assembled server: its router, the counters it feeds, and the token service behind it.
struct App {
    pub(crate) router: Router,
    pub(crate) events: Arc<EventCounts>,
    issuer: Issuer<SqliteStore>,
}

/// Builds the token service and the API from `config`, opening (or creating) the database and the keys.
async fn build(config: &AppConfig) -> anyhow::Result<App> {
    let events = Arc::new(EventCounts::default());
    let store = SqliteStore::open(&config.db)
        .await
        .with_context(|| format!("opening the SQLite database {}", config.db.display()))?;
    let mut builder = Issuer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .access_ttl(config.access_ttl)
        .refresh_ttl(config.refresh_ttl)
        .idle_ttl(config.idle_ttl)
        .grace(config.grace)
        .signing_algorithm(config.alg)
        .key_dir(config.key_dir())
        .public_client(config.client_id.clone())
        .password_hashing(config.password_hashing.clone())
        .event_hook({
            let events = Arc::clone(&events);
            move |event: &AuthEvent| events.record(event)
        });
    for user in &config.users {
        builder = builder.user(user.name.clone(), user.password.clone(), user.roles.clone());
    }
    let issuer = builder
        .build(store)
        .context("configuring the token service")?;
    // The auth layer answers 503 until the revocations in the database are loaded.
    issuer
        .load_denylist()
        .await
        .context("loading the revocations")?;
    let auth = issuer
        .auth_layer_builder()?
        .leeway(config.leeway)
        .build()
        .context("building JwtAuthLayer")?;
    let api = Router::new()
        .route(
            "/api/admin",
            get(admin).route_layer(auth.require_role("admin")),
        )
        .route("/api/me", get(me))
        .layer(auth.clone())
        .layer(middleware::from_fn_with_state(
            Arc::clone(&events),
            count_expired,
        ));
    let router = Router::new()
        .nest("/auth", issuer.router(&auth))
        .merge(issuer.well_known_router())
        .merge(api);
    Ok(App {
        router,
        events,
        issuer,
    })
}

impl App {
    /// Starts the token service's background purge of expired sessions.
    fn spawn_purge_task(&self) -> JoinHandle<()> {
        self.issuer.spawn_purge_task()
    }
}

/// `GET /api/me`: who the token says you are.
async fn me(Claims(claims): Claims<AccessTokenClaims>) -> Response {
    axum::Json(json!({ "sub": claims.sub, "scope": claims.scope, "roles": claims.roles, "exp": claims.exp }))
        .into_response()
}

/// `GET /api/admin`: only for the `admin` role.
async fn admin(Claims(claims): Claims<AccessTokenClaims>) -> Response {
    axum::Json(json!({ "sub": claims.sub, "admin": true })).into_response()
}

/// Counts the API's "your token expired" answers, the signal the client refreshes on.
async fn count_expired(
    State(events): State<Arc<EventCounts>>,
    request: Request,
    next: Next,
) -> Response {
    let response = next.run(request).await;
    if response.headers().contains_key(TOKEN_EXPIRED) {
        events.api_token_expired.fetch_add(1, Ordering::SeqCst);
    }
    response
}

/// The server, serving until stopped (or dropped).
pub(crate) struct RunningApp {
    pub(crate) addr: SocketAddr,
    pub(crate) base_url: reqwest::Url,
    pub(crate) events: Arc<EventCounts>,
    issuer: Issuer<SqliteStore>,
    purge: JoinHandle<()>,
    shutdown: Option<oneshot::Sender<()>>,
    serving: Option<JoinHandle<std::io::Result<()>>>,
}

/// Builds the app and serves it on a free loopback port.
pub(crate) async fn spawn(config: &AppConfig) -> anyhow::Result<RunningApp> {
    spawn_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Builds the app and serves it on `addr`, with the background purge running.
pub(crate) async fn spawn_on(config: &AppConfig, addr: SocketAddr) -> anyhow::Result<RunningApp> {
    let app = build(config).await?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let addr = listener.local_addr()?;
    let base_url = reqwest::Url::parse(&format!("http://{addr}"))?;
    let purge = app.spawn_purge_task();
    let (shutdown, stopped) = oneshot::channel::<()>();
    let serving = tokio::spawn(
        axum::serve(listener, app.router)
            .with_graceful_shutdown(async move {
                // A dropped sender stops the server too.
                let _ = stopped.await;
            })
            .into_future(),
    );
    Ok(RunningApp {
        addr,
        base_url,
        events: app.events,
        issuer: app.issuer,
        purge,
        shutdown: Some(shutdown),
        serving: Some(serving),
    })
}

impl RunningApp {
    /// `path` on this server.
    pub(crate) fn url(&self, path: &str) -> reqwest::Url {
        let mut url = self.base_url.clone();
        url.set_path(path);
        url
    }

    /// Stops accepting connections, lets requests in flight finish, and closes the database.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(serving) = self.serving.take() {
            serving
                .await
                .context("the server task panicked")?
                .context("the server failed")?;
        }
        self.purge.abort();
        self.issuer.close().await;
        Ok(())
    }
}

impl Drop for RunningApp {
    fn drop(&mut self) {
        self.purge.abort();
        if let Some(serving) = &self.serving {
            serving.abort();
        }
    }
}
