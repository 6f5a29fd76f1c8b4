//! The sync actor: drains the local backlog into the target, one batch at
//! a time, oldest change first.
//!
//! One cycle: read up to `batch_size` pending passages; send them; when the
//! target confirms, record the versions that were sent as synced. A
//! transient failure leaves the rows pending and waits a backoff drawn
//! with full jitter; the timer, not new arrivals, drives the retry. A
//! rejection splits the batch in halves until the refused rows are alone,
//! and only those become dead letters. When the backlog is empty the actor
//! sleeps until the writer commits something, a handle pokes it, or the
//! poll interval passes.
//!
//! Beside that loop, in the same task, a timer recounts the backlog every
//! `sync.status_interval_ms` and publishes the status and the gauges, so
//! they stay true while an attempt waits on a target that does not answer.
//! With no target the actor sends nothing and counts nothing: the local
//! store is then the only copy, and nothing is pending.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use gatelog_core::Passage;
use gatelog_local_store::Store;
use gatelog_metrics::{Metrics, SyncBatch};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::error::{ErrorClass, Redactor};
use crate::sink::Sink;
use crate::status::{lag_seconds, SyncStatus};
use crate::{SyncConfig, SyncError, Target};

/// The actor. Create it with [`SyncActor::new`], run it with
/// [`SyncActor::run`]; after a failed run the supervisor may call `run`
/// again, and the status (last success, last error) carries over.
pub struct SyncActor {
    config: SyncConfig,
    target: Target,
    /// The local backlog, and its writer for the bookkeeping.
    store: Store,
    metrics: Metrics,
    /// The latest status; the handle's receivers see every change.
    status: watch::Sender<SyncStatus>,
    /// Poked by [`SyncHandle::wake`] to cut an idle wait or a backoff short.
    wake: Arc<Notify>,
    /// Applied to every error message before it is logged or published.
    redactor: Redactor,
}

/// A cloneable handle to a running actor.
#[derive(Clone)]
pub struct SyncHandle {
    status: watch::Receiver<SyncStatus>,
    wake: Arc<Notify>,
    store: Store,
}

impl SyncHandle {
    /// The latest status, and every change after it.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.status.clone()
    }

    /// Makes the actor look at the backlog now, even in a backoff.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Puts dead letters back in the backlog (all when `ids` is `None`)
    /// and wakes the actor. Returns how many.
    pub async fn retry_dead_letters(&self, ids: Option<Vec<uuid::Uuid>>) -> Result<u64, SyncError> {
        let n = crate::retry_dead_letters(&self.store, ids).await?;
        self.wake();
        Ok(n)
    }
}

/// Exponential backoff with full jitter.
struct Backoff {
    initial: Duration,
    max: Duration,
    /// Failures since the last success.
    failures: u32,
}

impl Backoff {
    fn new(config: &SyncConfig) -> Self {
        Self {
            initial: Duration::from_millis(config.backoff_initial_ms.max(1)),
            max: Duration::from_millis(config.backoff_max_ms.max(config.backoff_initial_ms)),
            failures: 0,
        }
    }

    /// The next wait: uniform in [0, min(max, initial × 2^failures)].
    fn next(&mut self) -> Duration {
        let ceiling = self
            .initial
            .saturating_mul(1u32 << self.failures.min(20))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        ceiling.mul_f64(rand::random_range(0.0..=1.0))
    }

    fn reset(&mut self) {
        self.failures = 0;
    }
}

impl SyncActor {
    /// Creates the actor and its handle. Nothing runs until [`Self::run`].
    pub fn new(
        config: SyncConfig,
        target: Target,
        store: Store,
        metrics: Metrics,
    ) -> (Self, SyncHandle) {
        let (status, rx) = watch::channel(SyncStatus::new(target.kind()));
        let wake = Arc::new(Notify::new());
        let handle = SyncHandle {
            status: rx,
            wake: wake.clone(),
            store: store.clone(),
        };
        let redactor = target.redactor();
        (
            Self {
                config,
                target,
                store,
                metrics,
                status,
                wake,
                redactor,
            },
            handle,
        )
    }

    /// A receiver of the status, as [`SyncHandle::status`] gives.
    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.status.subscribe()
    }

    /// Syncs until `shutdown` fires. A batch in flight finishes (bounded by
    /// the request timeout) before it returns. Returns an error only when
    /// the local store fails or the target's settings are invalid; target
    /// outages are retried here, never returned.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), SyncError> {
        let sink = match Sink::new(&self.target, &self.config) {
            Ok(s) => s,
            Err(e) => {
                self.record_error(&e);
                return Err(e);
            }
        };
        let result = if sink.is_active() {
            tokio::select! {
                r = self.serve(&sink, &shutdown) => r,
                // Runs beside the sends, so the status and the gauges stay
                // true while an attempt waits on a dead target. It ends
                // only when the store fails.
                r = self.keep_status_current() => r,
            }
        } else {
            self.without_target(&shutdown).await;
            Ok(())
        };
        sink.close().await;
        if let Err(e) = &result {
            self.record_error(e);
        }
        result
    }

    /// With no target there is nothing to send and no backlog: the local
    /// store is the system of record, so nothing is "pending" (and
    /// retention does not wait for sync). The status says `target: none`
    /// with zero counts, and the gauges read zero.
    async fn without_target(&self, shutdown: &CancellationToken) {
        self.metrics.sync_pending.set(0);
        self.metrics.sync_dead_letters.set(0);
        self.metrics.sync_lag_seconds.set(0.0);
        tracing::info!("sync is off (sync.target = none); the local store is the only copy");
        shutdown.cancelled().await;
    }

    /// Recounts the backlog every `sync.status_interval_ms`, whatever a
    /// send attempt is doing.
    async fn keep_status_current(&self) -> Result<(), SyncError> {
        let every = Duration::from_millis(self.config.status_interval_ms.max(1));
        let mut tick = tokio::time::interval(every);
        // After a slow count, wait a whole interval rather than catching up.
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            self.refresh().await?;
        }
    }

    async fn serve(&self, sink: &Sink, shutdown: &CancellationToken) -> Result<(), SyncError> {
        let mut events = self.store.writer().subscribe();
        let mut backoff = Backoff::new(&self.config);
        let idle = Duration::from_millis(self.config.poll_interval_ms.max(1));
        tracing::info!(target_kind = self.target.kind().as_str(), "sync started");

        while !shutdown.is_cancelled() {
            // Forget wake-ups for commits this read will see anyway.
            while events.try_recv().is_ok() {}
            let batch = self
                .store
                .sync_pending(self.config.batch_size.max(1))
                .await?;
            if batch.is_empty() {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(idle) => {}
                    _ = events.recv() => {}
                }
                continue;
            }

            let span = tracing::debug_span!("sync_batch", rows = batch.len());
            let outcome = self.deliver(sink, &batch).instrument(span).await;
            match outcome {
                Ok(()) => backoff.reset(),
                Err(SyncError::Store(e)) => return Err(SyncError::Store(e)),
                Err(e) => {
                    let wait = backoff.next();
                    self.metrics.sync_retries_total.inc();
                    self.metrics.sync_batches_total.with(SyncBatch::Retry).inc();
                    let message = self.record_error(&e);
                    if e.class() == ErrorClass::Misconfigured {
                        tracing::error!(error = %message, retry_in_ms = wait.as_millis() as u64, "sync target refused the request");
                    } else {
                        tracing::warn!(error = %message, retry_in_ms = wait.as_millis() as u64, "sync batch failed; will retry");
                    }
                    tokio::select! {
                        _ = shutdown.cancelled() => {}
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
        self.refresh().await?;
        tracing::info!("sync stopped");
        Ok(())
    }

    /// Sends `batch`, splitting it around rejected rows. Returns the first
    /// transient error; what was confirmed before it stays confirmed.
    async fn deliver(&self, sink: &Sink, batch: &[Passage]) -> Result<(), SyncError> {
        let mut stack: Vec<&[Passage]> = vec![batch];
        while let Some(rows) = stack.pop() {
            match sink.send(rows).await {
                Ok(()) => {
                    // The centre has the rows; a failure here is the
                    // "it worked but we never heard" case, and the rows
                    // must go again, harmlessly.
                    fail::fail_point!("sync-before-mark-synced", |_| Err(SyncError::Unavailable(
                        "fail point sync-before-mark-synced".into()
                    )));
                    let confirmed = rows.iter().map(|p| (p.id, p.version)).collect();
                    self.store.writer().mark_synced(confirmed).await?;
                    let now = Utc::now();
                    self.metrics.sync_batches_total.with(SyncBatch::Ok).inc();
                    self.metrics
                        .sync_last_success_timestamp_seconds
                        .set(now.timestamp_millis() as f64 / 1000.0);
                    self.status.send_modify(|s| {
                        s.last_success_at = Some(now);
                        s.last_error = None;
                        s.last_error_at = None;
                        s.pending = (s.pending - rows.len() as i64).max(0);
                    });
                    tracing::debug!(rows = rows.len(), "sync batch confirmed");
                }
                Err(e) if e.is_retriable() => return Err(e),
                Err(e) if rows.len() == 1 => {
                    let p = &rows[0];
                    let reason = self.record_error(&e);
                    tracing::warn!(id = %p.id, version = p.version, error = %reason, "sync target rejected a passage; it is now a dead letter");
                    self.store
                        .writer()
                        .mark_dead_letter(vec![(p.id, p.version, reason)])
                        .await?;
                    self.metrics
                        .sync_batches_total
                        .with(SyncBatch::DeadLetter)
                        .inc();
                    self.status.send_modify(|s| {
                        s.dead_letters += 1;
                        s.pending = (s.pending - 1).max(0);
                    });
                }
                Err(e) => {
                    tracing::debug!(rows = rows.len(), error = %self.redactor.clean(&e.to_string()), "sync target rejected a batch; splitting it");
                    let (left, right) = rows.split_at(rows.len() / 2);
                    // Left on top, so rows still go oldest first.
                    stack.push(right);
                    stack.push(left);
                }
            }
        }
        Ok(())
    }

    /// Publishes `e` (redacted and cut short) as the last error and
    /// returns the text.
    fn record_error(&self, e: &SyncError) -> String {
        let message = self.redactor.clean(&e.to_string());
        let now = Utc::now();
        // A repeat of the same error keeps its first time, so a steady
        // outage does not change the status (and send it to every
        // dashboard) on each retry.
        self.status.send_if_modified(|s| {
            if s.last_error.as_deref() == Some(message.as_str()) {
                return false;
            }
            s.last_error = Some(message.clone());
            s.last_error_at = Some(now);
            true
        });
        message
    }

    /// Recounts the backlog and updates the status and the gauges.
    async fn refresh(&self) -> Result<(), SyncError> {
        let backlog = self.store.sync_backlog().await?;
        let now = Utc::now();
        self.metrics.sync_pending.set(backlog.pending);
        self.metrics.sync_dead_letters.set(backlog.dead_letters);
        self.metrics
            .sync_lag_seconds
            .set(lag_seconds(&backlog, now));
        self.status.send_if_modified(|s| {
            let before = s.clone();
            s.apply_backlog(&backlog, now);
            *s != before
        });
        Ok(())
    }
}
