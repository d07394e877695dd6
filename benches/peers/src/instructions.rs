//! `peers count` and `peers instructions`: instructions per request under callgrind, a measure that the
//! machine's noise cannot move. Each variant's service is called in-process (no sockets, no HTTP parsing):
//! routing, authentication and the handler.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};
use tessera_peer_bench::keys::{Alg, KeyMaterial, VerifyKey};
use tessera_peer_bench::variant::{self, CallLoop, Library};

use crate::table::Table;

/// Options of `peers count` (run under callgrind by `peers instructions`).
#[derive(Debug, clap::Args)]
pub(crate) struct CountArgs {
    /// Who authenticates requests.
    #[arg(long, value_enum)]
    library: Library,
    /// The algorithm of the token.
    #[arg(long, value_enum)]
    alg: Alg,
    /// The directory with the verification material.
    #[arg(long)]
    keys: PathBuf,
    /// The file holding the bearer token to send.
    #[arg(long)]
    token: PathBuf,
    /// Requests to make.
    #[arg(long)]
    iterations: u64,
    /// Present the token once first (it must still be valid then), wait until this Unix time when it is
    /// not any more, then count: the 401 for a token the server saw valid.
    #[arg(long)]
    seen_valid_until: Option<i64>,
}

pub(crate) fn count(args: &CountArgs) -> Result<()> {
    let key = VerifyKey::load(&args.keys, args.alg)?;
    let token = std::fs::read_to_string(&args.token)
        .with_context(|| format!("reading {}", args.token.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let call_loop = CallLoop {
        iterations: args.iterations,
        token: token.trim().to_owned(),
        seen_valid_until: args.seen_valid_until,
    };
    runtime.block_on(variant::with_service(
        args.library,
        args.alg,
        &key,
        call_loop,
    ))?;
    Ok(())
}

/// Options of `peers instructions`.
#[derive(Debug, clap::Args)]
pub(crate) struct InstructionsArgs {
    /// Requests per variant.
    #[arg(long, default_value_t = 200)]
    iterations: u64,
    /// Algorithms to compare (default: all).
    #[arg(long, value_enum, value_delimiter = ',')]
    algs: Vec<Alg>,
    /// Authenticating libraries to count (default: all; bare axum and the pass-through layer always run).
    #[arg(long, value_enum, value_delimiter = ',')]
    libraries: Vec<Library>,
    /// Where to write keys, tokens and callgrind's output.
    #[arg(long, default_value = "target/bench-callgrind")]
    dir: PathBuf,
    /// Seconds a token stays valid before its 401 is counted on a server that saw it valid: long enough
    /// for valgrind to start the process and send it once.
    #[arg(long, default_value_t = 12)]
    seen_valid_margin: i64,
}

/// Which token the requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Path {
    Valid,
    /// Expired an hour ago, never seen by the server before.
    Expired,
    /// Seen valid by the server once, expired since.
    SeenValid,
}

pub(crate) fn instructions(args: &InstructionsArgs) -> Result<()> {
    if args.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let algs = if args.algs.is_empty() {
        Alg::ALL.to_vec()
    } else {
        args.algs.clone()
    };
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    let selected: Vec<Library> = Library::AUTHENTICATING
        .into_iter()
        .filter(|library| args.libraries.is_empty() || args.libraries.contains(library))
        .collect();
    let seen_valid: Vec<Library> = Library::SEEN_VALID
        .into_iter()
        .filter(|library| selected.contains(library))
        .collect();
    let program = std::env::current_exe()?;
    let mut counts: HashMap<(Library, Alg, Path), f64> = HashMap::new();
    for &alg in &algs {
        let material = KeyMaterial::generate(alg)?;
        material.write(&args.dir)?;
        let valid = args.dir.join(format!("{}.valid.jwt", alg.slug()));
        let expired = args.dir.join(format!("{}.expired.jwt", alg.slug()));
        std::fs::write(&valid, material.valid_token()?)?;
        std::fs::write(&expired, material.expired_token()?)?;
        let mut runs: Vec<(Library, Path)> = Vec::new();
        for library in Library::REFERENCES
            .into_iter()
            .chain(selected.iter().copied())
        {
            runs.push((library, Path::Valid));
            if library.authenticates() {
                runs.push((library, Path::Expired));
            }
        }
        runs.extend(seen_valid.iter().map(|&library| (library, Path::SeenValid)));
        for (library, path) in runs {
            eprintln!("callgrind: {alg} {} {path:?}", library.label());
            let (token, seen_valid_until) = match path {
                Path::Valid => (valid.clone(), None),
                Path::Expired => (expired.clone(), None),
                Path::SeenValid => {
                    let (token, until) = material.expiring_token(args.seen_valid_margin)?;
                    let file = args.dir.join(format!("{}.seen-valid.jwt", alg.slug()));
                    std::fs::write(&file, token)?;
                    (file, Some(until))
                }
            };
            let mut command = Command::new("valgrind");
            command
                .arg("--tool=callgrind")
                .arg("--toggle-collect=*count_requests*")
                .arg(format!(
                    "--callgrind-out-file={}",
                    args.dir.join("callgrind.out").display()
                ))
                .arg(&program)
                .arg("count")
                .arg("--library")
                .arg(library.slug())
                .arg("--alg")
                .arg(alg.slug())
                .arg("--keys")
                .arg(&args.dir)
                .arg("--token")
                .arg(&token)
                .arg("--iterations")
                .arg(args.iterations.to_string());
            if let Some(until) = seen_valid_until {
                command.arg("--seen-valid-until").arg(until.to_string());
            }
            let output = command
                .output()
                .context("running valgrind (scripts/bench.sh installs it)")?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                bail!("callgrind run failed:\n{stderr}");
            }
            let collected = stderr
                .lines()
                .find_map(|line| {
                    line.split_once("Collected :")
                        .map(|(_, count)| count.trim().to_owned())
                })
                .with_context(|| format!("no `Collected :` line from callgrind:\n{stderr}"))?;
            let total: f64 = collected.parse()?;
            counts.insert((library, alg, path), total / args.iterations as f64);
        }
    }

    let thousands = |count: f64| format!("{:.1}k", count / 1_000.0);
    for (paths, title) in [
        (&[Path::Valid][..], "Valid token"),
        (&[Path::Expired, Path::SeenValid][..], "Expired token (401)"),
    ] {
        let mut table = Table::new(
            std::iter::once("server".to_owned())
                .chain(algs.iter().map(|alg| alg.name().to_owned())),
        );
        let rows = paths.iter().flat_map(|&path| {
            let libraries: Vec<Library> = match path {
                Path::Valid => Library::REFERENCES
                    .into_iter()
                    .chain(selected.iter().copied())
                    .collect(),
                Path::Expired => selected.clone(),
                Path::SeenValid => seen_valid.clone(),
            };
            libraries.into_iter().map(move |library| (library, path))
        });
        for (library, path) in rows {
            let label = match path {
                Path::Valid | Path::Expired => library.label().to_owned(),
                Path::SeenValid => library.seen_valid_label(),
            };
            let mut row = vec![label];
            for &alg in &algs {
                let bare = counts.get(&(Library::Bare, alg, Path::Valid)).copied();
                row.push(match (counts.get(&(library, alg, path)), bare) {
                    (Some(&count), Some(bare)) if library != Library::Bare => {
                        format!(
                            "{} (+{} over bare)",
                            thousands(count),
                            thousands(count - bare)
                        )
                    }
                    (Some(&count), _) => thousands(count),
                    (None, _) => "n/a".to_owned(),
                });
            }
            table.row(row);
        }
        println!(
            "#### {title}: instructions per request\n\n{}",
            table.render()
        );
    }
    Ok(())
}
