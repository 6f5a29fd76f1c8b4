//! The broadcaster: one actor that turns committed writes into live frames
//! for every WebSocket client.
//!
//! The store's writer publishes each committed batch of outcomes on a
//! broadcast channel. The broadcaster subscribes to it, serialises each
//! event to JSON once, and offers the frame to every client's own bounded
//! queue with `try_send`. It never waits for a client: a client whose queue
//! is full misses the frame, and its connection is told to `resync`
//! (see [`crate::routes::ws`]). So a slow or stalled dashboard can neither
//! slow ingest (the writer's broadcast never waits either) nor hold back
//! the other clients.
//!
//! # Layout
//! - [`broadcaster`] builds the actor and its handle.
//! - [`BroadcastActor::run`] is the loop the supervisor runs: commands,
//!   committed outcomes, sync status changes, and a periodic sweep of
//!   clients that went away.
//! - [`BroadcastHandle`] is the cloneable way in: [`BroadcastHandle::join`]
//!   for a new connection, [`BroadcastHandle::publish_error`] for a failed
//!   save, [`BroadcastHandle::resync`] when the source lost events,
//!   [`BroadcastHandle::close_clients`] at shutdown.
//! - [`OutcomeSource`]: where committed outcomes come from, a site's writer
//!   or, on the head-office view, the central database's notifications.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use gatelog_local_store::{Cursor, Outcome, OutcomeKind, Store, WriterHandle};
use gatelog_metrics::Metrics;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::task_tracker::TrackedFuture;
use tokio_util::task::TaskTracker;

/// Frames one client may have waiting before it misses frames. A single
/// group commit of up to 1,000 reads fits, so a client that keeps up never
/// sees a resync even during a bulk upload.
pub const CLIENT_QUEUE: usize = 1024;
/// Commands (joins, errors) that may wait for the actor.
const COMMAND_QUEUE: usize = 1024;
/// How often clients that went away are forgotten when no event did it.
const SWEEP_INTERVAL: Duration = Duration::from_secs(10);

/// What a frame tells the client; lets a connection act on a frame
/// without parsing its JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    NewLog,
    Duplicate,
    Corrected,
    SyncStatus,
    Error,
    /// The source lost events; clients refetch.
    Resync,
}

/// One live message, serialised once and shared by every client.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: FrameKind,
    /// The keyset position of the passage a `new_log` frame carries, so a
    /// connection can skip passages it already sent in `initial_data` and
    /// tell a lagging client where to resume.
    pub position: Option<Cursor>,
    /// The JSON text, cheap to clone.
    pub text: ByteString,
}

impl Frame {
    fn new(kind: FrameKind, position: Option<Cursor>, value: &Value) -> Self {
        Self {
            kind,
            position,
            text: ByteString::from(value.to_string()),
        }
    }

    /// The `sync_status` frame for a status value. An object's fields are
    /// lifted beside `type`, as SPEC §3 shows; any other value is carried
    /// under `status`.
    pub fn sync_status(status: &Value) -> Self {
        let mut body = json!({"type": "sync_status"});
        match status {
            Value::Object(fields) => {
                for (k, v) in fields {
                    if k != "type" {
                        body[k] = v.clone();
                    }
                }
            }
            other => body["status"] = other.clone(),
        }
        Self::new(FrameKind::SyncStatus, None, &body)
    }
}

/// The `new_log` or `duplicate` frame for one committed outcome; none
/// for a correction by hand, which only its `corrected` frame announces.
pub fn outcome_frame(o: &Outcome) -> Option<Frame> {
    let p = &o.passage;
    Some(match o.kind {
        OutcomeKind::Created => {
            let cursor = Cursor {
                captured_at: p.captured_at.timestamp_micros(),
                id: p.id,
            };
            Frame::new(
                FrameKind::NewLog,
                Some(cursor),
                &json!({"type": "new_log", "log": p, "cursor": cursor.encode()}),
            )
        }
        OutcomeKind::Joined => Frame::new(
            FrameKind::Duplicate,
            None,
            &json!({
                "type": "duplicate",
                "id": p.id,
                "container": p.container,
                "seen_count": p.seen_count,
                "last_seen_at": p.last_seen_at,
            }),
        ),
        OutcomeKind::Corrected => return None,
    })
}

/// The `corrected` frame when an outcome changed its passage's number.
pub fn correction_frame(o: &Outcome) -> Option<Frame> {
    let c = o.correction.as_ref()?;
    Some(Frame::new(
        FrameKind::Corrected,
        None,
        &json!({
            "type": "corrected",
            "id": o.passage.id,
            "container": o.passage.container,
            "corrected_from": c.from,
            "rule": c.rule,
            "by": c.by,
            "version": o.passage.version,
        }),
    ))
}

/// What a connection gets when it joins.
pub struct Subscription {
    /// Live frames, in commit order. Shared: one allocation per event,
    /// and a queue slot costs a pointer, which keeps idle clients small.
    pub frames: mpsc::Receiver<Arc<Frame>>,
    /// The latest sync status, to send right after the initial data.
    pub sync_status: Option<Arc<Frame>>,
    /// Frames this client missed because its queue was full.
    skipped: Arc<AtomicU64>,
}

impl Subscription {
    /// How many frames were missed since the last call, resetting the
    /// count.
    pub fn take_skipped(&self) -> u64 {
        self.skipped.swap(0, Ordering::AcqRel)
    }
}

/// Where committed outcomes come from.
#[derive(Clone)]
pub enum OutcomeSource {
    /// A site's writer actor.
    Writer(WriterHandle),
    /// A channel fed by something else: on the head-office view, the
    /// listener on the central database's notifications.
    Channel(broadcast::Sender<Arc<[Outcome]>>),
}

impl OutcomeSource {
    fn subscribe(&self) -> broadcast::Receiver<Arc<[Outcome]>> {
        match self {
            Self::Writer(w) => w.subscribe(),
            Self::Channel(tx) => tx.subscribe(),
        }
    }
}

/// The broadcaster has stopped (shutdown in progress).
#[derive(Debug, thiserror::Error)]
#[error("the live feed is shutting down")]
pub struct BroadcastClosed;

enum Command {
    Join {
        reply: oneshot::Sender<Subscription>,
    },
    Error {
        message: String,
    },
    Resync {
        reason: String,
    },
}

/// A cloneable handle to the broadcaster.
#[derive(Clone)]
pub struct BroadcastHandle {
    commands: mpsc::Sender<Command>,
    /// Cancelled when the server shuts down, so that open connections close
    /// at once instead of holding HTTP's graceful stop until its timeout.
    closing: CancellationToken,
    /// The live connections' tasks, so shutdown can wait until each has
    /// handed its close frame to the HTTP layer, whose graceful stop then
    /// writes it before the connection ends.
    connections: TaskTracker,
    /// Whether a sync status source was given, so the dashboard knows if
    /// sync runs at all.
    has_sync_status: bool,
}

impl BroadcastHandle {
    /// Registers a new client. Its queue exists from this moment, so a
    /// caller that joins first and queries the store second misses
    /// nothing in between.
    pub async fn join(&self) -> Result<Subscription, BroadcastClosed> {
        if self.closing.is_cancelled() {
            return Err(BroadcastClosed);
        }
        let (reply, rx) = oneshot::channel();
        self.commands
            .send(Command::Join { reply })
            .await
            .map_err(|_| BroadcastClosed)?;
        rx.await.map_err(|_| BroadcastClosed)
    }

    /// Tells every client that a save failed. Never waits: when the actor
    /// is busy the notice is dropped, since the client that sent the read
    /// gets its own 503 either way.
    pub fn publish_error(&self, message: impl Into<String>) {
        let _ = self.commands.try_send(Command::Error {
            message: message.into(),
        });
    }

    /// Tells every client that events may have been lost (the source
    /// reconnected), so each refetches: a `resync` frame with `reason`.
    /// Never waits, like [`Self::publish_error`].
    pub fn resync(&self, reason: impl Into<String>) {
        let _ = self.commands.try_send(Command::Resync {
            reason: reason.into(),
        });
    }

    /// Asks every open connection to close (code 1001, going away).
    pub fn close_clients(&self) {
        self.closing.cancel();
    }

    /// Resolves when every connection's task has finished, after
    /// [`Self::close_clients`].
    pub async fn clients_closed(&self) {
        self.connections.close();
        self.connections.wait().await
    }

    /// Counts `task`, a live connection, as open until it ends.
    pub(crate) fn track<F: std::future::Future>(&self, task: F) -> TrackedFuture<F> {
        self.connections.track_future(task)
    }

    /// Whether clients will get `sync_status` frames.
    pub fn has_sync_status(&self) -> bool {
        self.has_sync_status
    }

    /// Resolves when [`Self::close_clients`] has been called.
    pub async fn closing(&self) {
        self.closing.cancelled().await
    }
}

/// The mutable part of the actor, kept across restarts.
struct State<S> {
    commands: mpsc::Receiver<Command>,
    /// Every connected client's queue and skip counter.
    clients: Vec<Client>,
    /// Where sync status comes from, when sync runs.
    sync_status: Option<watch::Receiver<S>>,
    /// The last sync status sent, to skip updates that change nothing.
    last_value: Option<Value>,
    /// The last sync status frame, for clients that join later.
    last_status: Option<Arc<Frame>>,
}

struct Client {
    tx: mpsc::Sender<Arc<Frame>>,
    skipped: Arc<AtomicU64>,
}

/// The broadcaster actor. Run it under the supervisor with
/// [`BroadcastActor::run`].
pub struct BroadcastActor<S = Value> {
    /// The source of committed outcomes; subscribed afresh on each run.
    source: OutcomeSource,
    metrics: Metrics,
    state: Mutex<State<S>>,
}

/// Builds the broadcaster for `store`. `sync_status`, when given, is a
/// stream of sync status snapshots, serialised as SPEC §3's
/// `GET /api/v1/sync/status` object; each change is pushed to every client
/// as `sync_status`.
pub fn broadcaster<S>(
    store: &Store,
    metrics: Metrics,
    sync_status: Option<watch::Receiver<S>>,
) -> (BroadcastActor<S>, BroadcastHandle)
where
    S: serde::Serialize + Send + Sync + 'static,
{
    broadcaster_from(
        OutcomeSource::Writer(store.writer().clone()),
        metrics,
        sync_status,
    )
}

/// Builds the broadcaster over any [`OutcomeSource`]; see [`broadcaster`].
pub fn broadcaster_from<S>(
    source: OutcomeSource,
    metrics: Metrics,
    sync_status: Option<watch::Receiver<S>>,
) -> (BroadcastActor<S>, BroadcastHandle)
where
    S: serde::Serialize + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let has_sync_status = sync_status.is_some();
    let last_value = sync_status
        .as_ref()
        .and_then(|s| serde_json::to_value(&*s.borrow()).ok());
    let last_status = last_value.as_ref().map(|v| Arc::new(Frame::sync_status(v)));
    let actor = BroadcastActor {
        source,
        metrics,
        state: Mutex::new(State {
            commands: rx,
            clients: Vec::new(),
            sync_status,
            last_value,
            last_status,
        }),
    };
    let handle = BroadcastHandle {
        commands: tx,
        closing: CancellationToken::new(),
        connections: TaskTracker::new(),
        has_sync_status,
    };
    (actor, handle)
}

impl<S> BroadcastActor<S>
where
    S: serde::Serialize + Send + Sync + 'static,
{
    /// Runs until `shutdown` fires. It cannot fail; a panic is restarted by
    /// the supervisor and keeps the connected clients.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), Infallible> {
        let mut guard = self.state.lock().await;
        // Borrow the fields apart, so the select can wait on several.
        let state = &mut *guard;
        let mut events = self.source.subscribe();
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                cmd = state.commands.recv() => match cmd {
                    Some(Command::Join { reply }) => {
                        let (tx, frames) = mpsc::channel(CLIENT_QUEUE);
                        let skipped = Arc::new(AtomicU64::new(0));
                        let sub = Subscription {
                            frames,
                            sync_status: state.last_status.clone(),
                            skipped: skipped.clone(),
                        };
                        if reply.send(sub).is_ok() {
                            state.clients.push(Client { tx, skipped });
                        }
                    }
                    Some(Command::Error { message }) => {
                        let frame = Frame::new(
                            FrameKind::Error,
                            None,
                            &json!({"type": "error", "message": message}),
                        );
                        self.fan_out(&mut state.clients, frame);
                    }
                    Some(Command::Resync { reason }) => {
                        let frame = Frame::new(
                            FrameKind::Resync,
                            None,
                            &json!({"type": "resync", "missed": null, "reason": reason}),
                        );
                        self.fan_out(&mut state.clients, frame);
                    }
                    None => break,
                },
                event = events.recv() => match event {
                    Ok(batch) => {
                        if state.clients.is_empty() {
                            continue;
                        }
                        for o in batch.iter() {
                            if let Some(frame) = outcome_frame(o) {
                                self.fan_out(&mut state.clients, frame);
                            }
                            if let Some(frame) = correction_frame(o) {
                                self.fan_out(&mut state.clients, frame);
                            }
                        }
                    }
                    Err(RecvError::Lagged(n)) => {
                        // The broadcaster itself fell behind the writer:
                        // every client missed the same batches.
                        tracing::warn!(batches = n, "live feed lagged behind the writer");
                        for c in &state.clients {
                            c.skipped.fetch_add(n, Ordering::AcqRel);
                        }
                    }
                    Err(RecvError::Closed) => {
                        // The store is closing; wait for the shutdown signal.
                        shutdown.cancelled().await;
                        break;
                    }
                },
                status = next_status(&mut state.sync_status) => {
                    match status {
                        Some(value) if state.last_value.as_ref() != Some(&value) => {
                            let frame = Arc::new(Frame::sync_status(&value));
                            state.last_value = Some(value);
                            state.last_status = Some(frame.clone());
                            self.fan_out(&mut state.clients, frame);
                        }
                        Some(_) => {}
                        None => state.sync_status = None,
                    }
                }
                _ = sweep.tick() => state.clients.retain(|c| !c.tx.is_closed()),
            }
        }
        // Dropping the queues ends every connection's feed.
        state.clients.clear();
        Ok(())
    }

    /// Offers `frame` to every client without waiting, and forgets the
    /// clients that went away.
    fn fan_out(&self, clients: &mut Vec<Client>, frame: impl Into<Arc<Frame>>) {
        let frame = frame.into();
        clients.retain(|c| match c.tx.try_send(frame.clone()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                c.skipped.fetch_add(1, Ordering::AcqRel);
                self.metrics.ws_skipped_frames_total.inc();
                true
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        });
    }
}

/// The next sync status; `None` when its sender has gone. Pending forever
/// when there is no sync status source.
async fn next_status<S: serde::Serialize>(
    source: &mut Option<watch::Receiver<S>>,
) -> Option<Value> {
    match source {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(serde_json::to_value(&*rx.borrow_and_update()).unwrap_or(Value::Null)),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_status_lifts_object_fields() {
        let f = Frame::sync_status(&json!({"target": "supabase", "pending": 3}));
        let v: Value = serde_json::from_str(&f.text).unwrap();
        assert_eq!(
            v,
            json!({"type": "sync_status", "target": "supabase", "pending": 3})
        );
        let f = Frame::sync_status(&json!("off"));
        let v: Value = serde_json::from_str(&f.text).unwrap();
        assert_eq!(v, json!({"type": "sync_status", "status": "off"}));
    }
}
