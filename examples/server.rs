//! A real API with its token service, on one address:
//!
//! - `/auth/token`, `/auth/revoke`, `/auth/logout`, `/auth/logout-all`, `/auth/sessions`: the token service;
//! - `/.well-known/jwks.json`: its public keys;
//! - `/api/me` (any valid token) and `/api/admin` (role `admin`), behind `JwtAuthLayer`;
//!
//! all inside tower-http's production stack (`tessera_examples::app::http_stack`): credentials marked
//! sensitive before the request trace, CORS for `--cors-origin`s exposing `Token-Expired`, a request
//! timeout, a body limit, and panics caught. Beside them, for a load balancer and an operator: `/healthz`
//! (liveness), `/readyz` (readiness: 503 with a JSON reason until the revocations are loaded, and while the
//! database does not answer) and, with `--metrics`, `/metrics` (Prometheus text format).
//!
//! ```sh
//! cargo run --release --example server -- --access-ttl 30s --user bob:builder
//! curl -s -d grant_type=password -d username=alice -d password=wonderland -d client_id=demo \
//!     http://127.0.0.1:8080/auth/token
//! ```
//!
//! Sessions and signing keys persist in the SQLite file and the key directory beside it, so a restart logs
//! nobody out. With `--db postgres://user:password@host/db`, everything (signing keys and the
//! refresh-token secret included) lives in PostgreSQL, and any number of instances serve as one; set
//! `TESSERA_KEY_ENCRYPTION_SECRET` (32 bytes, base64url, the same for every instance) to keep the keys
//! sealed there. With `TESSERA_DENIALS_FEED_TOKEN` set (at least 32 characters, the same for every
//! instance), `GET /auth/denials` publishes the access-token revocations to API processes presenting it
//! as a bearer token (`examples/api.rs`); without it the feed answers 404. Revocations are loaded before
//! the listener opens, so a restart never lets a revoked access token through. Ctrl-C or `SIGTERM` stops
//! it gracefully: requests in flight finish, then the store's queued writes. `RUST_LOG` sets the log filter (default `info`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::{CommandFactory as _, Parser};
use tessera_examples::app::{self, AppConfig, Database};
use tessera_examples::args::{issuer_url, positive_duration};
use tessera_examples::secrets::{
    self, DENIALS_FEED_TOKEN_ENV, DenialsFeedToken, KEY_ENCRYPTION_SECRET_ENV, KeyEncryptionSecret,
};
use tessera_examples::shutdown;
use tessera_examples::users::UserSpec;
use tessera_issuer::{Algorithm, PasswordHashing};

/// Serves the demo API (/api/me, /api/admin) and its token service (/auth/*) on one address.
#[derive(Debug, Parser)]
#[command(
    name = "server",
    version,
    after_help = "Durations take a unit: 30s, 15m, 8h, 30d."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// The token service's public URL: the `iss` of its tokens and the issuer clients discover it from
    /// (/.well-known/oauth-authorization-server). Default: http://<ADDR>. Set it behind a proxy, and to the
    /// same value on every instance.
    #[arg(long, value_name = "URL", value_parser = issuer_url)]
    issuer_url: Option<String>,
    /// Where sessions live: a SQLite file (signing keys kept in <DB>.keys/ beside it; `sqlite:PATH` works
    /// too), or a postgres://user:password@host:port/db URL shared by several instances (keys kept in it).
    #[arg(long, default_value = "tessera-demo.db")]
    db: Database,
    /// Lifetime of access tokens.
    #[arg(long, default_value = "15m", value_parser = positive_duration)]
    access_ttl: Duration,
    /// Absolute lifetime of a session (refresh-token family), fixed at login.
    #[arg(long, default_value = "30d", value_parser = positive_duration)]
    refresh_ttl: Duration,
    /// A session unused for this long ends; every refresh slides it.
    #[arg(long, default_value = "14d", value_parser = positive_duration)]
    idle_ttl: Duration,
    /// How long the previous refresh token is still answered with the same successor (lost responses,
    /// parallel tabs) instead of counting as a replay; 0s to 300s.
    #[arg(long, default_value = "15s", value_parser = grace_duration)]
    grace: Duration,
    /// Clock skew the API tolerates on access-token expiry.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    leeway: Duration,
    /// Access-token signing algorithm: EdDSA, ES256, RS256 or HS256.
    #[arg(long, default_value = "EdDSA", value_parser = clap::value_parser!(Algorithm))]
    alg: Algorithm,
    /// A user for the password grant, as NAME:PASSWORD[:role,...]; repeat for more users.
    #[arg(
        long = "user",
        value_name = "NAME:PASSWORD[:ROLES]",
        default_value = "alice:wonderland:admin"
    )]
    users: Vec<UserSpec>,
    /// The public OAuth client the users log in with.
    #[arg(long, default_value = app::CLIENT_ID)]
    client_id: String,
    /// A browser origin (scheme://host[:port]) allowed to call the API cross-origin; repeat for more.
    #[arg(long = "cors-origin", value_name = "ORIGIN", value_parser = origin)]
    cors_origins: Vec<HeaderValue>,
    /// Serves GET /metrics: the token service's events, its store's latency and the API's
    /// authentication counters, in the Prometheus text format.
    #[arg(long)]
    metrics: bool,
    /// Demands DPoP nonces at the token endpoint and the API (RFC 9449 §8, §9). DPoP-bound tokens are
    /// accepted with or without it.
    #[arg(long)]
    dpop_nonces: bool,
}

fn origin(input: &str) -> Result<HeaderValue, String> {
    let url = reqwest::Url::parse(input)
        .map_err(|error| format!("{error} (write e.g. https://app.example)"))?;
    let origin = url.origin().ascii_serialization();
    if origin != input {
        return Err(format!("not an origin; did you mean {origin}?"));
    }
    HeaderValue::from_str(&origin).map_err(|error| error.to_string())
}

fn grace_duration(input: &str) -> Result<Duration, String> {
    match humantime::parse_duration(input) {
        Ok(duration) if duration > Duration::from_secs(300) => {
            Err("the grace window is at most 300s".into())
        }
        Ok(duration) => Ok(duration),
        Err(error) => Err(format!("{error} (write e.g. 0s, 30s, 2m)")),
    }
}

impl Args {
    fn config(
        self,
        key_encryption_secret: Option<KeyEncryptionSecret>,
        denials_feed_token: Option<DenialsFeedToken>,
    ) -> AppConfig {
        AppConfig {
            issuer: Some(
                self.issuer_url
                    .unwrap_or_else(|| format!("http://{}", self.addr)),
            ),
            db: self.db,
            access_ttl: self.access_ttl,
            refresh_ttl: self.refresh_ttl,
            idle_ttl: self.idle_ttl,
            grace: self.grace,
            leeway: self.leeway,
            alg: self.alg,
            users: self.users,
            client_id: self.client_id,
            password_hashing: PasswordHashing::default(),
            cors_origins: self.cors_origins,
            metrics: self.metrics,
            key_encryption_secret,
            denials_feed_token,
            dpop_nonces: self.dpop_nonces,
        }
    }
}

/// The secret in the environment variable `name`, if set; exits with status 2 and what is wrong when it
/// is set but invalid.
fn secret_from_env<T: std::str::FromStr<Err = String>>(name: &str) -> Option<T> {
    secrets::from_env(name).unwrap_or_else(|error| {
        Args::command()
            .error(clap::error::ErrorKind::ValueValidation, error)
            .exit()
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stop = shutdown::shutdown_signal()?;
    if args.idle_ttl > args.refresh_ttl {
        Args::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--idle-ttl cannot be longer than --refresh-ttl",
            )
            .exit();
    }
    let key_encryption_secret = secret_from_env(KEY_ENCRYPTION_SECRET_ENV);
    let denials_feed_token = secret_from_env(DENIALS_FEED_TOKEN_ENV);
    tracing_subscriber::fmt()
        .with_env_filter(
            // sqlx reports PostgreSQL's notices at info ("relation _sqlx_migrations already exists,
            // skipping" on every start after the first): not news to an operator.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx::postgres::notice=warn".into()),
        )
        .init();
    let addr = args.addr;
    let config = args.config(key_encryption_secret, denials_feed_token);
    if matches!(config.db, Database::Postgres { .. }) && config.key_encryption_secret.is_none() {
        tracing::warn!(
            "the signing keys are kept unsealed in the database; set {KEY_ENCRYPTION_SECRET_ENV} to seal them"
        );
    }
    let events = app::run(&config, addr, stop).await?;
    tracing::info!(
        logins = events.logins,
        refreshes = events.refreshed,
        retries = events.retries_served,
        replays = events.reuse_detected,
        revoked = events.revoked,
        "stopped"
    );
    Ok(())
}
