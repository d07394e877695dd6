//! Keeping the store and the denylist tidy: loading the revocations the store holds, purging what
//! expired, and the background task that does both on an interval.

use std::sync::Arc;
use std::time::Duration;

use tessera_core::Clock;

use crate::denylist::AccessTokenDenylist;
use crate::store::{PurgeReport, RefreshStore, StoreError};

/// How often the background task runs and how much one purge batch deletes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PurgePolicy {
    pub(crate) interval: Duration,
    pub(crate) batch: usize,
}

/// Purging and reloading: the store's housekeeping, shared by [`Issuer`](crate::Issuer) and its task.
pub(crate) struct Maintenance<S> {
    store: Arc<S>,
    denylist: AccessTokenDenylist,
    clock: Arc<dyn Clock>,
    policy: PurgePolicy,
}

impl<S> Clone for Maintenance<S> {
    fn clone(&self) -> Self {
        Maintenance {
            store: Arc::clone(&self.store),
            denylist: self.denylist.clone(),
            clock: Arc::clone(&self.clock),
            policy: self.policy,
        }
    }
}

impl<S: RefreshStore> Maintenance<S> {
    pub(crate) fn new(
        store: Arc<S>,
        denylist: AccessTokenDenylist,
        clock: Arc<dyn Clock>,
        policy: PurgePolicy,
    ) -> Self {
        Maintenance {
            store,
            denylist,
            clock,
            policy,
        }
    }

    /// Merges the access-token revocations the store holds into the denylist; returns how many are in
    /// force.
    pub(crate) async fn load_denylist(&self) -> Result<usize, StoreError> {
        let denials = self.store.access_denials(self.clock.unix_seconds()).await?;
        Ok(self.denylist.merge(&denials))
    }

    /// Deletes everything that expired, batch by batch, yielding between batches, and sweeps the
    /// denylist.
    pub(crate) async fn purge_expired(&self) -> Result<PurgeReport, StoreError> {
        self.denylist.sweep();
        let mut total = PurgeReport::default();
        loop {
            let now = self.clock.unix_seconds();
            let batch = self.store.purge_expired(now, self.policy.batch).await?;
            if batch.is_empty() {
                return Ok(total);
            }
            total += batch;
            tokio::task::yield_now().await;
        }
    }

    /// Spawns the task that loads the denylist and purges, at once and then on every interval, until it is
    /// aborted or finds the store closed.
    pub(crate) fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(self.policy.interval);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                if self.tick().await.is_break() {
                    tracing::info!("the store was closed; the purge task stops");
                    return;
                }
            }
        })
    }

    /// One round of the task; `Break` once the store is closed.
    async fn tick(&self) -> std::ops::ControlFlow<()> {
        let loaded = self.load_denylist().await;
        let purged = self.purge_expired().await;
        if matches!(loaded, Err(StoreError::Closed)) || matches!(purged, Err(StoreError::Closed)) {
            return std::ops::ControlFlow::Break(());
        }
        if let Err(error) = loaded {
            tracing::error!(%error, "loading revoked access tokens failed; will retry");
        }
        match purged {
            Ok(report) if !report.is_empty() => {
                tracing::info!(
                    tokens = report.tokens,
                    families = report.families,
                    denials = report.denials,
                    "purged expired sessions"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::error!(%error, "purging expired sessions failed; will retry"),
        }
        std::ops::ControlFlow::Continue(())
    }
}
