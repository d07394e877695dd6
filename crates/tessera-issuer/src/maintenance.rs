//! The token service's background work: keeping the denylist and the signing keys in step with the store
//! (every sync interval, and at once on the store's change notifications), and purging what expired.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tessera_core::Clock;

use crate::denylist::DenialSync;
use crate::keys::{KeyVault, LiveKeys, SigningKeyStatus, StoredKeyError, StoredKeys};
use crate::store::{PurgeReport, RefreshStore, StoreChanges, StoreError};

/// How often the denylist drops the entries that ended.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(10);

/// How often the signing keys are re-read from the store without a notification.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// The intervals of the background work.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MaintenancePolicy {
    /// How often expired records are purged.
    pub(crate) purge_interval: Duration,
    /// How many records one purge batch deletes.
    pub(crate) purge_batch: usize,
    /// How often the denylist and the keys catch up with the store without a notification.
    pub(crate) sync_interval: Duration,
}

/// The signing keys kept in the store, as this instance follows them: the last read, and the keys in use
/// computed from it (which change by themselves when a pending key's activation time passes).
pub(crate) struct StoreKeys<S> {
    store: Arc<S>,
    vault: KeyVault,
    live: LiveKeys,
    stored: Mutex<StoredKeys>,
}

impl<S: RefreshStore> StoreKeys<S> {
    pub(crate) fn new(store: Arc<S>, vault: KeyVault, live: LiveKeys, stored: StoredKeys) -> Self {
        StoreKeys {
            store,
            vault,
            live,
            stored: Mutex::new(stored),
        }
    }

    fn stored(&self) -> StoredKeys {
        self.stored
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Puts the keys in use at `now` in place, from the last read of the store.
    fn apply(&self, stored: &StoredKeys, now: i64) -> Result<(), StoredKeyError> {
        if let Some(keys) = stored.at(now, self.vault.horizon())? {
            self.live.replace(keys);
        }
        Ok(())
    }

    /// Re-reads the keys from the store, deletes those that finished retiring, and applies them.
    pub(crate) async fn reload(&self, now: i64) -> Result<(), StoredKeyError> {
        let stored = self.vault.load(&*self.store).await?;
        let removed = self
            .vault
            .remove_retired(&*self.store, &stored, now)
            .await?;
        let stored = if removed.is_empty() {
            stored
        } else {
            self.vault.load(&*self.store).await?
        };
        self.apply(&stored, now)?;
        *self.stored.lock().unwrap_or_else(PoisonError::into_inner) = stored;
        Ok(())
    }

    /// Applies the keys in use at `now` from the last read (a pending key may have become the signer).
    pub(crate) fn tick(&self, now: i64) -> Result<(), StoredKeyError> {
        self.apply(&self.stored(), now)
    }

    /// Adds a key that signs from `now + delay`; returns its status.
    pub(crate) async fn rotate(
        &self,
        now: i64,
        delay: i64,
    ) -> Result<SigningKeyStatus, StoredKeyError> {
        let (kid, stored) = self
            .vault
            .add(&*self.store, now, now.saturating_add(delay))
            .await?;
        self.apply(&stored, now)?;
        let status = stored
            .statuses(now, self.vault.horizon())
            .into_iter()
            .find(|status| status.kid == kid);
        *self.stored.lock().unwrap_or_else(PoisonError::into_inner) = stored;
        status.ok_or_else(|| {
            StoredKeyError::Store(StoreError::Corrupt(format!(
                "the signing key `{kid}` is missing right after it was added"
            )))
        })
    }

    /// Every stored key's status at `now`, from the last read.
    pub(crate) fn statuses(&self, now: i64) -> Vec<SigningKeyStatus> {
        self.stored().statuses(now, self.vault.horizon())
    }
}

/// Purging and synchronising: the store's housekeeping, shared by [`Issuer`](crate::Issuer) and its task.
pub(crate) struct Maintenance<S> {
    store: Arc<S>,
    denials: Arc<DenialSync<S>>,
    keys: Option<Arc<StoreKeys<S>>>,
    clock: Arc<dyn Clock>,
    policy: MaintenancePolicy,
}

impl<S> Clone for Maintenance<S> {
    fn clone(&self) -> Self {
        Maintenance {
            store: Arc::clone(&self.store),
            denials: Arc::clone(&self.denials),
            keys: self.keys.clone(),
            clock: Arc::clone(&self.clock),
            policy: self.policy,
        }
    }
}

impl<S: RefreshStore> Maintenance<S> {
    pub(crate) fn new(
        store: Arc<S>,
        denials: Arc<DenialSync<S>>,
        keys: Option<Arc<StoreKeys<S>>>,
        clock: Arc<dyn Clock>,
        policy: MaintenancePolicy,
    ) -> Self {
        Maintenance {
            store,
            denials,
            keys,
            clock,
            policy,
        }
    }

    /// Deletes everything that expired, batch by batch, yielding between batches, and drops the denylist
    /// entries that ended.
    pub(crate) async fn purge_expired(&self) -> Result<PurgeReport, StoreError> {
        self.denials.expire();
        let mut total = PurgeReport::default();
        loop {
            let now = self.clock.unix_seconds();
            let batch = self
                .store
                .purge_expired(now, self.policy.purge_batch)
                .await?;
            if batch.is_empty() {
                return Ok(total);
            }
            total += batch;
            tokio::task::yield_now().await;
        }
    }

    /// Spawns the background work: the sync loop (denials and keys, every sync interval and on every
    /// notification of the store) and the purge loop (at once, then every purge interval), until the store
    /// is closed or the handle aborted.
    pub(crate) fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            tokio::join!(self.sync_loop(), self.purge_loop());
            tracing::info!("the store was closed; the token service's background work stops");
        })
    }

    async fn sync_loop(&self) {
        let mut changes = self.store.subscribe();
        let mut interval = tokio::time::interval(self.policy.sync_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut expired_at = tokio::time::Instant::now();
        let mut keys_read_at = tokio::time::Instant::now();
        loop {
            let notified = tokio::select! {
                _ = interval.tick() => false,
                () = next_change(&mut changes) => true,
            };
            match self.denials.catch_up().await {
                Err(StoreError::Closed) => return,
                Err(error) => {
                    tracing::warn!(%error, "reading the store's denials failed; will retry")
                }
                Ok(_) => {}
            }
            if expired_at.elapsed() >= EXPIRY_INTERVAL {
                self.denials.expire();
                expired_at = tokio::time::Instant::now();
            }
            if let Some(keys) = &self.keys {
                let now = self.clock.unix_seconds();
                let outcome = if notified || keys_read_at.elapsed() >= KEY_RELOAD_INTERVAL {
                    keys_read_at = tokio::time::Instant::now();
                    keys.reload(now).await
                } else {
                    keys.tick(now)
                };
                match outcome {
                    Err(StoredKeyError::Store(StoreError::Closed)) => return,
                    Err(error) => {
                        tracing::warn!(%error, "reading the signing keys failed; will retry")
                    }
                    Ok(()) => {}
                }
            }
        }
    }

    async fn purge_loop(&self) {
        let mut interval = tokio::time::interval(self.policy.purge_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            match self.purge_expired().await {
                Err(StoreError::Closed) => return,
                Err(error) => {
                    tracing::error!(%error, "purging expired sessions failed; will retry")
                }
                Ok(report) if !report.is_empty() => tracing::info!(
                    tokens = report.tokens,
                    families = report.families,
                    denials = report.denials,
                    throttle = report.throttle,
                    one_time = report.one_time,
                    "purged expired records"
                ),
                Ok(_) => {}
            }
        }
    }
}

/// The next notification of the store; never, if it cannot notify (the interval catches up alone).
async fn next_change(changes: &mut Option<StoreChanges>) {
    match changes {
        Some(subscription) => {
            if !subscription.changed().await {
                *changes = None;
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}
