//! The checkpointer: moves committed pages from the WAL into the database
//! file, off the write path.
//!
//! SQLite's automatic checkpoint runs inside whichever commit crosses the
//! threshold, so now and then one acknowledgement waits for a checkpoint
//! and its fsync. Here a second connection runs a PASSIVE checkpoint on a
//! timer instead: it never takes the write lock, so commits go on while it
//! copies. The writer keeps a high automatic threshold only as a safety net
//! for processes that run no checkpointer (short CLI commands).

use std::time::Duration;

use sqlx::sqlite::SqliteConnection;
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use crate::{StoreConfig, StoreError};

/// Runs PASSIVE checkpoints every `store.checkpoint_interval_ms`.
pub struct Checkpointer {
    config: StoreConfig,
}

impl Checkpointer {
    pub(crate) fn new(config: StoreConfig) -> Self {
        Self { config }
    }

    /// Checkpoints until `shutdown`, then once more.
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), StoreError> {
        let mut conn: SqliteConnection = crate::write_options(&self.config)
            .connect()
            .await
            .map_err(StoreError::from_sqlx)?;
        let interval = Duration::from_millis(self.config.checkpoint_interval_ms.max(10));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = shutdown.cancelled() => break,
            }
            checkpoint(&mut conn).await?;
        }
        checkpoint(&mut conn).await?;
        conn.close().await.map_err(StoreError::from_sqlx)
    }
}

async fn checkpoint(conn: &mut SqliteConnection) -> Result<(), StoreError> {
    // Returns (busy, WAL pages, pages checkpointed); a busy result only
    // means a reader still needs old pages, and the next run catches up.
    let (_busy, _log, _done): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await
        .map_err(StoreError::from_sqlx)?;
    Ok(())
}
