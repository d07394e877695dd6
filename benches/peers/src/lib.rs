//! Tessera against its peers, measured on one machine in one run.
//!
//! The `peers` binary serves one variant per process (`peers serve`), drives them with `wrk`
//! (`peers throughput`), and measures the client middleware (`peers refresh`); the criterion benchmark
//! `verify` measures one verification per algorithm. `scripts/bench.sh` at the repository root runs them
//! all and prints Markdown tables.

pub mod claims;
pub mod keys;
pub mod naive;
pub mod variant;
