//! 64 tasks refresh the same token at once on a file-backed SQLite store: no 5xx, no fork, and every
//! loser within the grace window receives the winner's successor.

mod support;

use std::collections::HashSet;

use http::StatusCode;
use tessera_issuer::store::RefreshStore as _;
use tessera_issuer::{AuthEvent, SqliteStore};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_parallel_refreshes_of_one_token_never_fork_the_family() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tokens.db"))
        .await
        .unwrap();
    // A retry budget for every loser: this test is about the compare-and-swap, not the budget (see
    // grace.rs for that).
    let h = harness_with(store, |builder| builder.grace_retries(63)).await;
    let token = h.login("alice", "wonderland").await.refresh_token();

    let mut successors = HashSet::new();
    for answer in h.refresh_in_parallel(&token, 64).await {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        successors.insert(answer.refresh_token());
    }
    assert_eq!(successors.len(), 1, "every request got the one successor");

    let family = h
        .issuer
        .store()
        .live_families("alice", START)
        .await
        .unwrap();
    assert_eq!(family.len(), 1);
    assert_eq!(family[0].generation, 1, "exactly one rotation happened");
    let events = h.events();
    let rotations = events
        .iter()
        .filter(|e| matches!(e, AuthEvent::Refreshed { .. }))
        .count();
    let retries = events
        .iter()
        .filter(|e| matches!(e, AuthEvent::RetryServed { .. }))
        .count();
    assert_eq!((rotations, retries), (1, 63));

    let successor = successors.into_iter().next().unwrap();
    let next = h.refresh(&successor).await;
    assert_eq!(
        next.status,
        StatusCode::OK,
        "the successor is the family's live token"
    );
    assert_eq!(
        h.issuer
            .store()
            .live_families("alice", START)
            .await
            .unwrap()[0]
            .generation,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_grace_the_losers_are_replays_and_the_family_dies() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("tokens.db"))
        .await
        .unwrap();
    let h = harness_with(store, |builder| builder.grace(std::time::Duration::ZERO)).await;
    let token = h.login("alice", "wonderland").await.refresh_token();
    let mut ok = 0;
    for answer in h.refresh_in_parallel(&token, 16).await {
        assert!(
            answer.status == StatusCode::OK || answer.error() == "invalid_grant",
            "{}",
            answer.text()
        );
        ok += usize::from(answer.status == StatusCode::OK);
    }
    assert!(ok >= 1, "the first rotation succeeds");
    assert!(
        h.issuer
            .store()
            .live_families("alice", START)
            .await
            .unwrap()
            .is_empty(),
        "reuse revoked the family"
    );
}
