//! Signing keys and shared secrets: created once, whichever instance comes first.

use futures_util::future::join_all;
use tessera_core::jose::Algorithm;
use tessera_core::{Clock as _, ManualClock};

use super::*;
use crate::store::StoredKey;

fn key(kid: &str, active_from: i64) -> StoredKey {
    StoredKey {
        kid: kid.into(),
        algorithm: Algorithm::EdDsa,
        material: kid.as_bytes().to_vec(),
        created_at: START,
        active_from,
    }
}

pub(in crate::store::testing) async fn the_first_signing_key_is_added_once<S: RefreshStore>(
    store: &S,
    clock: &ManualClock,
) {
    let now = clock.unix_seconds();
    assert!(store.signing_keys().await.unwrap().is_empty());
    let candidates = ["a", "b", "c", "d"].map(|kid| key(kid, now));
    let answers = join_all(
        candidates
            .into_iter()
            .map(|candidate| store.add_signing_key(candidate, true)),
    )
    .await;
    let kept = store.signing_keys().await.unwrap();
    assert_eq!(
        kept.len(),
        1,
        "instances starting together agree on one key"
    );
    for answer in answers {
        assert_eq!(answer.unwrap(), kept, "every instance reads the one kept");
    }
    assert_eq!(kept[0].material, kept[0].kid.as_bytes(), "stored as given");

    let next = store
        .add_signing_key(key("z", now + 600), false)
        .await
        .unwrap();
    let early = store
        .add_signing_key(key("y", now - 1), false)
        .await
        .unwrap();
    assert_eq!(early.len(), 3);
    assert_eq!(
        early.iter().map(|key| key.kid.as_str()).collect::<Vec<_>>(),
        ["y", kept[0].kid.as_str(), "z"],
        "by activation"
    );
    assert_eq!(next.last().map(|key| key.kid.as_str()), Some("z"));
    assert!(matches!(
        store.add_signing_key(key("z", now), false).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.remove_signing_key("y").await.unwrap());
    assert!(!store.remove_signing_key("y").await.unwrap());
    assert_eq!(store.signing_keys().await.unwrap().len(), 2);
}

pub(in crate::store::testing) async fn shared_secrets_are_created_once<S: RefreshStore>(
    store: &S,
    _: &ManualClock,
) {
    let candidates: Vec<Vec<u8>> = (0..4_u8).map(|n| vec![n; 32]).collect();
    let answers = join_all(
        candidates
            .iter()
            .map(|candidate| store.shared_secret("refresh", candidate)),
    )
    .await;
    let answers: Vec<Vec<u8>> = answers.into_iter().map(Result::unwrap).collect();
    assert!(
        answers.windows(2).all(|pair| pair[0] == pair[1]),
        "every instance gets the same secret"
    );
    assert!(candidates.contains(&answers[0]));
    assert_eq!(
        store.shared_secret("other", b"x").await.unwrap(),
        b"x",
        "secrets are named"
    );
}
