//! Keeping this instance's access-token [`Denylist`] equal to the denials in the store, so that a revocation
//! made by any instance is refused by every one.
//!
//! The list starts [not loaded](tessera_server::Availability::NotLoaded): the service's `JwtAuthLayer`
//! answers 503 until [`DenialSync::catch_up`] has read every denial in force, so a process that has just
//! started never accepts a token revoked before it started. After that, each catch-up reads only the writes
//! after the last sequence number it saw; it runs on every notification of the store (a revocation by this
//! instance, or by another one for stores that can tell) and on a short interval, which loses nothing when
//! a notification is lost (a dropped database connection). A revocation made here is also put on the list
//! at once, before the request that made it is answered (`observed.rs`).

use std::sync::Arc;
use std::time::Duration;

use tessera_core::Clock;
use tessera_server::Denylist;

use crate::store::{RefreshStore, StoreError};

/// How many denials one read of the store returns at most.
const PAGE: usize = 1_000;

/// How long the list may go without a successful catch-up before it fails closed, by default.
pub(crate) const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);

/// The store-to-denylist synchronisation of one [`Issuer`](crate::Issuer).
pub(crate) struct DenialSync<S> {
    store: Arc<S>,
    /// Kept fresh: it fails closed when catch-ups fail for longer than the configured limit.
    denylist: Denylist,
    clock: Arc<dyn Clock>,
    /// The single-flight gate of catch-ups, holding the sequence number to resume after.
    cursor: tokio::sync::Mutex<u64>,
}

impl<S: RefreshStore> DenialSync<S> {
    /// Keeps `denylist` (built with [`Denylist::kept_fresh`]) in step with `store`.
    pub(crate) fn new(store: Arc<S>, denylist: Denylist, clock: Arc<dyn Clock>) -> Self {
        DenialSync {
            store,
            denylist,
            clock,
            cursor: tokio::sync::Mutex::new(0),
        }
    }

    /// Reads every denial written since the last catch-up (the first reads them all) onto the list, then
    /// marks it available; returns how many it read. On failure the list keeps what it has, and fails
    /// closed once the last success is older than its limit.
    pub(crate) async fn catch_up(&self) -> Result<usize, StoreError> {
        let mut cursor = self.cursor.lock().await;
        let result = self.read_after(&mut cursor).await;
        match &result {
            Ok(_) => self.denylist.synced(),
            Err(_) => {
                if self.denylist.sync_failed() {
                    tracing::error!(
                        "the store's denials could not be read for too long; refusing tokens (503) \
                         until they can"
                    );
                }
            }
        }
        result
    }

    async fn read_after(&self, cursor: &mut u64) -> Result<usize, StoreError> {
        let now = self.clock.unix_seconds();
        let mut read = 0;
        loop {
            let batch = self.store.denials_after(*cursor, now, PAGE).await?;
            read += batch.denials.len();
            self.denylist.insert(&batch.denials);
            *cursor = batch.last;
            if !batch.more {
                return Ok(read);
            }
        }
    }
}

impl<S> DenialSync<S> {
    /// The list every authenticated request is checked against.
    pub(crate) fn denylist(&self) -> &Denylist {
        &self.denylist
    }

    /// Drops the entries that have ended; returns how many.
    pub(crate) fn expire(&self) -> usize {
        self.denylist.expire(self.clock.unix_seconds())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryStore;
    use tessera_core::ManualClock;
    use tessera_server::{Availability, Denial};

    #[tokio::test]
    async fn the_list_is_unavailable_until_loaded_then_follows_the_store() {
        let store = Arc::new(MemoryStore::new());
        store.deny(Denial::token("before", 2_000)).await.unwrap();
        let clock = ManualClock::at_unix(1_000);
        let sync = DenialSync::new(Arc::clone(&store), Denylist::new(), Arc::new(clock.clone()));
        assert_eq!(sync.denylist().availability(), Availability::NotLoaded);
        assert_eq!(sync.catch_up().await.unwrap(), 1);
        assert_eq!(sync.denylist().availability(), Availability::Available);
        assert!(sync.denylist().denies(Some("before"), None, None, None));

        store.deny(Denial::session("s", 1_500)).await.unwrap();
        assert_eq!(sync.catch_up().await.unwrap(), 1, "only what is new");
        assert!(sync.denylist().denies(None, Some("s"), None, None));
        clock.advance_secs(500);
        assert_eq!(sync.expire(), 1);
    }

    #[tokio::test]
    async fn a_store_that_stays_unreadable_fails_the_list_closed() {
        let store = Arc::new(MemoryStore::new());
        let clock = ManualClock::at_unix(1_000);
        let clock_handle: Arc<dyn Clock> = Arc::new(clock.clone());
        let denylist =
            Denylist::kept_fresh(Arc::clone(&clock_handle), Some(Duration::from_secs(60)));
        let sync = DenialSync::new(Arc::clone(&store), denylist, clock_handle);
        sync.catch_up().await.unwrap();
        store.close().await;
        clock.advance_secs(60);
        assert!(sync.catch_up().await.is_err());
        assert_eq!(sync.denylist().availability(), Availability::Available);
        clock.advance_secs(1);
        assert!(sync.catch_up().await.is_err());
        assert_eq!(sync.denylist().availability(), Availability::Stale);
    }
}
