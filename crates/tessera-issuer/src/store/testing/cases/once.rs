//! One-time values: accepted once until they expire.

use futures_util::future::join_all;
use tessera_core::{Clock as _, ManualClock};

use super::*;
use crate::store::OnceKey;

pub(in crate::store::testing) async fn one_time_values_are_accepted_once_until_they_expire<
    S: RefreshStore,
>(
    store: &S,
    clock: &ManualClock,
) {
    let now = clock.unix_seconds();
    let key = OnceKey::new("client_assertion", &["svc", "jti-1"]);
    let uses = join_all((0..8).map(|_| store.use_once(&key, now + 60, now))).await;
    assert_eq!(
        uses.into_iter()
            .filter(|first| *first.as_ref().unwrap())
            .count(),
        1,
        "of concurrent uses, one is the first"
    );
    assert!(!store.use_once(&key, now + 60, now + 59).await.unwrap());
    let other = OnceKey::new("client_assertion", &["svc", "jti-2"]);
    assert!(store.use_once(&other, now + 30, now).await.unwrap());
    assert_eq!(store.purge_expired(now + 30, 10).await.unwrap().one_time, 1);
    assert!(
        store.use_once(&key, now + 120, now + 60).await.unwrap(),
        "an expired use no longer counts"
    );
}
