//! Sends batches over a pooled connection and classifies the errors.

use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use gatelog_core::Passage;
use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::ConnectOptions;

use super::PostgresConfig;
use crate::row::COLUMNS;
use crate::{SyncConfig, SyncError};

pub(crate) struct PostgresService {
    options: PgConnectOptions,
    max_connections: u32,
    timeout: Duration,
    /// Replaced after a timeout: a connection abandoned mid-reply cannot be
    /// trusted, and a fresh pool is the simplest way to drop it.
    pool: Mutex<PgPool>,
    /// The statement, built once.
    upsert: String,
}

impl PostgresService {
    pub(crate) fn new(config: &PostgresConfig, sync: &SyncConfig) -> Result<Self, SyncError> {
        config.validate()?;
        let options = connect_options(config)?;
        let timeout = sync.request_timeout();
        let pool = Mutex::new(pool(&options, config.max_connections, timeout));
        Ok(Self {
            options,
            max_connections: config.max_connections,
            timeout,
            pool,
            upsert: upsert_sql(),
        })
    }

    fn pool(&self) -> PgPool {
        self.pool.lock().expect("pool lock").clone()
    }

    /// Upserts `rows` in one transaction; Ok only after COMMIT succeeded.
    pub(crate) async fn send(&self, rows: &[Passage]) -> Result<(), SyncError> {
        let pool = self.pool();
        let work = async {
            let mut tx = pool.begin().await?;
            bind_rows(sqlx::query(&self.upsert).persistent(false), rows)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r.map_err(classify),
            Err(_) => {
                let old = std::mem::replace(
                    &mut *self.pool.lock().expect("pool lock"),
                    self::pool(&self.options, self.max_connections, self.timeout),
                );
                // Closing waits for checked-out connections; the abandoned
                // one was dropped with the future above.
                tokio::spawn(async move { old.close().await });
                Err(SyncError::Timeout(self.timeout.as_millis() as u64))
            }
        }
    }

    pub(crate) async fn close(&self) {
        self.pool().close().await;
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

fn pool(options: &PgConnectOptions, max: u32, timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max.max(1))
        .acquire_timeout(timeout)
        // Connect when first needed: the target may well be down at start.
        .connect_lazy_with(options.clone())
}

/// The upsert. Its `WHERE` skips a row whose stored version is as new,
/// which makes retries harmless. A row from another site must not be
/// skipped that way: a skipped row counts as confirmed, so the sending site
/// would mark a passage synced that the centre never took. The second
/// condition lets such a row reach the central trigger
/// `container_logs_guard_site`, which refuses it with SQLSTATE 23000.
fn upsert_sql() -> String {
    let cols = COLUMNS.join(", ");
    let updates = COLUMNS
        .iter()
        .filter(|c| **c != "id")
        .map(|c| format!("{c} = excluded.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "INSERT INTO container_logs ({cols}) \
         SELECT * FROM UNNEST(\
           $1::text[]::uuid[], $2::text[], $3::text[]::timestamptz[], $4::text[], $5::text[], \
           $6::int2[], $7::bool[], $8::int2[], $9::text[], $10::text[], $11::text[], \
           $12::float8[], $13::int8[], $14::text[]::timestamptz[], $15::text[]::timestamptz[], \
           $16::text[]::timestamptz[], $17::int8[]) \
         ON CONFLICT (id) DO UPDATE SET {updates} \
         WHERE container_logs.version < excluded.version \
            OR container_logs.site_id IS DISTINCT FROM excluded.site_id"
    )
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
        .bind(
            rows.iter()
                .map(|p| i16::from(p.flags.bits()))
                .collect::<Vec<_>>(),
        )
        .bind(opt(|p| p.source_video.as_deref()))
        .bind(opt(|p| p.cropped_image_ref.as_deref()))
        .bind(opt(|p| p.camera_id.as_deref()))
        .bind(rows.iter().map(|p| p.confidence).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.seen_count).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| ts(p.last_seen_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| ts(p.created_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| ts(p.updated_at)).collect::<Vec<_>>())
        .bind(rows.iter().map(|p| p.version).collect::<Vec<_>>())
}

/// Classifies a sqlx error, in the spirit of vector's
/// `is_retriable_error`: SQLSTATE classes 22 (data exception) and 23
/// (integrity constraint) are about the rows; 08, 40, 53, 55, 57 and 58
/// (connection, rollback, resources, lock, shutdown, system) are
/// transient; any other database error (a missing table or column, a
/// privilege) concerns the request as a whole.
pub(crate) fn classify(e: sqlx::Error) -> SyncError {
    match e {
        sqlx::Error::Database(db) => {
            let code = db.code().map(|c| c.to_string()).unwrap_or_default();
            let text = format!("SQLSTATE {code}: {}", db.message());
            match code.get(..2) {
                Some("22" | "23") => SyncError::Rejected(text),
                Some("08" | "40" | "53" | "55" | "57" | "58") => SyncError::Unavailable(text),
                _ => SyncError::Refused(text),
            }
        }
        sqlx::Error::Configuration(_) => {
            SyncError::Config("postgres.url (DATABASE_URL) is invalid".into())
        }
        sqlx::Error::PoolTimedOut => {
            SyncError::Unreachable("no connection to the target within the timeout".into())
        }
        other => SyncError::Unreachable(other.to_string()),
    }
}
