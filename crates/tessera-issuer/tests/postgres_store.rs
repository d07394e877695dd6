//! The store contract on PostgreSQL: the same suite as memory and SQLite, one schema per case.
#![cfg(feature = "postgres")]

mod postgres;

use tessera_issuer::store::testing::run_contract_suite;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_contract() {
    let run = postgres::schema("contract");
    let mut cases = 0;
    run_contract_suite(|_case| {
        cases += 1;
        let schema = format!("{run}_{cases}");
        async move { postgres::store_in(&schema).await }
    })
    .await;
}
