//! Where refresh-token families live: the [`RefreshStore`] trait and its implementations.
//!
//! A store never sees a token, only [`TokenHash`]es, and makes every decision that must be atomic (the
//! compare-and-swap of a rotation, cap eviction) in one step of its own. Every implementation runs the same
//! contract test suite (`tests/store_contract.rs`), so new backends are held to identical semantics.

mod memory;
mod sqlite;

use std::fmt;
use std::future::Future;

use serde::Serialize;

pub use memory::MemoryStore;
pub use sqlite::{SqliteStore, SqliteStoreOptions};

use crate::refresh::{RotationSalt, TokenHash};
use tessera_core::random::{self, RandomError};

/// The identifier of a token family, i.e. of one device session: 128 random bits, base64url.
///
/// Public (it names a session in `GET /sessions`), but useless without a refresh token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct FamilyId(String);

impl FamilyId {
    /// A fresh random id.
    pub(crate) fn generate() -> Result<Self, RandomError> {
        random::id::<16>().map(FamilyId)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for FamilyId {
    fn from(id: String) -> Self {
        FamilyId(id)
    }
}

impl fmt::Display for FamilyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    /// The user logged out of this session (`POST /logout`).
    Logout,
    /// The refresh token was revoked through RFC 7009 `POST /revoke`.
    TokenRevoked,
    /// A consumed refresh token was presented again: the family is presumed stolen.
    ReuseDetected,
    /// The user exceeded the per-client cap of live sessions and this was the oldest.
    Evicted,
    /// The user ended this session from the session list (`DELETE /sessions/{id}`).
    SessionEnded,
    /// Every session of the user was ended (`POST /logout-all`, a password change, an administrator).
    UserRevoked,
}

impl RevokeReason {
    /// The stable text form stores persist.
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::TokenRevoked => "token_revoked",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::Evicted => "evicted",
            RevokeReason::SessionEnded => "session_ended",
            RevokeReason::UserRevoked => "user_revoked",
        }
    }

    /// Parses [`RevokeReason::as_str`]'s output.
    pub fn parse(text: &str) -> Option<Self> {
        [
            RevokeReason::Logout,
            RevokeReason::TokenRevoked,
            RevokeReason::ReuseDetected,
            RevokeReason::Evicted,
            RevokeReason::SessionEnded,
            RevokeReason::UserRevoked,
        ]
        .into_iter()
        .find(|reason| reason.as_str() == text)
    }
}

/// When and why a family was revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Revocation {
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// Why.
    pub reason: RevokeReason,
}

/// A family to create: the first refresh token of a new session. Times are seconds since the Unix epoch.
#[derive(Debug, Clone)]
pub struct NewFamily {
    /// Its id.
    pub id: FamilyId,
    /// The user (the access token's `sub`).
    pub user_id: String,
    /// The client the tokens are issued to.
    pub client_id: String,
    /// The granted scope, space-separated.
    pub scope: Option<String>,
    /// The user's roles at login, carried into every access token of the family.
    pub roles: Vec<String>,
    /// The `User-Agent` of the login request, shown in the session list.
    pub user_agent: Option<String>,
    /// Hash of the first refresh token (generation 0).
    pub token: TokenHash,
    /// Creation time.
    pub created_at: i64,
    /// End of the absolute lifetime, fixed now.
    pub absolute_expires_at: i64,
    /// End of the idle lifetime, slid forward by each rotation (never past the absolute end).
    pub idle_expires_at: i64,
}

/// A stored family: one device session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Its id.
    pub id: FamilyId,
    /// The user.
    pub user_id: String,
    /// The client.
    pub client_id: String,
    /// The granted scope.
    pub scope: Option<String>,
    /// The user's roles at login.
    pub roles: Vec<String>,
    /// The `User-Agent` at login.
    pub user_agent: Option<String>,
    /// The generation of the current refresh token: 0 at login, +1 per rotation.
    pub generation: u64,
    /// Creation time.
    pub created_at: i64,
    /// Time of the last rotation (creation time before the first); the grace window counts from here.
    pub last_used_at: i64,
    /// End of the absolute lifetime.
    pub absolute_expires_at: i64,
    /// End of the idle lifetime; never after `absolute_expires_at`.
    pub idle_expires_at: i64,
    /// Set once the family is revoked.
    pub revoked: Option<Revocation>,
}

impl Family {
    /// When the family stops being usable (the idle end, which never passes the absolute end).
    pub fn expires_at(&self) -> i64 {
        self.idle_expires_at.min(self.absolute_expires_at)
    }

    /// Whether the family is neither revoked nor expired at `now`.
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked.is_none() && now < self.expires_at()
    }
}

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
    /// revoked for [`RevokeReason::ReuseDetected`].
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

/// What one purge batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Token tombstones deleted.
    pub tokens: u64,
    /// Family records deleted.
    pub families: u64,
    /// Access-token denials deleted (their tokens have expired).
    pub denials: u64,
}

impl PurgeReport {
    /// Whether the batch deleted anything.
    pub fn is_empty(&self) -> bool {
        self.tokens == 0 && self.families == 0 && self.denials == 0
    }
}

/// Every access token of a user issued before a moment is revoked (logout everywhere, password change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDenial {
    /// The user (`sub`).
    pub user_id: String,
    /// Tokens with an `iat` before this second are revoked.
    pub issued_before: i64,
    /// When every such token has expired and the denial can go.
    pub until: i64,
}

/// The access-token revocations a store holds, so they survive restarts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessDenials {
    /// Individually revoked tokens: `(jti, exp)`.
    pub tokens: Vec<(String, i64)>,
    /// Per-user revocations.
    pub users: Vec<UserDenial>,
}

/// A store failure. The token endpoint answers these with `500 server_error` and logs them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, connection, lock timeout).
    #[error("the refresh-token store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record cannot be decoded: the database was edited by hand or by a newer version.
    #[error("the refresh-token store holds a malformed record: {0}")]
    Corrupt(String),
}

/// Durable state of refresh-token families.
///
/// Implementations hold token hashes only and do each operation atomically: in particular
/// [`RefreshStore::rotate`] is a compare-and-swap on the family's generation, so of any number of
/// concurrent rotations of one token exactly one installs a successor. Times are seconds since the Unix
/// epoch, always passed in by the caller (stores never read a clock).
pub trait RefreshStore: Send + Sync + 'static {
    /// Creates a family with its generation-0 token. If the user already has `cap` or more live families
    /// for the client, the oldest are revoked ([`RevokeReason::Evicted`]) so that `cap` remain with the new
    /// one; they are returned.
    fn create_family(
        &self,
        family: NewFamily,
        cap: usize,
    ) -> impl Future<Output = Result<Vec<Family>, StoreError>> + Send;

    /// Classifies the presented token and, if it is current and belongs to `rotation.client_id`, rotates
    /// atomically. See [`RotationOutcome`].
    fn rotate(
        &self,
        rotation: Rotation,
    ) -> impl Future<Output = Result<RotationOutcome, StoreError>> + Send;

    /// The family a token (of any generation) belongs to.
    fn find_by_token(
        &self,
        token: TokenHash,
    ) -> impl Future<Output = Result<Option<Family>, StoreError>> + Send;

    /// The family with this id.
    fn find_family(
        &self,
        id: &FamilyId,
    ) -> impl Future<Output = Result<Option<Family>, StoreError>> + Send;

    /// Revokes a family; returns it if this call revoked it (`None` if unknown or already revoked).
    fn revoke_family(
        &self,
        id: &FamilyId,
        reason: RevokeReason,
        now: i64,
    ) -> impl Future<Output = Result<Option<Family>, StoreError>> + Send;

    /// Revokes every not-yet-revoked family of a user; returns those this call revoked.
    fn revoke_user(
        &self,
        user_id: &str,
        reason: RevokeReason,
        now: i64,
    ) -> impl Future<Output = Result<Vec<Family>, StoreError>> + Send;

    /// The user's live families, oldest first.
    fn live_families(
        &self,
        user_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Vec<Family>, StoreError>> + Send;

    /// Records that the access token `jti` is revoked; the record may go once `expires_at` passes.
    fn deny_access_token(
        &self,
        jti: &str,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records a per-user revocation, keeping the later `issued_before` and `until` if the user already
    /// has one.
    fn deny_user_tokens(
        &self,
        denial: UserDenial,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Every access-token revocation still in force at `now`.
    fn access_denials(
        &self,
        now: i64,
    ) -> impl Future<Output = Result<AccessDenials, StoreError>> + Send;

    /// Deletes at most `batch` token tombstones of families that expired by `now`, then at most `batch`
    /// such families that have no tombstone left, then at most `batch` access-token denials that ended
    /// by `now`. Call repeatedly until the report is empty.
    fn purge_expired(
        &self,
        now: i64,
        batch: usize,
    ) -> impl Future<Output = Result<PurgeReport, StoreError>> + Send;
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

pub(crate) fn classify(
    family: &Family,
    presented_generation: u64,
    now: i64,
    grace: i64,
) -> Verdict {
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
