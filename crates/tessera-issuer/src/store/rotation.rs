//! One refresh as a store sees it: the compare-and-swap it is asked for and what the presented token
//! turned out to be.

use std::future::Future;

use super::rows::{FamilyState, TokenRow, corrupt};
use super::{Family, Revoke, StoreError};
use crate::refresh::{RequestFingerprint, RotationSalt, TokenHash};

/// How many times a rotation re-reads and retries when the family changed under it; each retry means
/// another request made progress, so this only bounds pathological interleavings.
const ROTATE_ATTEMPTS: usize = 4;

/// One refresh: consume `presented`, install `successor`. Times and durations in seconds.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Hash of the token the client presented.
    pub presented: TokenHash,
    /// The client presenting it; a token of another client's family is refused untouched.
    pub client_id: String,
    /// Hash of the successor token, installed if `presented` is current.
    pub successor: TokenHash,
    /// The salt the successor was derived with, kept so a retry can re-derive it.
    pub salt: RotationSalt,
    /// The current time.
    pub now: i64,
    /// The idle lifetime: the family's idle end becomes `min(now + idle_ttl, absolute end)`.
    pub idle_ttl: i64,
    /// The grace window after a rotation during which the previous token is an idempotent retry.
    pub grace: i64,
    /// Who presents the token. A rotation keeps it with the family; a retry within the grace window is
    /// served only to the same fingerprint.
    pub fingerprint: RequestFingerprint,
    /// How many retries of one generation are served; the next one is a replay.
    pub max_retries: u32,
    /// The RFC 7638 thumbprint of the DPoP key the request proved possession of, if any. A family bound
    /// to a key ([`Family::dpop_jkt`]) is rotated or retried only with a proof of that key.
    pub dpop_jkt: Option<String>,
    /// If the token turns out to be a replay: how long the family's access tokens are denied after it is
    /// revoked (see [`Revoke::deny_access_for`](super::Revoke::deny_access_for)).
    pub deny_access_for: i64,
}

impl Rotation {
    /// The revocation a replay of this rotation's token carries out.
    pub fn replay_revocation(&self) -> Revoke {
        Revoke {
            reason: super::RevokeReason::ReuseDetected,
            now: self.now,
            deny_access_for: self.deny_access_for,
        }
    }
}

/// What a presented refresh token turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotationOutcome {
    /// It was current: the successor is installed. Holds the family after the rotation.
    Rotated(Family),
    /// It was the previous generation, within the grace window, presented with the fingerprint of the
    /// rotation that consumed it, and fewer than `max_retries` retries were served before: only the retry
    /// count changed. The caller re-derives the successor from `salt` and checks it against `successor`
    /// (the current token's hash).
    Retry {
        /// The family, unchanged.
        family: Family,
        /// The salt of the rotation that consumed the presented token.
        salt: RotationSalt,
        /// Hash of the current token.
        successor: TokenHash,
    },
    /// It was consumed earlier, or it is the previous generation presented after the grace window, with
    /// another fingerprint, or once more than `max_retries` allow: the family is now revoked for
    /// [`RevokeReason::ReuseDetected`](super::RevokeReason::ReuseDetected), and its access tokens denied by
    /// `sid` ([`Rotation::replay_revocation`]), in the same atomic step.
    Replay {
        /// The family, now revoked; `generation` is the current one.
        family: Family,
        /// The generation of the presented token.
        presented_generation: u64,
    },
    /// The token belongs to another client's family; nothing changed.
    WrongClient(Family),
    /// The family is bound to a DPoP key and the request did not prove possession of it; nothing changed.
    /// Decided before anything else about the token, so a stolen token without the key neither rotates
    /// nor trips reuse detection, whatever the grace window says.
    KeyMismatch(Family),
    /// The family was already revoked.
    Revoked(Family),
    /// The family outlived its idle or absolute lifetime.
    Expired(Family),
    /// No family knows this token (never issued, or purged).
    Unknown,
}

/// What a presented token is, given its family: the one decision every store shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Rotate,
    Retry,
    Replay,
    Revoked,
    Expired,
}

/// What a store keeps about the last rotation of a family, for deciding on a retry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LastRotation<'a> {
    /// The fingerprint of the request that rotated; `None` before the first rotation, or in a record
    /// rotated before fingerprints were kept.
    pub(crate) fingerprint: Option<&'a RequestFingerprint>,
    /// Retries served since that rotation.
    pub(crate) retries: u32,
}

impl LastRotation<'_> {
    /// Whether `rotation` may be served as a retry: the same fingerprint (or none kept: a rotation
    /// stored before fingerprints were), and the budget not spent.
    pub(crate) fn serves_retry(&self, rotation: &Rotation) -> bool {
        self.fingerprint
            .is_none_or(|stored| stored.ct_eq(&rotation.fingerprint))
            && self.retries < rotation.max_retries
    }
}

/// Whether `rotation` may touch `family`: a family bound to a DPoP key only with a proof of that key.
pub(crate) fn key_matches(family: &Family, rotation: &Rotation) -> bool {
    family
        .dpop_jkt
        .as_deref()
        .is_none_or(|bound| rotation.dpop_jkt.as_deref() == Some(bound))
}

impl Verdict {
    /// Classifies a token of generation `presented_generation` of `family`, presented at `now`, given the
    /// family's last rotation.
    pub(crate) fn of(
        family: &Family,
        presented_generation: u64,
        rotation: &Rotation,
        last: LastRotation<'_>,
    ) -> Verdict {
        let (now, grace) = (rotation.now, rotation.grace);
        if family.revoked.is_some() {
            Verdict::Revoked
        } else if now >= family.expires_at() {
            Verdict::Expired
        } else if presented_generation == family.generation {
            Verdict::Rotate
        } else if presented_generation.checked_add(1) == Some(family.generation)
            && now.saturating_sub(family.last_used_at) < grace
            && last.serves_retry(rotation)
        {
            Verdict::Retry
        } else {
            Verdict::Replay
        }
    }
}

/// The steps of an SQL store's rotation, for [`rotate_optimistically`].
pub(super) trait RotationSteps: Sync {
    /// The compare-and-swap: installs the successor if the presented token is its family's current one,
    /// of `rotation.client_id`, live; the rotated family, or `None` if it did not apply.
    fn swap(
        &self,
        rotation: &Rotation,
    ) -> impl Future<Output = Result<Option<Family>, StoreError>> + Send;

    /// The family, generation and client of a recorded token.
    fn token(
        &self,
        hash: TokenHash,
    ) -> impl Future<Output = Result<Option<TokenRow>, StoreError>> + Send;

    /// A family with its rotation state.
    fn state(
        &self,
        family_id: &str,
    ) -> impl Future<Output = Result<Option<FamilyState>, StoreError>> + Send;

    /// Counts one more retry served for the family at `generation`, if it is still at that generation, not
    /// revoked, and below `max_retries`; `false` otherwise (the caller reads the family again).
    fn count_retry(
        &self,
        family_id: &str,
        generation: u64,
        max_retries: u32,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Revokes a replayed family and denies its access tokens, in one step; `None` if it was revoked
    /// already.
    fn revoke_replayed(
        &self,
        family_id: &str,
        revoke: Revoke,
    ) -> impl Future<Output = Result<Option<Family>, StoreError>> + Send;
}

/// A rotation the way the SQL stores do it: optimistic, since the presented token is usually the current
/// one, so the swap comes first and the common case costs one statement; if it did not apply, the token
/// is classified from what is committed ([`Verdict`]), and a family that changed in between is read again.
pub(super) async fn rotate_optimistically(
    steps: &impl RotationSteps,
    rotation: Rotation,
) -> Result<RotationOutcome, StoreError> {
    if let Some(family) = steps.swap(&rotation).await? {
        return Ok(RotationOutcome::Rotated(family));
    }
    let Some(token) = steps.token(rotation.presented).await? else {
        return Ok(RotationOutcome::Unknown);
    };
    let presented_generation = token.generation()?;
    for _ in 0..ROTATE_ATTEMPTS {
        let Some(state) = steps.state(&token.family_id).await? else {
            return Ok(RotationOutcome::Unknown);
        };
        let last = LastRotation {
            fingerprint: state.fingerprint.as_ref(),
            retries: state.retries,
        };
        let verdict = Verdict::of(&state.family, presented_generation, &rotation, last);
        let family = state.family;
        if token.client_id != rotation.client_id {
            return Ok(RotationOutcome::WrongClient(family));
        }
        if !key_matches(&family, &rotation) {
            return Ok(RotationOutcome::KeyMismatch(family));
        }
        match verdict {
            // Only reachable if the database changed underneath (generations only grow, revocation and
            // expiry are final): swap again rather than guess.
            Verdict::Rotate => {
                if let Some(family) = steps.swap(&rotation).await? {
                    return Ok(RotationOutcome::Rotated(family));
                }
            }
            // Served only if the budget still allows and no rotation got there first; otherwise the family
            // is read again (and a spent budget is then a replay).
            Verdict::Retry => {
                let salt = state
                    .salt
                    .ok_or_else(|| corrupt(&token.family_id, "rotation_salt"))?;
                let counted = steps
                    .count_retry(&token.family_id, family.generation, rotation.max_retries)
                    .await?;
                if counted {
                    return Ok(RotationOutcome::Retry {
                        family,
                        salt,
                        successor: state.current,
                    });
                }
            }
            Verdict::Replay => {
                let revoked = steps
                    .revoke_replayed(&token.family_id, rotation.replay_revocation())
                    .await?;
                if let Some(family) = revoked {
                    return Ok(RotationOutcome::Replay {
                        family,
                        presented_generation,
                    });
                }
            }
            Verdict::Revoked => return Ok(RotationOutcome::Revoked(family)),
            Verdict::Expired => return Ok(RotationOutcome::Expired(family)),
        }
    }
    Err(StoreError::Backend(
        format!(
            "family {} kept changing during {ROTATE_ATTEMPTS} rotation attempts",
            token.family_id
        )
        .into(),
    ))
}
