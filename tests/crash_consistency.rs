//! Crash consistency of the example server: nothing it acknowledged is lost, however it stops.
//!
//! The server runs as a separate OS process: this test binary started again in child mode (the
//! [`CHILD_ENV`] variable set, `--exact child_server_process`), which runs the `server` example's own code
//! (`tessera_examples::app::run`, Ctrl-C/`SIGTERM` handling included) on a SQLite file and key directory
//! that outlive it. Sixteen clients rotate their refresh tokens as fast as they can while the parent kills
//! the server at random moments, with `SIGKILL` (no chance to clean up) or `SIGTERM` (graceful shutdown:
//! requests in flight finish, then the store's queued writes), and starts it again on the same files.
//!
//! What must hold, for every client, across every restart:
//! - every refresh token received in a `200` answer is accepted: a client always presents the last token
//!   it was given, so a rotation acknowledged and then lost would show as `invalid_grant`;
//! - a request that got no answer is retried at once with the last acknowledged token, and that retry
//!   succeeds (the service either never committed the lost rotation, or answers the retry inside the
//!   grace window with the same successor);
//! - any answer other than `200` fails the test;
//! - a `SIGTERM`ed server exits 0 within 20 s, and every request it committed was answered (no retry
//!   after a `SIGTERM` is served as a grace-window retry).
//!
//! The schedule is random; the seed is printed, and `TESSERA_CRASH_SEED` replays one.
#![cfg(unix)]
#![allow(clippy::print_stdout, reason = "the test reports what it exercised")]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use tessera_core::TokenResponse;
use tessera_examples::app::{self, AppConfig};
use tessera_examples::{login, shutdown};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

/// Set (to `ADDR DB`) in the child process only.
const CHILD_ENV: &str = "TESSERA_CRASH_CHILD";
/// Replays a schedule.
const SEED_ENV: &str = "TESSERA_CRASH_SEED";
/// What the token service logs (`tessera_issuer::events`, `INFO`) when it answers a previous-generation
/// token inside the grace window with the same successor: counted in the children's log.
const RETRY_SERVED_LOG: &str = "refresh retried within grace";

const CLIENTS: usize = 16;
const SIGKILLS: usize = 10;
const SIGTERMS: usize = 5;
/// How long the load runs between a restart and the next stop.
const LOAD_MS: std::ops::Range<u64> = 50..700;
/// The whole run must finish within this, or the test fails.
const RUN_BOUND: Duration = Duration::from_secs(120);
/// A step (start, graceful stop, every client acknowledged again) must finish within this.
const STEP_BOUND: Duration = Duration::from_secs(20);

/// The server, when this binary runs as the child. In a normal test run it returns at once.
#[test]
fn child_server_process() -> anyhow::Result<()> {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let (addr, db) = spec
        .split_once(' ')
        .with_context(|| format!("{CHILD_ENV} is not `ADDR DB`: {spec}"))?;
    let addr: SocketAddr = addr.parse()?;
    let config = server_config(Path::new(db))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        tracing_subscriber::fmt()
            .with_env_filter("warn,tessera_issuer::events=info")
            .with_ansi(false)
            .with_writer(std::io::stderr)
            .init();
        let stop = shutdown::shutdown_signal()?;
        app::run(&config, addr, stop).await?;
        anyhow::Ok(())
    })
}

/// The server example's defaults (grace 30 s), with the tests' cheap password hashing.
fn server_config(db: &Path) -> anyhow::Result<AppConfig> {
    AppConfig::for_tests(db.to_path_buf(), Duration::from_secs(60))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_refresh_tokens_survive_sigkill_and_sigterm() -> anyhow::Result<()> {
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("tessera.db");
    let addr = free_loopback_addr()?;
    let seed = match std::env::var(SEED_ENV) {
        Ok(seed) => seed.parse().with_context(|| format!("{SEED_ENV}={seed}"))?,
        Err(_) => getrandom::u64()?,
    };
    println!("crash test: seed {seed} (replay with {SEED_ENV}={seed})");
    let mut random = Random(seed | 1);

    let mut server = ChildServer::start(addr, &db, dir.path()).await?;
    let base = reqwest::Url::parse(&format!("http://{addr}"))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let load = Load::start(&http, &base).await?;

    let mut stops = vec![Stop::Kill; SIGKILLS];
    stops.extend([Stop::Term; SIGTERMS]);
    random.shuffle(&mut stops);
    let mut report = Report::default();
    for stop in stops {
        tokio::time::sleep(Duration::from_millis(random.below(LOAD_MS))).await;
        load.check()?;
        let before = load.totals();
        let served_before = server.retries_served()?;
        match stop {
            Stop::Kill => server.kill().await?,
            Stop::Term => server.terminate().await?,
        }
        server = ChildServer::start(addr, &db, dir.path()).await?;
        load.every_client_acknowledged_again().await?;
        let served = server.retries_served()? - served_before;
        report.record(stop, &before, &load.totals(), served);
        ensure!(
            started.elapsed() < RUN_BOUND,
            "the run took longer than {RUN_BOUND:?}"
        );
    }

    // Every client's last acknowledged token, presented once more, rotates.
    let totals = load.totals();
    let tokens = load.stop().await?;
    for (client, token) in tokens.iter().enumerate() {
        let answer = refresh(&http, &base, token).await;
        ensure!(
            matches!(answer, Answer::Rotated(_)),
            "client {client}: its last acknowledged token was not accepted: {answer:?}"
        );
    }
    server.terminate().await?;
    println!(
        "crash test: {} SIGKILL + {} SIGTERM in {:.1} s, {CLIENTS} clients, {} acknowledged rotations. \
         Requests sent but never answered: {} at SIGKILL ({} of them committed, so the retry got the same \
         successor within grace), {} at SIGTERM ({} committed); every one was retried at once with the \
         last acknowledged token and succeeded. Connections refused while the server was down: {}.",
        report.kills,
        report.terms,
        started.elapsed().as_secs_f64(),
        totals.acknowledged,
        report.lost_at_kill,
        report.served_at_kill,
        report.lost_at_term,
        report.served_at_term,
        totals.refused,
    );
    ensure!(
        report.lost_at_kill > 0,
        "no request was ever cut off by a SIGKILL: the kills hit no load"
    );
    ensure!(
        report.served_at_term == 0,
        "a SIGTERMed server committed {} rotations it never answered: graceful shutdown must let the \
         requests in flight finish",
        report.served_at_term
    );
    Ok(())
}

#[derive(Debug, Clone, Copy)]
enum Stop {
    Kill,
    Term,
}

/// What the stops did to the load.
#[derive(Debug, Default)]
struct Report {
    kills: usize,
    terms: usize,
    lost_at_kill: u64,
    lost_at_term: u64,
    served_at_kill: usize,
    served_at_term: usize,
}

impl Report {
    /// Attributes what the load counted between `before` a stop and every client's recovery to that
    /// stop, with the grace-window retries the restarted service `served`.
    fn record(&mut self, stop: Stop, before: &Totals, after: &Totals, served: usize) {
        let lost = after.lost - before.lost;
        match stop {
            Stop::Kill => {
                self.kills += 1;
                self.lost_at_kill += lost;
                self.served_at_kill += served;
            }
            Stop::Term => {
                self.terms += 1;
                self.lost_at_term += lost;
                self.served_at_term += served;
            }
        }
    }
}

/// The example server in a child process.
struct ChildServer {
    child: Child,
    log: PathBuf,
}

impl ChildServer {
    /// Starts the child on `addr` and `db`, and waits until it answers.
    async fn start(addr: SocketAddr, db: &Path, log_dir: &Path) -> anyhow::Result<Self> {
        let log = log_dir.join("server.log");
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)?;
        let child = Command::new(std::env::current_exe()?)
            .args([
                "--exact",
                "child_server_process",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, format!("{addr} {}", db.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("starting the child server")?;
        let mut server = ChildServer { child, log };
        let url = format!("http://{addr}/.well-known/jwks.json");
        let probe = reqwest::Client::new();
        let deadline = Instant::now() + STEP_BOUND;
        loop {
            if let Ok(response) = probe.get(&url).send().await
                && response.status().is_success()
            {
                return Ok(server);
            }
            if let Some(status) = server.child.try_wait()? {
                bail!(
                    "the child server exited with {status}:\n{}",
                    server.log_tail()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "the child server did not answer within {STEP_BOUND:?}:\n{}",
                server.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("SIGKILL")
    }

    /// `SIGTERM`, then waits for a clean exit.
    async fn terminate(mut self) -> anyhow::Result<()> {
        let pid = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw)
            .context("the child has no pid")?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        let exited = tokio::time::timeout(STEP_BOUND, self.child.wait())
            .await
            .with_context(|| format!("no exit within {STEP_BOUND:?} of SIGTERM"))??;
        ensure!(
            exited.success(),
            "the child exited with {exited} after SIGTERM:\n{}",
            self.log_tail()
        );
        Ok(())
    }

    /// How many grace-window retries the services on this log have answered so far.
    fn retries_served(&self) -> anyhow::Result<usize> {
        Ok(std::fs::read_to_string(&self.log)?
            .matches(RETRY_SERVED_LOG)
            .count())
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// One rotating client's counters, and why it stopped if it did.
#[derive(Debug, Default)]
struct ClientCounters {
    /// `200` answers, each with a new refresh token.
    acknowledged: AtomicU64,
    /// Requests sent that got no answer (the connection died under them).
    lost: AtomicU64,
    /// Connection attempts refused (nothing listening).
    refused: AtomicU64,
    failure: Mutex<Option<String>>,
}

/// Sums over all clients.
#[derive(Debug)]
struct Totals {
    acknowledged: u64,
    lost: u64,
    refused: u64,
}

/// The sixteen clients, rotating in background tasks.
struct Load {
    counters: Vec<Arc<ClientCounters>>,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<(usize, String)>,
}

impl Load {
    /// Logs every client in and starts their rotation loops.
    async fn start(http: &reqwest::Client, base: &reqwest::Url) -> anyhow::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut counters = Vec::new();
        let mut tasks = JoinSet::new();
        for client in 0..CLIENTS {
            let login =
                login::password_login(http, base, app::CLIENT_ID, "alice", "wonderland").await?;
            let token = login
                .refresh_token
                .context("the login issued no refresh token")?;
            let counter = Arc::new(ClientCounters::default());
            counters.push(Arc::clone(&counter));
            let (http, base, stop) = (http.clone(), base.clone(), Arc::clone(&stop));
            tasks.spawn(async move {
                (
                    client,
                    rotate_until_stopped(http, base, token, &counter, &stop).await,
                )
            });
        }
        Ok(Load {
            counters,
            stop,
            tasks,
        })
    }

    /// Fails as soon as one client had a token refused.
    fn check(&self) -> anyhow::Result<()> {
        for (client, counter) in self.counters.iter().enumerate() {
            if let Some(failure) = &*counter
                .failure
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
            {
                bail!("client {client}: {failure}");
            }
        }
        Ok(())
    }

    /// Waits until every client has had one more rotation acknowledged, so each restart is proven to
    /// take every client's last token (and every cut-off request's retry).
    async fn every_client_acknowledged_again(&self) -> anyhow::Result<()> {
        let before: Vec<u64> = self
            .counters
            .iter()
            .map(|counter| counter.acknowledged.load(Ordering::SeqCst))
            .collect();
        let deadline = Instant::now() + STEP_BOUND;
        loop {
            let behind = self
                .counters
                .iter()
                .zip(&before)
                .filter(|(counter, before)| counter.acknowledged.load(Ordering::SeqCst) <= **before)
                .count();
            if behind == 0 {
                return Ok(());
            }
            self.check()?;
            ensure!(
                Instant::now() < deadline,
                "{behind} clients got no rotation acknowledged within {STEP_BOUND:?} of the restart"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn totals(&self) -> Totals {
        let sum = |field: fn(&ClientCounters) -> &AtomicU64| {
            self.counters
                .iter()
                .map(|counter| field(counter).load(Ordering::SeqCst))
                .sum()
        };
        Totals {
            acknowledged: sum(|counter| &counter.acknowledged),
            lost: sum(|counter| &counter.lost),
            refused: sum(|counter| &counter.refused),
        }
    }

    /// Stops the clients; returns each one's last acknowledged refresh token.
    async fn stop(mut self) -> anyhow::Result<Vec<String>> {
        self.stop.store(true, Ordering::SeqCst);
        let mut tokens = vec![String::new(); CLIENTS];
        while let Some(joined) = self.tasks.join_next().await {
            let (client, token) = joined.context("a client task panicked")?;
            tokens[client] = token;
        }
        self.check()?;
        Ok(tokens)
    }
}

/// Rotates `token` until `stop`: on a `200` takes the successor; on no answer retries with the same
/// token; on any other answer records the failure and stops. Returns the last acknowledged token.
async fn rotate_until_stopped(
    http: reqwest::Client,
    base: reqwest::Url,
    mut token: String,
    counter: &ClientCounters,
    stop: &AtomicBool,
) -> String {
    let mut retrying = false;
    while !stop.load(Ordering::SeqCst) {
        let answer = refresh(&http, &base, &token).await;
        let failure = match answer {
            Answer::Rotated(successor) => {
                token = successor;
                counter.acknowledged.fetch_add(1, Ordering::SeqCst);
                retrying = false;
                continue;
            }
            Answer::Lost | Answer::Unreachable => {
                let count = if matches!(answer, Answer::Lost) {
                    &counter.lost
                } else {
                    &counter.refused
                };
                count.fetch_add(1, Ordering::SeqCst);
                retrying = true;
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
            Answer::Refused(refused) => format!(
                "the last acknowledged token was refused ({refused}){}",
                if retrying {
                    " on the retry of a request that got no answer"
                } else {
                    ""
                }
            ),
        };
        *counter
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(failure);
        break;
    }
    token
}

/// What one refresh request came to.
#[derive(Debug)]
enum Answer {
    /// `200`, with this successor.
    Rotated(String),
    /// Any other answer: the status and body.
    Refused(String),
    /// Sent, or being sent, when the connection died: the service may or may not have committed it.
    Lost,
    /// No connection: nothing listening.
    Unreachable,
}

/// One `grant_type=refresh_token` request.
async fn refresh(http: &reqwest::Client, base: &reqwest::Url, refresh_token: &str) -> Answer {
    let answer = async {
        let response = login::refresh(http, base, app::CLIENT_ID, refresh_token).await?;
        let status = response.status();
        anyhow::Ok((status, response.bytes().await?))
    };
    match answer.await {
        Err(error)
            if error
                .downcast_ref::<reqwest::Error>()
                .is_some_and(reqwest::Error::is_connect) =>
        {
            Answer::Unreachable
        }
        Err(_) => Answer::Lost,
        Ok((reqwest::StatusCode::OK, body)) => {
            match serde_json::from_slice::<TokenResponse>(&body) {
                Ok(TokenResponse {
                    refresh_token: Some(successor),
                    ..
                }) => Answer::Rotated(successor),
                _ => Answer::Refused(format!(
                    "200 without a refresh token: {}",
                    String::from_utf8_lossy(&body)
                )),
            }
        }
        Ok((status, body)) => {
            Answer::Refused(format!("{status}: {}", String::from_utf8_lossy(&body)))
        }
    }
}

/// A loopback address nobody listens on right now; the children bind it one after another.
fn free_loopback_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?)
}

/// xorshift64*: a reproducible schedule from one seed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, range: std::ops::Range<u64>) -> u64 {
        range.start + self.next() % (range.end - range.start)
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = usize::try_from(self.next() % (i as u64 + 1)).unwrap_or(0);
            items.swap(i, j);
        }
    }
}
