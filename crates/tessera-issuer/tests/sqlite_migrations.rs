//! A database written by an earlier version opens with this one: the embedded migrations keep their
//! versions and checksums (sqlx refuses to open a database whose applied migrations differ), and the
//! records read, rotate and replay as they did.
//!
//! `fixtures/tokens-v0.1.sqlite` was written by `SqliteStore` at commit d514080, before the migrations
//! were embedded with `sqlx::migrate!`:
//! - family `f-rotated` of alice on client `web` (scope `read write`, role `admin`, user agent `fixture`),
//!   created at `START` with the token `[1; 32]`, rotated at `START + 10` to `[2; 32]` with the salt
//!   `[2; 32]` (14-day idle, 30-day absolute lifetime);
//! - family `f-revoked` of bob, token `[5; 32]`, revoked at `START + 20` by logout;
//! - the access token `jti-1` denied until `START + 900`, and alice's tokens issued before `START + 20`
//!   denied until `START + 920` (the schema of then had a table per kind of denial; now one log holds
//!   them).

use tessera_issuer::SqliteStore;
use tessera_issuer::store::{
    Denial, FamilyId, RefreshStore as _, RequestFingerprint, Revocation, RevokeReason, Rotation,
    RotationOutcome, RotationSalt, TokenHash,
};

const FIXTURE: &[u8] = include_bytes!("fixtures/tokens-v0.1.sqlite");
const START: i64 = 1_800_000_000;

#[cfg(test)]
fn hash(n: u8) -> TokenHash {
    TokenHash::from_slice(&[n; 32]).unwrap()
}

#[cfg(test)]
fn rotation(presented: u8, successor: u8, now: i64) -> Rotation {
    Rotation {
        presented: hash(presented),
        client_id: "web".into(),
        successor: hash(successor),
        salt: RotationSalt::from_slice(&[successor; 32]).unwrap(),
        now,
        idle_ttl: 14 * 86_400,
        grace: 30,
        fingerprint: RequestFingerprint::from_slice(&[1; 32]).unwrap(),
        max_retries: 3,
        dpop_jkt: None,
        deny_access_for: 1_200,
    }
}

#[tokio::test]
async fn a_database_of_the_first_schema_opens_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokens.db");
    std::fs::write(&path, FIXTURE).unwrap();
    let store = SqliteStore::open(&path).await.unwrap();

    let family = store.find_by_token(hash(1)).await.unwrap().unwrap();
    assert_eq!(family.id, FamilyId::from("f-rotated".to_owned()));
    assert_eq!(
        (family.generation, family.created_at, family.last_used_at),
        (1, START, START + 10)
    );
    assert_eq!(
        (family.scope.as_deref(), family.user_agent.as_deref()),
        (Some("read write"), Some("fixture"))
    );
    assert_eq!(family.roles, ["admin"]);
    assert_eq!(
        family.dpop_jkt, None,
        "families from before DPoP are unbound"
    );
    // Its rotation kept no request fingerprint: the retry is served as it was before.
    match store.rotate(rotation(1, 9, START + 20)).await.unwrap() {
        RotationOutcome::Retry {
            salt, successor, ..
        } => {
            assert_eq!(salt, RotationSalt::from_slice(&[2; 32]).unwrap());
            assert_eq!(successor, hash(2));
        }
        other => panic!("expected a retry within grace, got {other:?}"),
    }
    match store.rotate(rotation(2, 3, START + 30)).await.unwrap() {
        RotationOutcome::Rotated(family) => assert_eq!(family.generation, 2),
        other => panic!("expected a rotation, got {other:?}"),
    }
    assert!(matches!(
        store.rotate(rotation(1, 9, START + 100)).await.unwrap(),
        RotationOutcome::Replay {
            presented_generation: 0,
            ..
        }
    ));

    let revoked = store
        .find_family(&FamilyId::from("f-revoked".to_owned()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        revoked.revoked,
        Some(Revocation {
            at: START + 20,
            reason: RevokeReason::Logout
        })
    );
    let denials = store.denials_after(0, START, 10).await.unwrap();
    assert_eq!(
        denials.denials,
        [
            Denial::token("jti-1", START + 900),
            Denial::subject("alice", START + 20, START + 920),
            // The replay above denied the family's access tokens.
            Denial::session("f-rotated", START + 100 + 1_200),
        ]
    );
    store
        .deny(Denial::token("jti-2", START + 900))
        .await
        .unwrap();
    assert_eq!(
        store
            .denials_after(denials.last, START, 10)
            .await
            .unwrap()
            .denials,
        [Denial::token("jti-2", START + 900)],
        "new denials follow the migrated ones"
    );
    store.close().await;

    let reopened = SqliteStore::open(&path).await.unwrap();
    let family = reopened.find_by_token(hash(3)).await.unwrap().unwrap();
    assert_eq!(
        family.generation, 2,
        "what this version wrote is still there"
    );
    reopened.close().await;
}
