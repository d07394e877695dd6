//! `peers verify-report`: the criterion `verify` estimates as one table of ratios.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tessera_peer_bench::keys::Alg;

use crate::table::{self, Table};

/// Options of `peers verify-report`.
#[derive(Debug, clap::Args)]
pub(crate) struct VerifyReportArgs {
    /// criterion's output directory.
    #[arg(long, default_value = "target/criterion")]
    criterion_dir: PathBuf,
}

/// The benchmark functions of `benches/verify.rs`, with their row labels.
const FUNCTIONS: [(&str, &str); 5] = [
    ("jsonwebtoken", "`jsonwebtoken::decode` 11 (aws-lc-rs)"),
    (
        "tessera-cache-off",
        "Tessera layer, cache off (whole request)",
    ),
    (
        "tessera-cache-on",
        "Tessera layer, cache on (whole request)",
    ),
    ("jwt-authorizer", "jwt-authorizer 0.15 `check_auth` (ring)"),
    (
        "axum-jwt-auth",
        "axum-jwt-auth 0.7 `LocalDecoder` (rust_crypto)",
    ),
];

pub(crate) fn run(args: &VerifyReportArgs) -> Result<()> {
    let mut table = Table::new(
        std::iter::once("verification".to_owned())
            .chain(Alg::ALL.iter().map(|alg| alg.name().to_owned())),
    );
    let baseline: Vec<Option<f64>> = Alg::ALL
        .iter()
        .map(|alg| estimate(&args.criterion_dir, *alg, FUNCTIONS[0].0).ok())
        .collect();
    for (function, label) in FUNCTIONS {
        let mut row = vec![label.to_owned()];
        for (index, alg) in Alg::ALL.iter().enumerate() {
            row.push(
                match (
                    estimate(&args.criterion_dir, *alg, function),
                    baseline[index],
                ) {
                    (Ok(ns), Some(base)) => format!(
                        "{} ({})",
                        table::micros(ns / 1_000.0),
                        table::ratio(ns / base)
                    ),
                    (Ok(ns), None) => table::micros(ns / 1_000.0),
                    (Err(_), _) => "n/a".to_owned(),
                },
            );
        }
        table.row(row);
    }
    println!(
        "Per-verify cost (criterion median per call; in brackets the time relative to `jsonwebtoken::decode`, \
         lower is better). Tessera rows run a whole request through `JwtAuth` around an empty service (header \
         parsing, verification, claims into the extensions); the others verify a token string.\n\n{}",
        table.render()
    );
    Ok(())
}

/// The median estimate in nanoseconds of `verify-<alg>/<function>`.
fn estimate(dir: &Path, alg: Alg, function: &str) -> Result<f64> {
    let path = dir
        .join(format!("verify-{}", alg.slug()))
        .join(function)
        .join("new")
        .join("estimates.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    json["median"]["point_estimate"]
        .as_f64()
        .with_context(|| format!("no median in {}", path.display()))
}
