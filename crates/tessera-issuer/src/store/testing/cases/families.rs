//! Families: creation, rotation and its verdicts, expiry, revocation, the cap, the purge, and a closed store.

use futures_util::future::join_all;
use tessera_core::{Clock as _, ManualClock};

use super::*;
use crate::store::{OnceKey, PurgeReport, StoredKey, ThrottleKey};

pub(in crate::store::testing) async fn current_token_rotates<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    clock.advance_secs(100);
    let family = rotated(store, 1, 2, clock).await;
    assert_eq!(family.generation, 1);
    assert_eq!(family.last_used_at, START + 100);
    assert_eq!(
        family.idle_expires_at,
        START + 100 + IDLE,
        "rotation slides the idle end"
    );
    assert_eq!(
        family.absolute_expires_at,
        START + ABSOLUTE,
        "the absolute end never moves"
    );
    assert_eq!(family.roles, ["admin"]);
    assert_eq!(family.scope.as_deref(), Some("read write"));
    assert_eq!(family.user_agent.as_deref(), Some("contract-test"));
    clock.advance_secs(1);
    let family = rotated(store, 2, 3, clock).await;
    assert_eq!(family.generation, 2, "the successor is current");
}

pub(in crate::store::testing) async fn previous_token_within_grace_is_a_retry<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    rotated(store, 1, 2, clock).await;
    clock.advance_secs(GRACE - 1);
    // The retry brings its own (different) candidate successor: the store must answer with the first one.
    match rotate(store, rotation(1, 9, clock.unix_seconds())).await {
        RotationOutcome::Retry {
            family,
            salt: retry_salt,
            successor,
        } => {
            assert_eq!(family.generation, 1, "a retry changes nothing");
            assert_eq!(
                retry_salt,
                salt(2),
                "the salt of the rotation that consumed the token"
            );
            assert_eq!(successor, hash(2), "the successor already issued");
        }
        other => panic!("expected a retry, got {other:?}"),
    }
    assert!(
        store.find_by_token(hash(9)).await.unwrap().is_none(),
        "no sibling was installed"
    );
    rotated(store, 2, 3, clock).await;
}

pub(in crate::store::testing) async fn previous_token_after_grace_is_a_replay<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    rotated(store, 1, 2, clock).await;
    clock.advance_secs(GRACE);
    match rotate(store, rotation(1, 9, clock.unix_seconds())).await {
        RotationOutcome::Replay {
            family,
            presented_generation,
        } => {
            assert_eq!(presented_generation, 0);
            assert_eq!(family.generation, 1);
            let revocation = family.revoked.expect("the family is revoked");
            assert_eq!(revocation.reason, RevokeReason::ReuseDetected);
            assert_eq!(revocation.at, START + GRACE);
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    // The legitimate holder of the current token is locked out too: the family is presumed stolen.
    for (presented, successor) in [(2, 3), (1, 4)] {
        assert!(matches!(
            rotate(store, rotation(presented, successor, clock.unix_seconds())).await,
            RotationOutcome::Revoked(_)
        ));
    }
}

pub(in crate::store::testing) async fn older_generations_are_replays_even_within_grace<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    rotated(store, 1, 2, clock).await;
    rotated(store, 2, 3, clock).await;
    match rotate(store, rotation(1, 9, clock.unix_seconds())).await {
        RotationOutcome::Replay {
            family,
            presented_generation,
        } => {
            assert_eq!((presented_generation, family.generation), (0, 2));
        }
        other => panic!("expected a replay, got {other:?}"),
    }
}

pub(in crate::store::testing) async fn zero_grace_makes_every_reuse_a_replay<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    let strict = |presented, successor| Rotation {
        grace: 0,
        ..rotation(presented, successor, clock.unix_seconds())
    };
    assert!(matches!(
        rotate(store, strict(1, 2)).await,
        RotationOutcome::Rotated(_)
    ));
    assert!(matches!(
        rotate(store, strict(1, 9)).await,
        RotationOutcome::Replay { .. }
    ));
}

pub(in crate::store::testing) async fn concurrent_rotations_of_one_token_install_one_successor<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    let candidates = 10..26;
    let now = clock.unix_seconds();
    // A budget for every loser, so that each is a retry of the winner's rotation.
    let outcomes = join_all(candidates.clone().map(|successor| {
        let rotation = Rotation {
            max_retries: 100,
            ..rotation(1, successor, now)
        };
        rotate(store, rotation)
    }))
    .await;
    let mut installed = Vec::new();
    for candidate in candidates {
        if store
            .find_by_token(hash(candidate))
            .await
            .unwrap()
            .is_some()
        {
            installed.push(candidate);
        }
    }
    let [winner] = installed[..] else {
        panic!("exactly one successor is installed, found {installed:?}")
    };
    for outcome in outcomes {
        match outcome {
            RotationOutcome::Rotated(family) => assert_eq!(family.generation, 1),
            RotationOutcome::Retry { successor, .. } => assert_eq!(successor, hash(winner)),
            other => panic!("expected the rotation or a retry of it, got {other:?}"),
        }
    }
    assert_eq!(find(store, "f1").await.unwrap().generation, 1);
}

pub(in crate::store::testing) async fn unknown_tokens_are_unknown<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    assert_eq!(
        rotate(store, rotation(1, 2, clock.unix_seconds())).await,
        RotationOutcome::Unknown
    );
    assert!(store.find_by_token(hash(1)).await.unwrap().is_none());
    assert!(find(store, "nope").await.is_none());
}

pub(in crate::store::testing) async fn absolute_expiry_is_exclusive_and_fixed<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    let mut family = new_family("f1", "alice", "web", 1, clock.unix_seconds());
    family.absolute_expires_at = START + 100;
    family.idle_expires_at = START + 1_000;
    create(store, family, CAP).await;
    assert_eq!(
        find(store, "f1").await.unwrap().idle_expires_at,
        START + 100,
        "the idle end never passes the absolute end"
    );
    clock.set_unix(START + 99);
    assert_eq!(
        rotated(store, 1, 2, clock).await.idle_expires_at,
        START + 100,
        "one second before the end the family is live; sliding stops at the absolute end"
    );
    clock.set_unix(START + 100);
    assert!(matches!(
        rotate(store, rotation(2, 3, clock.unix_seconds())).await,
        RotationOutcome::Expired(_)
    ));
    assert!(live(store, "alice", clock.unix_seconds()).await.is_empty());
}

pub(in crate::store::testing) async fn idle_expiry_slides_with_each_rotation<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    clock.set_unix(START + IDLE - 1);
    rotated(store, 1, 2, clock).await;
    clock.set_unix(START + IDLE + IDLE - 2);
    rotated(store, 2, 3, clock).await;
    clock.advance_secs(IDLE);
    match rotate(store, rotation(3, 4, clock.unix_seconds())).await {
        RotationOutcome::Expired(family) => assert_eq!(family.generation, 2),
        other => panic!("expected expiry, got {other:?}"),
    }
    // An expired family's previous token is not a replay (nothing to protect), just expired.
    assert!(matches!(
        rotate(store, rotation(2, 5, clock.unix_seconds())).await,
        RotationOutcome::Expired(_)
    ));
    assert!(find(store, "f1").await.unwrap().revoked.is_none());
}

pub(in crate::store::testing) async fn revoked_families_refuse_every_token<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    let revoke = |family: &'static str, at: i64| async move {
        store
            .revoke_family(&id(family), revoke(RevokeReason::Logout, at))
            .await
            .unwrap()
    };
    let revoked = revoke("f1", START + 5).await.unwrap();
    assert_eq!(
        revoked.revoked.map(|r| (r.at, r.reason)),
        Some((START + 5, RevokeReason::Logout))
    );
    assert!(revoke("f1", START + 6).await.is_none(), "already revoked");
    assert!(revoke("nope", START).await.is_none(), "unknown");
    assert!(matches!(
        rotate(store, rotation(1, 2, START + 7)).await,
        RotationOutcome::Revoked(_)
    ));
    let found = store.find_by_token(hash(1)).await.unwrap().unwrap();
    assert_eq!(found.revoked.unwrap().reason, RevokeReason::Logout);
}

pub(in crate::store::testing) async fn cap_evicts_the_oldest_live_family<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    let login = |family: &'static str, user: &'static str, client: &'static str, token: u8| {
        let now = clock.unix_seconds();
        async move { create(store, new_family(family, user, client, token, now), 3).await }
    };
    for (token, family) in [(1, "f1"), (2, "f2"), (3, "f3")] {
        assert!(login(family, "alice", "web", token).await.is_empty());
        clock.advance_secs(1);
    }
    // Other users and other clients have their own caps.
    login("b1", "bob", "web", 10).await;
    login("m1", "alice", "mobile", 11).await;
    let evicted = login("f4", "alice", "web", 4).await;
    assert_eq!(evicted.len(), 1);
    assert_eq!(evicted[0].id, id("f1"));
    assert_eq!(evicted[0].revoked.unwrap().reason, RevokeReason::Evicted);
    assert!(matches!(
        rotate(store, rotation(1, 20, clock.unix_seconds())).await,
        RotationOutcome::Revoked(_)
    ));
    assert_eq!(
        live(store, "alice", clock.unix_seconds()).await,
        [id("f2"), id("f3"), id("f4"), id("m1")],
        "oldest first, ties by id"
    );

    // Revoked and expired families do not count against the cap.
    store
        .revoke_family(
            &id("f2"),
            revoke(RevokeReason::Logout, clock.unix_seconds()),
        )
        .await
        .unwrap();
    assert!(login("f5", "alice", "web", 5).await.is_empty());
    clock.advance_secs(IDLE);
    let evicted = create(
        store,
        new_family("f6", "alice", "web", 6, clock.unix_seconds()),
        1,
    )
    .await;
    assert!(
        evicted.is_empty(),
        "expired families are not evicted, they are already dead"
    );
}

pub(in crate::store::testing) async fn revoking_a_user_ends_every_session<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    create(
        store,
        new_family("f2", "alice", "mobile", 2, START + 1),
        CAP,
    )
    .await;
    create(store, new_family("b1", "bob", "web", 3, START), CAP).await;
    let revoke_alice = |at| store.revoke_user("alice", revoke(RevokeReason::UserRevoked, at));
    let mut revoked: Vec<FamilyId> = revoke_alice(START + 2)
        .await
        .unwrap()
        .into_iter()
        .map(|family| family.id)
        .collect();
    revoked.sort();
    assert_eq!(revoked, [id("f1"), id("f2")]);
    assert!(revoke_alice(START + 3).await.unwrap().is_empty());
    assert!(live(store, "alice", START + 3).await.is_empty());
    assert_eq!(live(store, "bob", START + 3).await, [id("b1")]);
    let mobile = Rotation {
        client_id: "mobile".into(),
        ..rotation(2, 9, START + 4)
    };
    assert!(matches!(
        rotate(store, mobile).await,
        RotationOutcome::Revoked(_)
    ));
}

pub(in crate::store::testing) async fn another_clients_token_is_refused_untouched<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    let foreign = Rotation {
        client_id: "mobile".into(),
        ..rotation(1, 2, clock.unix_seconds())
    };
    match rotate(store, foreign).await {
        RotationOutcome::WrongClient(family) => {
            assert_eq!((family.generation, family.revoked), (0, None));
        }
        other => panic!("expected a client mismatch, got {other:?}"),
    }
    rotated(store, 1, 2, clock).await;
}

pub(in crate::store::testing) async fn tokens_of_any_generation_find_their_family<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    rotated(store, 1, 2, clock).await;
    rotated(store, 2, 3, clock).await;
    for token in [1, 2, 3] {
        let found = store.find_by_token(hash(token)).await.unwrap();
        assert_eq!(found.map(|family| family.id), Some(id("f1")));
    }
    assert_eq!(find(store, "f1").await.unwrap().generation, 2);
}

pub(in crate::store::testing) async fn purge_deletes_expired_families_in_batches<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    let mut short = new_family("old", "alice", "web", 1, clock.unix_seconds());
    short.absolute_expires_at = START + 10;
    create(store, short, CAP).await;
    for (presented, successor) in [(1, 2), (2, 3), (3, 4)] {
        rotated(store, presented, successor, clock).await;
    }
    create(
        store,
        new_family("live", "alice", "web", 50, clock.unix_seconds()),
        CAP,
    )
    .await;
    rotated(store, 50, 51, clock).await;

    assert!(
        store
            .purge_expired(START + 9, 100)
            .await
            .unwrap()
            .is_empty(),
        "nothing has expired yet"
    );
    clock.set_unix(START + 10);
    let mut total = PurgeReport::default();
    let mut batches = 0;
    loop {
        let report = store.purge_expired(clock.unix_seconds(), 3).await.unwrap();
        if report.is_empty() {
            break;
        }
        assert!(
            report.tokens <= 3 && report.families <= 3,
            "a batch stays within its size: {report:?}"
        );
        total += report;
        batches += 1;
    }
    assert_eq!(
        total,
        PurgeReport {
            tokens: 4,
            families: 1,
            ..PurgeReport::default()
        }
    );
    assert!(
        batches >= 2,
        "four tombstones take more than one batch of three"
    );
    assert!(find(store, "old").await.is_none());
    assert_eq!(
        rotate(store, rotation(4, 5, clock.unix_seconds())).await,
        RotationOutcome::Unknown
    );
    // The live family keeps its tombstones, so replay detection still works.
    match rotate(store, rotation(50, 52, clock.unix_seconds() + GRACE)).await {
        RotationOutcome::Replay {
            presented_generation: 0,
            ..
        } => {}
        other => panic!("expected a replay, got {other:?}"),
    }
}

pub(in crate::store::testing) async fn a_closed_store_refuses_every_call<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    store.close().await;
    let now = clock.unix_seconds();
    let closed = |call: &str, result: Result<(), StoreError>| {
        assert!(
            matches!(result, Err(StoreError::Closed)),
            "{call} after close: expected StoreError::Closed, got {result:?}"
        );
    };
    let family = new_family("f2", "alice", "web", 2, now);
    closed(
        "create_family",
        store.create_family(family, CAP).await.map(drop),
    );
    closed("rotate", store.rotate(rotation(1, 3, now)).await.map(drop));
    closed(
        "find_by_token",
        store.find_by_token(hash(1)).await.map(drop),
    );
    closed("find_family", store.find_family(&id("f1")).await.map(drop));
    let ended = revoke(RevokeReason::Logout, now);
    closed(
        "revoke_family",
        store.revoke_family(&id("f1"), ended).await.map(drop),
    );
    closed(
        "revoke_user",
        store.revoke_user("alice", ended).await.map(drop),
    );
    closed(
        "live_families",
        store.live_families("alice", now).await.map(drop),
    );
    closed("deny", store.deny(Denial::token("j", now + 1)).await);
    closed(
        "denials_after",
        store.denials_after(0, now, 10).await.map(drop),
    );
    let key = ThrottleKey::for_username("alice");
    closed(
        "reserve_login",
        store
            .reserve_login(&key, &super::throttle::RULE, now)
            .await
            .map(drop),
    );
    closed(
        "clear_login_attempts",
        store.clear_login_attempts(&key).await,
    );
    let once = OnceKey::new("test", &["x"]);
    closed(
        "use_once",
        store.use_once(&once, now + 1, now).await.map(drop),
    );
    closed("signing_keys", store.signing_keys().await.map(drop));
    let key = StoredKey {
        kid: "k".into(),
        algorithm: tessera_core::jose::Algorithm::EdDsa,
        material: vec![1],
        created_at: now,
        active_from: now,
    };
    closed(
        "add_signing_key",
        store.add_signing_key(key, true).await.map(drop),
    );
    closed(
        "remove_signing_key",
        store.remove_signing_key("k").await.map(drop),
    );
    closed(
        "shared_secret",
        store.shared_secret("s", b"v").await.map(drop),
    );
    closed(
        "purge_expired",
        store.purge_expired(now, 10).await.map(drop),
    );
    closed("ping", store.ping().await);
    // Closing again is harmless (the suite closes every store once more after its case).
    store.close().await;
}

pub(in crate::store::testing) async fn a_retry_is_served_only_to_the_rotating_requester<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    rotated(store, 1, 2, clock).await;
    clock.advance_secs(1);
    let elsewhere = Rotation {
        fingerprint: fingerprint(2),
        ..rotation(1, 9, clock.unix_seconds())
    };
    match rotate(store, elsewhere).await {
        RotationOutcome::Replay {
            family,
            presented_generation,
        } => {
            assert_eq!((presented_generation, family.generation), (0, 1));
            assert_eq!(
                family.revoked.map(|revocation| revocation.reason),
                Some(RevokeReason::ReuseDetected)
            );
        }
        other => panic!("a retry from another requester is a replay, got {other:?}"),
    }
}

pub(in crate::store::testing) async fn retries_of_one_generation_are_capped<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    // Each rotation starts a new budget.
    for (previous, current) in [(1, 2), (2, 3)] {
        rotated(store, previous, current, clock).await;
        for _ in 0..MAX_RETRIES {
            assert!(
                matches!(
                    rotate(store, rotation(previous, 9, clock.unix_seconds())).await,
                    RotationOutcome::Retry { .. }
                ),
                "within the budget of generation {previous}"
            );
        }
    }
    assert!(matches!(
        rotate(store, rotation(2, 9, clock.unix_seconds())).await,
        RotationOutcome::Replay { .. }
    ));
    assert!(find(store, "f1").await.unwrap().revoked.is_some());
}

pub(in crate::store::testing) async fn a_family_bound_to_a_dpop_key_needs_that_key<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    let bound = NewFamily {
        dpop_jkt: Some("key-1".into()),
        ..new_family("f1", "alice", "web", 1, clock.unix_seconds())
    };
    create(store, bound, CAP).await;
    let with_key = |presented, successor, key: Option<&str>| Rotation {
        dpop_jkt: key.map(str::to_owned),
        ..rotation(presented, successor, clock.unix_seconds())
    };
    for key in [None, Some("key-2")] {
        assert!(
            matches!(
                rotate(store, with_key(1, 2, key)).await,
                RotationOutcome::KeyMismatch(_)
            ),
            "{key:?}"
        );
    }
    assert!(
        store.find_by_token(hash(2)).await.unwrap().is_none(),
        "nothing was installed"
    );
    let family = match rotate(store, with_key(1, 3, Some("key-1"))).await {
        RotationOutcome::Rotated(family) => family,
        other => panic!("the key's holder rotates, got {other:?}"),
    };
    assert_eq!(family.dpop_jkt.as_deref(), Some("key-1"));
    assert_eq!(
        find(store, "f1").await.unwrap().dpop_jkt.as_deref(),
        Some("key-1")
    );
    // Within the grace window and after it, a token without the key changes nothing, not even by
    // revoking the family as a replay would.
    for wait in [1, GRACE] {
        clock.advance_secs(wait);
        assert!(matches!(
            rotate(store, with_key(1, 9, None)).await,
            RotationOutcome::KeyMismatch(_)
        ));
    }
    assert!(find(store, "f1").await.unwrap().revoked.is_none());
    assert!(matches!(
        rotate(store, with_key(3, 4, Some("key-1"))).await,
        RotationOutcome::Rotated(_)
    ));
    // An unbound family is rotated whatever key the request proved.
    alice_on_web_as(store, clock, "f2", 20).await;
    assert!(matches!(
        rotate(store, with_key(20, 21, Some("key-9"))).await,
        RotationOutcome::Rotated(_)
    ));
}

/// Creates the family `id` of alice on `web` with the token `hash(token)`, now.
async fn alice_on_web_as<S: RefreshStore>(store: &S, clock: &ManualClock, id: &str, token: u8) {
    let family = new_family(id, "alice", "web", token, clock.unix_seconds());
    create(store, family, CAP).await;
}
