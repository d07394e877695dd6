//! Access-token denials: what revocations deny, in the same step, and the log readers resume in.

use tessera_core::{Clock as _, ManualClock};

use super::*;

pub(in crate::store::testing) async fn revoking_a_family_denies_its_access_tokens<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    let now = clock.unix_seconds();
    let revoked = store
        .revoke_family(&id("f1"), revoke(RevokeReason::Logout, now))
        .await
        .unwrap();
    assert!(revoked.is_some());
    assert_eq!(
        all_denials(store, now).await,
        [Denial::session("f1", now + DENY_FOR)],
        "the family's access tokens are denied by `sid`, until the last of them has expired"
    );
    let after = store.denials_after(0, now, 10).await.unwrap().last;
    let again = store
        .revoke_family(&id("f1"), revoke(RevokeReason::Logout, now + 5))
        .await
        .unwrap();
    assert!(again.is_none());
    assert!(
        store
            .denials_after(after, now, 10)
            .await
            .unwrap()
            .denials
            .is_empty(),
        "revoking a revoked family writes nothing"
    );
}

pub(in crate::store::testing) async fn revoking_a_user_denies_each_session_and_every_earlier_token<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    create(store, new_family("f2", "alice", "mobile", 2, START), CAP).await;
    create(store, new_family("b1", "bob", "web", 3, START), CAP).await;
    store
        .revoke_family(&id("f2"), revoke(RevokeReason::Logout, START))
        .await
        .unwrap();
    clock.advance_secs(10);
    let now = clock.unix_seconds();
    let revoked = store
        .revoke_user("alice", revoke(RevokeReason::UserRevoked, now))
        .await
        .unwrap();
    assert_eq!(
        revoked.iter().map(|family| &family.id).collect::<Vec<_>>(),
        [&id("f1")]
    );
    let mut denials = all_denials(store, now).await;
    denials.sort_by(|a, b| a.target.cmp(&b.target));
    assert_eq!(
        denials,
        [
            Denial::session("f1", now + DENY_FOR),
            Denial::session("f2", START + DENY_FOR),
            Denial::subject("alice", now, now + DENY_FOR),
        ]
    );
    // With no session left to end, the user's earlier tokens are still denied, and the mark only moves on.
    clock.advance_secs(5);
    let later = clock.unix_seconds();
    assert!(
        store
            .revoke_user("alice", revoke(RevokeReason::UserRevoked, later))
            .await
            .unwrap()
            .is_empty()
    );
    let marks: Vec<Denial> = all_denials(store, later)
        .await
        .into_iter()
        .filter(|denial| matches!(denial.target, crate::store::DenialTarget::Subject { .. }))
        .collect();
    assert_eq!(marks, [Denial::subject("alice", later, later + DENY_FOR)]);
}

pub(in crate::store::testing) async fn a_replay_denies_the_familys_access_tokens<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    alice_on_web(store, clock).await;
    rotated(store, 1, 2, clock).await;
    clock.advance_secs(GRACE);
    let now = clock.unix_seconds();
    assert!(matches!(
        rotate(store, rotation(1, 9, now)).await,
        RotationOutcome::Replay { .. }
    ));
    assert_eq!(
        all_denials(store, now).await,
        [Denial::session("f1", now + DENY_FOR)]
    );
}

pub(in crate::store::testing) async fn denials_keep_their_later_bounds_and_are_read_in_write_order<
    S: RefreshStore,
>(
    store: &S,
    _: &ManualClock,
) {
    for denial in [
        Denial::token("j1", START + 100),
        Denial::token("j2", START + 10),
        Denial::subject("alice", START, START + 900),
        Denial::token("j1", START + 50),
        Denial::subject("alice", START - 5, START + 800),
        Denial::session("s1", START + 300),
    ] {
        store.deny(denial).await.unwrap();
    }
    assert_eq!(
        all_denials(store, START).await,
        [
            Denial::token("j1", START + 100),
            Denial::token("j2", START + 10),
            Denial::subject("alice", START, START + 900),
            Denial::session("s1", START + 300),
        ],
        "a later write never shortens a denial, and one that changes nothing is not a new write"
    );
    let first = store.denials_after(0, START, 10).await.unwrap();
    assert!(!first.more);
    let tail = store.denials_after(first.last, START, 10).await.unwrap();
    assert_eq!(
        (tail.denials.len(), tail.last, tail.more),
        (0, first.last, false),
        "nothing after the last write"
    );

    store
        .deny(Denial::subject("alice", START + 20, START + 900))
        .await
        .unwrap();
    assert_eq!(
        store
            .denials_after(first.last, START, 10)
            .await
            .unwrap()
            .denials,
        [Denial::subject("alice", START + 20, START + 900)],
        "an extended denial is written again, after the others"
    );

    let page = store.denials_after(0, START, 2).await.unwrap();
    assert_eq!(
        (page.denials.len(), page.more),
        (2, true),
        "pages are cut at the limit"
    );
    assert_eq!(
        all_denials(store, START + 10)
            .await
            .iter()
            .map(Denial::key)
            .map(|(_, key)| key.to_owned())
            .collect::<Vec<_>>(),
        ["j1", "s1", "alice"],
        "ended denials are not in force"
    );

    assert_eq!(
        store.purge_expired(START + 100, 10).await.unwrap().denials,
        2
    );
    assert_eq!(
        store.purge_expired(START + 900, 10).await.unwrap().denials,
        2
    );
    assert!(all_denials(store, START).await.is_empty(), "purged");
}

pub(in crate::store::testing) async fn denial_sequence_numbers_never_go_back<S: RefreshStore>(
    store: &S,
    _: &ManualClock,
) {
    store.deny(Denial::token("old", START + 10)).await.unwrap();
    let seen = store.denials_after(0, START, 10).await.unwrap().last;
    assert_eq!(
        store.purge_expired(START + 10, 10).await.unwrap().denials,
        1
    );
    store.deny(Denial::token("new", START + 20)).await.unwrap();
    assert_eq!(
        store
            .denials_after(seen, START + 10, 10)
            .await
            .unwrap()
            .denials,
        [Denial::token("new", START + 20)],
        "a reader resuming after a purged write still sees the next one"
    );
}
