//! The demo API server, assembled once for the `server` and `demo` examples and the end-to-end tests:
//! the token service under `/auth`, its JWKS at `/.well-known/jwks.json`, and `/api/me` and `/api/admin`
//! behind `JwtAuthLayer`, all inside the production HTTP stack ([`http_stack`]); beside it, outside that
//! stack, the operator's routes: `GET /healthz`, `GET /readyz` and, when asked for, `GET /metrics`.
//!
//! Starting is ordered so that nothing answers a request before the revocations the store holds are
//! loaded: [`App::start`] starts the token service (`IssuerBuilder::start`: keys, refresh secret and every
//! revocation loaded, background sync running), and only then does [`App::serve_on`] bind the listener.
//! A restart therefore never accepts an access token that was revoked before it.

mod database;
mod stack;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tessera_core::AccessTokenClaims;
use tessera_core::header::TOKEN_EXPIRED;
use tessera_issuer::store::RefreshStore;
use tessera_issuer::{Algorithm, AuthEvent, Issuer, PasswordHashing};
use tessera_server::{Claims, DEFAULT_NONCE_ROTATION, Dpop};
use tokio::net::TcpListener;

pub use self::database::Database;
pub use self::stack::{BODY_LIMIT, REQUEST_TIMEOUT, http_stack};
use crate::secrets::{DENIALS_FEED_TOKEN_ENV, DenialsFeedToken, KeyEncryptionSecret};
use crate::serving::{Serving, bind};
use crate::users::UserSpec;

/// The `aud` of the demo's access tokens: the API below.
pub const AUDIENCE: &str = "tessera-demo-api";
/// The public client the examples log in as.
pub const CLIENT_ID: &str = "demo";
/// Where the token service (mounted at `/auth`) serves its denials feed, below its issuer URL.
pub const DENIALS_PATH: &str = "/auth/denials";

/// Everything the server example's flags set.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The token service's identifier: the `iss` of its access tokens and the `issuer` of its RFC 8414
    /// metadata, a URL (RFC 8414 §2) that clients discover the service from. `None`: `http://` and the
    /// address the app is served on ([`spawn_on`] fills it in); set it to the public origin behind a proxy.
    pub issuer: Option<String>,
    /// Where families, revocations (and, on PostgreSQL, keys) are kept.
    pub db: Database,
    /// Lifetime of access tokens.
    pub access_ttl: Duration,
    /// Absolute lifetime of a session (refresh-token family).
    pub refresh_ttl: Duration,
    /// A session unused this long ends.
    pub idle_ttl: Duration,
    /// How long the previous refresh token still gets the same successor.
    pub grace: Duration,
    /// Clock skew the API tolerates on `exp` and `nbf`.
    pub leeway: Duration,
    /// Access-token signing algorithm.
    pub alg: Algorithm,
    /// The users of the password grant.
    pub users: Vec<UserSpec>,
    /// The public OAuth client the users log in with.
    pub client_id: String,
    /// argon2id cost of the user table; the default is the production one, tests use a cheaper one
    /// because their debug builds hash a hundred times slower.
    pub password_hashing: PasswordHashing,
    /// Browser origins allowed to call the API cross-origin (CORS); none by default.
    pub cors_origins: Vec<HeaderValue>,
    /// Serves `GET /metrics` (Prometheus text format); off by default.
    pub metrics: bool,
    /// Seals the signing keys and the refresh-token secret kept in a PostgreSQL database.
    pub key_encryption_secret: Option<KeyEncryptionSecret>,
    /// Serves the denials feed (`GET /auth/denials`) to API processes presenting this bearer token;
    /// `None` (the default) leaves it off (404).
    pub denials_feed_token: Option<DenialsFeedToken>,
    /// Demands DPoP nonces (RFC 9449 §8, §9) at the token endpoint and the API; off by default. DPoP-bound
    /// tokens are accepted either way, beside bearer tokens.
    pub dpop_nonces: bool,
}

impl AppConfig {
    /// The server example's defaults, storing into `db` (a SQLite file's path, or a [`Database`]).
    pub fn new(db: impl Into<Database>) -> Self {
        AppConfig {
            issuer: None,
            db: db.into(),
            access_ttl: Duration::from_secs(15 * 60),
            refresh_ttl: Duration::from_secs(30 * 24 * 3600),
            idle_ttl: Duration::from_secs(14 * 24 * 3600),
            grace: tessera_issuer::DEFAULT_GRACE,
            leeway: Duration::from_secs(30),
            alg: Algorithm::EdDsa,
            users: vec![UserSpec::demo()],
            client_id: CLIENT_ID.to_owned(),
            password_hashing: PasswordHashing::default(),
            cors_origins: Vec::new(),
            metrics: false,
            key_encryption_secret: None,
            denials_feed_token: None,
            dpop_nonces: false,
        }
    }

    /// For tests: `access_ttl` tokens, no leeway (so a token is expired one second after its `exp`), cheap
    /// password hashing, and a second user `bob:builder` without roles.
    ///
    /// # Errors
    /// If the cheap hashing parameters are refused (they are not).
    pub fn for_tests(db: impl Into<Database>, access_ttl: Duration) -> anyhow::Result<Self> {
        let mut config = AppConfig::new(db);
        config.access_ttl = access_ttl;
        config.leeway = Duration::ZERO;
        config.users.push(UserSpec::new("bob", "builder", []));
        config.password_hashing = PasswordHashing::new(64, 1)?;
        Ok(config)
    }
}

/// What the token service reported through its event hook, counted.
#[derive(Debug, Default)]
pub struct EventCounts {
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
pub struct EventSnapshot {
    /// Successful password logins (new families).
    pub logins: u64,
    /// Refused logins.
    pub login_failures: u64,
    /// Refresh-token rotations.
    pub refreshed: u64,
    /// Previous-generation tokens answered with the same successor inside the grace window.
    pub retries_served: u64,
    /// Replays of consumed refresh tokens (each revoked its family).
    pub reuse_detected: u64,
    /// Families revoked by logout, revocation or session ending (a replay reports `reuse_detected`
    /// instead).
    pub revoked: u64,
    /// Access tokens put on the denylist (RFC 7009 revocation of an access token).
    pub access_tokens_revoked: u64,
    /// `401` + `Token-Expired: true` answers of the API.
    pub api_token_expired: u64,
}

impl EventCounts {
    /// The counts so far.
    pub fn snapshot(&self) -> EventSnapshot {
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

/// The started token service and the API around it, not serving yet.
pub struct App {
    router: Router,
    events: Arc<EventCounts>,
    close: Closing,
}

/// Closes the token service (stops its background work, lets the store finish its queued writes); not
/// polled until the server has stopped.
type Closing = Pin<Box<dyn Future<Output = ()> + Send>>;

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("router", &self.router)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Opens `config.db` (SQLite or PostgreSQL) and starts the app on it.
    ///
    /// # Errors
    /// If the database cannot be opened, or as [`App::start`].
    pub async fn open(config: &AppConfig) -> anyhow::Result<Self> {
        match &config.db {
            Database::Sqlite(_) => App::start(config, config.db.open_sqlite().await?).await,
            Database::Postgres { .. } => App::start(config, config.db.open_postgres().await?).await,
        }
    }

    /// Starts the token service on `store` (signing keys, refresh secret and every revocation loaded,
    /// background sync and purge running) and builds the API and the operator's routes around it.
    ///
    /// # Errors
    /// If the configuration is refused, the keys cannot be read or created, or the store does not answer.
    pub async fn start<S: RefreshStore>(config: &AppConfig, store: S) -> anyhow::Result<Self> {
        let issuer_url = config.issuer.as_deref().context(
            "AppConfig::issuer is not set: give the token service its public URL (spawn_on sets it from the address it serves on)",
        )?;
        let events = Arc::new(EventCounts::default());
        let mut builder = Issuer::builder()
            .issuer(issuer_url)
            .audience(AUDIENCE)
            .access_ttl(config.access_ttl)
            .refresh_ttl(config.refresh_ttl)
            .idle_ttl(config.idle_ttl)
            .grace(config.grace)
            // This API is the only verifier: denials are kept until `exp` plus its leeway.
            .max_leeway(config.leeway)
            .signing_algorithm(config.alg)
            .public_client(config.client_id.clone())
            .password_hashing(config.password_hashing.clone())
            .event_hook({
                let events = Arc::clone(&events);
                move |event: &AuthEvent| events.record(event)
            });
        // SQLite: keys in a directory beside the file. PostgreSQL: in the database, shared by every
        // instance (sealed if a key-encryption secret is given).
        if let Some(dir) = config.db.key_dir() {
            builder = builder.key_dir(dir);
        }
        if let Some(secret) = &config.key_encryption_secret {
            builder = builder.key_encryption_secret(secret.bytes());
        }
        if let Some(token) = &config.denials_feed_token {
            builder = builder.denials_feed_token(token.expose());
        }
        for user in &config.users {
            builder = builder.user(user.name.clone(), user.password.clone(), user.roles.clone());
        }
        // The API shares the token service's origin: its public URL is the issuer's, the proofs' `htu`.
        let mut dpop = Dpop::new(issuer_url);
        if config.dpop_nonces {
            builder = builder.dpop_nonces(DEFAULT_NONCE_ROTATION);
            dpop = dpop.require_nonce();
        }
        let issuer = builder
            .start(store)
            .await
            .context("starting the token service")?;
        let auth = issuer
            .auth_layer_builder()?
            .leeway(config.leeway)
            .dpop(dpop)
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
        let served = Router::new()
            .nest("/auth", issuer.router(&auth))
            .merge(issuer.well_known_router())
            .merge(api);
        // The operator's routes sit outside the stack: probes every few seconds would drown the log.
        let mut router = http_stack(served, &config.cors_origins).merge(issuer.health_router());
        if config.metrics {
            router = router.merge(issuer.metrics_router([("api".to_owned(), auth)]));
        }
        Ok(App {
            router,
            events,
            close: Box::pin(async move { issuer.close().await }),
        })
    }

    /// The counters this app feeds.
    pub fn events(&self) -> &Arc<EventCounts> {
        &self.events
    }

    /// Listens on `addr` and serves.
    ///
    /// # Errors
    /// If `addr` cannot be bound.
    pub async fn serve_on(self, addr: SocketAddr) -> anyhow::Result<RunningApp> {
        self.serve(bind(addr).await?)
    }

    /// Serves on `listener`.
    ///
    /// # Errors
    /// If the listener's address cannot be read.
    pub fn serve(self, listener: TcpListener) -> anyhow::Result<RunningApp> {
        let serving = Serving::start(listener, self.router)?;
        Ok(RunningApp {
            addr: serving.addr,
            base_url: serving.base_url.clone(),
            events: self.events,
            close: self.close,
            serving,
        })
    }
}

/// `GET /api/me`: who the token says you are (the API process serves it too).
pub(crate) async fn me(Claims(claims): Claims<AccessTokenClaims>) -> Response {
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
pub struct RunningApp {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// `http://{addr}`.
    pub base_url: reqwest::Url,
    /// What the token service and the API counted.
    pub events: Arc<EventCounts>,
    close: Closing,
    serving: Serving,
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp")
            .field("addr", &self.addr)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

/// Starts the app on `config.db` and serves it on a free loopback port.
///
/// # Errors
/// As [`spawn_on`].
pub async fn spawn(config: &AppConfig) -> anyhow::Result<RunningApp> {
    spawn_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
}

/// Starts the app on `config.db` and serves it on `addr`.
///
/// # Errors
/// If the database cannot be opened, the token service cannot start, or `addr` cannot be bound.
pub async fn spawn_on(config: &AppConfig, addr: SocketAddr) -> anyhow::Result<RunningApp> {
    let listener = bind(addr).await?;
    let mut config = config.clone();
    if config.issuer.is_none() {
        config.issuer = Some(format!("http://{}", listener.local_addr()?));
    }
    App::open(&config).await?.serve(listener)
}

/// The `server` example: serves `config` on `addr` until `stop` resolves, then shuts down gracefully
/// (requests in flight finish, then the store's queued writes) and returns what it counted.
///
/// # Errors
/// If the server cannot start, or fails while serving.
pub async fn run(
    config: &AppConfig,
    addr: SocketAddr,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<EventSnapshot> {
    let server = spawn_on(config, addr).await?;
    tracing::info!(
        db = %config.db,
        alg = %config.alg,
        access_ttl = ?config.access_ttl,
        users = config.users.len(),
        metrics = config.metrics,
        "serving /auth/*, /.well-known/jwks.json, /api/me, /api/admin, /healthz and /readyz on {}",
        server.base_url
    );
    if config.denials_feed_token.is_some() {
        tracing::info!(
            "denials feed on: GET /auth/denials answers API processes presenting {DENIALS_FEED_TOKEN_ENV}"
        );
    } else {
        tracing::info!(
            "denials feed off (404): set {DENIALS_FEED_TOKEN_ENV} to publish revocations to API processes"
        );
    }
    stop.await;
    tracing::info!("shutting down: finishing the requests in flight");
    let events = Arc::clone(&server.events);
    server.stop().await?;
    Ok(events.snapshot())
}

impl RunningApp {
    /// `path` on this server.
    pub fn url(&self, path: &str) -> reqwest::Url {
        self.serving.url(path)
    }

    /// Stops accepting connections, lets requests in flight finish, then closes the token service (its
    /// background work stops, its store's queued writes finish).
    ///
    /// # Errors
    /// If the server task failed or panicked.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.serving.stop().await?;
        self.close.await;
        Ok(())
    }
}
