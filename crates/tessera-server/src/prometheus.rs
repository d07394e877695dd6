//! The Prometheus text exposition format (0.0.4), for the counters a layer, a remote denylist and a token
//! service keep: a small writer, so that serving `/metrics` needs no metrics crate.
//!
//! ```
//! use tessera_server::{AuthStats, PrometheusText};
//!
//! let mut text = PrometheusText::new();
//! AuthStats::write_prometheus(&mut text, &[("api", AuthStats::default())]);
//! let body = text.finish();
//! assert!(body.contains("# TYPE tessera_auth_authenticated_total counter\n"));
//! assert!(body.contains("tessera_auth_authenticated_total{layer=\"api\"} 0\n"));
//! ```

use std::fmt::Write as _;

use crate::AuthStats;

/// What a metric family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (requests served).
    Counter,
    /// Goes up and down (entries held).
    Gauge,
    /// Observations in buckets, with their sum and count.
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

/// A Prometheus text document being written: each family's `# HELP` and `# TYPE` lines, then its samples.
/// Write all samples of a family right after its header (the format wants them together).
#[derive(Debug, Default)]
pub struct PrometheusText {
    out: String,
}

impl PrometheusText {
    /// The `Content-Type` of the document.
    pub const CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";

    /// An empty document.
    pub fn new() -> PrometheusText {
        PrometheusText::default()
    }

    /// Starts the family `name`.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) -> &mut Self {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        // Writing to a String cannot fail.
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample: `name{labels} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (index, (label, value)) in labels.iter().enumerate() {
                if index > 0 {
                    self.out.push(',');
                }
                let escaped = value
                    .replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('\n', "\\n");
                let _ = write!(self.out, "{label}=\"{escaped}\"");
            }
            self.out.push('}');
        }
        if value.is_finite() {
            let _ = writeln!(self.out, " {value}");
        } else if value.is_nan() {
            self.out.push_str(" NaN\n");
        } else if value > 0.0 {
            self.out.push_str(" +Inf\n");
        } else {
            self.out.push_str(" -Inf\n");
        }
        self
    }

    /// One family with one sample per `(labels, value)`.
    pub fn metric(
        &mut self,
        name: &str,
        kind: MetricKind,
        help: &str,
        samples: &[(&[(&str, &str)], f64)],
    ) -> &mut Self {
        self.family(name, kind, help);
        for (labels, value) in samples {
            self.sample(name, labels, *value);
        }
        self
    }

    /// The document.
    pub fn finish(self) -> String {
        self.out
    }
}

impl AuthStats {
    /// Writes the counters of several layers, each labelled `layer="<name>"`, as `tessera_auth_*`.
    pub fn write_prometheus(text: &mut PrometheusText, layers: &[(&str, AuthStats)]) {
        type Field = fn(&AuthStats) -> u64;
        let families: [(&str, MetricKind, &str, Field); 7] = [
            (
                "tessera_auth_authenticated_total",
                MetricKind::Counter,
                "Requests let through with a verified token.",
                |stats| stats.authenticated,
            ),
            (
                "tessera_auth_rejected_total",
                MetricKind::Counter,
                "Requests refused, for any reason.",
                |stats| stats.rejected,
            ),
            (
                "tessera_auth_cache_hits_total",
                MetricKind::Counter,
                "Tokens answered from the verified-token cache.",
                |stats| stats.cache_hits,
            ),
            (
                "tessera_auth_cache_misses_total",
                MetricKind::Counter,
                "Tokens verified in full.",
                |stats| stats.cache_misses,
            ),
            (
                "tessera_auth_cache_entries",
                MetricKind::Gauge,
                "Tokens the verified-token cache holds.",
                |stats| stats.cache_entries,
            ),
            (
                "tessera_auth_jwks_fetches_total",
                MetricKind::Counter,
                "Fetches of the remote JWKS.",
                |stats| stats.jwks_fetches,
            ),
            (
                "tessera_auth_jwks_fetch_failures_total",
                MetricKind::Counter,
                "Failed fetches of the remote JWKS.",
                |stats| stats.jwks_fetch_failures,
            ),
        ];
        for (name, kind, help, field) in families {
            text.family(name, kind, help);
            for (layer, stats) in layers {
                text.sample(name, &[("layer", layer)], field(stats) as f64);
            }
        }
    }
}

#[cfg(feature = "remote-denylist")]
impl crate::RemoteDenylistStats {
    /// Writes the counters as `tessera_remote_denylist_*`.
    pub fn write_prometheus(&self, text: &mut PrometheusText) {
        let available = self.availability == crate::Availability::Available;
        text.metric(
            "tessera_remote_denylist_polls_total",
            MetricKind::Counter,
            "Polls of the denials feed.",
            &[(&[], self.polls as f64)],
        )
        .metric(
            "tessera_remote_denylist_poll_failures_total",
            MetricKind::Counter,
            "Failed polls of the denials feed.",
            &[(&[], self.poll_failures as f64)],
        )
        .metric(
            "tessera_remote_denylist_denials_received_total",
            MetricKind::Counter,
            "Denials received from the feed.",
            &[(&[], self.denials_received as f64)],
        )
        .metric(
            "tessera_remote_denylist_entries",
            MetricKind::Gauge,
            "Denials held in memory.",
            &[(&[], self.entries as f64)],
        )
        .metric(
            "tessera_remote_denylist_available",
            MetricKind::Gauge,
            "1 while tokens are checked against the denials, 0 while every check answers 503.",
            &[(&[], if available { 1.0 } else { 0.0 })],
        );
        if let Some(seconds) = self.seconds_since_success {
            text.metric(
                "tessera_remote_denylist_seconds_since_success",
                MetricKind::Gauge,
                "Seconds since the last successful poll.",
                &[(&[], seconds as f64)],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_help_are_escaped_and_values_rendered() {
        let mut text = PrometheusText::new();
        text.family("m", MetricKind::Gauge, "line\nbreak")
            .sample("m", &[("a", "q\"\\\n")], 1.5)
            .sample("m", &[], f64::INFINITY);
        assert_eq!(
            text.finish(),
            "# HELP m line\\nbreak\n# TYPE m gauge\nm{a=\"q\\\"\\\\\\n\"} 1.5\nm +Inf\n"
        );
    }
}
