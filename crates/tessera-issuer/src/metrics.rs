//! The token service's counters: how many of each [`AuthEvent`], and how long each store operation takes
//! ([`StoreLatency`], fed by `observed::Observed`), rendered in the Prometheus text format by
//! [`Issuer::render_metrics`](crate::Issuer::render_metrics).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tessera_server::{MetricKind, PrometheusText};

use crate::events::{AuthEvent, AuthEventHook};
use crate::store::StoreError;

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

/// The store operations that are timed, in the order of [`Operation`].
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

/// The latency and errors of each store operation.
#[derive(Debug, Default)]
pub(crate) struct StoreLatency {
    histograms: [Histogram; OPERATIONS.len()],
}

/// A store operation, as [`StoreLatency`] counts it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Operation {
    CreateFamily,
    Rotate,
    FindByToken,
    FindFamily,
    RevokeFamily,
    RevokeUser,
    LiveFamilies,
    Deny,
    DenialsAfter,
    ReserveLogin,
    ClearLoginAttempts,
    UseOnce,
    SigningKeys,
    AddSigningKey,
    RemoveSigningKey,
    SharedSecret,
    PurgeExpired,
    Ping,
}

impl StoreLatency {
    /// Runs `call`, counting its latency and whether it failed under `operation`.
    pub(crate) async fn time<T>(
        &self,
        operation: Operation,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let started = Instant::now();
        let result = call.await;
        self.histograms[operation as usize]
            .observe(started.elapsed().as_secs_f64(), result.is_err());
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
        for (operation, histogram) in OPERATIONS.iter().zip(&self.histograms) {
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
        for (operation, histogram) in OPERATIONS.iter().zip(&self.histograms) {
            text.sample(
                ERRORS,
                &[("op", operation)],
                histogram.errors.load(Ordering::Relaxed) as f64,
            );
        }
    }
}
