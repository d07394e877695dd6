//! One refresh as a store sees it: the compare-and-swap it is asked for and what the presented token
//! turned out to be.

use std::future::Future;

use super::rows::{FamilyState, TokenRow, corrupt};
use super::{Family, Revoke, StoreError};
use crate::refresh::{RotationSalt, TokenHash};

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
    /// If the token turns out to be a replay: how long the family's access tokens are denied after it is
    /// revoked (see [`Revoke::deny_access_for`](super::Revoke::deny_access_for)).
    pub deny_access_for: i64,
}

impl Rotation {
    /// The revocation a replay of this rotation's token carries out.
    pub fn replay_revocation(&self) -> super::Revoke {
        super::Revoke {
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
    /// It was the previous generation, within the grace window: nothing changed; the caller re-derives the
    /// successor from `salt` and checks it against `successor` (the current token's hash).
    Retry {
        /// The family, unchanged.
        family: Family,
        /// The salt of the rotation that consumed the presented token.
        salt: RotationSalt,
        /// Hash of the current token.
        successor: TokenHash,
    },
    /// It was consumed earlier (or the previous generation after the grace window): the family is now
    /// revoked for [`RevokeReason::ReuseDetected`](super::RevokeReason::ReuseDetected), and its access
    /// tokens denied by `sid` ([`Rotation::replay_revocation`]), in the same atomic step.
    Replay {
        /// The family, now revoked; `generation` is the current one.
        family: Family,
        /// The generation of the presented token.
        presented_generation: u64,
    },
    /// The token belongs to another client's family; nothing changed.
    WrongClient(Family),
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

impl Verdict {
    /// Classifies a token of generation `presented_generation` of `family`, presented at `now`.
    pub(crate) fn of(family: &Family, presented_generation: u64, now: i64, grace: i64) -> Verdict {
        if family.revoked.is_some() {
            Verdict::Revoked
        } else if now >= family.expires_at() {
            Verdict::Expired
        } else if presented_generation == family.generation {
            Verdict::Rotate
        } else if presented_generation.checked_add(1) == Some(family.generation)
            && now.saturating_sub(family.last_used_at) < grace
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
        let family = state.family;
        if token.client_id != rotation.client_id {
            return Ok(RotationOutcome::WrongClient(family));
        }
        match Verdict::of(&family, presented_generation, rotation.now, rotation.grace) {
            // Only reachable if the database changed underneath (generations only grow, revocation and
            // expiry are final): swap again rather than guess.
            Verdict::Rotate => {
                if let Some(family) = steps.swap(&rotation).await? {
                    return Ok(RotationOutcome::Rotated(family));
                }
            }
            Verdict::Retry => {
                let salt = state
                    .salt
                    .ok_or_else(|| corrupt(&token.family_id, "rotation_salt"))?;
                return Ok(RotationOutcome::Retry {
                    family,
                    salt,
                    successor: state.current,
                });
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
