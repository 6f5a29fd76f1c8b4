//! Applies the central schema (`migrations/central`).

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
];

/// Applies every central migration to the database at `url`.
///
/// Each file runs as one multi-statement simple query, which PostgreSQL
/// executes as one transaction, and which works through a
/// transaction-mode pooler.
pub async fn migrate_central(url: &SecretString) -> Result<(), SyncError> {
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
    conn.close().await.map_err(fail)?;
    Ok(())
}
