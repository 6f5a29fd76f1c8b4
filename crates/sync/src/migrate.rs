//! Applies the central schema (`migrations/central`), and finishes the
//! in-place upgrade of an unpartitioned `container_logs` in batches.

use secrecy::SecretString;
use sqlx::{ConnectOptions, Connection};

use crate::postgres::service::connect_options;
use crate::{PostgresConfig, SyncError};

/// The central migrations, in order, embedded at build time. Each is
/// idempotent, so all of them run every time; there is no bookkeeping
/// table for a pooler or a SQL editor to disagree with.
pub const CENTRAL_MIGRATIONS: &[(&str, &str)] = &[
    (
        "20260101000000_container_logs.sql",
        include_str!("../../../migrations/central/20260101000000_container_logs.sql"),
    ),
    (
        "20260601000000_site_guard.sql",
        include_str!("../../../migrations/central/20260601000000_site_guard.sql"),
    ),
    (
        "20261202000000_corrections.sql",
        include_str!("../../../migrations/central/20261202000000_corrections.sql"),
    ),
    (
        "20270101000000_partitions.sql",
        include_str!("../../../migrations/central/20270101000000_partitions.sql"),
    ),
    (
        "20270102000000_gate.sql",
        include_str!("../../../migrations/central/20270102000000_gate.sql"),
    ),
    (
        "20270201000000_notify.sql",
        include_str!("../../../migrations/central/20270201000000_notify.sql"),
    ),
    (
        "20270301000000_hourly.sql",
        include_str!("../../../migrations/central/20270301000000_hourly.sql"),
    ),
];

/// Rows copied per transaction when an unpartitioned table is upgraded:
/// big enough that the per-batch overhead is small, small enough that a
/// batch's row locks and WAL stay modest while sites keep syncing.
pub const UPGRADE_BATCH_ROWS: u32 = 10_000;

/// How far the in-place upgrade has got, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpgradeProgress {
    /// Rows copied into the partitioned table so far, this run.
    pub copied: u64,
    /// Rows in the table when this run started (an upper bound for this
    /// run when an earlier run was interrupted).
    pub total: u64,
}

/// Applies every central migration to the database at `url`, upgrading an
/// unpartitioned table in place; see [`migrate_central_reporting`].
pub async fn migrate_central(url: &SecretString) -> Result<(), SyncError> {
    migrate_central_reporting(url, UPGRADE_BATCH_ROWS, |_| {}).await
}

/// Applies every central migration to the database at `url`.
///
/// Each file runs as one multi-statement simple query, which PostgreSQL
/// executes as one transaction, and which works through a
/// transaction-mode pooler. When the files have prepared the upgrade of an
/// unpartitioned `container_logs` (see `20270101000000_partitions.sql`),
/// the rows are then copied `batch_rows` at a time, each batch committed on
/// its own, so an interrupted run loses at most one batch of work and the
/// next run resumes; `progress` hears after every batch. The final check
/// and swap is one more transaction.
pub async fn migrate_central_reporting(
    url: &SecretString,
    batch_rows: u32,
    mut progress: impl FnMut(UpgradeProgress),
) -> Result<(), SyncError> {
    let config = PostgresConfig { url: url.clone() };
    config.validate()?;
    let redactor = crate::Target::Postgres(config.clone()).redactor();
    let fail = |e: sqlx::Error| SyncError::Migrate(redactor.clean(&e.to_string()));
    let mut conn = connect_options(&config)?.connect().await.map_err(fail)?;
    for (name, sql) in CENTRAL_MIGRATIONS {
        // Notices such as "relation already exists, skipping" are normal.
        sqlx::raw_sql(sql).execute(&mut conn).await.map_err(|e| {
            SyncError::Migrate(format!("{name}: {}", redactor.clean(&e.to_string())))
        })?;
        tracing::info!(migration = name, "central migration applied");
    }
    let upgrading: bool =
        sqlx::query_scalar("SELECT to_regclass('public.container_logs_next') IS NOT NULL")
            .fetch_one(&mut conn)
            .await
            .map_err(fail)?;
    if upgrading {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM public.container_logs")
            .fetch_one(&mut conn)
            .await
            .map_err(fail)?;
        let mut done = UpgradeProgress {
            copied: 0,
            total: total.max(0) as u64,
        };
        tracing::info!(
            rows = done.total,
            "upgrading container_logs to a partitioned table"
        );
        loop {
            let n: i64 = sqlx::query_scalar("SELECT public.container_logs_upgrade_step($1)")
                .bind(i32::try_from(batch_rows.max(1)).unwrap_or(i32::MAX))
                .fetch_one(&mut conn)
                .await
                .map_err(fail)?;
            if n == 0 {
                break;
            }
            done.copied += n as u64;
            progress(done);
        }
        let rows: Option<i64> = sqlx::query_scalar("SELECT public.container_logs_upgrade_finish()")
            .fetch_one(&mut conn)
            .await
            .map_err(fail)?;
        tracing::info!(rows, "container_logs is partitioned by month");
    }
    conn.close().await.map_err(fail)?;
    Ok(())
}
