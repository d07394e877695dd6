//! `peers`: the cross-library benchmark driver. `scripts/bench.sh` at the repository root runs it; see
//! `BENCHMARKS.md` for what each subcommand measures and the latest tables.

mod instructions;
mod pinning;
mod refresh;
mod serve;
mod table;
mod throughput;
mod verify_report;
mod wrk;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Tessera against its peers, on loopback, reported as ratios measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "peers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve one variant on 127.0.0.1 (an ephemeral port, printed first) until stdin closes.
    Serve(serve::ServeArgs),
    /// Layer throughput: every variant in its own pinned process, driven by wrk, interleaved rounds.
    Throughput(throughput::ThroughputArgs),
    /// Client middleware: refreshes under contention and happy-path overhead against plain reqwest.
    Refresh(refresh::RefreshArgs),
    /// Count instructions per request of every variant with callgrind (in-process calls, no sockets).
    Instructions(instructions::InstructionsArgs),
    /// Call one variant's service in a loop (what `instructions` runs under callgrind).
    Count(instructions::CountArgs),
    /// Print the criterion `verify` benchmark's estimates as a table of ratios.
    VerifyReport(verify_report::VerifyReportArgs),
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Serve(args) => serve::run(&args),
        Command::Throughput(args) => throughput::run(&args),
        Command::Refresh(args) => refresh::run(&args),
        Command::VerifyReport(args) => verify_report::run(&args),
        Command::Instructions(args) => instructions::instructions(&args),
        Command::Count(args) => instructions::count(&args),
    }
}
