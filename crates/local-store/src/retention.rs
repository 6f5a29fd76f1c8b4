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
//! Deletion runs in chunks, each its own short transaction on the writer
//! actor (`WriterHandle::retain`, which calls `purge_chunk`),
//! so that while `serve` runs the writer interleaves ingest between chunks
//! and a recognition never waits behind a whole purge. This module does
//! not know the writer: the writer calls into it.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};

use crate::rows::micros;
use crate::{Store, StoreError};

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

impl Store {
    /// How many passages a retention run with this cutoff would delete,
    /// counted on the read pool.
    pub async fn retention_eligible(
        &self,
        cutoff: DateTime<Utc>,
        scope: RetentionScope,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM passages WHERE {}",
            scope.eligible()
        ))
        .bind(micros(cutoff))
        .fetch_one(self.pool())
        .await?;
        Ok(n as u64)
    }
}
