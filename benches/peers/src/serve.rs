//! `peers serve`: one variant, one tokio worker, until stdin closes.

use std::io::Write as _;
use std::path::PathBuf;

use anyhow::{Context, Result};
use tessera_peer_bench::keys::{Alg, VerifyKey};
use tessera_peer_bench::variant::{self, Library};
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;

/// Options of `peers serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    /// Who authenticates requests.
    #[arg(long, value_enum)]
    library: Library,
    /// The algorithm of the tokens (ignored by `bare`).
    #[arg(long, value_enum, default_value = "hs256")]
    alg: Alg,
    /// The directory `peers throughput` wrote the verification material to.
    #[arg(long)]
    keys: PathBuf,
}

/// Serves on a current-thread runtime (the process is pinned to one core by the caller). Prints
/// `port <n>` once listening and, for Tessera, `stats ...` with the layer's counters after stdin closed.
pub(crate) fn run(args: &ServeArgs) -> Result<()> {
    let key = VerifyKey::load(&args.keys, args.alg)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("building the runtime")?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding 127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let mut stdout = std::io::stdout();
        writeln!(stdout, "port {port}")?;
        stdout.flush()?;
        let serve = variant::Serve {
            listener,
            shutdown: stdin_closed(),
        };
        let stats = variant::with_service(args.library, args.alg, &key, serve).await?;
        if let Some(stats) = stats {
            writeln!(
                stdout,
                "stats authenticated={} rejected={} cache_hits={} cache_misses={}",
                stats.authenticated, stats.rejected, stats.cache_hits, stats.cache_misses
            )?;
        }
        stdout.flush()?;
        Ok(())
    })
}

async fn stdin_closed() {
    let mut stdin = tokio::io::stdin();
    let mut buffer = [0u8; 64];
    while let Ok(read) = stdin.read(&mut buffer).await {
        if read == 0 {
            break;
        }
    }
}
