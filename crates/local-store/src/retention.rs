//! Local retention: deleting old passages.
//!
//! Which passages may go depends on whether a sync target is configured
//! ([`RetentionScope`]). With one, only a passage whose latest version the
//! target confirmed, and that is not a dead letter, may go: unsynced
//! passages are kept however old they are, because the local store is
//! their only copy. With no target (`sync.target = none`) nothing will
//! ever be confirmed, so that rule would keep everything forever; the
//! local store is then the system of record, and every passage last seen
//! before the cutoff goes. Sightings follow through `ON DELETE CASCADE`.
//!
//! Deletion runs in chunks, each its own short transaction, so that while
//! `serve` runs the writer interleaves ingest between chunks and a
//! recognition never waits behind a whole purge.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use crate::rows::micros;
use crate::{StoreConfig, StoreError};

/// Passages deleted per transaction.
pub const CHUNK: u32 = 2_000;

/// Which passages retention may delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetentionScope {
    /// A sync target is configured: only passages whose latest version it
    /// confirmed, never pending ones or dead letters.
    SyncedOnly,
    /// No sync target: the local store is the system of record, and every
    /// passage older than the cutoff goes, whatever its sync state.
    Everything,
}

impl RetentionScope {
    /// The rows a passage must satisfy to be deleted, with `?1` the
    /// cutoff. `last_seen_at < cutoff` implies `captured_at < cutoff`; the
    /// first test is there so the time index can serve the scan.
    fn eligible(self) -> &'static str {
        match self {
            RetentionScope::SyncedOnly => {
                "captured_at < ?1 AND last_seen_at < ?1 \
                 AND synced_version >= version \
                 AND (dead_letter_version IS NULL OR dead_letter_version < version) \
                 AND id NOT IN (SELECT passage_id FROM yard)"
            }
            // A container still in the yard keeps the passage that brought
            // it in, however long it stays.
            RetentionScope::Everything => {
                "captured_at < ?1 AND last_seen_at < ?1 AND id NOT IN (SELECT passage_id FROM yard)"
            }
        }
    }
}

/// What a retention run removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub passages: u64,
    pub sightings: u64,
}

impl RetentionReport {
    pub fn add(&mut self, other: RetentionReport) {
        self.passages += other.passages;
        self.sightings += other.sightings;
    }
}

/// Deletes up to `max` passages in `scope` last seen before `cutoff`,
/// with their sightings, inside the caller's transaction.
pub(crate) async fn purge_chunk(
    conn: &mut SqliteConnection,
    cutoff: DateTime<Utc>,
    max: u32,
    scope: RetentionScope,
) -> Result<RetentionReport, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(&format!(
        "SELECT id FROM passages WHERE {} LIMIT ?2",
        scope.eligible()
    ))
    .bind(micros(cutoff))
    .bind(i64::from(max.max(1)))
    .fetch_all(&mut *conn)
    .await?;
    if ids.is_empty() {
        return Ok(RetentionReport::default());
    }
    let mut report = RetentionReport::default();
    // SQLite allows 32,766 bound parameters; chunks stay far below.
    for part in ids.chunks(500) {
        let mut q =
            QueryBuilder::<Sqlite>::new("SELECT count(*) FROM sightings WHERE passage_id IN (");
        let mut sep = q.separated(", ");
        for id in part {
            sep.push_bind(id);
        }
        q.push(")");
        let n: i64 = q.build_query_scalar().fetch_one(&mut *conn).await?;
        report.sightings += n as u64;

        let mut q = QueryBuilder::<Sqlite>::new("DELETE FROM passages WHERE id IN (");
        let mut sep = q.separated(", ");
        for id in part {
            sep.push_bind(id);
        }
        q.push(")");
        report.passages += q.build().execute(&mut *conn).await?.rows_affected();
    }
    Ok(report)
}

/// How many passages a run with this cutoff would delete.
pub async fn count_eligible(
    conn: &mut SqliteConnection,
    cutoff: DateTime<Utc>,
    scope: RetentionScope,
) -> Result<u64, StoreError> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM passages WHERE {}",
        scope.eligible()
    ))
    .bind(micros(cutoff))
    .fetch_one(&mut *conn)
    .await?;
    Ok(n as u64)
}

/// Opens a writing connection of its own, for `gatelog retention` run
/// from the command line. SQLite's locking keeps it safe next to a running
/// server: each chunk takes the write lock briefly, and the server's writer
/// waits up to `busy_timeout_ms` for it.
pub async fn connect(config: &StoreConfig) -> Result<SqliteConnection, StoreError> {
    if !config.path.is_file() {
        return Err(StoreError::Refused(format!(
            "there is no store at {}",
            config.path.display()
        )));
    }
    crate::writer::connect(config).await
}

/// Deletes one chunk in its own transaction on a connection from
/// [`connect`].
pub async fn purge_chunk_standalone(
    conn: &mut SqliteConnection,
    cutoff: DateTime<Utc>,
    max: u32,
    scope: RetentionScope,
) -> Result<RetentionReport, StoreError> {
    sqlx::query("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    match purge_chunk(conn, cutoff, max, scope).await {
        Ok(r) => {
            sqlx::query("COMMIT").execute(&mut *conn).await?;
            Ok(r)
        }
        Err(e) => {
            let _ = sqlx::query("ROLLBACK").execute(&mut *conn).await;
            Err(e)
        }
    }
}
