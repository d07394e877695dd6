//! `peers refresh`: the client middleware against a local API (Tessera `JwtAuthLayer`, HS256) and a
//! counting token endpoint, both on 127.0.0.1 in a server thread of their own.
//!
//! - Contention: N concurrent requests whose access token the API considers expired while the client still
//!   believes it valid (the reactive path: every request gets a 401 `Token-Expired`), and the same with a
//!   token the client knows expired (the proactive path). Counted: token-endpoint calls, time until all N
//!   answered 200. Compared with a naive middleware that refreshes on every 401.
//! - Happy path: sequential requests with a valid token through the middleware vs plain reqwest sending
//!   the same header, interleaved rounds, ratio of mean latencies.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::routing::{get, post};
use http::Extensions;
use reqwest_middleware::{ClientBuilder, ClientWithMiddleware, Middleware, Next};
use tessera_client::{AuthMiddleware, RefreshTokenGrant, TokenSet};
use tessera_peer_bench::keys::{Alg, KeyMaterial};
use tessera_peer_bench::variant::{hello, tessera_layer};
use tokio::task::JoinSet;

use crate::table::{self, Table, median, quantile};

/// Options of `peers refresh`.
#[derive(Debug, clap::Args)]
pub(crate) struct RefreshArgs {
    /// Concurrent requests per contention scenario.
    #[arg(long, value_delimiter = ',', default_values_t = [10, 100, 1000])]
    concurrency: Vec<usize>,
    /// Interleaved rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Sequential requests per client and round on the happy path.
    #[arg(long, default_value_t = 3000)]
    requests: usize,
}

/// The local API and token endpoint.
struct Api {
    base: String,
    token_calls: Arc<AtomicU64>,
    keys: Arc<KeyMaterial>,
}

pub(crate) fn run(args: &RefreshArgs) -> Result<()> {
    if args.rounds == 0 || args.requests == 0 {
        bail!("--rounds and --requests must be at least 1");
    }
    let api = start_api()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the client runtime")?;
    runtime.block_on(async {
        contention(args, &api).await?;
        happy_path(args, &api).await
    })
}

/// Starts the API on its own thread and current-thread runtime; it lives as long as the process.
fn start_api() -> Result<Api> {
    let keys = Arc::new(KeyMaterial::generate(Alg::Hs256)?);
    let token_calls = Arc::new(AtomicU64::new(0));
    let layer = tessera_layer(Alg::Hs256, keys.verify_key(), true)?;
    let (sender, receiver) = std::sync::mpsc::channel();
    let endpoint_keys = Arc::clone(&keys);
    let calls = Arc::clone(&token_calls);
    std::thread::spawn(move || {
        let served = (|| -> Result<()> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let _ = sender.send(listener.local_addr().map_err(anyhow::Error::from));
                let token = post(move |body: String| {
                    let keys = Arc::clone(&endpoint_keys);
                    let calls = Arc::clone(&calls);
                    async move { token_endpoint(&keys, &calls, &body) }
                });
                let app = Router::new()
                    .route("/data", get(hello))
                    .layer(layer)
                    .route("/auth/token", token);
                axum::serve(listener, app).await?;
                Ok(())
            })
        })();
        if let Err(error) = served {
            eprintln!("error: the local API stopped: {error:#}");
        }
    });
    let address = receiver.recv().context("the local API did not start")??;
    Ok(Api {
        base: format!("http://{address}"),
        token_calls,
        keys,
    })
}

/// `POST /auth/token`: counts the call and answers a fresh one-hour access token and a new refresh token.
fn token_endpoint(
    keys: &KeyMaterial,
    calls: &AtomicU64,
    body: &str,
) -> (
    http::StatusCode,
    [(http::HeaderName, &'static str); 2],
    String,
) {
    let headers = [
        (CONTENT_TYPE, "application/json"),
        (CACHE_CONTROL, "no-store"),
    ];
    let refresh = body
        .split('&')
        .any(|pair| pair == "grant_type=refresh_token");
    let number = calls.fetch_add(1, Ordering::SeqCst) + 1;
    let token = keys.token(-60, 3600);
    match (refresh, token) {
        (true, Ok(access_token)) => {
            let response = tessera_core::TokenResponse {
                access_token,
                token_type: "Bearer".to_owned(),
                expires_in: Some(3600),
                refresh_token: Some(format!("refresh-{number}")),
                scope: None,
            };
            match serde_json::to_string(&response) {
                Ok(json) => (http::StatusCode::OK, headers, json),
                Err(_) => (
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    headers,
                    String::new(),
                ),
            }
        }
        (false, _) => (
            http::StatusCode::BAD_REQUEST,
            headers,
            r#"{"error":"unsupported_grant_type"}"#.to_owned(),
        ),
        (true, Err(_)) => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            headers,
            String::new(),
        ),
    }
}

/// A client without connection reuse from earlier scenarios.
fn plain_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .context("building a reqwest client")
}

/// How the client gets its first token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scenario {
    /// Tessera; the client believes the token valid, the API answers 401 `Token-Expired`.
    TesseraReactive,
    /// Tessera; the client knows the token expired and refreshes before sending.
    TesseraProactive,
    /// The naive middleware: refresh on every 401, then replay.
    Naive,
}

/// One contention run: token-endpoint calls made and time until all requests answered.
#[derive(Debug, Clone, Copy)]
struct Contended {
    calls: u64,
    elapsed: Duration,
}

async fn contention(args: &RefreshArgs, api: &Api) -> Result<()> {
    let scenarios = [
        Scenario::TesseraReactive,
        Scenario::TesseraProactive,
        Scenario::Naive,
    ];
    let mut results: Vec<(usize, Scenario, Contended)> = Vec::new();
    for round in 1..=args.rounds {
        for &n in &args.concurrency {
            for scenario in scenarios {
                eprintln!("refresh round {round}/{}: N={n} {scenario:?}", args.rounds);
                results.push((n, scenario, contend(api, n, scenario).await?));
            }
        }
    }
    let mut table = Table::new([
        "N",
        "Tessera (API says expired): refresh calls",
        "time to all 200",
        "Tessera (client knows expired): refresh calls",
        "time to all 200",
        "naive refresh-on-401: refresh calls",
        "time to all 200",
        "naive / Tessera time",
    ]);
    for &n in &args.concurrency {
        let of = |scenario: Scenario| -> Vec<Contended> {
            results
                .iter()
                .filter(|(size, which, _)| *size == n && *which == scenario)
                .map(|(_, _, result)| *result)
                .collect()
        };
        let calls = |runs: &[Contended]| -> String {
            let mut counts: Vec<u64> = runs.iter().map(|run| run.calls).collect();
            counts.dedup();
            counts
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let time =
            |runs: &[Contended]| median(runs.iter().map(|run| run.elapsed.as_secs_f64() * 1e6));
        let reactive = of(Scenario::TesseraReactive);
        let proactive = of(Scenario::TesseraProactive);
        let naive = of(Scenario::Naive);
        let ratio = match (time(&naive), time(&reactive)) {
            (Some(naive), Some(ours)) => table::ratio(naive / ours),
            _ => "n/a".to_owned(),
        };
        table.row([
            n.to_string(),
            calls(&reactive),
            time(&reactive).map_or_else(|| "n/a".to_owned(), table::micros),
            calls(&proactive),
            time(&proactive).map_or_else(|| "n/a".to_owned(), table::micros),
            calls(&naive),
            time(&naive).map_or_else(|| "n/a".to_owned(), table::micros),
            ratio,
        ]);
    }
    println!(
        "Client refresh under contention: N concurrent GETs, fresh connections, one token endpoint on \
         127.0.0.1 that mints a new access and refresh token per call. Refresh calls: the distinct counts seen \
         over {} rounds; times: medians.\n\n{}",
        args.rounds,
        table.render()
    );
    Ok(())
}

async fn contend(api: &Api, n: usize, scenario: Scenario) -> Result<Contended> {
    let http = plain_client()?;
    let token_url: reqwest::Url = format!("{}/auth/token", api.base).parse()?;
    let expired = api.keys.expired_token()?;
    let client = match scenario {
        Scenario::TesseraReactive | Scenario::TesseraProactive => {
            let auth = AuthMiddleware::builder(RefreshTokenGrant::new(http.clone(), token_url))
                .allow_origin(api.base.as_str())
                .build()?;
            let believed = match scenario {
                Scenario::TesseraReactive => SystemTime::now() + Duration::from_secs(3600),
                _ => SystemTime::now() - Duration::from_secs(3600),
            };
            auth.set_tokens(
                TokenSet::new(expired)
                    .with_refresh_token("refresh-0")
                    .with_expires_at(believed),
            )
            .await?;
            ClientBuilder::new(http).with(auth).build()
        }
        Scenario::Naive => {
            let naive = NaiveRefresh {
                http: http.clone(),
                token_url,
                access: RwLock::new(expired),
                refresh: Mutex::new("refresh-0".to_owned()),
            };
            ClientBuilder::new(http).with(naive).build()
        }
    };
    let url = format!("{}/data", api.base);
    let before = api.token_calls.load(Ordering::SeqCst);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let client = client.clone();
        let url = url.clone();
        tasks.spawn(async move {
            client
                .get(url)
                .send()
                .await
                .map(|response| response.status())
        });
    }
    let mut failures = 0usize;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(status)) if status == reqwest::StatusCode::OK => {}
            _ => failures += 1,
        }
    }
    let elapsed = start.elapsed();
    if failures > 0 {
        bail!("{scenario:?} N={n}: {failures} requests did not end in 200");
    }
    Ok(Contended {
        calls: api.token_calls.load(Ordering::SeqCst) - before,
        elapsed,
    })
}

/// What applications write when they refresh "on 401": every failed request refreshes, then replays.
struct NaiveRefresh {
    http: reqwest::Client,
    token_url: reqwest::Url,
    access: RwLock<String>,
    refresh: Mutex<String>,
}

impl NaiveRefresh {
    fn bearer(&self, request: &mut reqwest::Request) -> reqwest_middleware::Result<()> {
        let access = self
            .access
            .read()
            .map_err(|_| reqwest_middleware::Error::middleware(std::io::Error::other("poisoned")))?
            .clone();
        let value = http::HeaderValue::try_from(format!("Bearer {access}"))
            .map_err(reqwest_middleware::Error::middleware)?;
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, value);
        Ok(())
    }

    async fn refresh(&self) -> reqwest_middleware::Result<()> {
        let refresh_token = self
            .refresh
            .lock()
            .map_err(|_| reqwest_middleware::Error::middleware(std::io::Error::other("poisoned")))?
            .clone();
        let response: tessera_core::TokenResponse = self
            .http
            .post(self.token_url.clone())
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.as_str()),
            ])
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        if let Ok(mut access) = self.access.write() {
            *access = response.access_token;
        }
        if let (Some(next), Ok(mut refresh)) = (response.refresh_token, self.refresh.lock()) {
            *refresh = next;
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Middleware for NaiveRefresh {
    async fn handle(
        &self,
        mut request: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let replay = request.try_clone();
        self.bearer(&mut request)?;
        let response = next.clone().run(request, extensions).await?;
        match replay {
            Some(mut replay) if response.status() == reqwest::StatusCode::UNAUTHORIZED => {
                self.refresh().await?;
                self.bearer(&mut replay)?;
                next.run(replay, extensions).await
            }
            _ => Ok(response),
        }
    }
}

async fn happy_path(args: &RefreshArgs, api: &Api) -> Result<()> {
    let url = format!("{}/data", api.base);
    let token = api.keys.valid_token()?;
    let plain = plain_client()?;
    let http = plain_client()?;
    let token_url: reqwest::Url = format!("{}/auth/token", api.base).parse()?;
    let auth = AuthMiddleware::builder(RefreshTokenGrant::new(http.clone(), token_url))
        .allow_origin(api.base.as_str())
        .build()?;
    auth.set_tokens(
        TokenSet::new(token.clone())
            .with_refresh_token("refresh-0")
            .with_expires_at(SystemTime::now() + Duration::from_secs(3600)),
    )
    .await?;
    let with_middleware = ClientBuilder::new(http).with(auth).build();
    let calls_before = api.token_calls.load(Ordering::SeqCst);

    let warmup = (args.requests / 10).max(1);
    sequential_plain(&plain, &url, &token, warmup).await?;
    sequential_middleware(&with_middleware, &url, warmup).await?;
    let mut plain_all = Vec::new();
    let mut middleware_all = Vec::new();
    let mut ratios = Vec::new();
    for round in 1..=args.rounds {
        eprintln!("happy path round {round}/{}", args.rounds);
        let plain_round = sequential_plain(&plain, &url, &token, args.requests).await?;
        let middleware_round = sequential_middleware(&with_middleware, &url, args.requests).await?;
        ratios.push(mean(&middleware_round) / mean(&plain_round));
        plain_all.extend(plain_round);
        middleware_all.extend(middleware_round);
    }
    let refreshed = api.token_calls.load(Ordering::SeqCst) - calls_before;
    if refreshed != 0 {
        bail!("the happy path refreshed {refreshed} times");
    }
    let mut table = Table::new([
        "client",
        "mean latency",
        "p50",
        "p99",
        "× plain reqwest (median of rounds)",
    ]);
    for (name, samples, ratio) in [
        ("plain reqwest, same header", &mut plain_all, 1.0),
        (
            "reqwest + Tessera AuthMiddleware",
            &mut middleware_all,
            median(ratios.iter().copied()).unwrap_or(f64::NAN),
        ),
    ] {
        let average = mean(samples);
        table.row([
            name.to_owned(),
            table::micros(average),
            quantile(samples, 0.50).map_or_else(|| "n/a".to_owned(), table::micros),
            quantile(samples, 0.99).map_or_else(|| "n/a".to_owned(), table::micros),
            table::ratio(ratio),
        ]);
    }
    println!(
        "Client middleware on the happy path: {} sequential GETs per client and round on one keep-alive \
         connection, {} interleaved rounds, valid token (no refresh happened), the API verifying every request \
         with Tessera (HS256, cache on).\n\n{}",
        args.requests,
        args.rounds,
        table.render()
    );
    Ok(())
}

fn mean(samples: &[f64]) -> f64 {
    samples.iter().sum::<f64>() / samples.len().max(1) as f64
}

async fn sequential_plain(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    count: usize,
) -> Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let response = client.get(url).bearer_auth(token).send().await?;
        let status = response.status();
        response.bytes().await?;
        latencies.push(start.elapsed().as_secs_f64() * 1e6);
        if status != reqwest::StatusCode::OK {
            bail!("plain reqwest got {status}");
        }
    }
    Ok(latencies)
}

async fn sequential_middleware(
    client: &ClientWithMiddleware,
    url: &str,
    count: usize,
) -> Result<Vec<f64>> {
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        let response = client.get(url).send().await?;
        let status = response.status();
        response.bytes().await?;
        latencies.push(start.elapsed().as_secs_f64() * 1e6);
        if status != reqwest::StatusCode::OK {
            bail!("the middleware client got {status}");
        }
    }
    Ok(latencies)
}
