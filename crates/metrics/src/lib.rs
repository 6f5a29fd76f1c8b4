//! Every Prometheus metric gatelog exposes, declared in one place.
//!
//! Names carry the `gatelog_` prefix, counters end in `_total`, and labels
//! have few values (a route pattern, never a raw path). Components receive
//! a [`Metrics`] handle and update it; only this crate knows the names, so
//! dashboards and checks can rely on them (SPEC §6).
//!
//! Labels are typed: each label set is an enum ([`Recognition`],
//! [`SyncBatch`], [`Disconnect`], [`Component`]) or the arguments of one
//! method ([`Metrics::observe_http`]), so a call site cannot pass the
//! wrong number of label values, which `prometheus` only finds at run
//! time, with a panic.
//!
//! # Layout
//! [`Metrics`] owns a private [`Registry`] and one field per metric.
//! [`Family`] is a counter with one typed label; [`Label`] is what its
//! enums implement. [`Metrics::render`] produces the text exposition
//! format for `/metrics`.

use std::marker::PhantomData;

use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};

/// The values of one label, as an enum.
pub trait Label: Copy + 'static {
    /// The label's name.
    const NAME: &'static str;
    /// Every value, so each series exists (as zero) before the first event.
    const ALL: &'static [Self];
    fn as_str(self) -> &'static str;
}

/// A counter with one label whose values are the variants of `L`.
pub struct Family<L> {
    vec: IntCounterVec,
    label: PhantomData<fn(L)>,
}

impl<L> Clone for Family<L> {
    fn clone(&self) -> Self {
        Self {
            vec: self.vec.clone(),
            label: PhantomData,
        }
    }
}

impl<L: Label> Family<L> {
    fn new(name: &str, help: &str) -> Self {
        let vec = IntCounterVec::new(Opts::new(name, help), &[L::NAME]).expect("valid metric");
        for value in L::ALL {
            vec.with_label_values(&[value.as_str()]);
        }
        Self {
            vec,
            label: PhantomData,
        }
    }

    /// The counter of one label value.
    pub fn with(&self, value: L) -> IntCounter {
        self.vec.with_label_values(&[value.as_str()])
    }
}

/// `result` of `gatelog_recognitions_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recognition {
    /// The read opened a passage.
    Accepted,
    /// The read joined a passage.
    Duplicate,
    /// The read could not be made a container number and waits for an
    /// operator.
    Queued,
    /// The read was refused (a 4xx).
    Invalid,
}

impl Label for Recognition {
    const NAME: &'static str = "result";
    const ALL: &'static [Self] = &[Self::Accepted, Self::Duplicate, Self::Queued, Self::Invalid];
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Queued => "queued",
            Self::Invalid => "invalid",
        }
    }
}

/// `result` of `gatelog_sync_batches_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncBatch {
    /// The target confirmed the batch.
    Ok,
    /// The batch failed and will be retried.
    Retry,
    /// The target refused a row for good.
    DeadLetter,
}

impl Label for SyncBatch {
    const NAME: &'static str = "result";
    const ALL: &'static [Self] = &[Self::Ok, Self::Retry, Self::DeadLetter];
    fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Retry => "retry",
            Self::DeadLetter => "dead_letter",
        }
    }
}

/// `reason` of `gatelog_ws_disconnects_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    /// The client closed, or its socket went away.
    Client,
    /// The client did not take a frame within the send timeout.
    Stalled,
    /// The client did not answer pings.
    Heartbeat,
    /// The server is shutting down.
    Shutdown,
}

impl Label for Disconnect {
    const NAME: &'static str = "reason";
    const ALL: &'static [Self] = &[Self::Client, Self::Stalled, Self::Heartbeat, Self::Shutdown];
    fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Stalled => "stalled",
            Self::Heartbeat => "heartbeat",
            Self::Shutdown => "shutdown",
        }
    }
}

/// `component` of `gatelog_component_restarts_total`: the actors the
/// supervisor runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Checkpointer,
    Writer,
    Sync,
    Broadcaster,
    Retention,
    Demo,
    /// The head-office view's listener on the central database.
    CentralFeed,
    /// The head-office view's daily partition upkeep and site watch.
    CentralUpkeep,
}

impl Label for Component {
    const NAME: &'static str = "component";
    const ALL: &'static [Self] = &[
        Self::Checkpointer,
        Self::Writer,
        Self::Sync,
        Self::Broadcaster,
        Self::Retention,
        Self::Demo,
        Self::CentralFeed,
        Self::CentralUpkeep,
    ];
    fn as_str(self) -> &'static str {
        match self {
            Self::Checkpointer => "checkpointer",
            Self::Writer => "writer",
            Self::Sync => "sync",
            Self::Broadcaster => "broadcaster",
            Self::Retention => "retention",
            Self::Demo => "demo",
            Self::CentralFeed => "central_feed",
            Self::CentralUpkeep => "central_upkeep",
        }
    }
}

/// All of gatelog's metrics. Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reads by outcome; see [`Recognition`].
    pub recognitions_total: Family<Recognition>,
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
    /// Batches sent, by result; see [`SyncBatch`].
    pub sync_batches_total: Family<SyncBatch>,
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
    /// reason; see [`Disconnect`].
    pub ws_disconnects_total: Family<Disconnect>,
    /// HTTP requests by route pattern and status code; counted through
    /// [`Metrics::observe_http`].
    http_requests_total: IntCounterVec,
    /// HTTP request latency by route pattern, likewise.
    http_request_duration_seconds: HistogramVec,
    /// Components the supervisor restarted after a failure.
    pub component_restarts_total: Family<Component>,
    /// Head-office view: seconds since each site's latest synced change,
    /// by site; set through [`Metrics::set_central_site_lag`].
    central_site_lag_seconds: GaugeVec,
    /// Head-office view: sites that synced nothing for longer than
    /// `central.stale_after_secs` while others kept syncing.
    pub central_stale_sites: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let registry = Registry::new();
        let m = Self {
            recognitions_total: Family::new(
                "gatelog_recognitions_total",
                "Reads received, by result.",
            ),
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
            sync_batches_total: Family::new(
                "gatelog_sync_batches_total",
                "Sync batches sent, by result.",
            ),
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
            ws_disconnects_total: Family::new(
                "gatelog_ws_disconnects_total",
                "WebSocket connections closed, by reason.",
            ),
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
            component_restarts_total: Family::new(
                "gatelog_component_restarts_total",
                "Components restarted by the supervisor after a failure.",
            ),
            central_site_lag_seconds: GaugeVec::new(
                Opts::new(
                    "gatelog_central_site_lag_seconds",
                    "Seconds since the latest change each site synced to the central database.",
                ),
                &["site"],
            )
            .expect("valid metric"),
            central_stale_sites: IntGauge::new(
                "gatelog_central_stale_sites",
                "Sites that synced nothing for longer than central.stale_after_secs while others kept syncing.",
            )
            .expect("valid metric"),
            registry,
        };
        m.register_all();
        m
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.recognitions_total.vec.clone()),
            Box::new(self.recognitions_flagged_total.clone()),
            Box::new(self.store_commit_seconds.clone()),
            Box::new(self.store_commit_reads.clone()),
            Box::new(self.sync_pending.clone()),
            Box::new(self.sync_lag_seconds.clone()),
            Box::new(self.sync_retries_total.clone()),
            Box::new(self.sync_batches_total.vec.clone()),
            Box::new(self.sync_dead_letters.clone()),
            Box::new(self.sync_last_success_timestamp_seconds.clone()),
            Box::new(self.ws_clients.clone()),
            Box::new(self.ws_skipped_frames_total.clone()),
            Box::new(self.ws_disconnects_total.vec.clone()),
            Box::new(self.http_requests_total.clone()),
            Box::new(self.http_request_duration_seconds.clone()),
            Box::new(self.component_restarts_total.vec.clone()),
            Box::new(self.central_site_lag_seconds.clone()),
            Box::new(self.central_stale_sites.clone()),
        ];
        for c in collectors {
            self.registry.register(c).expect("metric names are unique");
        }
    }

    /// Counts one HTTP request under its route pattern (never a raw path,
    /// so label values stay few) and its status code.
    pub fn observe_http(&self, route: &str, status: u16, seconds: f64) {
        self.http_requests_total
            .with_label_values(&[route, &status.to_string()])
            .inc();
        self.http_request_duration_seconds
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// Sets each site's lag, and forgets sites no longer listed (an
    /// archived or renamed site). The label takes site ids, which the
    /// sites' configuration bounds.
    pub fn set_central_site_lag<'a>(&self, sites: impl IntoIterator<Item = (&'a str, f64)>) {
        self.central_site_lag_seconds.reset();
        for (site, secs) in sites {
            self.central_site_lag_seconds
                .with_label_values(&[site])
                .set(secs);
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
    fn central_site_lag_is_set_per_site_and_forgets_old_sites() {
        let m = Metrics::new();
        m.set_central_site_lag([("gate-a", 1.5), ("gate-b", 90.0)]);
        let text = m.render();
        assert!(
            text.contains("gatelog_central_site_lag_seconds{site=\"gate-a\"} 1.5"),
            "{text}"
        );
        assert!(
            text.contains("gatelog_central_site_lag_seconds{site=\"gate-b\"} 90"),
            "{text}"
        );
        m.set_central_site_lag([("gate-b", 3.0)]);
        let text = m.render();
        assert!(!text.contains("site=\"gate-a\""), "{text}");
        assert!(
            text.contains("gatelog_central_site_lag_seconds{site=\"gate-b\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn every_spec_metric_is_exposed() {
        let m = Metrics::new();
        m.observe_http("/healthz", 200, 0.001);
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
            "gatelog_central_stale_sites",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }

    /// Every value of every label set is a series from the start, under
    /// the names SPEC §6 fixes, and counts where it says.
    #[test]
    fn every_label_value_exists_from_the_start_and_counts() {
        let m = Metrics::new();
        m.recognitions_total.with(Recognition::Queued).inc();
        m.sync_batches_total.with(SyncBatch::DeadLetter).inc_by(2);
        m.ws_disconnects_total.with(Disconnect::Heartbeat).inc();
        m.component_restarts_total.with(Component::Retention).inc();
        let text = m.render();
        for line in [
            "gatelog_recognitions_total{result=\"accepted\"} 0",
            "gatelog_recognitions_total{result=\"duplicate\"} 0",
            "gatelog_recognitions_total{result=\"queued\"} 1",
            "gatelog_recognitions_total{result=\"invalid\"} 0",
            "gatelog_sync_batches_total{result=\"ok\"} 0",
            "gatelog_sync_batches_total{result=\"retry\"} 0",
            "gatelog_sync_batches_total{result=\"dead_letter\"} 2",
            "gatelog_ws_disconnects_total{reason=\"client\"} 0",
            "gatelog_ws_disconnects_total{reason=\"heartbeat\"} 1",
            "gatelog_component_restarts_total{component=\"writer\"} 0",
            "gatelog_component_restarts_total{component=\"retention\"} 1",
        ] {
            assert!(text.contains(line), "missing {line} in\n{text}");
        }
    }
}
