//! The cases of the contract suite, one file per capability. Each takes a fresh store and the case's
//! clock, which starts at [`START`]; `now` below is always that clock's time.

mod denials;
mod families;
mod keys;
mod once;
mod throttle;

use tessera_core::{Clock as _, ManualClock};

pub(super) use self::denials::*;
pub(super) use self::families::*;
pub(super) use self::keys::*;
pub(super) use self::once::*;
pub(super) use self::throttle::*;
use super::START;
use crate::store::{
    Denial, DenialBatch, Family, FamilyId, NewFamily, RefreshStore, RequestFingerprint, Revoke,
    RevokeReason, Rotation, RotationOutcome, RotationSalt, StoreError, TokenHash,
};

pub(super) const ABSOLUTE: i64 = 30 * 86_400;
pub(super) const IDLE: i64 = 14 * 86_400;
pub(super) const GRACE: i64 = 30;
/// The retries of one generation the cases allow, unless a case says otherwise.
pub(super) const MAX_RETRIES: u32 = 3;
/// How long the cases' revocations deny the families' access tokens.
pub(super) const DENY_FOR: i64 = 1_200;
/// A cap no case reaches unless it means to.
pub(super) const CAP: usize = 50;

pub(super) fn hash(n: u8) -> TokenHash {
    TokenHash::from_slice(&[n; 32]).unwrap()
}

pub(super) fn salt(n: u8) -> RotationSalt {
    RotationSalt::from_slice(&[n; 32]).unwrap()
}

/// The fingerprint of requester `n`.
pub(super) fn fingerprint(n: u8) -> RequestFingerprint {
    RequestFingerprint::from_slice(&[n; 32]).unwrap()
}

pub(super) fn id(text: &str) -> FamilyId {
    FamilyId::from(text.to_owned())
}

/// A family `id` of `user` for `client` whose first token is `hash(token)`, created at `now`.
pub(super) fn new_family(id: &str, user: &str, client: &str, token: u8, now: i64) -> NewFamily {
    NewFamily {
        id: FamilyId::from(id.to_owned()),
        user_id: user.into(),
        client_id: client.into(),
        scope: Some("read write".into()),
        roles: vec!["admin".into()],
        user_agent: Some("contract-test".into()),
        dpop_jkt: None,
        token: hash(token),
        created_at: now,
        absolute_expires_at: now + ABSOLUTE,
        idle_expires_at: now + IDLE,
    }
}

/// The rotation of `hash(presented)` into `hash(successor)` by the client `web`, requester 1, no DPoP key.
pub(super) fn rotation(presented: u8, successor: u8, now: i64) -> Rotation {
    Rotation {
        presented: hash(presented),
        client_id: "web".into(),
        successor: hash(successor),
        salt: salt(successor),
        now,
        idle_ttl: IDLE,
        grace: GRACE,
        fingerprint: fingerprint(1),
        max_retries: MAX_RETRIES,
        dpop_jkt: None,
        deny_access_for: DENY_FOR,
    }
}

pub(super) async fn create<S: RefreshStore>(
    store: &S,
    family: NewFamily,
    cap: usize,
) -> Vec<Family> {
    store.create_family(family, cap).await.unwrap()
}

/// Creates the family `f1` of alice on `web` with the token `hash(1)`, now.
pub(super) async fn alice_on_web<S: RefreshStore>(store: &S, clock: &ManualClock) {
    let family = new_family("f1", "alice", "web", 1, clock.unix_seconds());
    create(store, family, CAP).await;
}

pub(super) async fn rotate<S: RefreshStore>(store: &S, rotation: Rotation) -> RotationOutcome {
    store.rotate(rotation).await.unwrap()
}

/// Rotates `hash(presented)` into `hash(successor)` now, which must succeed.
pub(super) async fn rotated<S: RefreshStore>(
    store: &S,
    presented: u8,
    successor: u8,
    clock: &ManualClock,
) -> Family {
    match rotate(store, rotation(presented, successor, clock.unix_seconds())).await {
        RotationOutcome::Rotated(family) => family,
        other => panic!("token {presented} must rotate, got {other:?}"),
    }
}

pub(super) async fn find<S: RefreshStore>(store: &S, family: &str) -> Option<Family> {
    store.find_family(&id(family)).await.unwrap()
}

pub(super) async fn live<S: RefreshStore>(store: &S, user: &str, now: i64) -> Vec<FamilyId> {
    let families = store.live_families(user, now).await.unwrap();
    families.into_iter().map(|family| family.id).collect()
}

/// A revocation for `reason` at `now`, denying access tokens for [`DENY_FOR`].
pub(super) fn revoke(reason: RevokeReason, now: i64) -> Revoke {
    Revoke {
        reason,
        now,
        deny_access_for: DENY_FOR,
    }
}

/// Every denial in force at `now`, in write order, read page by page.
pub(super) async fn all_denials<S: RefreshStore>(store: &S, now: i64) -> Vec<Denial> {
    let mut denials = Vec::new();
    let mut after = 0;
    loop {
        let DenialBatch {
            denials: page,
            last,
            more,
        } = store.denials_after(after, now, 2).await.unwrap();
        denials.extend(page);
        after = last;
        if !more {
            return denials;
        }
    }
}
