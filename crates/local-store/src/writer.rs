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
use gatelog_core::dedup::{DedupIndex, Observation, PassageSpan};
use gatelog_core::passage::SyncState;
use gatelog_core::{DedupConfig, Passage, Read};
use gatelog_metrics::Metrics;
use sqlx::sqlite::SqliteConnection;
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};
use tokio::sync::{broadcast, mpsc, oneshot, Mutex};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::rows::{micros, PassageRow, PASSAGE_COLUMNS, PASSAGE_WRITE_COLUMNS};
use crate::{StoreConfig, StoreError};

/// Rows per multi-row statement: 500 rows of 20 columns stays well under
/// SQLite's limit of 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 500;
/// Dedup keys per candidate query: five parameters each, and below
/// SQLite's limit of 500 terms in one compound SELECT.
const KEYS_PER_QUERY: usize = 200;

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

/// Whether a read opened its passage or joined one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    Created,
    Joined,
}

impl OutcomeKind {
    fn as_str(self) -> &'static str {
        match self {
            OutcomeKind::Created => "created",
            OutcomeKind::Joined => "joined",
        }
    }
}

/// The committed result of one read.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub kind: OutcomeKind,
    /// The passage as it stood right after this read.
    pub passage: Passage,
    pub sighting_id: Uuid,
    /// True when the read's client id was already stored: nothing was
    /// written and `kind` is the original outcome.
    pub replayed: bool,
}

pub(crate) enum Command {
    Write(PendingWrite),
    Probe {
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Import {
        passages: Vec<Passage>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Sync bookkeeping; see [`crate::sync_state`].
    Sync {
        op: crate::sync_state::SyncOp,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    Retain {
        cutoff: chrono::DateTime<Utc>,
        max: u32,
        scope: crate::RetentionScope,
        reply: oneshot::Sender<Result<crate::RetentionReport, StoreError>>,
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

    /// Every committed batch of outcomes (replays excluded), for the live
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

/// The writer's own connection, with WAL and `synchronous=FULL`.
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
                Command::Import { passages, reply } => {
                    answer(reply, in_transaction!(conn, import(conn, passages)))?;
                }
                Command::Sync { op, reply } => {
                    answer(
                        reply,
                        in_transaction!(conn, crate::sync_state::apply(conn, op)),
                    )?;
                }
                Command::Retain {
                    cutoff,
                    max,
                    scope,
                    reply,
                } => {
                    let r = in_transaction!(
                        conn,
                        crate::retention::purge_chunk(conn, cutoff, max, scope)
                    );
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
        for o in outcomes.iter().filter(|o| !o.replayed) {
            let result = match o.kind {
                OutcomeKind::Created => "accepted",
                OutcomeKind::Joined => "duplicate",
            };
            self.metrics
                .recognitions_total
                .with_label_values(&[result])
                .inc();
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
        Command::Probe { .. } | Command::Sync { .. } => 1,
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

/// A passage being decided in this batch.
struct Working {
    passage: Passage,
    /// Changed in this batch; written back at the end.
    dirty: bool,
    /// The version was bumped already in this batch.
    bumped: bool,
}

async fn write_reads(
    conn: &mut SqliteConnection,
    dedup: &DedupConfig,
    site_id: &str,
    reads: Vec<(&Read, i64)>,
) -> Result<Vec<Outcome>, StoreError> {
    // Stored times have microsecond precision; answer with what is stored.
    let now = crate::rows::now();

    // 1. Client ids already stored: their reads are replays.
    let client_ids: Vec<String> = reads
        .iter()
        .filter_map(|(r, _)| r.id.map(|id| id.to_string()))
        .collect();
    let mut known: HashMap<Uuid, (Uuid, OutcomeKind)> = HashMap::new();
    for chunk in client_ids.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "SELECT id, passage_id, outcome FROM sightings WHERE id IN (",
        );
        let mut sep = q.separated(", ");
        for id in chunk {
            sep.push_bind(id);
        }
        q.push(")");
        let rows: Vec<(String, String, String)> = q.build_query_as().fetch_all(&mut *conn).await?;
        for (id, pid, outcome) in rows {
            let kind = if outcome == "created" {
                OutcomeKind::Created
            } else {
                OutcomeKind::Joined
            };
            known.insert(
                crate::rows::parse_id(&id)?,
                (crate::rows::parse_id(&pid)?, kind),
            );
        }
    }

    // 2. Load the passages replays point at, and the dedup candidates of
    //    every other read: same key, span within the window of the batch's
    //    reads of that key.
    let mut working: HashMap<Uuid, Working> = HashMap::new();
    let replay_ids: Vec<String> = known.values().map(|(pid, _)| pid.to_string()).collect();
    for chunk in replay_ids.chunks(ROWS_PER_STATEMENT) {
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
            working.insert(
                p.id,
                Working {
                    passage: p,
                    dirty: false,
                    bumped: false,
                },
            );
        }
    }

    let window = dedup.window_micros();
    let mut ranges: HashMap<Key, (i64, i64)> = HashMap::new();
    for (r, _) in reads
        .iter()
        .filter(|(r, _)| r.id.is_none_or(|id| !known.contains_key(&id)))
    {
        let t = r.captured_micros();
        let e = ranges.entry(key_of(r)).or_insert((t, t));
        e.0 = e.0.min(t);
        e.1 = e.1.max(t);
    }
    let mut index: DedupIndex<Key, Uuid> = DedupIndex::new(dedup);
    let keys: Vec<(&Key, &(i64, i64))> = ranges.iter().collect();
    for chunk in keys.chunks(KEYS_PER_QUERY) {
        // One SELECT per key, joined by UNION ALL, so that each arm is a
        // range seek on passages_by_key whatever the planner makes of ORs.
        let mut q = QueryBuilder::<Sqlite>::new("");
        for (i, ((owner, number), (lo, hi))) in chunk.iter().enumerate() {
            if i > 0 {
                q.push(" UNION ALL ");
            }
            q.push(format!(
                "SELECT {PASSAGE_COLUMNS} FROM passages WHERE container_owner = "
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
        for row in q
            .build_query_as::<PassageRow>()
            .fetch_all(&mut *conn)
            .await?
        {
            let p = Passage::try_from(row)?;
            index.insert(
                (p.container_owner.clone(), p.container_number.clone()),
                p.id,
                PassageSpan {
                    first_seen: micros(p.captured_at),
                    last_seen: micros(p.last_seen_at),
                },
            );
            working.entry(p.id).or_insert(Working {
                passage: p,
                dirty: false,
                bumped: false,
            });
        }
    }

    // 3. Decide each read in arrival order.
    let mut outcomes = Vec::with_capacity(reads.len());
    let mut sightings: Vec<(Uuid, Uuid, &Read, i64, OutcomeKind)> = Vec::new();
    for (read, received_at) in &reads {
        if let Some(id) = read.id {
            if let Some((pid, kind)) = known.get(&id) {
                let passage = match working.get(pid) {
                    Some(w) => w.passage.clone(),
                    None => {
                        return Err(StoreError::Corrupt(format!("sighting {id} has no passage")))
                    }
                };
                outcomes.push(Outcome {
                    kind: *kind,
                    passage,
                    sighting_id: id,
                    replayed: true,
                });
                continue;
            }
        }
        let sighting_id = read.id.unwrap_or_else(Uuid::now_v7);
        let t = read.captured_micros();
        let (kind, pid) = match index.observe(key_of(read), t, || sighting_id) {
            Observation::Created(pid) => {
                working.insert(
                    pid,
                    Working {
                        passage: new_passage(pid, site_id, read, now),
                        dirty: true,
                        bumped: true,
                    },
                );
                (OutcomeKind::Created, pid)
            }
            Observation::Joined(pid) => {
                let w = working
                    .get_mut(&pid)
                    .expect("candidates are loaded into working");
                join(&mut w.passage, read, now);
                if !w.bumped {
                    w.passage.version += 1;
                    w.bumped = true;
                }
                w.passage.sync_state = SyncState::Pending;
                w.dirty = true;
                (OutcomeKind::Joined, pid)
            }
        };
        // A second read with the same client id in this batch replays this one.
        known.insert(sighting_id, (pid, kind));
        sightings.push((sighting_id, pid, read, *received_at, kind));
        outcomes.push(Outcome {
            kind,
            passage: working[&pid].passage.clone(),
            sighting_id,
            replayed: false,
        });
    }

    // 4. Write back: touched passages first (sightings reference them).
    let dirty: Vec<&Passage> = working
        .values()
        .filter(|w| w.dirty)
        .map(|w| &w.passage)
        .collect();
    for chunk in dirty.chunks(ROWS_PER_STATEMENT) {
        upsert_passages(conn, chunk).await?;
    }
    for chunk in sightings.chunks(ROWS_PER_STATEMENT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "INSERT INTO sightings (id, passage_id, captured_at, received_at, container, check_digit_ok, \
             flags, camera_id, source_video, cropped_image_ref, confidence, outcome, raw) ",
        );
        q.push_values(chunk, |mut b, (id, pid, read, received_at, kind)| {
            b.push_bind(id.to_string())
                .push_bind(pid.to_string())
                .push_bind(read.captured_micros())
                .push_bind(*received_at)
                .push_bind(read.container.normalized())
                .push_bind(i64::from(
                    read.container.check_status() == CheckStatus::Valid,
                ))
                .push_bind(i64::from(read.flags.bits()))
                .push_bind(read.camera_id.as_deref())
                .push_bind(read.source_video.as_deref())
                .push_bind(read.cropped_image_ref.as_deref())
                .push_bind(read.confidence)
                .push_bind(kind.as_str())
                .push_bind(read.raw.as_str());
        });
        q.build().execute(&mut *conn).await?;
    }
    Ok(outcomes)
}

fn key_of(read: &Read) -> Key {
    (
        read.container.owner().as_str().to_string(),
        read.container.serial().as_str().to_string(),
    )
}

fn new_passage(id: Uuid, site_id: &str, read: &Read, now: chrono::DateTime<Utc>) -> Passage {
    let c = &read.container;
    Passage {
        id,
        site_id: site_id.to_string(),
        container: c.normalized(),
        container_owner: c.owner().as_str().to_string(),
        container_number: c.serial().as_str().to_string(),
        check_digit: c.check_digit().map(|d| d.value()),
        check_digit_ok: c.check_status() == CheckStatus::Valid,
        flags: read.flags,
        captured_at: read.captured_at,
        last_seen_at: read.captured_at,
        seen_count: 1,
        camera_id: read.camera_id.clone(),
        source_video: read.source_video.clone(),
        cropped_image_ref: read.cropped_image_ref.clone(),
        confidence: read.confidence,
        created_at: now,
        updated_at: now,
        version: 1,
        sync_state: SyncState::Pending,
    }
}

/// Folds a duplicate read into its passage.
fn join(p: &mut Passage, read: &Read, now: chrono::DateTime<Utc>) {
    p.seen_count += 1;
    p.captured_at = p.captured_at.min(read.captured_at);
    p.last_seen_at = p.last_seen_at.max(read.captured_at);
    p.updated_at = now;
    // A read with a valid check digit is better evidence than a flagged
    // passage's: take its number and flags. The sightings keep every raw
    // read, so the change can be audited.
    if !p.check_digit_ok && read.container.check_status() == CheckStatus::Valid {
        p.container = read.container.normalized();
        p.check_digit = read.container.check_digit().map(|d| d.value());
        p.check_digit_ok = true;
        p.flags = read.flags;
    }
    // Fill what the first read lacked.
    if p.camera_id.is_none() {
        p.camera_id.clone_from(&read.camera_id);
    }
    if p.source_video.is_none() {
        p.source_video.clone_from(&read.source_video);
    }
    if p.cropped_image_ref.is_none() {
        p.cropped_image_ref.clone_from(&read.cropped_image_ref);
    }
    if p.confidence.is_none() {
        p.confidence = read.confidence;
    }
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
        .push_bind(p.version);
}

async fn upsert_passages(conn: &mut SqliteConnection, rows: &[&Passage]) -> Result<(), StoreError> {
    let mut q =
        QueryBuilder::<Sqlite>::new(format!("INSERT INTO passages ({PASSAGE_WRITE_COLUMNS}) "));
    q.push_values(rows, |mut b, p| bind_passage(&mut b, p));
    q.push(
        " ON CONFLICT (id) DO UPDATE SET container = excluded.container, \
         check_digit = excluded.check_digit, check_digit_ok = excluded.check_digit_ok, \
         flags = excluded.flags, captured_at = excluded.captured_at, \
         last_seen_at = excluded.last_seen_at, seen_count = excluded.seen_count, \
         camera_id = excluded.camera_id, source_video = excluded.source_video, \
         cropped_image_ref = excluded.cropped_image_ref, confidence = excluded.confidence, \
         updated_at = excluded.updated_at, version = excluded.version",
    );
    q.build().execute(&mut *conn).await?;
    Ok(())
}

async fn import(conn: &mut SqliteConnection, passages: Vec<Passage>) -> Result<(), StoreError> {
    for chunk in passages.chunks(ROWS_PER_STATEMENT) {
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

impl WriterHandle {
    /// Sends sync bookkeeping to the writer and waits for its commit.
    pub(crate) async fn sync_op(&self, op: crate::sync_state::SyncOp) -> Result<u64, StoreError> {
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
        scope: crate::RetentionScope,
    ) -> Result<crate::RetentionReport, StoreError> {
        self.request(|reply| Command::Retain {
            cutoff,
            max,
            scope,
            reply,
        })
        .await
    }
}
