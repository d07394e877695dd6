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
    /// Where to write keys, tokens and callgrind's output.
    #[arg(long, default_value = "target/bench-callgrind")]
    dir: PathBuf,
}

/// Which token the requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Path {
    Valid,
    Expired,
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
    let program = std::env::current_exe()?;
    let mut counts: HashMap<(Library, Alg, Path), f64> = HashMap::new();
    for &alg in &algs {
        let material = KeyMaterial::generate(alg)?;
        material.write(&args.dir)?;
        let valid = args.dir.join(format!("{}.valid.jwt", alg.slug()));
        let expired = args.dir.join(format!("{}.expired.jwt", alg.slug()));
        std::fs::write(&valid, material.valid_token()?)?;
        std::fs::write(&expired, material.expired_token()?)?;
        let libraries = Library::REFERENCES
            .into_iter()
            .chain(Library::AUTHENTICATING);
        for library in libraries {
            for (path, token) in [(Path::Valid, &valid), (Path::Expired, &expired)] {
                if !library.authenticates() && path == Path::Expired {
                    continue;
                }
                eprintln!("callgrind: {alg} {} {path:?}", library.label());
                let output = Command::new("valgrind")
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
                    .arg(token)
                    .arg("--iterations")
                    .arg(args.iterations.to_string())
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
    }

    let thousands = |count: f64| format!("{:.1}k", count / 1_000.0);
    for (path, title) in [
        (Path::Valid, "Valid token"),
        (Path::Expired, "Expired token (401)"),
    ] {
        let mut table = Table::new(
            std::iter::once("server".to_owned())
                .chain(algs.iter().map(|alg| alg.name().to_owned())),
        );
        let rows = Library::REFERENCES
            .into_iter()
            .chain(Library::AUTHENTICATING);
        for library in rows {
            if !library.authenticates() && path == Path::Expired {
                continue;
            }
            let mut row = vec![library.label().to_owned()];
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
