//! The API process (`examples/api.rs`): an API that is not the token service. It verifies the service's
//! access tokens with the keys it publishes and refuses revoked ones by polling its denials feed:
//!
//! - the keys: `RemoteJwks::discover` reads the service's RFC 8414 metadata at `<issuer>/.well-known/
//!   oauth-authorization-server` and fetches its `jwks_uri`;
//! - the revocations: a `RemoteDenylist` polls `<issuer>/auth/denials` every poll interval with the
//!   feed's bearer token (the token service's `TESSERA_DENIALS_FEED_TOKEN`), so a logout reaches this
//!   process within one interval;
//! - `GET /api/me` behind `JwtAuthLayer`, in the example server's HTTP stack ([`http_stack`]), and
//!   beside it `GET /healthz` and `GET /readyz`.
//!
//! [`Api::start`] loads the keys and the denials before anything is served, and fails with what to fix
//! when the token service cannot be reached or refuses the feed token.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tessera_server::{Availability, DenialsFetchError, JwtAuthLayer, RemoteDenylist, RemoteJwks};

use crate::app::{self, DENIALS_PATH, http_stack};
use crate::secrets::{DENIALS_FEED_TOKEN_ENV, DenialsFeedToken};
use crate::serving::{Serving, bind};

/// How long a failing denials feed is tolerated before every token is refused (503), unless
/// [`ApiConfig::fail_closed_after`] says otherwise: long enough for a token-service restart or deploy.
pub const DEFAULT_FAIL_CLOSED_AFTER: Duration = Duration::from_secs(120);

/// Everything the api example's flags set.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The token service's issuer URL (its `--issuer-url`): the `iss` the tokens must carry, where its
    /// metadata is discovered and, below it, its denials feed ([`DENIALS_PATH`]).
    pub issuer: String,
    /// The `aud` the tokens must carry.
    pub audience: String,
    /// The denials feed's bearer token.
    pub denials_feed_token: DenialsFeedToken,
    /// How often the denials feed is polled: a revocation reaches this process within it.
    pub poll_interval: Duration,
    /// How long after its last successful poll a failing feed makes every check fail (503); `None` keeps
    /// answering from the last known denials however long the feed is down (fail open).
    pub fail_closed_after: Option<Duration>,
    /// Clock skew tolerated on `exp` and `nbf`; at most the token service's (`--leeway`), which keeps each
    /// denial only until the token's `exp` plus its own leeway.
    pub leeway: Duration,
}

impl ApiConfig {
    /// The api example's defaults for the token service at `issuer`: the demo's audience, a poll every
    /// second, fail closed after [`DEFAULT_FAIL_CLOSED_AFTER`], the server example's default leeway.
    pub fn new(issuer: impl Into<String>, denials_feed_token: DenialsFeedToken) -> Self {
        ApiConfig {
            issuer: issuer.into(),
            audience: app::AUDIENCE.to_owned(),
            denials_feed_token,
            poll_interval: Duration::from_secs(1),
            fail_closed_after: Some(DEFAULT_FAIL_CLOSED_AFTER),
            leeway: Duration::from_secs(30),
        }
    }

    /// The token service's denials feed.
    pub fn denials_url(&self) -> String {
        format!("{}{DENIALS_PATH}", self.issuer.trim_end_matches('/'))
    }
}

/// The API with its keys and denials loaded, not serving yet.
#[derive(Debug)]
pub struct Api {
    router: Router,
}

/// What `/readyz` looks at.
#[derive(Debug, Clone)]
struct Sources {
    jwks: RemoteJwks,
    denylist: RemoteDenylist,
}

impl Api {
    /// Discovers the token service's keys and fetches them, starts polling its denials feed and waits
    /// for the first complete poll, then builds the routes.
    ///
    /// # Errors
    /// If the token service cannot be discovered at `config.issuer`, its keys cannot be fetched, or its
    /// denials feed does not answer (or refuses the token).
    pub async fn start(config: &ApiConfig) -> anyhow::Result<Self> {
        let jwks = RemoteJwks::discover(&config.issuer).await.with_context(|| {
            format!(
                "discovering the token service at {} (is it running, and is this its --issuer-url?)",
                config.issuer
            )
        })?;
        jwks.refresh()
            .await
            .context("fetching the token service's keys")?;
        let denials_url = config.denials_url();
        let builder = RemoteDenylist::builder(&denials_url)
            .bearer_token(config.denials_feed_token.expose())
            .poll_interval(config.poll_interval);
        let builder = match config.fail_closed_after {
            Some(grace) => builder.fail_closed_after(grace),
            None => builder.fail_open(),
        };
        let denylist = builder
            .spawn()
            .context("starting the denials feed's poller")?;
        denylist.refresh().await.map_err(|error| {
            let hint = match &error {
                DenialsFetchError::Status(StatusCode::UNAUTHORIZED) => {
                    format!(": {DENIALS_FEED_TOKEN_ENV} differs from the token service's")
                }
                DenialsFetchError::Status(StatusCode::NOT_FOUND) => format!(
                    ": the token service serves no feed; start it with {DENIALS_FEED_TOKEN_ENV} set"
                ),
                _ => String::new(),
            };
            anyhow::Error::new(error)
                .context(format!("reading the denials feed {denials_url}{hint}"))
        })?;
        let auth = JwtAuthLayer::builder()
            .remote_jwks(jwks.clone())
            .issuer(config.issuer.clone())
            .audience(config.audience.clone())
            .leeway(config.leeway)
            .revocation(Arc::new(denylist.clone()))
            .build()
            .context("building JwtAuthLayer")?;
        let api = Router::new().route("/api/me", get(app::me)).layer(auth);
        // Outside the stack, as on the example server: probes every few seconds would drown the log.
        let probes = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .with_state(Sources { jwks, denylist });
        Ok(Api {
            router: http_stack(api, &[]).merge(probes),
        })
    }

    /// Serves on `listener`.
    ///
    /// # Errors
    /// If the listener's address cannot be read.
    pub fn serve(self, listener: tokio::net::TcpListener) -> anyhow::Result<Serving> {
        Serving::start(listener, self.router)
    }
}

/// Starts the API process on `addr`.
///
/// # Errors
/// As [`Api::start`], or if `addr` cannot be bound.
pub async fn spawn_on(config: &ApiConfig, addr: SocketAddr) -> anyhow::Result<Serving> {
    let api = Api::start(config).await?;
    api.serve(bind(addr).await?)
}

/// The `api` example: serves `config` on `addr` until `stop` resolves, then lets the requests in flight
/// finish.
///
/// # Errors
/// If the API cannot start, or fails while serving.
pub async fn run(
    config: &ApiConfig,
    addr: SocketAddr,
    stop: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let server = spawn_on(config, addr).await?;
    tracing::info!(
        issuer = %config.issuer,
        audience = %config.audience,
        poll_interval = ?config.poll_interval,
        fail_closed_after = ?config.fail_closed_after,
        "keys and denials loaded; serving /api/me, /healthz and /readyz on {}",
        server.base_url
    );
    stop.await;
    tracing::info!("shutting down: finishing the requests in flight");
    server.stop().await
}

async fn healthz() -> Response {
    axum::Json(json!({ "status": "ok" })).into_response()
}

/// `GET /readyz`: 200 while tokens can be checked (keys loaded, denials fresh), else 503 and the reason.
async fn readyz(State(sources): State<Sources>) -> Response {
    let (status, body) = match sources.not_ready() {
        None => (StatusCode::OK, json!({ "status": "ready" })),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "not_ready", "reason": reason }),
        ),
    };
    (
        status,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::Json(body),
    )
        .into_response()
}

impl Sources {
    /// Why tokens cannot be checked now, if they cannot.
    fn not_ready(&self) -> Option<String> {
        if self.jwks.current().is_empty() {
            return Some("the token service's keys are not loaded".into());
        }
        let stats = self.denylist.stats();
        match stats.availability {
            Availability::Available => None,
            Availability::NotLoaded => Some("the denials are not loaded yet".into()),
            Availability::Stale => Some(format!(
                "the denials feed has not answered for {} s; every token is refused until it does",
                stats.seconds_since_success.unwrap_or_default()
            )),
        }
    }
}
