//! Sends batches over a pooled connection and classifies the errors.

use std::str::FromStr;
use std::time::Duration;

use gatelog_core::Passage;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio::sync::Mutex;

use super::PostgresConfig;
use crate::error::Redactor;
use crate::row::COLUMNS;
use crate::{SyncConfig, SyncError};

/// One connection, not a pool. Sync keeps one batch in flight, so one
/// connection is all it uses; and sqlx's pool retries a refused connect
/// until its acquire timeout, which would make an attempt against a target
/// that is down wait out the whole request timeout instead of failing at
/// once. Connecting by hand fails as fast as the network says no.
pub(crate) struct PostgresService {
    options: PgConnectOptions,
    timeout: Duration,
    /// The open connection, if any. Opened on first use; dropped after a
    /// timeout or a connection-level error, since a connection abandoned
    /// mid-reply cannot be trusted, and opened again by the next attempt.
    conn: Mutex<Option<PgConnection>>,
    /// The statement, built once.
    upsert: String,
    /// Applied to the database's error text before it leaves this module.
    redactor: Redactor,
}

impl PostgresService {
    pub(crate) fn new(config: &PostgresConfig, sync: &SyncConfig) -> Result<Self, SyncError> {
        config.validate()?;
        Ok(Self {
            options: connect_options(config)?,
            timeout: sync.request_timeout(),
            conn: Mutex::new(None),
            upsert: upsert_sql(),
            redactor: crate::Target::Postgres(config.clone()).redactor(),
        })
    }

    /// Upserts `rows` in one transaction; Ok only after COMMIT succeeded.
    /// The whole attempt, connecting included, is bounded by the request
    /// timeout; a refused connection ends it at once.
    pub(crate) async fn send(&self, rows: &[Passage]) -> Result<(), SyncError> {
        let mut slot = self.conn.lock().await;
        let result = tokio::time::timeout(self.timeout, self.upsert(&mut slot, rows)).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                // A database error leaves the connection usable (the
                // transaction was rolled back); anything else means the
                // connection is gone or unreliable.
                if !matches!(e, sqlx::Error::Database(_)) {
                    *slot = None;
                }
                Err(classify(e, &self.redactor))
            }
            Err(_) => {
                *slot = None;
                Err(SyncError::Timeout(self.timeout.as_millis() as u64))
            }
        }
    }

    async fn upsert(
        &self,
        slot: &mut Option<PgConnection>,
        rows: &[Passage],
    ) -> Result<(), sqlx::Error> {
        // A connection kept from an earlier batch may have been closed by
        // the server or a pooler meanwhile; a ping finds out before the
        // batch is blamed for it, as a pool's test before acquire would.
        if let Some(conn) = slot.as_mut() {
            if conn.ping().await.is_err() {
                *slot = None;
            }
        }
        let conn = match slot {
            Some(conn) => conn,
            None => slot.insert(self.options.connect().await?),
        };
        let mut tx = conn.begin().await?;
        bind_rows(sqlx::query(&self.upsert).persistent(false), rows)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    pub(crate) async fn close(&self) {
        if let Some(conn) = self.conn.lock().await.take() {
            let _ = conn.close().await;
        }
    }
}

/// Options without a statement cache: a transaction-mode pooler may hand
/// the next transaction to another server connection, where a cached
/// prepared statement does not exist.
pub(crate) fn connect_options(config: &PostgresConfig) -> Result<PgConnectOptions, SyncError> {
    let options = PgConnectOptions::from_str(config.url.expose_secret())
        // sqlx's message does not echo the URL, but it may quote part of it.
        .map_err(|_| SyncError::Config("postgres.url (DATABASE_URL) is not a valid URL".into()))?
        .statement_cache_capacity(0)
        .application_name("gatelog-sync")
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(5));
    Ok(options)
}

/// The upsert, keyed on the central primary key `(id, captured_at)`
/// (`captured_at` is the partition key, so it is in the key and never in
/// the `SET`; a passage whose `captured_at` moved earlier is found under
/// its old key by the central trigger `container_logs_move_passage`). Its
/// `WHERE` skips a row whose stored version is as new,
/// which makes retries harmless. A row from another site must not be
/// skipped that way: a skipped row counts as confirmed, so the sending site
/// would mark a passage synced that the centre never took. The second
/// condition lets such a row reach the central trigger
/// `container_logs_guard_site`, which refuses it with SQLSTATE 23000.
fn upsert_sql() -> String {
    let cols = COLUMNS.join(", ");
    let updates = COLUMNS
        .iter()
        .filter(|c| !matches!(**c, "id" | "captured_at"))
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO container_logs ({cols}) \
         SELECT * FROM UNNEST(\
           $1::text[]::uuid[], $2::text[], $3::text[]::timestamptz[], $4::text[], $5::text[], \
           $6::int2[], $7::bool[], $8::int2[], $9::text[], $10::text[], $11::text[], \
           $12::float8[], $13::int8[], $14::text[]::timestamptz[], $15::text[]::timestamptz[], \
           $16::text[]::timestamptz[], $17::int8[], $18::text[]::jsonb[], $19::text[], \
           $20::text[], $21::text[], $22::text[], $23::int8[]) \
         ON CONFLICT (id, captured_at) DO UPDATE SET {updates} \
         WHERE container_logs.version < excluded.version \
            OR container_logs.site_id IS DISTINCT FROM excluded.site_id"
    )
}

/// Sends the direct target's upsert of `rows` as one statement on `conn`:
/// what each sync batch sends inside its transaction, without the ping and
/// the transaction around it. Public so that a benchmark measures the
/// statement the target really sends (`gatelog-bench sites`).
pub async fn upsert_rows(
    conn: &mut sqlx::PgConnection,
    rows: &[Passage],
) -> Result<u64, sqlx::Error> {
    let sql = upsert_sql();
    let done = bind_rows(sqlx::query(&sql).persistent(false), rows)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

fn bind_rows<'q>(q: Query<'q>, rows: &[Passage]) -> Query<'q> {
    let ts =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let text = |f: fn(&Passage) -> &str| rows.iter().map(|p| f(p).to_string()).collect::<Vec<_>>();
    let opt = |f: fn(&Passage) -> Option<&str>| {
        rows.iter()
            .map(|p| f(p).map(str::to_string))
            .collect::<Vec<_>>()
    };
    q.bind(rows.iter().map(|p| p.id.to_string()).collect::<Vec<_>>())
        .bind(text(|p| &p.site_id))
        .bind(rows.iter().map(|p| ts(p.captured_at)).collect::<Vec<_>>())
        .bind(text(|p| &p.container_owner))
        .bind(text(|p| &p.container_number))
        .bind(
            rows.iter()
                .map(|p| p.check_digit.map(i16::from))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|p| p.check_digit_ok).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.flags.to_i16()).collect::<Vec<_>>())
        .bind(opt(|p| p.source_video.as_deref()))
        .bind(opt(|p| p.cropped_image_ref.as_deref()))
        .bind(opt(|p| p.camera_id.as_deref()))
        .bind(rows.iter().map(|p| p.confidence).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.seen_count).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| ts(p.last_seen_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| ts(p.created_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| ts(p.updated_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.version).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|p| serde_json::to_string(&p.corrections).unwrap_or_else(|_| "[]".into()))
                .collect::<Vec<_>>(),
        )
        .bind(
            rows.iter()
                .map(|p| p.direction.as_str().to_string())
                .collect::<Vec<_>>(),
        )
        .bind(opt(|p| p.lane.as_deref()))
        .bind(opt(|p| p.truck_plate.as_deref()))
        .bind(opt(|p| p.iso_type.as_deref()))
        .bind(rows.iter().map(|p| p.dwell_secs).collect::<Vec<_>>())
}

/// Classifies a sqlx error, in the spirit of vector's
/// `is_retriable_error`: SQLSTATE classes 22 (data exception) and 23
/// (integrity constraint) are about the rows; 08, 40, 53, 55, 57 and 58
/// (connection, rollback, resources, lock, shutdown, system) are
/// transient; any other database error (a missing table or column, a
/// privilege) concerns the request as a whole. The database's text is
/// redacted and cut to [`crate::error::ERROR_TEXT_LIMIT`] here, before any
/// caller can store, log or publish it.
pub(crate) fn classify(e: sqlx::Error, redactor: &Redactor) -> SyncError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let text = redactor.clean(&format!("SQLSTATE {code}: {}", db.message()));
            match code.get(..2) {
                Some("22" | "23") => SyncError::Rejected(text),
                Some("08" | "40" | "53" | "55" | "57" | "58") => SyncError::Unavailable(text),
                _ => SyncError::Refused(text),
            }
        }
        sqlx::Error::Configuration(_) => {
            SyncError::Config("postgres.url (DATABASE_URL) is invalid".into())
        }
        other => SyncError::Unreachable(redactor.clean(&other.to_string())),
    }
}
