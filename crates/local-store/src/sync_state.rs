//! What the sync actor needs from the store: the backlog, oldest change
//! first, and the writes that record what the central target confirmed or
//! refused.
//!
//! Sync confirms *versions*, not rows. Every change to a passage bumps its
//! `version`; a passage is pending while `version > synced_version`. When
//! the target confirms the version that was sent, `synced_version` rises
//! to it, but never falls, so a confirmation that arrives after a newer
//! local change leaves the passage pending and the newer state is sent
//! next.
//!
//! A passage whose current version the target refused for good is a dead
//! letter (`dead_letter_version = version`). It stays in the file, is
//! counted and listed, and is left out of the backlog until someone asks
//! for a retry, or until it changes again: a new version gets a new try.
//!
//! Reads go through the read pool. Writes go through the writer actor, like
//! every other change to the file: its handle's `mark_synced`,
//! `mark_dead_letter` and `retry_dead_letters` carry a `SyncOp`, and the
//! writer calls `apply` inside its transaction. This module does not
//! know the writer.

use chrono::{DateTime, Utc};
use gatelog_core::Passage;
use serde::Serialize;
use sqlx::sqlite::SqliteConnection;
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use crate::rows::{time, PassageRow, PASSAGE_COLUMNS};
use crate::{Store, StoreError};

/// Rows per statement: three parameters each stays far under SQLite's limit.
const ROWS_PER_STATEMENT: usize = 1_000;

/// Pending rows whose current version is not a dead letter. Every query
/// that uses it also says `version > synced_version`, so SQLite can use the
/// small partial index `passages_pending`.
const NOT_DEAD: &str = "(dead_letter_version IS NULL OR dead_letter_version <> version)";

/// The size and age of the sync backlog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Backlog {
    /// Passages whose latest version is unconfirmed and not a dead letter.
    pub pending: i64,
    /// When the oldest of those last changed.
    pub oldest_pending_at: Option<DateTime<Utc>>,
    /// Passages whose latest version the target refused for good.
    pub dead_letters: i64,
}

/// A passage the target refused, with the target's reason.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub passage: Passage,
    /// The target's error, with secrets already removed by the sync actor.
    pub reason: String,
}

#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    #[sqlx(flatten)]
    passage: PassageRow,
    dead_letter_reason: Option<String>,
}

impl Store {
    /// Up to `limit` passages waiting for sync, the oldest change first.
    /// Dead letters are left out.
    pub async fn sync_pending(&self, limit: usize) -> Result<Vec<Passage>, StoreError> {
        // Ordering by updated_at alone lets SQLite walk the partial index
        // and stop after `limit` rows; a tie-break column would force a
        // sort of the whole backlog.
        let sql = format!(
            "SELECT {PASSAGE_COLUMNS} FROM passages \
             WHERE version > synced_version AND {NOT_DEAD} \
             ORDER BY updated_at LIMIT ?"
        );
        let rows: Vec<PassageRow> = sqlx::query_as(&sql)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter().map(Passage::try_from).collect()
    }

    /// Counts the backlog and the dead letters in one pass over the partial
    /// index of unconfirmed passages.
    pub async fn sync_backlog(&self) -> Result<Backlog, StoreError> {
        let sql = format!(
            "SELECT \
               coalesce(sum(CASE WHEN {NOT_DEAD} THEN 1 ELSE 0 END), 0), \
               min(CASE WHEN {NOT_DEAD} THEN updated_at END), \
               coalesce(sum(CASE WHEN {NOT_DEAD} THEN 0 ELSE 1 END), 0) \
             FROM passages WHERE version > synced_version"
        );
        let (pending, oldest, dead_letters): (i64, Option<i64>, i64) =
            sqlx::query_as(&sql).fetch_one(self.pool()).await?;
        Ok(Backlog {
            pending,
            oldest_pending_at: oldest.map(time).transpose()?,
            dead_letters,
        })
    }

    /// Up to `limit` dead letters, the oldest change first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let sql = format!(
            "SELECT {PASSAGE_COLUMNS}, dead_letter_reason FROM passages \
             WHERE version > synced_version AND dead_letter_version = version \
             ORDER BY updated_at LIMIT ?"
        );
        let rows: Vec<DeadLetterRow> = sqlx::query_as(&sql)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        rows.into_iter()
            .map(|r| {
                Ok(DeadLetter {
                    passage: Passage::try_from(r.passage)?,
                    reason: r.dead_letter_reason.unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// A change to sync bookkeeping, carried to the writer actor.
pub(crate) enum SyncOp {
    /// The target confirmed these `(id, version)` pairs.
    Synced(Vec<(Uuid, i64)>),
    /// The target refused these `(id, version, reason)` for good.
    DeadLetter(Vec<(Uuid, i64, String)>),
    /// Put dead letters back in the backlog: all of them, or these ids.
    Retry(Option<Vec<Uuid>>),
}

/// Applies `op` inside the writer's open transaction.
pub(crate) async fn apply(conn: &mut SqliteConnection, op: SyncOp) -> Result<u64, StoreError> {
    let mut changed = 0;
    match op {
        SyncOp::Synced(rows) => {
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "UPDATE passages SET synced_version = s.column2, \
                     dead_letter_version = NULL, dead_letter_reason = NULL \
                     FROM (",
                );
                push_values(&mut q, chunk, |b, (id, v)| {
                    b.push_bind(id.to_string()).push_bind(*v);
                });
                q.push(
                    ") AS s WHERE passages.id = s.column1 \
                     AND passages.synced_version < s.column2",
                );
                changed += q.build().execute(&mut *conn).await?.rows_affected();
            }
        }
        SyncOp::DeadLetter(rows) => {
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "UPDATE passages SET dead_letter_version = s.column2, \
                     dead_letter_reason = s.column3 FROM (",
                );
                push_values(&mut q, chunk, |b, (id, v, reason)| {
                    b.push_bind(id.to_string())
                        .push_bind(*v)
                        .push_bind(reason.clone());
                });
                q.push(
                    ") AS s WHERE passages.id = s.column1 AND passages.version = s.column2 \
                     AND passages.synced_version < s.column2",
                );
                changed += q.build().execute(&mut *conn).await?.rows_affected();
            }
        }
        SyncOp::Retry(None) => {
            changed = sqlx::query(
                "UPDATE passages SET dead_letter_version = NULL, dead_letter_reason = NULL \
                 WHERE dead_letter_version IS NOT NULL",
            )
            .execute(&mut *conn)
            .await?
            .rows_affected();
        }
        SyncOp::Retry(Some(ids)) => {
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let mut q = QueryBuilder::<Sqlite>::new(
                    "UPDATE passages SET dead_letter_version = NULL, dead_letter_reason = NULL \
                     WHERE dead_letter_version IS NOT NULL AND id IN (",
                );
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id.to_string());
                }
                q.push(")");
                changed += q.build().execute(&mut *conn).await?.rows_affected();
            }
        }
    }
    Ok(changed)
}

/// Pushes `VALUES (..), (..)`: SQLite names the columns column1, column2...
fn push_values<'a, T>(
    q: &mut QueryBuilder<'a, Sqlite>,
    rows: &'a [T],
    mut each: impl FnMut(&mut sqlx::query_builder::Separated<'_, 'a, Sqlite, &'static str>, &'a T),
) {
    q.push("VALUES ");
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            q.push(", ");
        }
        q.push("(");
        {
            let mut sep = q.separated(", ");
            each(&mut sep, row);
        }
        q.push(")");
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use gatelog_core::{DedupConfig, RawRead, Read, ValidationConfig};
    use gatelog_metrics::Metrics;
    use tokio_util::sync::CancellationToken;

    use crate::{Store, StoreConfig};

    fn read(container: &str, secs: i64) -> Read {
        let t = Utc.timestamp_opt(1_714_552_200 + secs, 0).unwrap();
        Read::parse(
            RawRead {
                container: Some(container.into()),
                captured_at: Some(t.to_rfc3339()),
                raw: "{}".into(),
                ..RawRead::default()
            },
            &ValidationConfig::default(),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn versions_are_confirmed_dead_lettered_and_retried() {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            path: dir.path().join("s.db"),
            ..StoreConfig::default()
        };
        let opened = Store::open(&config, &DedupConfig::default(), "site-1", Metrics::new())
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let writer = opened.writer;
        let task = tokio::spawn(async move { writer.run(token).await.unwrap() });
        let store = opened.store;
        let w = store.writer();

        for (i, c) in ["AAAU111111", "BBBU222222", "CCCU333333"]
            .iter()
            .enumerate()
        {
            w.write(vec![read(c, i as i64)]).await.unwrap();
        }
        let b = store.sync_backlog().await.unwrap();
        assert_eq!((b.pending, b.dead_letters), (3, 0));
        assert!(b.oldest_pending_at.is_some());
        let batch = store.sync_pending(2).await.unwrap();
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].container_owner, "AAAU", "oldest change first");
        let (a, bb) = (batch[0].clone(), batch[1].clone());

        // Confirmed: A leaves the backlog. B changes before its (stale)
        // confirmation arrives, so it stays pending.
        w.write(vec![read("BBBU222222", 30)]).await.unwrap();
        assert_eq!(
            w.mark_synced(vec![(a.id, a.version), (bb.id, bb.version)])
                .await
                .unwrap(),
            2
        );
        let pending = store.sync_pending(10).await.unwrap();
        assert_eq!(pending.len(), 2);
        let b2 = pending.iter().find(|p| p.id == bb.id).unwrap();
        assert_eq!(b2.version, 2);
        // A confirmation of an older version never lowers synced_version.
        assert_eq!(w.mark_synced(vec![(a.id, 0)]).await.unwrap(), 0);

        // C is refused: it leaves the backlog and is listed with its reason.
        let c = pending
            .iter()
            .find(|p| p.container_owner == "CCCU")
            .unwrap();
        w.mark_dead_letter(vec![(c.id, c.version, "SQLSTATE 23514".into())])
            .await
            .unwrap();
        let b = store.sync_backlog().await.unwrap();
        assert_eq!((b.pending, b.dead_letters), (1, 1));
        let dead = store.dead_letters(10).await.unwrap();
        assert_eq!(dead[0].passage.id, c.id);
        assert_eq!(dead[0].reason, "SQLSTATE 23514");
        assert!(store
            .sync_pending(10)
            .await
            .unwrap()
            .iter()
            .all(|p| p.id != c.id));

        // Retried by command, it is back in the backlog.
        assert_eq!(w.retry_dead_letters(None).await.unwrap(), 1);
        let b = store.sync_backlog().await.unwrap();
        assert_eq!((b.pending, b.dead_letters), (2, 0));

        shutdown.cancel();
        task.await.unwrap();
        store.close().await;
    }
}
