//! Where refresh-token families live: the [`RefreshStore`] trait a backend implements, the records it
//! keeps, and the two backends that ship: [`SqliteStore`] (durable, the default) and [`MemoryStore`].
//!
//! A store never sees a token, only [`TokenHash`]es, and makes every decision that must be atomic (the
//! compare-and-swap of a rotation, cap eviction) in one step of its own. Times are always passed in by the
//! caller: a store never reads a clock.
//!
//! Every backend is held to the same semantics by one contract suite, exported for backends written
//! elsewhere behind the cargo feature `testing` as `store::testing::run_contract_suite`.

mod denials;
mod family;
mod memory;
mod rotation;
mod sqlite;
#[cfg(feature = "testing")]
pub mod testing;

use std::future::Future;

pub use self::denials::{AccessDenials, UserDenial};
pub use self::family::{Family, FamilyId, NewFamily, Revocation, RevokeReason};
pub use self::memory::MemoryStore;
pub(crate) use self::rotation::{LastRotation, Verdict, key_matches};
pub use self::rotation::{Rotation, RotationOutcome};
pub use self::sqlite::{SqliteStore, SqliteStoreOptions};
pub use crate::refresh::{RequestFingerprint, RotationSalt, TokenHash};

/// A store failure. The token endpoint answers these with `500 server_error` and logs them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend failed (I/O, connection, lock timeout).
    #[error("the refresh-token store failed: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A stored record cannot be decoded: the database was edited by hand or by a newer version.
    #[error("the refresh-token store holds a malformed record: {0}")]
    Corrupt(String),
    /// The store was closed ([`RefreshStore::close`], `Issuer::close`) and takes no more calls.
    #[error("the refresh-token store was closed; open a new one to continue")]
    Closed,
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

impl std::ops::AddAssign for PurgeReport {
    fn add_assign(&mut self, batch: PurgeReport) {
        self.tokens += batch.tokens;
        self.families += batch.families;
        self.denials += batch.denials;
    }
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

    /// Shuts the store down: lets the writes it has already accepted finish, then releases its
    /// connections. Once it has returned, every call fails with [`StoreError::Closed`]; closing again does
    /// nothing.
    fn close(&self) -> impl Future<Output = ()> + Send;
}
