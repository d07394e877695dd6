//! A store for tests that need it to misbehave.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tessera_issuer::SqliteStore;
use tessera_issuer::store::{
    Denial, DenialBatch, Family, FamilyId, LoginAttempt, NewFamily, OnceKey, PurgeReport,
    RefreshStore, Revoke, Rotation, RotationOutcome, StoreChanges, StoreError, StoredKey,
    ThrottleKey, ThrottleRule, TokenHash,
};

/// The SQLite store with faults a test turns on through its [`Faults`].
pub(crate) struct FaultyStore {
    inner: SqliteStore,
    faults: Arc<Faults>,
}

/// What a [`FaultyStore`] does wrong: reading the revocations slowly (as with a large denylist or a slow
/// disk), and a database that stops answering.
#[derive(Default)]
pub(crate) struct Faults {
    /// Milliseconds every read of the revocations waits first.
    revocation_delay_ms: AtomicU64,
    unreachable: AtomicBool,
}

impl FaultyStore {
    /// `inner`, and the handle that turns its faults on while the service owns the store.
    pub(crate) fn new(inner: SqliteStore) -> (Self, Arc<Faults>) {
        let faults = Arc::new(Faults::default());
        (
            FaultyStore {
                inner,
                faults: Arc::clone(&faults),
            },
            faults,
        )
    }
}

impl Faults {
    /// Every read of the revocations waits `delay` first.
    pub(crate) fn slow_revocation_reads(&self, delay: Duration) {
        let millis = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.revocation_delay_ms.store(millis, Ordering::SeqCst);
    }

    /// Whether the database answers `ping` (the readiness check).
    pub(crate) fn set_unreachable(&self, unreachable: bool) {
        self.unreachable.store(unreachable, Ordering::SeqCst);
    }
}

impl RefreshStore for FaultyStore {
    async fn create_family(
        &self,
        family: NewFamily,
        cap: usize,
    ) -> Result<Vec<Family>, StoreError> {
        self.inner.create_family(family, cap).await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        self.inner.rotate(rotation).await
    }

    async fn find_by_token(&self, token: TokenHash) -> Result<Option<Family>, StoreError> {
        self.inner.find_by_token(token).await
    }

    async fn find_family(&self, id: &FamilyId) -> Result<Option<Family>, StoreError> {
        self.inner.find_family(id).await
    }

    async fn revoke_family(
        &self,
        id: &FamilyId,
        revoke: Revoke,
    ) -> Result<Option<Family>, StoreError> {
        self.inner.revoke_family(id, revoke).await
    }

    async fn revoke_user(&self, user_id: &str, revoke: Revoke) -> Result<Vec<Family>, StoreError> {
        self.inner.revoke_user(user_id, revoke).await
    }

    async fn live_families(&self, user_id: &str, now: i64) -> Result<Vec<Family>, StoreError> {
        self.inner.live_families(user_id, now).await
    }

    async fn deny(&self, denial: Denial) -> Result<(), StoreError> {
        self.inner.deny(denial).await
    }

    async fn denials_after(
        &self,
        after: u64,
        now: i64,
        limit: usize,
    ) -> Result<DenialBatch, StoreError> {
        let delay = self.faults.revocation_delay_ms.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.inner.denials_after(after, now, limit).await
    }

    async fn reserve_login(
        &self,
        key: &ThrottleKey,
        rule: &ThrottleRule,
        now: i64,
    ) -> Result<LoginAttempt, StoreError> {
        self.inner.reserve_login(key, rule, now).await
    }

    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.inner.clear_login_attempts(key).await
    }

    async fn use_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        self.inner.use_once(key, expires_at, now).await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.inner.signing_keys().await
    }

    async fn add_signing_key(
        &self,
        key: StoredKey,
        only_if_none: bool,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.inner.add_signing_key(key, only_if_none).await
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        self.inner.remove_signing_key(kid).await
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.inner.shared_secret(name, candidate).await
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        self.inner.purge_expired(now, batch).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        if self.faults.unreachable.load(Ordering::SeqCst) {
            return Err(StoreError::Backend(
                "the test made the database unreachable".into(),
            ));
        }
        self.inner.ping().await
    }

    fn subscribe(&self) -> Option<StoreChanges> {
        self.inner.subscribe()
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
