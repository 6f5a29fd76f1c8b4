//! The writer actor: the only code that changes the local store.
//!
//! Requests queue on a bounded channel. The actor takes whatever has queued
//! while the previous commit ran (up to `max_batch_reads` reads), decides
//! every read of them in order, writes them in one transaction, commits with
//! one WAL fsync, and only then answers each request. Under load, many
//! requests share a commit; alone, a request commits at once.
//!
//! Dedup decisions are made here, inside the transaction, by
//! [`gatelog_core::dedup::DedupIndex`] over the candidate passages loaded
//! from the file. Because there is exactly one writer, two identical reads
//! can never both open a passage, and because the candidates come from the
//! file, the rule holds across restarts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use gatelog_core::container::CheckStatus;
use gatelog_core::fold::{fold, Candidate, FoldPlan, Joined, Votes};
use gatelog_core::gate::{self, YardChange, YardEntry};
use gatelog_core::operator::{self, OperatorNumber};
use gatelog_core::passage::SyncState;
use gatelog_core::{
    Correction, DedupConfig, Direction, Passage, QueuedRead, Read, Resolved, Unresolved,
};
use gatelog_metrics::{Metrics, Recognition};
use sqlx::sqlite::SqliteConnection;
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};
use tokio::sync::{broadcast, mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::retention::{self, RetentionReport, RetentionScope};
use crate::rows::{
    micros, PassageRow, UnresolvedRow, PASSAGE_COLUMNS, PASSAGE_WRITE_COLUMNS, UNRESOLVED_COLUMNS,
};
use crate::sync_state::{self, SyncOp};
use crate::{StoreConfig, StoreError};

/// Rows per multi-row statement, at most: 256 rows of 20 columns stays
/// well under SQLite's limit of 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 256;
/// Dedup keys per candidate query, at most: five parameters each, and
/// below SQLite's limit of 500 terms in one compound SELECT.
const KEYS_PER_QUERY: usize = 128;

/// Splits `items` into chunks whose lengths are powers of two, largest
/// first, none longer than `max` (itself a power of two).
///
/// A multi-row statement's text depends on its row count. Cut this way, a
/// writer meets at most `log2(max) + 1` texts per kind of statement, which
/// the connection's prepared-statement cache (sqlx keeps 100) holds for
/// good; cut at any length, nearly every batch size was a new text,
/// parsed and planned again, evicting another from the cache.
fn shaped<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    debug_assert!(max.is_power_of_two());
    let mut rest = items;
    std::iter::from_fn(move || {
        let len = rest.len();
        if len == 0 {
            return None;
        }
        let (head, tail) = rest.split_at(max.min(1 << len.ilog2()));
        rest = tail;
        Some(head)
    })
}

/// Runs `body` (a future using `conn`) between [`begin`] and [`finish`].
macro_rules! in_transaction {
    ($conn:expr, $body:expr) => {
        match begin($conn).await {
            Ok(()) => {
                let r = $body.await;
                finish($conn, r).await
            }
            Err(e) => Err(e),
        }
    };
}

/// Whether a read opened its passage or joined one; or, for a correction
/// by hand, neither.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Created,
    Joined,
    /// An operator changed the passage's number; no read was added.
    Corrected,
}

impl OutcomeKind {
    fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Created => "created",
            OutcomeKind::Joined => "joined",
            OutcomeKind::Corrected => "corrected",
        }
    }
}

/// What a read's client id (its idempotency key) found in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// No read with this client id was stored (or the read had none): the
    /// read was written now.
    Fresh,
    /// A read with this client id and the same content was stored: nothing
    /// was written, and `kind` is the original outcome.
    Same,
    /// A read with this client id but other content was stored: nothing
    /// was written, and `passage` is the one the original read went to.
    Conflict,
}

/// The committed answer for a read kept for an operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Queued {
    /// The unresolved read's id in the exceptions queue.
    pub id: Uuid,
    pub replay: Replay,
}

/// The committed result of one read, or of one correction by hand.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// The passage as it stood right after this read.
    pub passage: Passage,
    /// The read's sighting; nil for [`OutcomeKind::Corrected`], which adds
    /// none.
    pub sighting_id: Uuid,
    pub replay: Replay,
    /// The change of the passage's number this read caused, if any.
    pub correction: Option<Correction>,
}

/// What resolving a queued read came to.
#[derive(Debug, Clone)]
pub enum ResolveOutcome {
    /// The read is now a sighting; the outcome is its fold, with the
    /// operator's correction recorded on its passage.
    Resolved(Box<Outcome>),
    /// No queued read has this id.
    NotFound,
    /// An operator resolved it before; nothing was written.
    AlreadyResolved(Resolved),
}

/// What correcting a passage by hand came to.
#[derive(Debug, Clone)]
pub enum CorrectOutcome {
    /// The number changed; the outcome carries the correction.
    Corrected(Box<Outcome>),
    /// The passage already held that number; nothing was written.
    Unchanged(Box<Passage>),
    /// No passage has this id.
    NotFound,
}

pub(crate) enum Command {
    Write(PendingWrite),
    /// An operator's number for a queued read; see [`WriterHandle::resolve`].
    Resolve {
        id: Uuid,
        number: OperatorNumber,
        by: String,
        reply: oneshot::Sender<Result<ResolveOutcome, StoreError>>,
    },
    /// An operator's number for a passage; see [`WriterHandle::correct`].
    Correct {
        id: Uuid,
        number: OperatorNumber,
        by: String,
        reason: Option<String>,
        reply: oneshot::Sender<Result<CorrectOutcome, StoreError>>,
    },
    Probe {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Reads kept for an operator; see [`WriterHandle::queue`].
    Queue {
        reads: Vec<Unresolved>,
        received_at: i64,
        reply: oneshot::Sender<Result<Vec<Queued>, StoreError>>,
    },
    Import {
        passages: Vec<Passage>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Sync bookkeeping; see [`crate::sync_state`].
    Sync {
        op: SyncOp,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Retain {
        cutoff: chrono::DateTime<Utc>,
        max: u32,
        scope: RetentionScope,
        reply: oneshot::Sender<Result<RetentionReport, StoreError>>,
    },
}

/// A cloneable handle to the writer actor.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<Arc<[Outcome]>>,
}

impl WriterHandle {
    pub(crate) fn new(
        tx: mpsc::Sender<Command>,
        events: broadcast::Sender<Arc<[Outcome]>>,
    ) -> Self {
        Self { tx, events }
    }

    /// Sends the command `make` builds around a reply channel and waits for
    /// the answer; a stopped writer answers `Closed`.
    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Command,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Writes reads durably and returns one outcome per read, in order.
    /// Returns only after the commit that holds them has been fsynced.
    pub async fn write(&self, reads: Vec<Read>) -> Result<Vec<Outcome>, StoreError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let received_at = micros(Utc::now());
        self.request(|reply| {
            Command::Write(PendingWrite {
                reads,
                received_at,
                reply,
            })
        })
        .await
    }

    /// Keeps reads that could not be made into a container number, for an
    /// operator, and returns one answer per read, in order, after their
    /// commit. A client id seen before replays (or conflicts) as for
    /// [`WriterHandle::write`].
    pub async fn queue(&self, reads: Vec<Unresolved>) -> Result<Vec<Queued>, StoreError> {
        if reads.is_empty() {
            return Ok(Vec::new());
        }
        let received_at = micros(Utc::now());
        self.request(|reply| Command::Queue {
            reads,
            received_at,
            reply,
        })
        .await
    }

    /// Resolves queued read `id` into a sighting of `number`, which folds
    /// like any read, and records the operator's correction (`by`) on the
    /// passage it lands in. The sighting, the passage and the mark on the
    /// queued read commit in one transaction, so a retry after any failure
    /// finds the read either open or resolved, never resolved twice.
    pub async fn resolve(
        &self,
        id: Uuid,
        number: OperatorNumber,
        by: String,
    ) -> Result<ResolveOutcome, StoreError> {
        self.request(|reply| Command::Resolve {
            id,
            number,
            by,
            reply,
        })
        .await
    }

    /// Changes passage `id`'s number to `number` by hand (see
    /// [`gatelog_core::operator::correct`]) and records who and why.
    pub async fn correct(
        &self,
        id: Uuid,
        number: OperatorNumber,
        by: String,
        reason: Option<String>,
    ) -> Result<CorrectOutcome, StoreError> {
        self.request(|reply| Command::Correct {
            id,
            number,
            by,
            reason,
            reply,
        })
        .await
    }

    /// Checks that the writer runs and can commit a write now (it takes
    /// the write lock and rewrites one row).
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.request(|reply| Command::Probe { reply }).await
    }

    /// Inserts whole passages that are not yet stored, skipping ids that
    /// are. Used to load generated data for benchmarks and imports; it
    /// bypasses dedup by design.
    pub async fn import(&self, passages: Vec<Passage>) -> Result<(), StoreError> {
        self.request(|reply| Command::Import { passages, reply })
            .await
    }

    /// Every committed batch of outcomes (only fresh reads), for the live
    /// feed. Receivers that fall behind see `Lagged` and must resync.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Outcome]>> {
        self.events.subscribe()
    }
}

/// The writer actor. Run it with [`WriterActor::run`]; if a run fails the
/// supervisor calls `run` again, and it resumes with the same queue.
pub struct WriterActor {
    config: StoreConfig,
    dedup: DedupConfig,
    /// Stamped on every passage this site creates.
    site_id: String,
    metrics: Metrics,
    /// Shared so that a restarted run takes over the same queue; a run holds
    /// the lock for as long as it lives.
    rx: Arc<Mutex<mpsc::Receiver<Command>>>,
    events: broadcast::Sender<Arc<[Outcome]>>,
}

/// The writer's own connection, with WAL and `synchronous=FULL`. Besides
/// the writer, only [`crate::Store::open`] uses one, to migrate before the
/// writer starts.
pub(crate) async fn connect(config: &StoreConfig) -> Result<SqliteConnection, StoreError> {
    let mut conn = crate::write_options(config)
        .connect()
        .await
        .map_err(StoreError::from_sqlx)?;
    // Checkpoints belong to the checkpointer; this high threshold is only
    // a safety net for processes that run none.
    sqlx::query("PRAGMA wal_autocheckpoint=10000")
        .execute(&mut conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    // Refresh planner statistics where they are stale, as SQLite advises
    // for long-lived connections; cheap when nothing changed.
    sqlx::query("PRAGMA optimize=0x10002")
        .execute(&mut conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(conn)
}

impl WriterActor {
    pub(crate) fn new(
        config: StoreConfig,
        dedup: DedupConfig,
        site_id: String,
        metrics: Metrics,
        rx: Arc<Mutex<mpsc::Receiver<Command>>>,
        events: broadcast::Sender<Arc<[Outcome]>>,
    ) -> Self {
        Self {
            config,
            dedup,
            site_id,
            metrics,
            rx,
            events,
        }
    }

    /// Serves requests until `shutdown` fires, then answers everything still
    /// queued before it returns, so no accepted request is dropped.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let mut conn = connect(&self.config).await?;
        let mut rx = self.rx.lock().await;
        loop {
            let first = tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(cmd) => cmd,
                    None => break,
                },
                _ = shutdown.cancelled() => break,
            };
            let batch = self.gather(first, &mut rx);
            self.handle(&mut conn, batch).await?;
        }
        // Drain: refuse new requests, answer the queued ones.
        rx.close();
        while let Some(first) = rx.recv().await {
            let batch = self.gather(first, &mut rx);
            self.handle(&mut conn, batch).await?;
        }
        let _ = sqlx::query("PRAGMA optimize").execute(&mut conn).await;
        conn.close().await.map_err(StoreError::from_sqlx)?;
        Ok(())
    }

    /// Takes what has queued behind `first`, up to the batch limit.
    fn gather(&self, first: Command, rx: &mut mpsc::Receiver<Command>) -> Vec<Command> {
        let mut reads = command_reads(&first);
        let mut batch = vec![first];
        while reads < self.config.max_batch_reads {
            match rx.try_recv() {
                Ok(cmd) => {
                    reads += command_reads(&cmd);
                    batch.push(cmd);
                }
                Err(_) => break,
            }
        }
        batch
    }

    /// Handles one gathered batch. Returns an error only when the
    /// connection looks broken, so that the supervisor reopens it.
    async fn handle(
        &self,
        conn: &mut SqliteConnection,
        batch: Vec<Command>,
    ) -> Result<(), StoreError> {
        let mut writes = Vec::new();
        for cmd in batch {
            match cmd {
                Command::Write(write) => writes.push(write),
                Command::Probe { reply } => {
                    let r = probe(conn).await;
                    let _ = reply.send(r);
                }
                Command::Queue {
                    reads,
                    received_at,
                    reply,
                } => {
                    let r = in_transaction!(conn, queue(conn, &self.site_id, &reads, received_at));
                    answer(reply, r)?;
                }
                Command::Import { passages, reply } => {
                    answer(reply, in_transaction!(conn, import(conn, passages)))?;
                }
                Command::Resolve {
                    id,
                    number,
                    by,
                    reply,
                } => {
                    let r = in_transaction!(
                        conn,
                        resolve(conn, &self.dedup, &self.site_id, id, &number, &by)
                    );
                    if let Ok(ResolveOutcome::Resolved(o)) = &r {
                        self.announce(o);
                    }
                    answer(reply, r)?;
                }
                Command::Correct {
                    id,
                    number,
                    by,
                    reason,
                    reply,
                } => {
                    let r = in_transaction!(conn, correct(conn, id, &number, &by, reason));
                    if let Ok(CorrectOutcome::Corrected(o)) = &r {
                        self.announce(o);
                    }
                    answer(reply, r)?;
                }
                Command::Sync { op, reply } => {
                    answer(reply, in_transaction!(conn, sync_state::apply(conn, op)))?;
                }
                Command::Retain {
                    cutoff,
                    max,
                    scope,
                    reply,
                } => {
                    let r = in_transaction!(conn, retention::purge_chunk(conn, cutoff, max, scope));
                    answer(reply, r)?;
                }
            }
        }
        if writes.is_empty() {
            return Ok(());
        }
        self.commit_writes(conn, writes).await
    }

    /// Commits concurrent writes together: one transaction, one fsync. A
    /// group that fails for a reason that is not the store's condition (a
    /// constraint, a bug) is split in halves and retried, so one poison
    /// write fails alone and every other write still commits.
    async fn commit_writes(
        &self,
        conn: &mut SqliteConnection,
        writes: Vec<PendingWrite>,
    ) -> Result<(), StoreError> {
        let mut groups = vec![writes];
        while let Some(mut group) = groups.pop() {
            let started = Instant::now();
            let reads: Vec<(&Read, i64)> = group
                .iter()
                .flat_map(|w| w.reads.iter().map(move |r| (r, w.received_at)))
                .collect();
            let n_reads = reads.len();
            let plan = in_transaction!(conn, write_reads(conn, &self.dedup, &self.site_id, reads));
            let (e, broken) = match plan {
                Ok(outcomes) => {
                    // Committed, but the answers may still be lost (the
                    // process dies, the connection drops): the client
                    // must retry, and its id makes the retry a replay.
                    #[cfg(feature = "failpoints")]
                    if fail::eval("writer-after-commit", |_| ()).is_some() {
                        for write in group {
                            let _ = write.reply.send(Err(StoreError::Unavailable(
                                "fail point writer-after-commit".into(),
                            )));
                        }
                        continue;
                    }
                    self.committed(group, outcomes, started, n_reads);
                    continue;
                }
                Err(failure) => failure,
            };
            if !broken && !e.is_unavailable() && group.len() > 1 {
                tracing::warn!(error = %e, writes = group.len(), "group commit failed; retrying its writes apart");
                let right = group.split_off(group.len() / 2);
                // Left on top: writes still commit in arrival order.
                groups.push(right);
                groups.push(group);
                continue;
            }
            tracing::warn!(error = %e, reads = n_reads, "group commit failed");
            if e.is_unavailable() || broken {
                // Every waiter, here and in groups not tried yet, gets the
                // same condition, worded once.
                let reason = match &e {
                    StoreError::Unavailable(reason) => reason.clone(),
                    other => other.to_string(),
                };
                let waiting = if broken {
                    groups.drain(..).flatten().collect()
                } else {
                    Vec::new()
                };
                for write in group.into_iter().chain(waiting) {
                    let _ = write
                        .reply
                        .send(Err(StoreError::Unavailable(reason.clone())));
                }
                if broken {
                    return Err(e);
                }
            } else if let Some(write) = group.pop() {
                // One write that cannot be stored: its request alone fails.
                let _ = write.reply.send(Err(e));
            }
        }
        Ok(())
    }

    /// Announces one committed outcome of an operator's, as a group
    /// commit announces its reads: the live feed pushes it, and sync wakes.
    fn announce(&self, o: &Outcome) {
        // Nobody listening is fine.
        let _ = self.events.send(Arc::from(vec![o.clone()]));
    }

    /// Answers the writes of a committed group and announces what is new.
    fn committed(
        &self,
        group: Vec<PendingWrite>,
        outcomes: Vec<Outcome>,
        started: Instant,
        n_reads: usize,
    ) {
        self.metrics
            .store_commit_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.store_commit_reads.observe(n_reads as f64);
        let mut fresh = Vec::new();
        for o in outcomes.iter().filter(|o| o.replay == Replay::Fresh) {
            let result = match o.kind {
                OutcomeKind::Created => Recognition::Accepted,
                // A read never comes out as a correction by hand.
                OutcomeKind::Joined | OutcomeKind::Corrected => Recognition::Duplicate,
            };
            self.metrics.recognitions_total.with(result).inc();
            fresh.push(o.clone());
        }
        let mut outcomes = outcomes.into_iter();
        for write in group {
            let mine: Vec<Outcome> = outcomes.by_ref().take(write.reads.len()).collect();
            let _ = write.reply.send(Ok(mine));
        }
        if !fresh.is_empty() {
            // Nobody listening is fine.
            let _ = self.events.send(fresh.into());
        }
    }
}

/// A write waiting for its group commit.
pub(crate) struct PendingWrite {
    reads: Vec<Read>,
    /// When the request arrived (µs), stored with each sighting.
    received_at: i64,
    reply: oneshot::Sender<Result<Vec<Outcome>, StoreError>>,
}

fn command_reads(cmd: &Command) -> usize {
    match cmd {
        Command::Write(write) => write.reads.len(),
        Command::Import { passages, .. } => passages.len(),
        Command::Queue { reads, .. } => reads.len(),
        Command::Probe { .. }
        | Command::Sync { .. }
        | Command::Resolve { .. }
        | Command::Correct { .. } => 1,
        Command::Retain { max, .. } => *max as usize,
    }
}

/// Answers a command with its transaction's result. Returns an error when
/// the connection is unusable afterwards, so that the supervisor reopens it.
fn answer<T>(
    reply: oneshot::Sender<Result<T, StoreError>>,
    result: Result<T, (StoreError, bool)>,
) -> Result<(), StoreError> {
    let broken = matches!(result, Err((_, true)));
    let _ = reply.send(result.map_err(|e| e.0));
    if broken {
        Err(StoreError::Unavailable("connection lost".into()))
    } else {
        Ok(())
    }
}

/// Starts a write transaction. IMMEDIATE takes the write lock up front,
/// so a lock held by another process fails here, before any work, once
/// busy_timeout has passed.
async fn begin(conn: &mut SqliteConnection) -> Result<(), (StoreError, bool)> {
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(|e| (StoreError::from_sqlx(e), false))
}

/// Commits when `result` is Ok, rolls back otherwise. The error's flag
/// says whether the connection is unusable afterwards.
async fn finish<T>(
    conn: &mut SqliteConnection,
    result: Result<T, StoreError>,
) -> Result<T, (StoreError, bool)> {
    let error = match result {
        Ok(v) => match sqlx::query("COMMIT").execute(&mut *conn).await {
            Ok(_) => return Ok(v),
            Err(e) => StoreError::from_sqlx(e),
        },
        Err(e) => e,
    };
    // After a failed COMMIT SQLite may have rolled back already, so a failed
    // ROLLBACK alone proves nothing; a failing trivial query does.
    let rolled_back = sqlx::query("ROLLBACK").execute(&mut *conn).await.is_ok();
    let broken = !rolled_back && sqlx::query("SELECT 1").execute(&mut *conn).await.is_err();
    Err((error, broken))
}

/// A real write, committed like any other: one row rewritten.
async fn probe(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    in_transaction!(conn, async {
        sqlx::query(
            "INSERT INTO readiness (id, checked_at) VALUES (1, ?) \
             ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        )
        .bind(micros(crate::rows::now()))
        .execute(&mut *conn)
        .await?;
        Ok(())
    })
    .map_err(|e| e.0)
}

/// The dedup key within this site.
type Key = (String, String);

/// A read stored earlier under a client id.
struct Earlier {
    sighting_id: Uuid,
    passage_id: Uuid,
    kind: OutcomeKind,
    content_digest: String,
}

/// What the client id of a read in this batch refers to.
enum Prior {
    /// Stored before this batch.
    Stored(Earlier),
    /// The `n`th fresh read of this batch, with its digest.
    InBatch(usize, String),
}

/// Most passages one range query loads as near-miss candidates; a gate
/// sees tens of trucks in a window, so this only bounds a flood.
const NEAR_MISS_CANDIDATES: i64 = 1000;

/// A passage row with the votes of its reads, as the fold rule needs it.
#[derive(sqlx::FromRow)]
struct CandidateRow {
    #[sqlx(flatten)]
    passage: PassageRow,
    votes: String,
}

impl TryFrom<CandidateRow> for Candidate {
    type Error = StoreError;

    fn try_from(r: CandidateRow) -> Result<Self, StoreError> {
        let passage = Passage::try_from(r.passage)?;
        let votes: Votes = serde_json::from_str(&r.votes)
            .map_err(|e| StoreError::Corrupt(format!("passage votes: {e}")))?;
        // Passages stored before votes were kept have none: their number
        // counts once.
        let votes = if votes == Votes::default() {
            Votes::seed(&passage)
        } else {
            votes
        };
        Ok(Candidate { passage, votes })
    }
}

/// Time ranges `[t - before, t + after]` around each time, merged where
/// they overlap.
fn ranges(times: impl Iterator<Item = i64>, before: i64, after: i64) -> Vec<(i64, i64)> {
    let mut ts: Vec<i64> = times.collect();
    ts.sort_unstable();
    let mut out: Vec<(i64, i64)> = Vec::new();
    for t in ts {
        let (lo, hi) = (t.saturating_sub(before), t.saturating_add(after));
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Loads the passages the fold rule may need for `reads`: the same key
/// within the window; passages whose check digit is not verified near any
/// read (a valid read may correct them); and, around reads whose own check
/// digit is not verified, every passage near them.
async fn load_candidates(
    conn: &mut SqliteConnection,
    dedup: &DedupConfig,
    site_id: &str,
    reads: &[&Read],
) -> Result<Vec<Candidate>, StoreError> {
    let window = dedup.window_micros();
    let mut rows: Vec<CandidateRow> = Vec::new();

    let mut by_key: HashMap<Key, (i64, i64)> = HashMap::new();
    for r in reads {
        let t = r.captured_micros();
        let e = by_key.entry(key_of(r)).or_insert((t, t));
        e.0 = e.0.min(t);
        e.1 = e.1.max(t);
    }
    let keys: Vec<(&Key, &(i64, i64))> = by_key.iter().collect();
    for chunk in shaped(&keys, KEYS_PER_QUERY) {
        // One SELECT per key, joined by UNION ALL, so that each arm is a
        // range seek on passages_by_key whatever the planner makes of ORs.
        let mut q = QueryBuilder::<Sqlite>::new("");
        for (i, ((owner, number), (lo, hi))) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push(format!(
                "SELECT {PASSAGE_COLUMNS}, votes FROM passages WHERE container_owner = "
            ))
            .push_bind(owner.as_str());
            q.push(" AND container_number = ")
                .push_bind(number.as_str());
            q.push(" AND site_id = ").push_bind(site_id);
            q.push(" AND last_seen_at >= ")
                .push_bind(lo.saturating_sub(window));
            q.push(" AND captured_at <= ")
                .push_bind(hi.saturating_add(window));
        }
        rows.extend(q.build_query_as().fetch_all(&mut *conn).await?);
    }

    // Unverified passages near any read, through the partial index
    // passages_unverified, which holds only them.
    let near = ranges(reads.iter().map(|r| r.captured_micros()), window, window);
    for (lo, hi) in &near {
        rows.extend(
            sqlx::query_as(&format!(
                "SELECT {PASSAGE_COLUMNS}, votes FROM passages \
                 WHERE check_digit_ok = 0 AND last_seen_at >= ? AND last_seen_at <= ? \
                 AND captured_at <= ? AND site_id = ? LIMIT {NEAR_MISS_CANDIDATES}"
            ))
            .bind(lo)
            .bind(hi.saturating_add(window))
            .bind(hi)
            .bind(site_id)
            .fetch_all(&mut *conn)
            .await?,
        );
    }

    // Every passage near a read whose own check digit is not verified,
    // newest first, through passages_by_time.
    let doubtful = ranges(
        reads
            .iter()
            .filter(|r| r.container.check_status() != CheckStatus::Valid)
            .map(|r| r.captured_micros()),
        window,
        window,
    );
    for (lo, hi) in &doubtful {
        rows.extend(
            sqlx::query_as(&format!(
                "SELECT {PASSAGE_COLUMNS}, votes FROM passages \
                 WHERE captured_at >= ? AND captured_at <= ? AND last_seen_at >= ? \
                 AND site_id = ? ORDER BY captured_at DESC LIMIT {NEAR_MISS_CANDIDATES}"
            ))
            .bind(lo.saturating_sub(window))
            .bind(hi)
            .bind(lo)
            .bind(site_id)
            .fetch_all(&mut *conn)
            .await?,
        );
    }

    let mut found: HashMap<Uuid, Candidate> = HashMap::new();
    for row in rows {
        let c = Candidate::try_from(row)?;
        found.entry(c.passage.id).or_insert(c);
    }
    // A stable order, so a batch decides the same way whatever the hash.
    let mut found: Vec<Candidate> = found.into_values().collect();
    found.sort_by_key(|c| c.passage.id);
    Ok(found)
}

async fn write_reads(
    conn: &mut SqliteConnection,
    dedup: &DedupConfig,
    site_id: &str,
    reads: Vec<(&Read, i64)>,
) -> Result<Vec<Outcome>, StoreError> {
    // Stored times have microsecond precision; answer with what is stored.
    let now = crate::rows::now();
    fail::fail_point!("writer-in-transaction", |_| Err(StoreError::Unavailable(
        "fail point writer-in-transaction".into()
    )));

    // 1. Client ids already stored: their reads are replays, or conflicts
    //    when the content differs.
    let client_ids: Vec<String> = reads
        .iter()
        .filter_map(|(r, _)| r.id.map(|id| id.to_string()))
        .collect();
    let mut stored: HashMap<Uuid, Earlier> = HashMap::new();
    for chunk in shaped(&client_ids, ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, client_id, passage_id, outcome, content_digest FROM sightings WHERE client_id IN (",
        );
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id);
        }
        q.push(")");
        let rows: Vec<(String, String, String, String, Option<String>)> =
            q.build_query_as().fetch_all(&mut *conn).await?;
        for (id, client_id, pid, outcome, digest) in rows {
            let kind = if outcome == "created" {
                OutcomeKind::Created
            } else {
                OutcomeKind::Joined
            };
            stored.insert(
                crate::rows::parse_id(&client_id)?,
                Earlier {
                    sighting_id: crate::rows::parse_id(&id)?,
                    passage_id: crate::rows::parse_id(&pid)?,
                    kind,
                    content_digest: digest.unwrap_or_default(),
                },
            );
        }
    }

    // 2. Split the batch: fresh reads go to the fold rule; a read whose
    //    client id was seen (stored, or earlier in this batch) refers to it.
    let mut fresh: Vec<(&Read, i64)> = Vec::new();
    let mut priors: Vec<Option<Prior>> = Vec::with_capacity(reads.len());
    let mut in_batch: HashMap<Uuid, usize> = HashMap::new();
    for (read, received_at) in &reads {
        let prior = match read.id {
            None => None,
            Some(id) => match (stored.get(&id), in_batch.get(&id)) {
                (Some(e), _) => Some(Prior::Stored(Earlier {
                    sighting_id: e.sighting_id,
                    passage_id: e.passage_id,
                    kind: e.kind,
                    content_digest: e.content_digest.clone(),
                })),
                (None, Some(&n)) => Some(Prior::InBatch(n, fresh[n].0.content_digest.clone())),
                (None, None) => {
                    in_batch.insert(id, fresh.len());
                    None
                }
            },
        };
        if prior.is_none() {
            fresh.push((read, *received_at));
        }
        priors.push(prior);
    }

    // 3. Load the candidates and let the fold rule decide, in order.
    let fresh_reads: Vec<&Read> = fresh.iter().map(|(r, _)| *r).collect();
    let candidates = load_candidates(conn, dedup, site_id, &fresh_reads).await?;
    let mut plan = fold(
        &fresh_reads,
        candidates,
        site_id,
        now,
        &dedup.fold(),
        Uuid::now_v7,
    );
    gate_movements(conn, &mut plan).await?;

    // 4. Replays of stored reads answer with the passage they went to.
    let replay_ids: Vec<String> = priors
        .iter()
        .filter_map(|p| match p {
            Some(Prior::Stored(e)) => Some(e.passage_id.to_string()),
            _ => None,
        })
        .collect();
    let mut replayed: HashMap<Uuid, Passage> = HashMap::new();
    for chunk in shaped(&replay_ids, ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {PASSAGE_COLUMNS} FROM passages WHERE id IN ("
        ));
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id);
        }
        q.push(")");
        for row in q
            .build_query_as::<PassageRow>()
            .fetch_all(&mut *conn)
            .await?
        {
            let p = Passage::try_from(row)?;
            replayed.insert(p.id, p);
        }
    }

    // 5. Answer every read in order; fresh ones become sightings.
    let sighting_ids: Vec<Uuid> = fresh.iter().map(|_| Uuid::now_v7()).collect();
    let mut outcomes = Vec::with_capacity(reads.len());
    let mut next_fresh = 0;
    for ((read, _), prior) in reads.iter().zip(&priors) {
        let outcome = match prior {
            None => {
                let d = &plan.decisions[next_fresh];
                let o = Outcome {
                    kind: kind_of(d.joined),
                    passage: d.passage.clone(),
                    sighting_id: sighting_ids[next_fresh],
                    replay: Replay::Fresh,
                    correction: d.correction.clone(),
                };
                next_fresh += 1;
                o
            }
            Some(Prior::Stored(e)) => Outcome {
                kind: e.kind,
                passage: replayed.get(&e.passage_id).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!("sighting {} has no passage", e.sighting_id))
                })?,
                sighting_id: e.sighting_id,
                replay: replay_of(&e.content_digest, read),
                correction: None,
            },
            Some(Prior::InBatch(n, digest)) => {
                let d = &plan.decisions[*n];
                Outcome {
                    kind: kind_of(d.joined),
                    passage: d.passage.clone(),
                    sighting_id: sighting_ids[*n],
                    replay: replay_of(digest, read),
                    correction: None,
                }
            }
        };
        outcomes.push(outcome);
    }

    // 6. Write back: passages first (sightings reference them).
    for chunk in shaped(&plan.passages, ROWS_PER_STATEMENT) {
        upsert_candidates(conn, chunk).await?;
    }
    let sightings: Vec<NewSighting> = fresh
        .iter()
        .zip(&plan.decisions)
        .zip(&sighting_ids)
        .map(|(((read, received_at), d), id)| NewSighting {
            id: *id,
            passage_id: d.passage_id,
            read,
            received_at: *received_at,
            kind: kind_of(d.joined),
        })
        .collect();
    for chunk in shaped(&sightings, ROWS_PER_STATEMENT) {
        insert_sightings(conn, chunk).await?;
    }
    Ok(outcomes)
}

/// Stores unresolved reads; a client id stored before answers as it did.
async fn queue(
    conn: &mut SqliteConnection,
    site_id: &str,
    reads: &[Unresolved],
    received_at: i64,
) -> Result<Vec<Queued>, StoreError> {
    let mut seen: HashMap<Uuid, (Uuid, String)> = HashMap::new();
    let client_ids: Vec<String> = reads
        .iter()
        .filter_map(|r| r.id.map(|id| id.to_string()))
        .collect();
    for chunk in shaped(&client_ids, ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT client_id, id, content_digest FROM unresolved_reads WHERE client_id IN (",
        );
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id);
        }
        q.push(")");
        let rows: Vec<(String, String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
        for (client, id, digest) in rows {
            seen.insert(
                crate::rows::parse_id(&client)?,
                (crate::rows::parse_id(&id)?, digest),
            );
        }
    }
    let mut answers = Vec::with_capacity(reads.len());
    let mut fresh: Vec<(Uuid, &Unresolved)> = Vec::new();
    for r in reads {
        if let Some((id, digest)) = r.id.and_then(|c| seen.get(&c)) {
            answers.push(Queued {
                id: *id,
                replay: if *digest == r.content_digest {
                    Replay::Same
                } else {
                    Replay::Conflict
                },
            });
            continue;
        }
        let id = Uuid::now_v7();
        if let Some(client) = r.id {
            seen.insert(client, (id, r.content_digest.clone()));
        }
        fresh.push((id, r));
        answers.push(Queued {
            id,
            replay: Replay::Fresh,
        });
    }
    for chunk in shaped(&fresh, ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO unresolved_reads (id, site_id, client_id, content_digest, text, captured_at, \
             received_at, flags, camera_id, source_video, cropped_image_ref, confidence, raw, \
             direction, lane, truck_plate, iso_type) ",
        );
        q.push_values(chunk, |mut b, (id, r)| {
            b.push_bind(id.to_string())
                .push_bind(site_id)
                .push_bind(r.id.map(|c| c.to_string()))
                .push_bind(r.content_digest.as_str())
                .push_bind(r.text.as_str())
                .push_bind(micros(r.captured_at))
                .push_bind(received_at)
                .push_bind(i64::from(r.flags.bits()))
                .push_bind(r.camera_id.as_deref())
                .push_bind(r.source_video.as_deref())
                .push_bind(r.cropped_image_ref.as_deref())
                .push_bind(r.confidence)
                .push_bind(r.raw.as_str())
                .push_bind(r.direction.as_str())
                .push_bind(r.lane.as_deref())
                .push_bind(r.truck_plate.as_deref())
                .push_bind(r.iso_type.as_deref());
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(answers)
}

/// Applies the yard rule ([`gatelog_core::gate::movement`]) to every
/// passage of the plan that opened or changed its number, in decision
/// order, and writes the yard's changes. The answers show the passages as
/// the rule left them (a gate-out's dwell, its flags).
async fn gate_movements(
    conn: &mut SqliteConnection,
    plan: &mut FoldPlan,
) -> Result<(), StoreError> {
    let mut moved: Vec<Uuid> = Vec::new();
    for d in &plan.decisions {
        let opened_or_renumbered = d.joined == Joined::Created || d.correction.is_some();
        if opened_or_renumbered
            && d.passage.direction != Direction::None
            && !moved.contains(&d.passage_id)
        {
            moved.push(d.passage_id);
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    let mut stays: HashMap<Key, Option<YardEntry>> = HashMap::new();
    for id in &moved {
        let Some(c) = plan.passages.iter_mut().find(|c| c.passage.id == *id) else {
            continue;
        };
        let p = &mut c.passage;
        move_through_gate(conn, p, &mut stays).await?;
        let (flags, dwell) = (p.flags, p.dwell_secs);
        for d in plan.decisions.iter_mut().filter(|d| d.passage_id == *id) {
            d.passage.flags = flags;
            d.passage.dwell_secs = dwell;
        }
    }
    Ok(())
}

/// Applies the yard rule to one passage that opened or changed its number,
/// through `stays` (the containers' stays, read once per batch), and writes
/// the yard's change.
async fn move_through_gate(
    conn: &mut SqliteConnection,
    p: &mut Passage,
    stays: &mut HashMap<Key, Option<YardEntry>>,
) -> Result<(), StoreError> {
    let key = (p.container_owner.clone(), p.container_number.clone());
    if !stays.contains_key(&key) {
        let row: Option<(String, i64)> = sqlx::query_as(
            "SELECT passage_id, gate_in_at FROM yard WHERE container_owner = ? AND container_number = ?",
        )
        .bind(&key.0)
        .bind(&key.1)
        .fetch_optional(&mut *conn)
        .await?;
        let entry = match row {
            Some((pid, at)) => Some(YardEntry {
                passage_id: crate::rows::parse_id(&pid)?,
                gate_in_at: crate::rows::time(at)?,
            }),
            None => None,
        };
        stays.insert(key.clone(), entry);
    }
    // A passage renumbered while in the yard leaves its old place.
    sqlx::query("DELETE FROM yard WHERE passage_id = ?")
        .bind(p.id.to_string())
        .execute(&mut *conn)
        .await?;
    let stay = stays.get(&key).cloned().flatten();
    match gate::movement(p, stay.as_ref()) {
        YardChange::None => {}
        YardChange::Enter(entry) => {
            sqlx::query(
                "INSERT INTO yard (passage_id, container_owner, container_number, gate_in_at) \
                 VALUES (?, ?, ?, ?) ON CONFLICT (container_owner, container_number) DO UPDATE \
                 SET passage_id = excluded.passage_id, gate_in_at = excluded.gate_in_at",
            )
            .bind(entry.passage_id.to_string())
            .bind(&key.0)
            .bind(&key.1)
            .bind(micros(entry.gate_in_at))
            .execute(&mut *conn)
            .await?;
            stays.insert(key, Some(entry));
        }
        YardChange::Leave { passage_id } => {
            sqlx::query("DELETE FROM yard WHERE passage_id = ?")
                .bind(passage_id.to_string())
                .execute(&mut *conn)
                .await?;
            stays.insert(key, None);
        }
    }
    Ok(())
}

/// Resolves one queued read; see [`WriterHandle::resolve`].
async fn resolve(
    conn: &mut SqliteConnection,
    dedup: &DedupConfig,
    site_id: &str,
    id: Uuid,
    number: &OperatorNumber,
    by: &str,
) -> Result<ResolveOutcome, StoreError> {
    let row: Option<UnresolvedRow> = sqlx::query_as(&format!(
        "SELECT {UNRESOLVED_COLUMNS} FROM unresolved_reads WHERE id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(ResolveOutcome::NotFound);
    };
    let queued = row.to_unresolved()?;
    // The sighting keeps the time the read first arrived.
    let received_at = row.received_at;
    if let Some(done) = QueuedRead::try_from(row)?.resolved {
        return Ok(ResolveOutcome::AlreadyResolved(done));
    }
    let read = operator::resolve(queued, number);
    let mut outcome = write_reads(conn, dedup, site_id, vec![(&read, received_at)])
        .await?
        .pop()
        .ok_or_else(|| StoreError::Corrupt("the fold answered no outcome".into()))?;
    let p = &mut outcome.passage;
    let now = p.updated_at;
    let correction = operator::attribute(p, &read, by, now);
    sqlx::query("UPDATE passages SET corrections = ? WHERE id = ?")
        .bind(serde_json::to_string(&p.corrections).unwrap_or_else(|_| "[]".into()))
        .bind(p.id.to_string())
        .execute(&mut *conn)
        .await?;
    let marked = sqlx::query(
        "UPDATE unresolved_reads SET resolved_at = ?, resolved_by = ?, resolved_container = ?, \
         resolved_passage_id = ? WHERE id = ? AND resolved_at IS NULL",
    )
    .bind(micros(now))
    .bind(by)
    .bind(number.normalized())
    .bind(p.id.to_string())
    .bind(id.to_string())
    .execute(&mut *conn)
    .await?;
    if marked.rows_affected() != 1 {
        // Only this writer changes the file, and it read the row open in
        // this transaction; anything else is a broken store.
        return Err(StoreError::Corrupt(format!(
            "queued read {id} changed while it was being resolved"
        )));
    }
    // The live feed says what changed the passage's number: a consensus
    // the read moved, or else the operator's own correction.
    if outcome.correction.is_none() {
        outcome.correction = Some(correction);
    }
    Ok(ResolveOutcome::Resolved(Box::new(outcome)))
}

/// Corrects one passage by hand; see [`WriterHandle::correct`].
async fn correct(
    conn: &mut SqliteConnection,
    id: Uuid,
    number: &OperatorNumber,
    by: &str,
    reason: Option<String>,
) -> Result<CorrectOutcome, StoreError> {
    let row: Option<CandidateRow> = sqlx::query_as(&format!(
        "SELECT {PASSAGE_COLUMNS}, votes FROM passages WHERE id = ?"
    ))
    .bind(id.to_string())
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        return Ok(CorrectOutcome::NotFound);
    };
    let mut candidate = Candidate::try_from(row)?;
    let now = crate::rows::now();
    let Some(correction) = operator::correct(&mut candidate, number, by, reason, now) else {
        return Ok(CorrectOutcome::Unchanged(Box::new(candidate.passage)));
    };
    // A number corrected by hand moves the container in the yard too.
    if candidate.passage.direction != Direction::None {
        move_through_gate(conn, &mut candidate.passage, &mut HashMap::new()).await?;
    }
    upsert_candidates(conn, std::slice::from_ref(&candidate)).await?;
    Ok(CorrectOutcome::Corrected(Box::new(Outcome {
        kind: OutcomeKind::Corrected,
        passage: candidate.passage,
        sighting_id: Uuid::nil(),
        replay: Replay::Fresh,
        correction: Some(correction),
    })))
}

fn kind_of(joined: Joined) -> OutcomeKind {
    match joined {
        Joined::Created => OutcomeKind::Created,
        Joined::Exact | Joined::NearMiss => OutcomeKind::Joined,
    }
}

/// A read whose client id was seen before: the same content is a retry.
fn replay_of(earlier_digest: &str, read: &Read) -> Replay {
    if earlier_digest == read.content_digest {
        Replay::Same
    } else {
        Replay::Conflict
    }
}

/// A sighting decided in this batch, to be inserted.
struct NewSighting<'a> {
    id: Uuid,
    passage_id: Uuid,
    read: &'a Read,
    received_at: i64,
    kind: OutcomeKind,
}

async fn insert_sightings(
    conn: &mut SqliteConnection,
    rows: &[NewSighting<'_>],
) -> Result<(), StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(
        "INSERT INTO sightings (id, passage_id, captured_at, received_at, container, check_digit_ok, \
         flags, camera_id, source_video, cropped_image_ref, confidence, outcome, raw, \
         client_id, content_digest, corrected_from, rule) ",
    );
    q.push_values(rows, |mut b, s| {
        let read = s.read;
        b.push_bind(s.id.to_string())
            .push_bind(s.passage_id.to_string())
            .push_bind(read.captured_micros())
            .push_bind(s.received_at)
            .push_bind(read.container.normalized())
            .push_bind(i64::from(
                read.container.check_status() == CheckStatus::Valid,
            ))
            .push_bind(i64::from(read.flags.bits()))
            .push_bind(read.camera_id.as_deref())
            .push_bind(read.source_video.as_deref())
            .push_bind(read.cropped_image_ref.as_deref())
            .push_bind(read.confidence)
            .push_bind(s.kind.as_str())
            .push_bind(read.raw.as_str())
            .push_bind(read.id.map(|id| id.to_string()))
            .push_bind(read.id.map(|_| read.content_digest.as_str()))
            .push_bind(read.correction.as_ref().map(|c| c.from.as_str()))
            .push_bind(read.correction.as_ref().map(|c| c.rule.as_str()));
    });
    q.build().execute(&mut *conn).await?;
    Ok(())
}

fn key_of(read: &Read) -> Key {
    (
        read.container.owner().as_str().to_string(),
        read.container.serial().as_str().to_string(),
    )
}

/// Binds the [`PASSAGE_WRITE_COLUMNS`] of one passage, in their order.
fn bind_passage<'qb, 'args: 'qb>(
    b: &mut sqlx::query_builder::Separated<'qb, 'args, Sqlite, &'static str>,
    p: &'args Passage,
) {
    b.push_bind(p.id.to_string())
        .push_bind(p.site_id.as_str())
        .push_bind(p.container.as_str())
        .push_bind(p.container_owner.as_str())
        .push_bind(p.container_number.as_str())
        .push_bind(p.check_digit.map(i64::from))
        .push_bind(i64::from(p.check_digit_ok))
        .push_bind(i64::from(p.flags.bits()))
        .push_bind(micros(p.captured_at))
        .push_bind(micros(p.last_seen_at))
        .push_bind(p.seen_count)
        .push_bind(p.camera_id.as_deref())
        .push_bind(p.source_video.as_deref())
        .push_bind(p.cropped_image_ref.as_deref())
        .push_bind(p.confidence)
        .push_bind(micros(p.created_at))
        .push_bind(micros(p.updated_at))
        .push_bind(p.version)
        .push_bind(serde_json::to_string(&p.corrections).unwrap_or_else(|_| "[]".into()))
        .push_bind(p.direction.as_str())
        .push_bind(p.lane.as_deref())
        .push_bind(p.truck_plate.as_deref())
        .push_bind(p.iso_type.as_deref())
        .push_bind(p.dwell_secs);
}

async fn upsert_candidates(
    conn: &mut SqliteConnection,
    rows: &[Candidate],
) -> Result<(), StoreError> {
    let mut q = QueryBuilder::<Sqlite>::new(format!(
        "INSERT INTO passages ({PASSAGE_WRITE_COLUMNS}, votes) "
    ));
    q.push_values(rows, |mut b, c| {
        bind_passage(&mut b, &c.passage);
        b.push_bind(serde_json::to_string(&c.votes).unwrap_or_else(|_| "{}".into()));
    });
    q.push(
        " ON CONFLICT (id) DO UPDATE SET container = excluded.container, \
         container_owner = excluded.container_owner, container_number = excluded.container_number, \
         check_digit = excluded.check_digit, check_digit_ok = excluded.check_digit_ok, \
         flags = excluded.flags, captured_at = excluded.captured_at, \
         last_seen_at = excluded.last_seen_at, seen_count = excluded.seen_count, \
         camera_id = excluded.camera_id, source_video = excluded.source_video, \
         cropped_image_ref = excluded.cropped_image_ref, confidence = excluded.confidence, \
         updated_at = excluded.updated_at, version = excluded.version, \
         corrections = excluded.corrections, votes = excluded.votes, \
         direction = excluded.direction, lane = excluded.lane, truck_plate = excluded.truck_plate, \
         iso_type = excluded.iso_type, dwell_secs = excluded.dwell_secs",
    );
    q.build().execute(&mut *conn).await?;
    Ok(())
}

async fn import(conn: &mut SqliteConnection, passages: Vec<Passage>) -> Result<(), StoreError> {
    for chunk in shaped(&passages, ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "INSERT OR IGNORE INTO passages ({PASSAGE_COLUMNS}) "
        ));
        q.push_values(chunk, |mut b, p| {
            let synced = matches!(p.sync_state, SyncState::Synced);
            bind_passage(&mut b, p);
            b.push_bind(if synced { p.version } else { 0 })
                .push_bind(None::<i64>);
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Sync bookkeeping, each change in its own transaction between group
/// commits; see [`crate::sync_state`].
impl WriterHandle {
    /// Records that the target confirmed each `(id, version)`. A passage
    /// changed since keeps its newer version pending. Returns how many
    /// passages advanced.
    pub async fn mark_synced(&self, confirmed: Vec<(Uuid, i64)>) -> Result<u64, StoreError> {
        if confirmed.is_empty() {
            return Ok(0);
        }
        self.sync_op(SyncOp::Synced(confirmed)).await
    }

    /// Records that the target refused each `(id, version)` for good. A
    /// passage changed since is left pending: its new version gets a try.
    pub async fn mark_dead_letter(
        &self,
        refused: Vec<(Uuid, i64, String)>,
    ) -> Result<u64, StoreError> {
        if refused.is_empty() {
            return Ok(0);
        }
        self.sync_op(SyncOp::DeadLetter(refused)).await
    }

    /// Puts dead letters back into the backlog (all of them when `ids` is
    /// `None`). Returns how many.
    pub async fn retry_dead_letters(&self, ids: Option<Vec<Uuid>>) -> Result<u64, StoreError> {
        self.sync_op(SyncOp::Retry(ids)).await
    }

    /// Sends sync bookkeeping to the writer and waits for its commit.
    async fn sync_op(&self, op: SyncOp) -> Result<u64, StoreError> {
        self.request(|reply| Command::Sync { op, reply }).await
    }
}

impl WriterHandle {
    /// Deletes up to `max` passages in `scope` (with a sync target, only
    /// synced, non-dead-letter ones) last seen before `cutoff`, with their
    /// sightings, in one transaction between group commits. Call it again
    /// until it reports nothing removed.
    pub async fn retain(
        &self,
        cutoff: chrono::DateTime<Utc>,
        max: u32,
        scope: RetentionScope,
    ) -> Result<RetentionReport, StoreError> {
        self.request(|reply| Command::Retain {
            cutoff,
            max,
            scope,
            reply,
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::shaped;
    use std::collections::BTreeSet;

    #[test]
    fn shaped_chunks_keep_every_item_in_order_in_few_lengths() {
        let mut lengths = BTreeSet::new();
        for n in 0..=1_000usize {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = shaped(&items, 256).collect();
            assert_eq!(chunks.concat(), items, "n = {n}");
            for c in &chunks {
                assert!(
                    c.len().is_power_of_two() && c.len() <= 256,
                    "n = {n}: {}",
                    c.len()
                );
            }
            // Largest first: at most one chunk of each length below the cap.
            assert!(chunks.windows(2).all(|w| w[0].len() >= w[1].len()));
            lengths.extend(chunks.iter().map(|c| c.len()));
        }
        assert_eq!(lengths.len(), 9, "1, 2, 4 … 256: {lengths:?}");
    }
}
