//! What a load balancer and an operator need: liveness and readiness probes, and the counters in the
//! Prometheus text format.
//!
//! | route | answer |
//! |---|---|
//! | `GET /healthz` | `200 {"status":"ok"}` while the process serves |
//! | `GET /readyz` | `200 {"status":"ready"}` once the revocations are loaded and while the store answers; else `503 {"status":"not_ready","reason":"…"}` |
//! | `GET /metrics` | the counters ([`Issuer::render_metrics`]), `text/plain; version=0.0.4` |
//!
//! Mount them outside authentication, on the operator's port or path: [`Issuer::health_router`] and
//! [`Issuer::metrics_router`].

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, StatusCode};
use serde_json::json;
use tessera_server::{AuthStats, JwtAuthLayer, MetricKind, PrometheusText};

use crate::issuer::Issuer;
use crate::store::RefreshStore;

impl<S: RefreshStore> Issuer<S> {
    /// `GET /healthz` (liveness) and `GET /readyz` (readiness, [`Issuer::ready`]), to mount at the root of
    /// the operator's routes.
    pub fn health_router(&self) -> Router {
        Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz::<S>))
            .with_state(self.clone())
    }

    /// `GET /metrics`: [`Issuer::render_metrics`] with the live counters of `layers` (each named by its
    /// `layer` label: the service's own layer, the API's).
    pub fn metrics_router(
        &self,
        layers: impl IntoIterator<Item = (String, JwtAuthLayer)>,
    ) -> Router {
        let layers: Vec<(String, JwtAuthLayer)> = layers.into_iter().collect();
        let issuer = self.clone();
        Router::new().route(
            "/metrics",
            get(move || {
                let stats: Vec<(String, AuthStats)> = layers
                    .iter()
                    .map(|(name, layer)| (name.clone(), layer.stats()))
                    .collect();
                let named: Vec<(&str, AuthStats)> = stats
                    .iter()
                    .map(|(name, stats)| (name.as_str(), *stats))
                    .collect();
                let body = issuer.render_metrics(&named);
                async move {
                    (
                        [
                            (
                                CONTENT_TYPE,
                                HeaderValue::from_static(PrometheusText::CONTENT_TYPE),
                            ),
                            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
                        ],
                        body,
                    )
                }
            }),
        )
    }

    /// The counters in the Prometheus text format: the issuer's events
    /// (`tessera_issuer_events_total{event}`), the latency and errors of each store operation
    /// (`tessera_store_operation_seconds{op}`, `tessera_store_errors_total{op}`), the denylist
    /// (`tessera_denylist_entries`, `tessera_denylist_available`, `tessera_denylist_seconds_since_sync`),
    /// and the `AuthStats` of `layers` (`tessera_auth_*{layer}`).
    pub fn render_metrics(&self, layers: &[(&str, AuthStats)]) -> String {
        let mut text = PrometheusText::new();
        self.event_counters().write(&mut text);
        self.observed_store().latency().write(&mut text);
        let denylist = self.denylist();
        let available = denylist.availability() == tessera_server::Availability::Available;
        text.metric(
            "tessera_denylist_entries",
            MetricKind::Gauge,
            "Access-token denials held in memory.",
            &[(&[], denylist.len() as f64)],
        )
        .metric(
            "tessera_denylist_available",
            MetricKind::Gauge,
            "1 while tokens are checked against the denials, 0 while every check answers 503.",
            &[(&[], if available { 1.0 } else { 0.0 })],
        );
        if let Some(seconds) = denylist.seconds_since_sync() {
            text.metric(
                "tessera_denylist_seconds_since_sync",
                MetricKind::Gauge,
                "Seconds since the denylist last read the store.",
                &[(&[], seconds as f64)],
            );
        }
        AuthStats::write_prometheus(&mut text, layers);
        text.finish()
    }
}

async fn healthz() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn readyz<S: RefreshStore>(State(issuer): State<Issuer<S>>) -> Response {
    let (status, body) = match issuer.ready().await {
        Ok(()) => (StatusCode::OK, json!({ "status": "ready" })),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "status": "not_ready", "reason": reason.to_string() }),
        ),
    };
    (
        status,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(body),
    )
        .into_response()
}
