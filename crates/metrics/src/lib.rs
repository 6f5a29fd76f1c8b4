//! Every Prometheus metric gatelog exposes, declared in one place.
//!
//! Names carry the `gatelog_` prefix, counters end in `_total`, and labels
//! have few values (a route pattern, never a raw path). Components receive
//! a [`Metrics`] handle and update it; only this crate knows the names, so
//! dashboards and checks can rely on them (SPEC §6).
//!
//! # Layout
//! [`Metrics`] owns a private [`Registry`] and one field per metric.
//! [`Metrics::render`] produces the text exposition format for `/metrics`.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// All of gatelog's metrics. Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reads by outcome: `accepted` (opened a passage), `duplicate`
    /// (joined one) or `invalid` (rejected with a 422).
    pub recognitions_total: IntCounterVec,
    /// Accepted reads (new or duplicate) that carry a validation flag, such
    /// as a missing or wrong check digit. Divided by the accepted and
    /// duplicate reads it gives the flagged ratio.
    pub recognitions_flagged_total: IntCounter,
    /// How long one group commit (one transaction, one fsync) takes.
    pub store_commit_seconds: Histogram,
    /// How many reads each group commit carried.
    pub store_commit_reads: Histogram,
    /// Passages whose latest version the sync target has not confirmed.
    pub sync_pending: IntGauge,
    /// Age of the oldest unsynced passage, in seconds.
    pub sync_lag_seconds: prometheus::Gauge,
    /// Batches retried after a retriable failure.
    pub sync_retries_total: IntCounter,
    /// Batches sent, by `result` (`ok`, `retry`, `dead_letter`).
    pub sync_batches_total: IntCounterVec,
    /// Passages in the dead-letter state.
    pub sync_dead_letters: IntGauge,
    /// When the target last confirmed a batch.
    pub sync_last_success_timestamp_seconds: prometheus::Gauge,
    /// Connected WebSocket clients.
    pub ws_clients: IntGauge,
    /// Live frames a slow WebSocket client did not get; it was sent a
    /// `resync` notice instead.
    pub ws_skipped_frames_total: IntCounter,
    /// WebSocket connections closed by the server or the client, by
    /// `reason` (`client`, `stalled`, `heartbeat`, `shutdown`).
    pub ws_disconnects_total: IntCounterVec,
    /// HTTP requests by route pattern and status code.
    pub http_requests_total: IntCounterVec,
    /// HTTP request latency by route pattern.
    pub http_request_duration_seconds: HistogramVec,
    /// Components the supervisor restarted after a failure, by component.
    pub component_restarts_total: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            recognitions_total: IntCounterVec::new(
                Opts::new("gatelog_recognitions_total", "Reads received, by result."),
                &["result"],
            )
            .expect("valid metric"),
            recognitions_flagged_total: IntCounter::new(
                "gatelog_recognitions_flagged_total",
                "Accepted reads that carry a validation flag (check digit missing or wrong, unknown category).",
            )
            .expect("valid metric"),
            store_commit_seconds: Histogram::with_opts(
                HistogramOpts::new(
                    "gatelog_store_commit_seconds",
                    "Duration of one local group commit (one transaction, one fsync).",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
            )
            .expect("valid metric"),
            store_commit_reads: Histogram::with_opts(
                HistogramOpts::new(
                    "gatelog_store_commit_reads",
                    "Reads carried by one local group commit.",
                )
                .buckets(vec![
                    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 1024.0, 4096.0,
                ]),
            )
            .expect("valid metric"),
            sync_pending: IntGauge::new(
                "gatelog_sync_pending",
                "Passages not yet confirmed by the sync target.",
            )
            .expect("valid metric"),
            sync_lag_seconds: prometheus::Gauge::new(
                "gatelog_sync_lag_seconds",
                "Age of the oldest unsynced passage in seconds.",
            )
            .expect("valid metric"),
            sync_retries_total: IntCounter::new(
                "gatelog_sync_retries_total",
                "Sync batches retried after a retriable failure.",
            )
            .expect("valid metric"),
            sync_batches_total: IntCounterVec::new(
                Opts::new(
                    "gatelog_sync_batches_total",
                    "Sync batches sent, by result.",
                ),
                &["result"],
            )
            .expect("valid metric"),
            sync_dead_letters: IntGauge::new(
                "gatelog_sync_dead_letters",
                "Passages the sync target refused for good.",
            )
            .expect("valid metric"),
            sync_last_success_timestamp_seconds: prometheus::Gauge::new(
                "gatelog_sync_last_success_timestamp_seconds",
                "Unix time of the last batch the sync target confirmed.",
            )
            .expect("valid metric"),
            ws_clients: IntGauge::new("gatelog_ws_clients", "Connected WebSocket clients.")
                .expect("valid metric"),
            ws_skipped_frames_total: IntCounter::new(
                "gatelog_ws_skipped_frames_total",
                "Live frames skipped for slow WebSocket clients, which got a resync notice instead.",
            )
            .expect("valid metric"),
            ws_disconnects_total: IntCounterVec::new(
                Opts::new(
                    "gatelog_ws_disconnects_total",
                    "WebSocket connections closed, by reason.",
                ),
                &["reason"],
            )
            .expect("valid metric"),
            http_requests_total: IntCounterVec::new(
                Opts::new(
                    "gatelog_http_requests_total",
                    "HTTP requests, by route pattern and status.",
                ),
                &["route", "status"],
            )
            .expect("valid metric"),
            http_request_duration_seconds: HistogramVec::new(
                HistogramOpts::new(
                    "gatelog_http_request_duration_seconds",
                    "HTTP request latency, by route pattern.",
                )
                .buckets(vec![
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ]),
                &["route"],
            )
            .expect("valid metric"),
            component_restarts_total: IntCounterVec::new(
                Opts::new(
                    "gatelog_component_restarts_total",
                    "Components restarted by the supervisor after a failure.",
                ),
                &["component"],
            )
            .expect("valid metric"),
            registry,
        };
        m.register_all();
        // Pre-create the label values dashboards query, so the series exist
        // (as zero) before the first event.
        for r in ["accepted", "duplicate", "queued", "invalid"] {
            m.recognitions_total.with_label_values(&[r]);
        }
        for r in ["ok", "retry", "dead_letter"] {
            m.sync_batches_total.with_label_values(&[r]);
        }
        for r in ["client", "stalled", "heartbeat", "shutdown"] {
            m.ws_disconnects_total.with_label_values(&[r]);
        }
        // The components the supervisor runs, so restart panels show zero
        // rather than no data.
        for c in ["writer", "broadcaster", "sync", "demo"] {
            m.component_restarts_total.with_label_values(&[c]);
        }
        m
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.recognitions_total.clone()),
            Box::new(self.recognitions_flagged_total.clone()),
            Box::new(self.store_commit_seconds.clone()),
            Box::new(self.store_commit_reads.clone()),
            Box::new(self.sync_pending.clone()),
            Box::new(self.sync_lag_seconds.clone()),
            Box::new(self.sync_retries_total.clone()),
            Box::new(self.sync_batches_total.clone()),
            Box::new(self.sync_dead_letters.clone()),
            Box::new(self.sync_last_success_timestamp_seconds.clone()),
            Box::new(self.ws_clients.clone()),
            Box::new(self.ws_skipped_frames_total.clone()),
            Box::new(self.ws_disconnects_total.clone()),
            Box::new(self.http_requests_total.clone()),
            Box::new(self.http_request_duration_seconds.clone()),
            Box::new(self.component_restarts_total.clone()),
        ];
        for c in collectors {
            self.registry.register(c).expect("metric names are unique");
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding cannot fail for valid metrics");
        String::from_utf8(buf).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_metric_is_exposed() {
        let m = Metrics::new();
        m.http_requests_total
            .with_label_values(&["/healthz", "200"])
            .inc();
        m.http_request_duration_seconds
            .with_label_values(&["/healthz"])
            .observe(0.001);
        let text = m.render();
        for name in [
            "gatelog_recognitions_total{result=\"accepted\"}",
            "gatelog_store_commit_seconds_bucket",
            "gatelog_sync_pending",
            "gatelog_sync_lag_seconds",
            "gatelog_sync_retries_total",
            "gatelog_sync_batches_total{result=\"ok\"}",
            "gatelog_sync_dead_letters",
            "gatelog_sync_last_success_timestamp_seconds",
            "gatelog_ws_clients",
            "gatelog_recognitions_flagged_total",
            "gatelog_ws_skipped_frames_total",
            "gatelog_ws_disconnects_total{reason=\"stalled\"}",
            "gatelog_http_requests_total{route=\"/healthz\",status=\"200\"}",
            "gatelog_http_request_duration_seconds_bucket",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
