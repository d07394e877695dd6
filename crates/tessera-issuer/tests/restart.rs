//! Closing and reopening the file database and key directory keeps sessions and access tokens valid.

mod support;

use http::StatusCode;
use tessera_core::ManualClock;
use tessera_issuer::jose::Jws;
use tessera_issuer::{Algorithm, SqliteStore};

use support::*;

#[cfg(test)]
/// The token service on the database and key directory in `dir`, as a process starting there would run it.
async fn start(
    dir: &std::path::Path,
    clock: &ManualClock,
    algorithm: Algorithm,
) -> Harness<SqliteStore> {
    let store = SqliteStore::open(dir.join("tessera.db")).await.unwrap();
    let h = harness_on(store, clock.clone(), |builder| {
        builder
            .signing_algorithm(algorithm)
            .key_dir(dir.join("keys"))
    })
    .await;
    h.issuer.load_denylist().await.unwrap();
    h
}

#[tokio::test]
async fn sessions_and_keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix(START);
    let before = start(dir.path(), &clock, Algorithm::EdDsa).await;
    let login = before.login("alice", "wonderland").await;
    let first = login.refresh_token();
    let second = before.refresh(&first).await.refresh_token();
    let kid = before.issuer.keys().signer().kid().to_owned();
    let revoked_access = before.refresh(&first).await.access_token(); // a retry: rotates nothing
    let revoke = before
        .post_form("/auth/revoke", &format!("token={revoked_access}"))
        .await;
    assert_eq!(revoke.status, StatusCode::OK);
    before.issuer.close().await;
    drop(before);

    let after = start(dir.path(), &clock, Algorithm::EdDsa).await;
    assert_eq!(
        after.issuer.keys().signer().kid(),
        kid,
        "the same signing key"
    );
    let sessions = after.sessions(&login.access_token()).await;
    assert_eq!(
        sessions.status,
        StatusCode::OK,
        "an access token from before the restart: {}",
        sessions.text()
    );
    assert_eq!(
        after.refresh(&first).await.refresh_token(),
        second,
        "a retry re-derives the same successor"
    );
    let third = after.refresh(&second).await;
    assert_eq!(third.status, StatusCode::OK, "{}", third.text());
    clock.advance_secs(31);
    assert_eq!(
        after.refresh(&first).await.error(),
        "invalid_grant",
        "replay detection survived the restart"
    );
}

#[tokio::test]
async fn switching_algorithms_keeps_old_tokens_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_unix(START);
    let before = start(dir.path(), &clock, Algorithm::EdDsa).await;
    let old_access = before.login("alice", "wonderland").await.access_token();
    before.issuer.close().await;
    drop(before);

    let after = start(dir.path(), &clock, Algorithm::Es256).await;
    let new_access = after.login("alice", "wonderland").await.access_token();
    assert_eq!(
        Jws::parse(&new_access).unwrap().algorithm(),
        Algorithm::Es256
    );
    for token in [old_access, new_access] {
        assert_eq!(after.sessions(&token).await.status, StatusCode::OK);
    }
}
