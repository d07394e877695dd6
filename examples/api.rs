//! An API that is not the token service: `/api/me` behind `JwtAuthLayer`, verifying the tokens of the
//! `server` example's instances with the keys they publish and refusing revoked ones within a poll
//! interval.
//!
//! - keys: discovered from the token service (`--issuer`, RFC 8414 metadata, then its `jwks_uri`);
//! - revocations: `RemoteDenylist` polls `<issuer>/auth/denials` every `--poll-interval` with the bearer
//!   token in `TESSERA_DENIALS_FEED_TOKEN` (the token service's; an environment variable, never a flag);
//!   when the feed fails for longer than `--fail-closed-after` (default 2m) every token is refused (503)
//!   until it answers again, or with `--fail-open` the last known denials stay in use;
//! - `/healthz` (liveness) and `/readyz` (200 while the keys are loaded and the denials fresh, 503 with a
//!   JSON reason otherwise), outside the same tower-http stack as the server example's.
//!
//! It starts only once the keys and the denials are loaded, and exits with what to fix when the token
//! service cannot be reached or refuses the feed token.
//!
//! ```sh
//! export TESSERA_DENIALS_FEED_TOKEN=$(head -c32 /dev/urandom | basenc --base64url | tr -d =)
//! cargo run --release --example server   # in another shell, with the same TESSERA_DENIALS_FEED_TOKEN
//! cargo run --release --example api -- --issuer http://127.0.0.1:8080
//! ```
//!
//! Ctrl-C or `SIGTERM` stops it gracefully. `RUST_LOG` sets the log filter (default `info`).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory as _, Parser};
use tessera_examples::api::{self, ApiConfig};
use tessera_examples::app;
use tessera_examples::args::{issuer_url, positive_duration};
use tessera_examples::secrets::{self, DENIALS_FEED_TOKEN_ENV, DenialsFeedToken};
use tessera_examples::shutdown;

/// Serves /api/me for the tokens of a token service that runs elsewhere (the server example).
#[derive(Debug, Parser)]
#[command(
    name = "api",
    version,
    after_help = "The denials feed's bearer token is read from TESSERA_DENIALS_FEED_TOKEN (required). \
                  Durations take a unit: 250ms, 1s, 2m."
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// The token service's issuer URL (its --issuer-url): tokens must carry it as `iss`; its keys are
    /// discovered there and its denials feed polled at <ISSUER>/auth/denials.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080", value_parser = issuer_url)]
    issuer: String,
    /// The `aud` the tokens must carry.
    #[arg(long, default_value = app::AUDIENCE)]
    audience: String,
    /// How often the denials feed is polled: a revocation reaches this API within it.
    #[arg(long, default_value = "1s", value_parser = positive_duration)]
    poll_interval: Duration,
    /// How long a failing denials feed is tolerated (the last known denials stay in use) before every
    /// token is refused with 503 until it answers again.
    #[arg(long, default_value = "2m", value_parser = positive_duration)]
    fail_closed_after: Duration,
    /// Keeps answering from the last known denials however long the feed fails, instead of failing
    /// closed: revocations made meanwhile are missed.
    #[arg(long, conflicts_with = "fail_closed_after")]
    fail_open: bool,
    /// Clock skew tolerated on access-token expiry; at most the token service's --leeway.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    leeway: Duration,
}

impl Args {
    fn config(self, denials_feed_token: DenialsFeedToken) -> ApiConfig {
        ApiConfig {
            audience: self.audience,
            poll_interval: self.poll_interval,
            fail_closed_after: (!self.fail_open).then_some(self.fail_closed_after),
            leeway: self.leeway,
            ..ApiConfig::new(self.issuer, denials_feed_token)
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let stop = shutdown::shutdown_signal()?;
    let denials_feed_token = match secrets::from_env(DENIALS_FEED_TOKEN_ENV) {
        Ok(Some(token)) => token,
        Ok(None) => Args::command()
            .error(
                clap::error::ErrorKind::MissingRequiredArgument,
                format!(
                    "{DENIALS_FEED_TOKEN_ENV} is not set: export the denials-feed token the token \
                     service was started with"
                ),
            )
            .exit(),
        Err(error) => Args::command()
            .error(clap::error::ErrorKind::ValueValidation, error)
            .exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let addr = args.addr;
    api::run(&args.config(denials_feed_token), addr, stop).await
}
