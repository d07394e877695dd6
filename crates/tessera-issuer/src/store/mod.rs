//! Where the token service's shared state lives: the [`RefreshStore`] trait a backend implements, the
//! records it keeps, and the backends that ship: [`SqliteStore`] (durable, the default), `PostgresStore`
//! (cargo feature `postgres`: several instances on one database) and [`MemoryStore`].
//!
//! A store never sees a token, only [`TokenHash`]es, and makes every decision that must be atomic (the
//! compare-and-swap of a rotation, cap eviction) in one step of its own. Times are always passed in by the
//! caller: a store never reads a clock.
//!
//! Every backend is held to the same semantics by one contract suite, exported for backends written
//! elsewhere behind the cargo feature `testing` as `store::testing::run_contract_suite`.

mod changes;
mod denials;
mod family;
mod group_commit;
mod keys;
mod memory;
mod once;
#[cfg(feature = "postgres")]
mod postgres;
mod rotation;
mod rows;
mod sql;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;
mod throttle;

use std::future::Future;

pub use self::changes::{ChangeNotifier, StoreChanges};
pub use self::denials::{Denial, DenialBatch, DenialKind, DenialTarget};
pub use self::family::{Family, FamilyId, NewFamily, Revocation, Revoke, RevokeReason};
pub use self::keys::StoredKey;
pub use self::memory::{DEFAULT_THROTTLE_CAPACITY, MemoryStore};
pub use self::once::OnceKey;
pub(crate) use self::once::OneTimeValues;
#[cfg(feature = "postgres")]
pub use self::postgres::{PostgresStore, PostgresStoreOptions};
pub(crate) use self::rotation::{LastRotation, Verdict, key_matches};
pub use self::rotation::{Rotation, RotationOutcome};
pub use self::sqlite::{SqliteStore, SqliteStoreOptions};
pub use self::throttle::{LoginAttempt, MAX_LOCKOUT, ThrottleEntry, ThrottleKey, ThrottleRule};
pub use crate::refresh::{RequestFingerprint, RotationSalt, TokenHash};

/// A store failure. The token endpoint answers these with `500 server_error` and logs them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached (connection refused or lost, no connection free in time): the
    /// request may succeed once it is back.
    #[error("the store is unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend failed (I/O, a constraint, lock timeout).
    #[error("the store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record cannot be decoded: the database was edited by hand or by a newer version.
    #[error("the store holds a malformed record: {0}")]
    Corrupt(String),
    /// The write conflicts with a record the store holds (a signing key with the same `kid`).
    #[error("the write conflicts with a stored record: {0}")]
    Conflict(String),
    /// The store was closed ([`RefreshStore::close`], `Issuer::close`) and takes no more calls.
    #[error("the store was closed; open a new one to continue")]
    Closed,
}

/// A sqlx failure as a store error: a closed pool means the store was closed, a lost or refused connection
/// that the database is unavailable.
pub(crate) fn sqlx_error(error: sqlx::Error) -> StoreError {
    match error {
        sqlx::Error::PoolClosed => StoreError::Closed,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(Box::new(error)),
        other => StoreError::Backend(Box::new(other)),
    }
}

/// The error of adding a signing key whose `kid` is taken.
pub(crate) fn duplicate_kid(kid: &str) -> StoreError {
    StoreError::Conflict(format!("a signing key with the kid `{kid}` already exists"))
}

/// What one purge batch deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Token tombstones deleted.
    pub tokens: u64,
    /// Family records deleted.
    pub families: u64,
    /// Access-token denials deleted (every token they covered has expired).
    pub denials: u64,
    /// Login-throttle entries deleted (their window and lockout are over).
    pub throttle: u64,
    /// One-time values deleted (they expired).
    pub one_time: u64,
}

impl PurgeReport {
    /// Whether the batch deleted anything.
    pub fn is_empty(&self) -> bool {
        *self == PurgeReport::default()
    }
}

impl std::ops::AddAssign for PurgeReport {
    fn add_assign(&mut self, batch: PurgeReport) {
        self.tokens += batch.tokens;
        self.families += batch.families;
        self.denials += batch.denials;
        self.throttle += batch.throttle;
        self.one_time += batch.one_time;
    }
}

/// Everything the token service shares between its instances: refresh-token families, access-token
/// denials, the login throttle, one-time values, signing keys and secrets.
///
/// Implementations hold token hashes only and do each operation atomically, so that any number of
/// instances (processes) on one store behave as one: [`RefreshStore::rotate`] is a compare-and-swap on the
/// family's generation, so of any number of concurrent rotations of one token exactly one installs a
/// successor; a revocation and the denial of the revoked families' access tokens are one step; a login
/// attempt is counted before the password is checked; a one-time value is accepted once. Times are seconds
/// since the Unix epoch, always passed in by the caller (stores never read a clock).
///
/// The contract is spelled out by the suite every backend runs (`store::testing`, cargo feature
/// `testing`).
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

    /// Revokes a family and denies its access tokens ([`Revoke::session_denial`]) in one atomic step;
    /// returns it if this call revoked it (`None` if unknown or already revoked, and nothing is written).
    fn revoke_family(
        &self,
        id: &FamilyId,
        revoke: Revoke,
    ) -> impl Future<Output = Result<Option<Family>, StoreError>> + Send;

    /// Ends every session of a user in one atomic step: revokes each not-yet-revoked family and denies its
    /// access tokens by `sid`, and denies every access token of the user issued before `revoke.now`
    /// ([`DenialTarget::Subject`], until [`Revoke::denied_until`]). Returns the families this call
    /// revoked.
    fn revoke_user(
        &self,
        user_id: &str,
        revoke: Revoke,
    ) -> impl Future<Output = Result<Vec<Family>, StoreError>> + Send;

    /// The user's live families, oldest first.
    fn live_families(
        &self,
        user_id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Vec<Family>, StoreError>> + Send;

    /// Records a denial. If one with the same [`Denial::key`] exists, it keeps the later bounds of both
    /// ([`Denial::merged`]); a write that extends it gives it a new sequence number, one that does not
    /// changes nothing.
    fn deny(&self, denial: Denial) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The denials written after sequence number `after` (0: from the start) that are still in force at
    /// `now` (`until > now`), oldest write first, at most `limit`.
    ///
    /// Sequence numbers grow with every write, in the order writes become visible: a reader that resumes
    /// after the last number it saw never misses a later write, whichever instance made it.
    fn denials_after(
        &self,
        after: u64,
        now: i64,
        limit: usize,
    ) -> impl Future<Output = Result<DenialBatch, StoreError>> + Send;

    /// Reserves a login attempt for `key` at `now` under `rule` ([`ThrottleRule::reserve`]), atomically:
    /// of any number of concurrent reservations, exactly as many are allowed as if they had come one after
    /// another.
    fn reserve_login(
        &self,
        key: &ThrottleKey,
        rule: &ThrottleRule,
        now: i64,
    ) -> impl Future<Output = Result<LoginAttempt, StoreError>> + Send;

    /// Forgets `key`'s attempts and lockout (the password was right).
    fn clear_login_attempts(
        &self,
        key: &ThrottleKey,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records the use of a one-time value until `expires_at`: `true` if this is its first use (or its
    /// previous use expired by `now`), `false` if it was already used. Atomic: of concurrent uses, one
    /// gets `true`.
    fn use_once(
        &self,
        key: &OnceKey,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Every signing key, by `active_from` then `kid`.
    fn signing_keys(&self) -> impl Future<Output = Result<Vec<StoredKey>, StoreError>> + Send;

    /// Adds `key`, unless `only_if_none` and the store already holds a key (atomically: of instances
    /// starting together on an empty store, exactly one adds its key); returns every key afterwards, as
    /// [`RefreshStore::signing_keys`] does.
    fn add_signing_key(
        &self,
        key: StoredKey,
        only_if_none: bool,
    ) -> impl Future<Output = Result<Vec<StoredKey>, StoreError>> + Send;

    /// Deletes the key `kid`; `false` if there was none.
    fn remove_signing_key(
        &self,
        kid: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The secret named `name`: the stored one, or `candidate`, stored now if there was none (atomically:
    /// every caller gets the same value).
    fn shared_secret(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> impl Future<Output = Result<Vec<u8>, StoreError>> + Send;

    /// Deletes at most `batch` token tombstones of families that expired by `now`, then at most `batch`
    /// such families that have no tombstone left, at most `batch` denials that ended by `now`, at most
    /// `batch` throttle entries past their window and lockout, and at most `batch` expired one-time
    /// values. Call repeatedly until the report is empty.
    fn purge_expired(
        &self,
        now: i64,
        batch: usize,
    ) -> impl Future<Output = Result<PurgeReport, StoreError>> + Send;

    /// Checks that the store answers (the database is reachable).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A notification whenever a denial or a signing key may have changed, made through this handle or, for
    /// stores that can tell, by another instance; `None` if the store cannot notify, and readers poll.
    /// Notifications may be spurious or coalesced: a reader re-reads from where it stopped.
    fn subscribe(&self) -> Option<StoreChanges> {
        None
    }

    /// Shuts the store down: lets the writes it has already accepted finish, then releases its
    /// connections. Once it has returned, every call fails with [`StoreError::Closed`]; closing again does
    /// nothing.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
