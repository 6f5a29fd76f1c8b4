//! gatelog's local store: a SQLite file that every read reaches first.
//!
//! The store is the system of record on site. A read is acknowledged only
//! after it is committed to the write-ahead log with `synchronous=FULL`, so
//! a power cut after a 2xx loses nothing. The network, the central database
//! and the dashboards all come after.
//!
//! # Layout
//! - [`config`]: where the file lives and how long a writer may wait.
//! - [`checkpoint`]: the checkpointer, which moves the WAL into the
//!   database file on a timer, off the write path.
//! - [`writer`]: the one writer actor. It group-commits concurrent requests
//!   (one transaction, one fsync) and makes every dedup decision, so that
//!   decisions are exact under any concurrency and survive restarts. An
//!   operator's corrections (resolving a queued read, correcting a
//!   passage) are writer commands too.
//! - [`query`]: reads for the API: filtered keyset pages, one passage with
//!   its sightings in pages, the most recent passages.
//! - [`read`]: [`PassageReader`], the read side as one interface, which
//!   the store and the central database's reader both implement.
//! - [`stats`]: counts of passages, reads, repeats and flagged reads per
//!   hour or day.
//! - [`exceptions`]: the exceptions queue: unresolved reads and unverified
//!   passages in keyset pages, and the open counts.
//! - `rows`: the mapping between SQLite rows and [`gatelog_core`] types.
//! - [`error`]: [`StoreError`], which tells callers whether the store is
//!   unavailable (answer 503) or the request was wrong.
//! - [`retention`], [`backup`], [`export`], [`lock`]: operations on the
//!   file: deleting synced passages past their time, online backup and
//!   checked restore, CSV/JSONL export, and the lock a server holds.
//!
//! Only this crate and `sync` know SQL. Migrations live in the workspace's
//! `migrations/local` folder and are embedded at build time.

pub mod backup;
pub mod checkpoint;
pub mod config;
pub mod error;
pub mod exceptions;
pub mod export;
pub mod lock;
pub mod query;
pub mod read;
pub mod retention;
mod rows;
pub mod stats;
pub mod sync_state;
pub mod writer;
pub mod yard;

use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::ConnectOptions;
use tokio::sync::{broadcast, mpsc, Mutex};

pub use checkpoint::Checkpointer;
pub use config::StoreConfig;
pub use error::StoreError;
pub use exceptions::{Exception, ExceptionFilter, ExceptionKind, ExceptionPage, OpenCounts};
pub use query::{Cursor, LogFilter, Order, Page, SightingPage, SyncFilter};
pub use read::{PassageReader, ReadFuture, Scope, SiteStatus};
pub use retention::{RetentionReport, RetentionScope};
pub use stats::{Bucket, BucketCounts, SiteStats, Stats};
pub use writer::{
    CorrectOutcome, Outcome, OutcomeKind, Queued, Replay, ResolveOutcome, WriterActor, WriterHandle,
};
pub use yard::{YardFilter, YardPage, YardStats};

use gatelog_core::DedupConfig;
use gatelog_metrics::Metrics;

/// The local schema, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/local");

/// How many write requests may wait for the writer before callers wait too.
const WRITER_QUEUE: usize = 4096;
/// Committed batches kept for live subscribers that are momentarily slow.
const EVENT_BUFFER: usize = 1024;

/// The store as the rest of gatelog sees it: a pool of read-only
/// connections and a handle to the writer actor. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// Readers. WAL lets them run while the writer commits.
    pool: SqlitePool,
    /// The only way to change the file.
    writer: WriterHandle,
}

/// What [`Store::open`] returns: the store, and the writer actor that the
/// supervisor must run for writes to make progress.
pub struct Opened {
    pub store: Store,
    pub writer: WriterActor,
    /// Optional: without it, the writer's safety-net threshold checkpoints.
    pub checkpointer: Checkpointer,
}

impl Store {
    /// Opens (creating if needed) the store, applies migrations, and
    /// returns it with its writer actor, which is not yet running.
    pub async fn open(
        config: &StoreConfig,
        dedup: &DedupConfig,
        site_id: &str,
        metrics: Metrics,
    ) -> Result<Opened, StoreError> {
        if let Some(dir) = config.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        // Migrate through a connection of the writer's kind before anything
        // else touches the file.
        let mut conn = writer::connect(config).await?;
        MIGRATOR.run(&mut conn).await?;
        drop(conn);

        let pool = SqlitePoolOptions::new()
            .max_connections(config.read_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(read_options(config))
            .await
            .map_err(StoreError::from_sqlx)?;

        let (tx, rx) = mpsc::channel(WRITER_QUEUE);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let writer = WriterActor::new(
            config.clone(),
            dedup.clone(),
            site_id.to_string(),
            metrics,
            Arc::new(Mutex::new(rx)),
            events.clone(),
        );
        Ok(Opened {
            store: Store {
                pool,
                writer: WriterHandle::new(tx, events),
            },
            writer,
            checkpointer: Checkpointer::new(config.clone()),
        })
    }

    pub fn writer(&self) -> &WriterHandle {
        &self.writer
    }

    /// The read pool, for queries in this crate.
    pub(crate) fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the read pool. The writer stops through its own shutdown.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn read_options(config: &StoreConfig) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(&config.path)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_millis(config.busy_timeout_ms))
        .pragma("query_only", "ON")
        .log_statements(tracing::log::LevelFilter::Trace)
}

/// Options shared by the writer and tools that write (backup, retention).
pub(crate) fn write_options(config: &StoreConfig) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(&config.path)
        .create_if_missing(true)
        // sqlx does not turn WAL on by itself.
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: every commit fsyncs the WAL, so an ack survives power loss.
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_millis(config.busy_timeout_ms))
        // The writer's page cache, 16 MiB: the b-tree pages a group commit
        // and the trigram index's merges touch stay in memory instead of
        // being read back from the file on every transaction.
        .pragma("cache_size", "-16384")
        // Statement journals (every multi-row write keeps one) in memory,
        // not spilled to a temporary file.
        .pragma("temp_store", "memory")
        .log_statements(tracing::log::LevelFilter::Trace)
}
