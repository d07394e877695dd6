//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds `migrations/` at compile time, and
//! cargo only tracks the files that existed at the last build.

#![allow(
    clippy::print_stdout,
    reason = "cargo reads a build script's instructions from its stdout"
)]

fn main() {
    println!("cargo::rerun-if-changed=migrations");
}
