//! Restarting the example server on the same database and key directory: sessions survive, and revoked
//! access tokens stay revoked from the very first request.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use tessera_examples::app::App;

use crate::support::store::FaultyStore;
use crate::support::{TestApi, login_as, logout_all, me, me_with, revoke, signed_in, wait_past};

const ACCESS_TTL: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restart_on_the_same_database_keeps_the_client_signed_in() -> anyhow::Result<()> {
    let server = TestApi::start(ACCESS_TTL).await?;
    let (_auth, api, _) = signed_in(&server, "alice", "wonderland").await?;
    let (profile, _) = me(&api, &server).await?;

    // Same address (the client's allow-list names it), same SQLite file, same key directory.
    let server = server.stop_for_restart().await?.restart().await?;

    // The access token issued before the restart still verifies...
    let (again, outcome) = me(&api, &server).await?;
    assert_eq!(again["sub"], "alice");
    assert!(!outcome.refreshed());
    // ...and after it expires, the refresh token issued before the restart still rotates.
    wait_past(&profile["exp"]).await?;
    let (after, outcome) = me(&api, &server).await?;
    assert_eq!(after["sub"], "alice");
    assert!(outcome.refreshed());
    let events = server.events.snapshot();
    assert_eq!(
        (events.logins, events.refreshed),
        (0, 1),
        "no new login, one refresh on the new server"
    );
    server.stop().await
}

/// Revoked before the restart through RFC 7009 (alice) and logout-all (bob), both access tokens are
/// refused by the very first requests the restarted server answers, even though loading the revocations
/// takes a while: the server opens its listener only once they are loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_never_lets_a_revoked_access_token_through() -> anyhow::Result<()> {
    let server = TestApi::start(Duration::from_secs(120)).await?;
    let alice = login_as(&server, "alice", "wonderland").await?;
    let bob = login_as(&server, "bob", "builder").await?;

    revoke(&server, &alice.access_token, "access_token").await?;
    // Logout-all denies what was issued before its second; let bob's token be from an earlier one.
    wait_for_next_second().await;
    logout_all(&server, &bob.access_token).await?;
    for token in [&alice.access_token, &bob.access_token] {
        assert_eq!(
            me_with(&server.base_url, token).await?,
            StatusCode::UNAUTHORIZED,
            "revoked before the restart"
        );
    }

    let stopped = server.stop_for_restart().await?;
    let (store, faults) = FaultyStore::new(stopped.config.db.open_sqlite().await?);
    faults.slow_revocation_reads(Duration::from_millis(1500));
    let restarted = App::start(&stopped.config, store)
        .await?
        .serve_on(stopped.addr)
        .await?;
    let (first, second) = tokio::join!(
        me_with(&restarted.base_url, &alice.access_token),
        me_with(&restarted.base_url, &bob.access_token)
    );
    assert_eq!(
        first?,
        StatusCode::UNAUTHORIZED,
        "alice's token, revoked through RFC 7009, came back after the restart"
    );
    assert_eq!(
        second?,
        StatusCode::UNAUTHORIZED,
        "bob's token, revoked by logout-all, came back after the restart"
    );
    restarted.stop().await
}

async fn wait_for_next_second() {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let into_second = Duration::from_nanos(u64::from(since_epoch.subsec_nanos()));
    tokio::time::sleep(Duration::from_secs(1) - into_second + Duration::from_millis(20)).await;
}
