//! One refresh as a store sees it: the compare-and-swap it is asked for and what the presented token
//! turned out to be.

use super::Family;
use crate::refresh::{RequestFingerprint, RotationSalt, TokenHash};

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
    /// [`RevokeReason::ReuseDetected`](super::RevokeReason::ReuseDetected).
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
