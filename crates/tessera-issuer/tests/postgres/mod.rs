//! What the PostgreSQL tests share: the database `scripts/test.sh` starts, and a fresh schema per store.

// Test code (unwraps allowed, see clippy.toml) although it sits outside `#[test]` functions.
#![cfg(test)]
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test target uses a different part of the module"
)]

use std::sync::atomic::{AtomicU32, Ordering};

use tessera_issuer::{PostgresStore, PostgresStoreOptions};

/// The database of the test run. Fails (never skips) without one.
pub fn url() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "TESSERA_TEST_POSTGRES_URL is not set: the PostgreSQL tests need a database. Run them with \
             scripts/test.sh (it starts a throwaway PostgreSQL), or for development: \
             source scripts/postgres.sh && postgres_ensure_installed && postgres_start_throwaway"
        )
    })
}

/// The control script of the test cluster (start, stop, restart, status, kill).
pub fn ctl() -> String {
    std::env::var("TESSERA_TEST_POSTGRES_CTL").unwrap_or_else(|_| {
        panic!(
            "TESSERA_TEST_POSTGRES_CTL is not set: the outage tests control the PostgreSQL server. Run \
             them with scripts/test.sh, which sets it"
        )
    })
}

/// A schema name no other test of this run (or of an earlier run) uses: `<prefix>_<pid>_<n>`.
pub fn schema(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A store on the test database in `schema`.
pub async fn store_in(schema: &str) -> PostgresStore {
    PostgresStore::connect_with(&url(), PostgresStoreOptions::new().schema(schema))
        .await
        .unwrap_or_else(|error| panic!("connecting to the test database failed: {error}"))
}
