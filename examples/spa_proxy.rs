//! A backend-for-frontend that keeps tokens out of the browser.
//!
//! Start the API server, then the proxy, then open the proxy in a browser and sign in as alice/wonderland:
//!
//! ```sh
//! cargo run --release --example server
//! cargo run --release --example spa_proxy          # http://127.0.0.1:8081
//! ```
//!
//! The page holds only an `HttpOnly`, `SameSite=Strict` session cookie. The proxy keeps the token pair,
//! forwards `/api/*` with the access token, refreshes it through `tessera-client` when the API says it
//! expired, and revokes the token family on logout and when a session sits idle.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tessera_examples::{bff, shutdown};

/// Serves the demo single-page app and proxies its API calls, holding the tokens server-side.
#[derive(Debug, Parser)]
#[command(name = "spa_proxy", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    addr: SocketAddr,
    /// Base URL of the API server, whose token service is mounted under /auth.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    api: reqwest::Url,
    /// The origin browsers use to reach the proxy (default: http://ADDR). Give the https:// origin when a
    /// TLS-terminating front end serves it: the cookie then becomes `Secure` with the `__Host-` prefix.
    #[arg(long)]
    public_origin: Option<String>,
    /// OAuth client id the proxy logs in as (a public client of the token service).
    #[arg(long, default_value = "demo")]
    client_id: String,
    /// Refresh a session's access token this long before it expires (0s: only when the API says it expired).
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    refresh_skew: Duration,
    /// Sessions idle for this long end, and their token family is revoked (e.g. 30m, 8h).
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Sessions held at most (default 10000); at the bound, logins are refused with 503 until one turns
    /// idle.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    max_sessions: Option<u32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let stop = shutdown::shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(args.addr).await?;
    let addr = listener.local_addr()?;
    let public_origin = args
        .public_origin
        .unwrap_or_else(|| format!("http://{addr}"));
    let mut config = bff::ProxyConfig::new(public_origin.clone());
    config.idle_timeout = args.idle_timeout;
    if let Some(max_sessions) = args.max_sessions {
        config.limits.max_sessions = usize::try_from(max_sessions)?;
    }
    let upstream =
        bff::Upstream::new(args.api.clone(), args.client_id)?.refresh_skew(args.refresh_skew);
    let app = bff::router(config, upstream);
    tracing::info!(%public_origin, api = %args.api, "SPA proxy listening; open {public_origin}");
    axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await?;
    Ok(())
}
