//! The store contract (`tessera_issuer::store::testing`), run against each backend of this crate. A
//! backend elsewhere runs the same suite the same way.

use tessera_issuer::store::testing::run_contract_suite;
use tessera_issuer::{MemoryStore, SqliteStore};

#[tokio::test]
async fn memory_store() {
    run_contract_suite(|_| async { MemoryStore::new() }).await;
}

#[tokio::test]
async fn sqlite_in_memory() {
    run_contract_suite(|_| async { SqliteStore::in_memory().await.unwrap() }).await;
}

#[tokio::test]
async fn sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    run_contract_suite(|case| {
        let path = dir.path().join(format!("{}.db", case.name()));
        async move { SqliteStore::open(path).await.unwrap() }
    })
    .await;
}
