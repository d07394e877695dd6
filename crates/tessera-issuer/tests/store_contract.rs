//! The contract every `RefreshStore` keeps, run against each implementation.
//!
//! A new backend (PostgreSQL, Redis) joins by adding one `contract_suite!` line at the bottom. Time is a
//! `ManualClock` the tests move; stores never read a clock themselves.

#[cfg(test)]
mod contract {
    use tessera_issuer::{
        Clock as _, FamilyId, ManualClock, NewFamily, RefreshStore, RevokeReason, Rotation,
        RotationOutcome, RotationSalt, TokenHash,
    };

    pub(crate) const START: i64 = 1_800_000_000;
    pub(crate) const ABSOLUTE: i64 = 30 * 86_400;
    pub(crate) const IDLE: i64 = 14 * 86_400;
    pub(crate) const GRACE: i64 = 30;

    pub(crate) fn hash(n: u8) -> TokenHash {
        TokenHash::from_slice(&[n; 32]).unwrap()
    }

    pub(crate) fn salt(n: u8) -> RotationSalt {
        RotationSalt::from_slice(&[n; 32]).unwrap()
    }

    pub(crate) fn new_family(id: &str, user: &str, client: &str, token: u8, now: i64) -> NewFamily {
        NewFamily {
            id: FamilyId::from(id.to_owned()),
            user_id: user.into(),
            client_id: client.into(),
            scope: Some("read write".into()),
            roles: vec!["admin".into()],
            user_agent: Some("contract-test".into()),
            token: hash(token),
            created_at: now,
            absolute_expires_at: now + ABSOLUTE,
            idle_expires_at: now + IDLE,
        }
    }

    pub(crate) fn rotation(presented: u8, successor: u8, now: i64) -> Rotation {
        Rotation {
            presented: hash(presented),
            client_id: "web".into(),
            successor: hash(successor),
            salt: salt(successor),
            now,
            idle_ttl: IDLE,
            grace: GRACE,
        }
    }

    pub(crate) fn id(text: &str) -> FamilyId {
        FamilyId::from(text.to_owned())
    }

    async fn rotate<S: RefreshStore>(store: &S, rotation: Rotation) -> RotationOutcome {
        store.rotate(rotation).await.unwrap()
    }

    pub(crate) async fn current_token_rotates<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        store
            .create_family(
                new_family("f1", "alice", "web", 1, clock.unix_seconds()),
                50,
            )
            .await
            .unwrap();
        clock.advance_secs(100);
        let RotationOutcome::Rotated(family) =
            rotate(&store, rotation(1, 2, clock.unix_seconds())).await
        else {
            panic!("the current token must rotate")
        };
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
        let RotationOutcome::Rotated(family) =
            rotate(&store, rotation(2, 3, clock.unix_seconds())).await
        else {
            panic!("the successor is current")
        };
        assert_eq!(family.generation, 2);
    }

    pub(crate) async fn previous_token_within_grace_is_a_retry<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        store
            .create_family(
                new_family("f1", "alice", "web", 1, clock.unix_seconds()),
                50,
            )
            .await
            .unwrap();
        assert!(matches!(
            rotate(&store, rotation(1, 2, clock.unix_seconds())).await,
            RotationOutcome::Rotated(_)
        ));
        clock.advance_secs(GRACE - 1);
        // The retry brings its own (different) candidate successor: the store must answer with the first one.
        match rotate(&store, rotation(1, 9, clock.unix_seconds())).await {
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
        assert!(matches!(
            rotate(&store, rotation(2, 3, clock.unix_seconds())).await,
            RotationOutcome::Rotated(_)
        ));
    }

    pub(crate) async fn previous_token_after_grace_is_a_replay<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        store
            .create_family(
                new_family("f1", "alice", "web", 1, clock.unix_seconds()),
                50,
            )
            .await
            .unwrap();
        assert!(matches!(
            rotate(&store, rotation(1, 2, clock.unix_seconds())).await,
            RotationOutcome::Rotated(_)
        ));
        clock.advance_secs(GRACE);
        match rotate(&store, rotation(1, 9, clock.unix_seconds())).await {
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
        assert!(matches!(
            rotate(&store, rotation(2, 3, clock.unix_seconds())).await,
            RotationOutcome::Revoked(_)
        ));
        assert!(matches!(
            rotate(&store, rotation(1, 4, clock.unix_seconds())).await,
            RotationOutcome::Revoked(_)
        ));
    }

    pub(crate) async fn older_generations_are_replays_even_within_grace<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        store
            .create_family(
                new_family("f1", "alice", "web", 1, clock.unix_seconds()),
                50,
            )
            .await
            .unwrap();
        assert!(matches!(
            rotate(&store, rotation(1, 2, clock.unix_seconds())).await,
            RotationOutcome::Rotated(_)
        ));
        assert!(matches!(
            rotate(&store, rotation(2, 3, clock.unix_seconds())).await,
            RotationOutcome::Rotated(_)
        ));
        match rotate(&store, rotation(1, 9, clock.unix_seconds())).await {
            RotationOutcome::Replay {
                family,
                presented_generation,
            } => {
                assert_eq!((presented_generation, family.generation), (0, 2));
            }
            other => panic!("expected a replay, got {other:?}"),
        }
    }

    pub(crate) async fn zero_grace_makes_every_reuse_a_replay<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        store
            .create_family(
                new_family("f1", "alice", "web", 1, clock.unix_seconds()),
                50,
            )
            .await
            .unwrap();
        let strict = |presented, successor| Rotation {
            grace: 0,
            ..rotation(presented, successor, START)
        };
        assert!(matches!(
            store.rotate(strict(1, 2)).await.unwrap(),
            RotationOutcome::Rotated(_)
        ));
        assert!(matches!(
            store.rotate(strict(1, 9)).await.unwrap(),
            RotationOutcome::Replay { .. }
        ));
    }

    pub(crate) async fn unknown_tokens_are_unknown<S: RefreshStore>(store: S) {
        assert_eq!(
            rotate(&store, rotation(1, 2, START)).await,
            RotationOutcome::Unknown
        );
        assert!(store.find_by_token(hash(1)).await.unwrap().is_none());
        assert!(store.find_family(&id("nope")).await.unwrap().is_none());
    }

    pub(crate) async fn absolute_expiry_is_exclusive_and_fixed<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        let mut family = new_family("f1", "alice", "web", 1, clock.unix_seconds());
        family.absolute_expires_at = START + 100;
        family.idle_expires_at = START + 1_000;
        store.create_family(family, 50).await.unwrap();
        let stored = store.find_family(&id("f1")).await.unwrap().unwrap();
        assert_eq!(
            stored.idle_expires_at,
            START + 100,
            "the idle end never passes the absolute end"
        );
        clock.set_unix(START + 99);
        let RotationOutcome::Rotated(rotated) =
            rotate(&store, rotation(1, 2, clock.unix_seconds())).await
        else {
            panic!("one second before the end the family is live")
        };
        assert_eq!(
            rotated.idle_expires_at,
            START + 100,
            "sliding stops at the absolute end"
        );
        clock.set_unix(START + 100);
        assert!(matches!(
            rotate(&store, rotation(2, 3, clock.unix_seconds())).await,
            RotationOutcome::Expired(_)
        ));
        assert!(
            store
                .live_families("alice", clock.unix_seconds())
                .await
                .unwrap()
                .is_empty()
        );
    }

    pub(crate) async fn idle_expiry_slides_with_each_rotation<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        store
            .create_family(
                new_family("f1", "alice", "web", 1, clock.unix_seconds()),
                50,
            )
            .await
            .unwrap();
        clock.set_unix(START + IDLE - 1);
        assert!(matches!(
            rotate(&store, rotation(1, 2, clock.unix_seconds())).await,
            RotationOutcome::Rotated(_)
        ));
        clock.set_unix(START + IDLE + IDLE - 2);
        assert!(matches!(
            rotate(&store, rotation(2, 3, clock.unix_seconds())).await,
            RotationOutcome::Rotated(_)
        ));
        clock.advance_secs(IDLE);
        match rotate(&store, rotation(3, 4, clock.unix_seconds())).await {
            RotationOutcome::Expired(family) => assert_eq!(family.generation, 2),
            other => panic!("expected expiry, got {other:?}"),
        }
        // An expired family's previous token is not a replay (nothing to protect), just expired.
        assert!(matches!(
            rotate(&store, rotation(2, 5, clock.unix_seconds())).await,
            RotationOutcome::Expired(_)
        ));
        assert!(
            store
                .find_family(&id("f1"))
                .await
                .unwrap()
                .unwrap()
                .revoked
                .is_none()
        );
    }

    pub(crate) async fn revoked_families_refuse_every_token<S: RefreshStore>(store: S) {
        store
            .create_family(new_family("f1", "alice", "web", 1, START), 50)
            .await
            .unwrap();
        let revoked = store
            .revoke_family(&id("f1"), RevokeReason::Logout, START + 5)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            revoked.revoked.map(|r| (r.at, r.reason)),
            Some((START + 5, RevokeReason::Logout))
        );
        assert!(
            store
                .revoke_family(&id("f1"), RevokeReason::Logout, START + 6)
                .await
                .unwrap()
                .is_none()
        );
        assert!(
            store
                .revoke_family(&id("nope"), RevokeReason::Logout, START)
                .await
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            rotate(&store, rotation(1, 2, START + 7)).await,
            RotationOutcome::Revoked(_)
        ));
        let found = store.find_by_token(hash(1)).await.unwrap().unwrap();
        assert_eq!(found.revoked.unwrap().reason, RevokeReason::Logout);
    }

    pub(crate) async fn cap_evicts_the_oldest_live_family<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        for (n, name) in [(1, "f1"), (2, "f2"), (3, "f3")] {
            let evicted = store
                .create_family(new_family(name, "alice", "web", n, clock.unix_seconds()), 3)
                .await
                .unwrap();
            assert!(evicted.is_empty());
            clock.advance_secs(1);
        }
        // Other users and other clients have their own caps.
        store
            .create_family(new_family("b1", "bob", "web", 10, clock.unix_seconds()), 3)
            .await
            .unwrap();
        store
            .create_family(
                new_family("m1", "alice", "mobile", 11, clock.unix_seconds()),
                3,
            )
            .await
            .unwrap();
        let evicted = store
            .create_family(new_family("f4", "alice", "web", 4, clock.unix_seconds()), 3)
            .await
            .unwrap();
        assert_eq!(evicted.len(), 1);
        assert_eq!(evicted[0].id, id("f1"));
        assert_eq!(evicted[0].revoked.unwrap().reason, RevokeReason::Evicted);
        assert!(matches!(
            rotate(&store, rotation(1, 20, clock.unix_seconds())).await,
            RotationOutcome::Revoked(_)
        ));
        let live: Vec<FamilyId> = store
            .live_families("alice", clock.unix_seconds())
            .await
            .unwrap()
            .into_iter()
            .map(|f| f.id)
            .collect();
        assert_eq!(
            live,
            [id("f2"), id("f3"), id("f4"), id("m1")],
            "oldest first, ties by id"
        );

        // Revoked and expired families do not count against the cap.
        store
            .revoke_family(&id("f2"), RevokeReason::Logout, clock.unix_seconds())
            .await
            .unwrap();
        let evicted = store
            .create_family(new_family("f5", "alice", "web", 5, clock.unix_seconds()), 3)
            .await
            .unwrap();
        assert!(evicted.is_empty());
        clock.advance_secs(IDLE);
        let evicted = store
            .create_family(new_family("f6", "alice", "web", 6, clock.unix_seconds()), 1)
            .await
            .unwrap();
        assert!(
            evicted.is_empty(),
            "expired families are not evicted, they are already dead"
        );
    }

    pub(crate) async fn revoking_a_user_ends_every_session<S: RefreshStore>(store: S) {
        store
            .create_family(new_family("f1", "alice", "web", 1, START), 50)
            .await
            .unwrap();
        store
            .create_family(new_family("f2", "alice", "mobile", 2, START + 1), 50)
            .await
            .unwrap();
        store
            .create_family(new_family("b1", "bob", "web", 3, START), 50)
            .await
            .unwrap();
        let mut revoked: Vec<FamilyId> = store
            .revoke_user("alice", RevokeReason::UserRevoked, START + 2)
            .await
            .unwrap()
            .into_iter()
            .map(|family| family.id)
            .collect();
        revoked.sort();
        assert_eq!(revoked, [id("f1"), id("f2")]);
        assert!(
            store
                .revoke_user("alice", RevokeReason::UserRevoked, START + 3)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .live_families("alice", START + 3)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            store.live_families("bob", START + 3).await.unwrap().len(),
            1
        );
        let mobile = Rotation {
            client_id: "mobile".into(),
            ..rotation(2, 9, START + 4)
        };
        assert!(matches!(
            rotate(&store, mobile).await,
            RotationOutcome::Revoked(_)
        ));
    }

    pub(crate) async fn another_clients_token_is_refused_untouched<S: RefreshStore>(store: S) {
        store
            .create_family(new_family("f1", "alice", "web", 1, START), 50)
            .await
            .unwrap();
        let foreign = Rotation {
            client_id: "mobile".into(),
            ..rotation(1, 2, START)
        };
        match store.rotate(foreign).await.unwrap() {
            RotationOutcome::WrongClient(family) => {
                assert_eq!((family.generation, family.revoked), (0, None))
            }
            other => panic!("expected a client mismatch, got {other:?}"),
        }
        assert!(matches!(
            rotate(&store, rotation(1, 2, START)).await,
            RotationOutcome::Rotated(_)
        ));
    }

    pub(crate) async fn tokens_of_any_generation_find_their_family<S: RefreshStore>(store: S) {
        store
            .create_family(new_family("f1", "alice", "web", 1, START), 50)
            .await
            .unwrap();
        rotate(&store, rotation(1, 2, START)).await;
        rotate(&store, rotation(2, 3, START)).await;
        for token in [1, 2, 3] {
            assert_eq!(
                store.find_by_token(hash(token)).await.unwrap().unwrap().id,
                id("f1")
            );
        }
        assert_eq!(
            store
                .find_family(&id("f1"))
                .await
                .unwrap()
                .unwrap()
                .generation,
            2
        );
    }

    pub(crate) async fn purge_deletes_expired_families_in_batches<S: RefreshStore>(store: S) {
        let clock = ManualClock::at_unix(START);
        let mut short = new_family("old", "alice", "web", 1, clock.unix_seconds());
        short.absolute_expires_at = START + 10;
        store.create_family(short, 50).await.unwrap();
        for (presented, successor) in [(1, 2), (2, 3), (3, 4)] {
            rotate(&store, rotation(presented, successor, clock.unix_seconds())).await;
        }
        store
            .create_family(
                new_family("live", "alice", "web", 50, clock.unix_seconds()),
                50,
            )
            .await
            .unwrap();
        rotate(&store, rotation(50, 51, clock.unix_seconds())).await;

        assert!(
            store
                .purge_expired(START + 9, 100)
                .await
                .unwrap()
                .is_empty(),
            "nothing has expired yet"
        );
        clock.set_unix(START + 10);
        let mut total = tessera_issuer::PurgeReport::default();
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
            total.tokens += report.tokens;
            total.families += report.families;
            batches += 1;
        }
        assert_eq!(
            total,
            tessera_issuer::PurgeReport {
                tokens: 4,
                families: 1,
                denials: 0
            }
        );
        assert!(
            batches >= 2,
            "four tombstones take more than one batch of three"
        );
        assert!(store.find_family(&id("old")).await.unwrap().is_none());
        assert_eq!(
            rotate(&store, rotation(4, 5, clock.unix_seconds())).await,
            RotationOutcome::Unknown
        );
        // The live family keeps its tombstones, so replay detection still works.
        match rotate(&store, rotation(50, 52, clock.unix_seconds() + GRACE)).await {
            RotationOutcome::Replay {
                presented_generation: 0,
                ..
            } => {}
            other => panic!("expected a replay, got {other:?}"),
        }
    }
}

#[cfg(test)]
mod denials {
    use tessera_issuer::{AccessDenials, RefreshStore, UserDenial};

    use super::contract::START;

    fn alice(issued_before: i64, until: i64) -> UserDenial {
        UserDenial {
            user_id: "alice".into(),
            issued_before,
            until,
        }
    }

    pub(crate) async fn access_denials_are_kept_until_their_tokens_expire<S: RefreshStore>(
        store: S,
    ) {
        store.deny_access_token("j1", START + 100).await.unwrap();
        store.deny_access_token("j1", START + 50).await.unwrap();
        store.deny_access_token("j2", START + 10).await.unwrap();
        store
            .deny_user_tokens(alice(START, START + 900))
            .await
            .unwrap();
        store
            .deny_user_tokens(alice(START - 5, START + 800))
            .await
            .unwrap();

        let mut denials = store.access_denials(START).await.unwrap();
        denials.tokens.sort();
        let expected = AccessDenials {
            tokens: vec![("j1".into(), START + 100), ("j2".into(), START + 10)],
            users: vec![alice(START, START + 900)],
        };
        assert_eq!(denials, expected, "a later write never shortens a denial");
        let later = store.access_denials(START + 10).await.unwrap();
        assert_eq!(
            later.tokens,
            [("j1".to_owned(), START + 100)],
            "ended denials are not in force"
        );

        let report = store.purge_expired(START + 100, 10).await.unwrap();
        assert_eq!(report.denials, 2);
        let report = store.purge_expired(START + 900, 10).await.unwrap();
        assert_eq!(report.denials, 1);
        assert_eq!(
            store.access_denials(START).await.unwrap(),
            AccessDenials::default(),
            "purged"
        );
    }
}

macro_rules! contract_suite {
    ($module:ident, $store:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;

            contract_suite!(@tests $store;
                current_token_rotates,
                previous_token_within_grace_is_a_retry,
                previous_token_after_grace_is_a_replay,
                older_generations_are_replays_even_within_grace,
                zero_grace_makes_every_reuse_a_replay,
                unknown_tokens_are_unknown,
                absolute_expiry_is_exclusive_and_fixed,
                idle_expiry_slides_with_each_rotation,
                revoked_families_refuse_every_token,
                cap_evicts_the_oldest_live_family,
                revoking_a_user_ends_every_session,
                another_clients_token_is_refused_untouched,
                tokens_of_any_generation_find_their_family,
                purge_deletes_expired_families_in_batches,
            );
        }
    };
    (@tests $store:expr; $($test:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let (store, _guard) = $store;
                super::contract::$test(store).await;
            }
        )*

        #[tokio::test]
        async fn access_denials_are_kept_until_their_tokens_expire() {
            let (store, _guard) = $store;
            super::denials::access_denials_are_kept_until_their_tokens_expire(store).await;
        }
    };
}

contract_suite!(memory, (tessera_issuer::MemoryStore::new(), ()));
contract_suite!(
    sqlite_in_memory,
    (tessera_issuer::SqliteStore::in_memory().await.unwrap(), ())
);
contract_suite!(sqlite_file, {
    let dir = tempfile::tempdir().unwrap();
    (
        tessera_issuer::SqliteStore::open(dir.path().join("tokens.db"))
            .await
            .unwrap(),
        dir,
    )
});
