//! The login throttle: reservations counted atomically before the password is checked.

use futures_util::future::join_all;
use tessera_core::{Clock as _, ManualClock};

use super::*;
use crate::store::{LoginAttempt, ThrottleKey, ThrottleRule};

/// The rule the cases apply: the third attempt locks for 2 s, doubling up to 10 s; 100 s window.
pub(super) const RULE: ThrottleRule = ThrottleRule {
    lock_after: 3,
    base_delay: 2,
    max_delay: 10,
    window: 100,
};

pub(in crate::store::testing) async fn login_reservations_follow_the_rule<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    let alice = ThrottleKey::for_username("alice");
    let mut reference = None;
    // Attempts at these offsets, each checked against the rule's reference semantics.
    for offset in [0, 0, 0, 1, 2, 6, 6, 14, 24, 33, 34, 200, 200] {
        let now = START + offset;
        let (expected, next) = RULE.reserve(reference, now);
        if next.is_some() {
            reference = next;
        }
        let got = store.reserve_login(&alice, &RULE, now).await.unwrap();
        assert_eq!(got, expected, "attempt at +{offset}s");
    }
    assert_eq!(
        store
            .reserve_login(&alice, &RULE, START + 200)
            .await
            .unwrap(),
        LoginAttempt::Allowed,
        "after the window the count restarted"
    );
    assert_eq!(
        store
            .reserve_login(&alice, &RULE, START + 200)
            .await
            .unwrap(),
        LoginAttempt::Locked { retry_after: 2 }
    );
    let bob = ThrottleKey::for_username("bob");
    assert_eq!(
        store.reserve_login(&bob, &RULE, START + 200).await.unwrap(),
        LoginAttempt::Allowed,
        "other usernames are unaffected"
    );
    store.clear_login_attempts(&alice).await.unwrap();
    assert_eq!(
        store
            .reserve_login(&alice, &RULE, START + 200)
            .await
            .unwrap(),
        LoginAttempt::Allowed,
        "a success clears the lockout"
    );
    let _ = clock.unix_seconds();
}

pub(in crate::store::testing) async fn concurrent_login_reservations_allow_exactly_the_free_attempts<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    let key = ThrottleKey::for_username("alice");
    let now = clock.unix_seconds();
    let attempts = join_all((0..20).map(|_| store.reserve_login(&key, &RULE, now))).await;
    let allowed = attempts
        .into_iter()
        .map(Result::unwrap)
        .filter(|attempt| *attempt == LoginAttempt::Allowed)
        .count();
    assert_eq!(
        allowed, RULE.lock_after as usize,
        "20 concurrent attempts are throttled as 20 sequential ones"
    );
}

pub(in crate::store::testing) async fn throttle_entries_are_purged_after_their_window_and_lockout<
    S: RefreshStore,
>(
    store: &S,
    _: &ManualClock,
) {
    let key = ThrottleKey::for_username("alice");
    for _ in 0..3 {
        store.reserve_login(&key, &RULE, START).await.unwrap();
    }
    assert_eq!(
        store.purge_expired(START + 99, 10).await.unwrap().throttle,
        0,
        "within the window"
    );
    assert_eq!(
        store.purge_expired(START + 100, 10).await.unwrap().throttle,
        1
    );
    assert_eq!(
        store.reserve_login(&key, &RULE, START + 100).await.unwrap(),
        LoginAttempt::Allowed
    );
}
