//! `peers throughput`: layer throughput on loopback, every variant in its own pinned server process, wrk
//! on the other core, interleaved rounds, medians and ratios to bare axum measured in the same group.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tessera_peer_bench::keys::{Alg, KeyMaterial};
use tessera_peer_bench::variant::Library;

use crate::pinning::Pinning;
use crate::table::{self, Table, median};
use crate::wrk::{self, Load, Sample};

/// Options of `peers throughput`.
#[derive(Debug, clap::Args)]
pub(crate) struct ThroughputArgs {
    /// Interleaved rounds (each runs every variant once).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u32,
    /// Seconds of warm-up load before measuring the valid-token path (0: none).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// wrk keep-alive connections.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// CPU the server processes are pinned to.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// CPU wrk is pinned to.
    #[arg(long, default_value_t = 0)]
    load_cpu: usize,
    /// Algorithms to compare (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    algs: Vec<Alg>,
    /// Authenticating libraries to compare (default: all; bare axum always runs).
    #[arg(long, value_enum, value_delimiter = ',')]
    libraries: Vec<Library>,
    /// Where to write the servers' verification material.
    #[arg(long, default_value = "target/bench-keys")]
    keys: PathBuf,
    /// Seconds a token stays valid before the 401 it gets from a server that saw it valid is measured.
    #[arg(long, default_value_t = 2)]
    seen_valid_margin: i64,
}

/// Which token the load carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum TokenPath {
    Valid,
    /// Expired an hour ago, never seen by the server before.
    Expired,
    /// Sent once while valid, then measured once expired: answered from Tessera's verified-token cache.
    SeenValid,
}

impl TokenPath {
    /// The status every answer of the path should have.
    fn status(self) -> u16 {
        match self {
            TokenPath::Valid => 200,
            TokenPath::Expired | TokenPath::SeenValid => 401,
        }
    }
}

/// The key of one series of samples.
type Series = (Library, Alg, TokenPath);

/// What a variant answered to one expired token, for the "what the 401 says" table.
#[derive(Debug, Clone)]
struct ExpiredAnswer {
    status: u16,
    token_expired: bool,
    www_authenticate: Option<String>,
}

struct Tokens {
    valid: String,
    expired: String,
}

/// Runs the whole comparison and prints the Markdown report on stdout.
pub(crate) fn run(args: &ThroughputArgs) -> Result<()> {
    let algs = if args.algs.is_empty() {
        Alg::ALL.to_vec()
    } else {
        args.algs.clone()
    };
    let libraries: Vec<Library> = if args.libraries.is_empty() {
        std::iter::once(Library::PassThrough)
            .chain(Library::AUTHENTICATING)
            .collect()
    } else {
        args.libraries
            .iter()
            .copied()
            .filter(|library| *library != Library::Bare)
            .collect()
    };
    if args.rounds == 0 || args.seconds == 0 {
        bail!("--rounds and --seconds must be at least 1");
    }
    let pinning = Pinning::new(args.server_cpu, args.load_cpu);
    let load = Load {
        connections: args.connections,
    };
    std::fs::create_dir_all(&args.keys)
        .with_context(|| format!("creating {}", args.keys.display()))?;
    let mut tokens = HashMap::new();
    let mut materials = HashMap::new();
    for &alg in &algs {
        let material = KeyMaterial::generate(alg)?;
        material.write(&args.keys)?;
        tokens.insert(
            alg,
            Tokens {
                valid: material.valid_token()?,
                expired: material.expired_token()?,
            },
        );
        materials.insert(alg, material);
    }
    let server = std::env::current_exe().context("locating the peers binary")?;

    let mut samples: HashMap<Series, Vec<(u32, Sample)>> = HashMap::new();
    let mut bare: HashMap<(u32, Alg), Sample> = HashMap::new();
    let mut answers: HashMap<Library, ExpiredAnswer> = HashMap::new();
    let mut stats: HashMap<(Library, Alg), Vec<String>> = HashMap::new();
    for round in 1..=args.rounds {
        for &alg in &algs {
            let alg_tokens = &tokens[&alg];
            eprintln!("round {round}/{}: {alg} bare axum", args.rounds);
            let process = ServerProcess::start(&pinning, &server, Library::Bare, alg, &args.keys)?;
            if args.warmup > 0 {
                wrk::run(
                    &pinning,
                    load,
                    args.warmup,
                    process.port,
                    Some(&alg_tokens.valid),
                )?;
            }
            let sample = wrk::run(
                &pinning,
                load,
                args.seconds,
                process.port,
                Some(&alg_tokens.valid),
            )?;
            check_all(&sample, 200, Library::Bare, alg, TokenPath::Valid);
            bare.insert((round, alg), sample);
            process.stop()?;

            for &library in &libraries {
                eprintln!("round {round}/{}: {alg} {}", args.rounds, library.label());
                let process = ServerProcess::start(&pinning, &server, library, alg, &args.keys)?;
                if library.authenticates() {
                    check_answers(library, alg, process.port, alg_tokens, &mut answers)?;
                }
                if args.warmup > 0 {
                    wrk::run(
                        &pinning,
                        load,
                        args.warmup,
                        process.port,
                        Some(&alg_tokens.valid),
                    )?;
                }
                let mut paths = vec![TokenPath::Valid];
                if library.authenticates() {
                    paths.push(TokenPath::Expired);
                }
                if Library::SEEN_VALID.contains(&library) {
                    paths.push(TokenPath::SeenValid);
                }
                for path in paths {
                    let token = match path {
                        TokenPath::Valid => alg_tokens.valid.clone(),
                        TokenPath::Expired => alg_tokens.expired.clone(),
                        TokenPath::SeenValid => show_valid_then_expire(
                            &materials[&alg],
                            args.seen_valid_margin,
                            process.port,
                        )?,
                    };
                    let sample =
                        wrk::run(&pinning, load, args.seconds, process.port, Some(&token))?;
                    check_all(&sample, path.status(), library, alg, path);
                    samples
                        .entry((library, alg, path))
                        .or_default()
                        .push((round, sample));
                }
                if let Some(line) = process.stop()? {
                    stats.entry((library, alg)).or_default().push(line);
                }
            }
        }
    }

    let report = Report {
        args,
        algs: &algs,
        libraries: &libraries,
        samples: &samples,
        bare: &bare,
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Loopback, one tokio worker per server process, {}; wrk: 1 thread, {} keep-alive connections, {} s per \
         measurement after {} s warm-up, {} interleaved rounds. Cells: median ratio to bare axum measured in the \
         same group (×), median req/s, median p99 latency.\n",
        pinning.describe(),
        args.connections,
        args.seconds,
        args.warmup,
        args.rounds
    )?;
    let lengths: Vec<String> = algs
        .iter()
        .map(|alg| format!("{alg} {} bytes", tokens[alg].valid.len()))
        .collect();
    writeln!(out, "Token lengths: {}.\n", lengths.join(", "))?;
    writeln!(
        out,
        "#### Valid token (200)\n\n{}",
        report.table(TokenPath::Valid).render()
    )?;
    writeln!(
        out,
        "#### Expired token (401)\n\nThe rows marked *token seen valid before it expired* send a token \
         once while it is valid, wait until it has expired, then load the server with it: what a client \
         whose token just expired, or a replay of it, costs with the verified-token cache on.\n\n{}",
        report.table(TokenPath::Expired).render()
    )?;
    writeln!(out, "#### Bars\n\n{}", report.bars())?;
    writeln!(out, "#### What each library answers to an expired token\n")?;
    let mut said = Table::new(["library", "status", "`Token-Expired`", "`WWW-Authenticate`"]);
    for library in &libraries {
        if let Some(answer) = answers.get(library) {
            said.row([
                library.label().to_owned(),
                answer.status.to_string(),
                if answer.token_expired {
                    "`true`"
                } else {
                    "absent"
                }
                .to_owned(),
                answer.www_authenticate.as_deref().map_or_else(
                    || "absent".to_owned(),
                    |value| format!("`{}`", value.replace('|', "\\|")),
                ),
            ]);
        }
    }
    writeln!(out, "{}", said.render())?;
    writeln!(
        out,
        "Tessera's own counters, summed over the rounds (warm-up, valid and expired runs together):\n"
    )?;
    for &alg in &algs {
        for library in libraries.iter().filter(|library| library.is_tessera()) {
            if let Some(lines) = stats.get(&(*library, alg)) {
                writeln!(out, "- {alg}, {}: {}", library.label(), sum_counters(lines))?;
            }
        }
    }
    writeln!(out)?;
    Ok(())
}

/// Adds up `stats name=value ...` lines into one `name=total ...` line.
fn sum_counters(lines: &[String]) -> String {
    let mut totals: Vec<(String, u64)> = Vec::new();
    for line in lines {
        for (name, value) in line
            .split_whitespace()
            .filter_map(|pair| pair.split_once('='))
        {
            let value = value.parse::<u64>().unwrap_or(0);
            match totals.iter_mut().find(|(known, _)| known == name) {
                Some((_, total)) => *total += value,
                None => totals.push((name.to_owned(), value)),
            }
        }
    }
    totals
        .iter()
        .map(|(name, total)| format!("{name}={total}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Warns when a run did not get the answers it was meant to measure.
fn check_all(sample: &Sample, expected: u16, library: Library, alg: Alg, path: TokenPath) {
    let wrong = if expected == 200 {
        sample.non_success
    } else {
        sample.requests.saturating_sub(sample.non_success)
    };
    if wrong > 0 || sample.socket_errors > 0 {
        eprintln!(
            "warning: {} {alg} {path:?}: {wrong} of {} answers were not {expected}, {} socket errors",
            library.label(),
            sample.requests,
            sample.socket_errors
        );
    }
}

struct Report<'a> {
    args: &'a ThroughputArgs,
    algs: &'a [Alg],
    libraries: &'a [Library],
    samples: &'a HashMap<Series, Vec<(u32, Sample)>>,
    bare: &'a HashMap<(u32, Alg), Sample>,
}

/// Medians of one series.
struct Summary {
    ratio: f64,
    rps: f64,
    p99_us: f64,
}

impl Report<'_> {
    fn summary(&self, library: Library, alg: Alg, path: TokenPath) -> Option<Summary> {
        let runs = self.samples.get(&(library, alg, path))?;
        Some(Summary {
            ratio: median(runs.iter().filter_map(|(round, sample)| {
                self.bare
                    .get(&(*round, alg))
                    .map(|bare| sample.rps / bare.rps)
            }))?,
            rps: median(runs.iter().map(|(_, sample)| sample.rps))?,
            p99_us: median(runs.iter().map(|(_, sample)| sample.p99_us))?,
        })
    }

    fn table(&self, path: TokenPath) -> Table {
        let mut table = Table::new(
            std::iter::once("server".to_owned())
                .chain(self.algs.iter().map(|alg| alg.name().to_owned())),
        );
        let mut bare_row = vec![format!("{} (ceiling)", Library::Bare.label())];
        for &alg in self.algs {
            let runs = (1..=self.args.rounds).filter_map(|round| self.bare.get(&(round, alg)));
            let rps = median(runs.clone().map(|sample| sample.rps)).unwrap_or(f64::NAN);
            let p99 = median(runs.map(|sample| sample.p99_us)).unwrap_or(f64::NAN);
            bare_row.push(format!(
                "1.00× · {}/s · p99 {}",
                table::rate(rps),
                table::micros(p99)
            ));
        }
        if path == TokenPath::Valid {
            table.row(bare_row);
        }
        let mut rows: Vec<(Library, TokenPath)> = self
            .libraries
            .iter()
            .filter(|library| path == TokenPath::Valid || library.authenticates())
            .map(|&library| (library, path))
            .collect();
        if path == TokenPath::Expired {
            rows.extend(
                self.libraries
                    .iter()
                    .filter(|library| Library::SEEN_VALID.contains(library))
                    .map(|&library| (library, TokenPath::SeenValid)),
            );
        }
        for (library, path) in rows {
            let label = match path {
                TokenPath::Valid | TokenPath::Expired => library.label().to_owned(),
                TokenPath::SeenValid => library.seen_valid_label(),
            };
            let mut row = vec![label];
            for &alg in self.algs {
                row.push(self.summary(library, alg, path).map_or_else(
                    || "n/a".to_owned(),
                    |summary| {
                        format!(
                            "**{}** · {}/s · p99 {}",
                            table::ratio(summary.ratio),
                            table::rate(summary.rps),
                            table::micros(summary.p99_us)
                        )
                    },
                ));
            }
            table.row(row);
        }
        table
    }

    /// The bars, checked against this run.
    fn bars(&self) -> String {
        let mut out = String::new();
        let verdict = |met: bool| if met { "met" } else { "**missed**" };
        let at_least = |library: Library, path: TokenPath, bar: f64| -> Vec<String> {
            self.algs
                .iter()
                .filter_map(|&alg| {
                    let summary = self.summary(library, alg, path)?;
                    Some(format!(
                        "{alg} {:.3}× {}",
                        summary.ratio,
                        verdict(summary.ratio >= bar)
                    ))
                })
                .collect()
        };
        if self.libraries.contains(&Library::TesseraIssuer) {
            out.push_str(&format!(
                "- The issuer's `auth_layer()`, cache on and revocation check on, ≥ 0.85× bare axum (valid \
                 token): {}\n",
                at_least(Library::TesseraIssuer, TokenPath::Valid, 0.85).join("; ")
            ));
        }
        for library in Library::SEEN_VALID {
            if self.libraries.contains(&library) {
                out.push_str(&format!(
                    "- 401 for a token seen valid, {} ≥ 0.85× bare axum: {}\n",
                    library.label(),
                    at_least(library, TokenPath::SeenValid, 0.85).join("; ")
                ));
            }
        }
        if self.libraries.contains(&Library::TesseraCache) {
            out.push_str(&format!(
                "- Cache on ≥ 0.90× bare axum (valid token): {}\n",
                at_least(Library::TesseraCache, TokenPath::Valid, 0.90).join("; ")
            ));
        }
        if self.libraries.contains(&Library::TesseraNoCache) {
            let others: Vec<Library> = self
                .libraries
                .iter()
                .copied()
                .filter(|library| library.authenticates() && !library.is_tessera())
                .collect();
            for path in [TokenPath::Valid, TokenPath::Expired] {
                let cells: Vec<String> = self
                    .algs
                    .iter()
                    .filter_map(|&alg| {
                        let ours = self.summary(Library::TesseraNoCache, alg, path)?;
                        let best = others
                            .iter()
                            .filter_map(|&library| {
                                self.summary(library, alg, path)
                                    .map(|summary| (library, summary.ratio))
                            })
                            .max_by(|a, b| a.1.total_cmp(&b.1))?;
                        Some(format!(
                            "{alg} {:.3}× vs best other {:.3}× ({}) {}",
                            ours.ratio,
                            best.1,
                            best.0.label(),
                            verdict(ours.ratio > best.1)
                        ))
                    })
                    .collect();
                let name = match path {
                    TokenPath::Valid => "valid token",
                    TokenPath::Expired | TokenPath::SeenValid => "expired token (401)",
                };
                out.push_str(&format!(
                    "- Cache off ahead of both peers and the naive middleware, {name}: {}\n",
                    cells.join("; ")
                ));
            }
        }
        out
    }
}

/// A server process started with `peers serve`.
struct ServerProcess {
    child: Child,
    stdout: BufReader<ChildStdout>,
    port: u16,
}

impl ServerProcess {
    fn start(
        pinning: &Pinning,
        program: &Path,
        library: Library,
        alg: Alg,
        keys: &Path,
    ) -> Result<ServerProcess> {
        let mut child = pinning
            .server(program)
            .arg("serve")
            .arg("--library")
            .arg(library.slug())
            .arg("--alg")
            .arg(alg.slug())
            .arg("--keys")
            .arg(keys)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a server process")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .context("reading the server's port")?;
        let port = line
            .trim()
            .strip_prefix("port ")
            .and_then(|port| port.parse().ok())
            .with_context(|| format!("{} {alg} did not start: {line:?}", library.label()))?;
        Ok(ServerProcess {
            child,
            stdout,
            port,
        })
    }

    /// Closes stdin (the server's signal to stop) and returns its `stats` line, if any.
    fn stop(mut self) -> Result<Option<String>> {
        drop(self.child.stdin.take());
        let mut rest = String::new();
        self.stdout
            .read_to_string(&mut rest)
            .context("reading the server's counters")?;
        let status = self.child.wait().context("waiting for the server")?;
        if !status.success() {
            bail!("server process exited with {status}");
        }
        Ok(rest
            .lines()
            .find(|line| line.starts_with("stats "))
            .map(str::to_owned))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One `GET /` with `token` on a fresh connection: the status and the response headers.
/// A library must answer 200 to the valid token and 401 to the expired one; records what the 401 said.
fn check_answers(
    library: Library,
    alg: Alg,
    port: u16,
    tokens: &Tokens,
    answers: &mut HashMap<Library, ExpiredAnswer>,
) -> Result<()> {
    let (status, _) = probe(port, &tokens.valid)?;
    if status != 200 {
        bail!(
            "{} with a valid {alg} token answered {status}, not 200",
            library.label()
        );
    }
    let (status, headers) = probe(port, &tokens.expired)?;
    if status != 401 {
        bail!(
            "{} with an expired {alg} token answered {status}, not 401",
            library.label()
        );
    }
    answers.entry(library).or_insert_with(|| ExpiredAnswer {
        status,
        token_expired: header(&headers, "token-expired").is_some_and(|value| value == "true"),
        www_authenticate: header(&headers, "www-authenticate").map(str::to_owned),
    });
    Ok(())
}

/// Sends a token that expires in `margin` seconds once while it is valid (200), waits until it has
/// expired, checks it is answered 401 with `Token-Expired: true`, and returns it for the load.
fn show_valid_then_expire(material: &KeyMaterial, margin: i64, port: u16) -> Result<String> {
    let (token, until) = material.expiring_token(margin)?;
    let (status, _) = probe(port, &token)?;
    if status != 200 {
        bail!("a token valid for {margin} s more was answered {status}: raise --seen-valid-margin");
    }
    std::thread::sleep(tessera_peer_bench::keys::time_until(until));
    let (status, headers) = probe(port, &token)?;
    if status != 401 || header(&headers, "token-expired") != Some("true") {
        bail!("the expired token was answered {status} without `Token-Expired: true`");
    }
    Ok(token)
}

fn probe(port: u16, token: &str) -> Result<(u16, Vec<(String, String)>)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the server")?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let head = response.split("\r\n\r\n").next().unwrap_or_default();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|status| status.parse().ok())
        .with_context(|| format!("no status line in {head:?}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    Ok((status, headers))
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}
