//! The token service's counters: how many of each [`AuthEvent`], and how long each store operation takes
//! ([`Measured`], a [`RefreshStore`] that times the one it wraps), rendered in the Prometheus text format by
//! [`Issuer::render_metrics`](crate::Issuer::render_metrics).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tessera_server::{MetricKind, PrometheusText};

use crate::events::{AuthEvent, AuthEventHook};
use crate::store::{
    Denial, DenialBatch, Family, FamilyId, LoginAttempt, NewFamily, OnceKey, PurgeReport,
    RefreshStore, Revoke, Rotation, RotationOutcome, StoreChanges, StoreError, StoredKey,
    ThrottleKey, ThrottleRule, TokenHash,
};

/// The event names, in the order of [`EventCounters`]' slots.
const EVENTS: [&str; 11] = [
    "login_succeeded",
    "login_failed",
    "refreshed",
    "retry_served",
    "reuse_detected",
    "revoked",
    "evicted_by_cap",
    "access_token_revoked",
    "client_token_issued",
    "client_authentication_failed",
    "login_throttled",
];

/// How many of each event the service emitted.
#[derive(Debug, Default)]
pub(crate) struct EventCounters {
    counts: [AtomicU64; EVENTS.len()],
}

impl EventCounters {
    fn count(&self, event: &AuthEvent) {
        let slot = match event {
            AuthEvent::LoginSucceeded { .. } => 0,
            AuthEvent::LoginFailed {
                reason: crate::LoginFailure::Throttled,
                ..
            } => 10,
            AuthEvent::LoginFailed { .. } => 1,
            AuthEvent::Refreshed { .. } => 2,
            AuthEvent::RetryServed { .. } => 3,
            AuthEvent::ReuseDetected { .. } => 4,
            AuthEvent::Revoked { .. } => 5,
            AuthEvent::EvictedByCap { .. } => 6,
            AuthEvent::AccessTokenRevoked { .. } => 7,
            AuthEvent::ClientTokenIssued { .. } => 8,
            AuthEvent::ClientAuthenticationFailed { .. } => 9,
        };
        self.counts[slot].fetch_add(1, Ordering::Relaxed);
    }

    /// Writes `tessera_issuer_events_total{event="…"}`.
    pub(crate) fn write(&self, text: &mut PrometheusText) {
        const NAME: &str = "tessera_issuer_events_total";
        text.family(
            NAME,
            MetricKind::Counter,
            "Events of the token service, by kind.",
        );
        for (event, count) in EVENTS.iter().zip(&self.counts) {
            text.sample(
                NAME,
                &[("event", event)],
                count.load(Ordering::Relaxed) as f64,
            );
        }
    }
}

/// Counts every event, then hands it to the configured hook.
pub(crate) struct CountingHook {
    counters: Arc<EventCounters>,
    next: Option<Arc<dyn AuthEventHook>>,
}

impl CountingHook {
    pub(crate) fn new(counters: Arc<EventCounters>, next: Option<Arc<dyn AuthEventHook>>) -> Self {
        CountingHook { counters, next }
    }
}

impl AuthEventHook for CountingHook {
    fn on_event(&self, event: &AuthEvent) {
        self.counters.count(event);
        if let Some(next) = &self.next {
            next.on_event(event);
        }
    }
}

/// The store operations that are timed, in the order of [`Measured`]'s histograms.
const OPERATIONS: [&str; 18] = [
    "create_family",
    "rotate",
    "find_by_token",
    "find_family",
    "revoke_family",
    "revoke_user",
    "live_families",
    "deny",
    "denials_after",
    "reserve_login",
    "clear_login_attempts",
    "use_once",
    "signing_keys",
    "add_signing_key",
    "remove_signing_key",
    "shared_secret",
    "purge_expired",
    "ping",
];

/// Upper bounds of the latency buckets, in seconds (the last bucket is `+Inf`).
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// One operation's latency histogram and error count.
#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket, the last for `+Inf`.
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
    errors: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64, failed: bool) {
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A [`RefreshStore`] that times every call of the one it wraps.
pub(crate) struct Measured<S> {
    inner: Arc<S>,
    latency: [Histogram; OPERATIONS.len()],
}

impl<S> Measured<S> {
    pub(crate) fn new(inner: Arc<S>) -> Self {
        Measured {
            inner,
            latency: Default::default(),
        }
    }

    /// The wrapped store.
    pub(crate) fn inner(&self) -> &S {
        &self.inner
    }

    async fn timed<T>(
        &self,
        operation: usize,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.latency[operation].observe(started.elapsed().as_secs_f64(), result.is_err());
        result
    }

    /// Writes `tessera_store_operation_seconds` (a histogram per operation) and
    /// `tessera_store_errors_total`.
    pub(crate) fn write(&self, text: &mut PrometheusText) {
        const SECONDS: &str = "tessera_store_operation_seconds";
        text.family(
            SECONDS,
            MetricKind::Histogram,
            "Latency of the store's operations, in seconds.",
        );
        for (operation, histogram) in OPERATIONS.iter().zip(&self.latency) {
            let mut cumulative = 0;
            for (index, count) in histogram.buckets.iter().enumerate() {
                cumulative += count.load(Ordering::Relaxed);
                let bound = BUCKETS
                    .get(index)
                    .map_or_else(|| "+Inf".to_owned(), ToString::to_string);
                text.sample(
                    &format!("{SECONDS}_bucket"),
                    &[("op", operation), ("le", &bound)],
                    cumulative as f64,
                );
            }
            let sum = histogram.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
            text.sample(&format!("{SECONDS}_sum"), &[("op", operation)], sum);
            text.sample(
                &format!("{SECONDS}_count"),
                &[("op", operation)],
                cumulative as f64,
            );
        }
        const ERRORS: &str = "tessera_store_errors_total";
        text.family(ERRORS, MetricKind::Counter, "Failed store operations.");
        for (operation, histogram) in OPERATIONS.iter().zip(&self.latency) {
            text.sample(
                ERRORS,
                &[("op", operation)],
                histogram.errors.load(Ordering::Relaxed) as f64,
            );
        }
    }
}

impl<S: RefreshStore> RefreshStore for Measured<S> {
    async fn create_family(
        &self,
        family: NewFamily,
        cap: usize,
    ) -> Result<Vec<Family>, StoreError> {
        self.timed(0, self.inner.create_family(family, cap)).await
    }

    async fn rotate(&self, rotation: Rotation) -> Result<RotationOutcome, StoreError> {
        self.timed(1, self.inner.rotate(rotation)).await
    }

    async fn find_by_token(&self, token: TokenHash) -> Result<Option<Family>, StoreError> {
        self.timed(2, self.inner.find_by_token(token)).await
    }

    async fn find_family(&self, id: &FamilyId) -> Result<Option<Family>, StoreError> {
        self.timed(3, self.inner.find_family(id)).await
    }

    async fn revoke_family(
        &self,
        id: &FamilyId,
        revoke: Revoke,
    ) -> Result<Option<Family>, StoreError> {
        self.timed(4, self.inner.revoke_family(id, revoke)).await
    }

    async fn revoke_user(&self, user_id: &str, revoke: Revoke) -> Result<Vec<Family>, StoreError> {
        self.timed(5, self.inner.revoke_user(user_id, revoke)).await
    }

    async fn live_families(&self, user_id: &str, now: i64) -> Result<Vec<Family>, StoreError> {
        self.timed(6, self.inner.live_families(user_id, now)).await
    }

    async fn deny(&self, denial: Denial) -> Result<(), StoreError> {
        self.timed(7, self.inner.deny(denial)).await
    }

    async fn denials_after(
        &self,
        after: u64,
        now: i64,
        limit: usize,
    ) -> Result<DenialBatch, StoreError> {
        self.timed(8, self.inner.denials_after(after, now, limit))
            .await
    }

    async fn reserve_login(
        &self,
        key: &ThrottleKey,
        rule: &ThrottleRule,
        now: i64,
    ) -> Result<LoginAttempt, StoreError> {
        self.timed(9, self.inner.reserve_login(key, rule, now))
            .await
    }

    async fn clear_login_attempts(&self, key: &ThrottleKey) -> Result<(), StoreError> {
        self.timed(10, self.inner.clear_login_attempts(key)).await
    }

    async fn use_once(&self, key: &OnceKey, expires_at: i64, now: i64) -> Result<bool, StoreError> {
        self.timed(11, self.inner.use_once(key, expires_at, now))
            .await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>, StoreError> {
        self.timed(12, self.inner.signing_keys()).await
    }

    async fn add_signing_key(
        &self,
        key: StoredKey,
        only_if_none: bool,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.timed(13, self.inner.add_signing_key(key, only_if_none))
            .await
    }

    async fn remove_signing_key(&self, kid: &str) -> Result<bool, StoreError> {
        self.timed(14, self.inner.remove_signing_key(kid)).await
    }

    async fn shared_secret(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        self.timed(15, self.inner.shared_secret(name, candidate))
            .await
    }

    async fn purge_expired(&self, now: i64, batch: usize) -> Result<PurgeReport, StoreError> {
        self.timed(16, self.inner.purge_expired(now, batch)).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.timed(17, self.inner.ping()).await
    }

    fn subscribe(&self) -> Option<StoreChanges> {
        self.inner.subscribe()
    }

    async fn close(&self) {
        self.inner.close().await;
    }
}
