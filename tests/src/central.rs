//! A fresh central database on the real PostgreSQL at 127.0.0.1:5432, for
//! one test or one run, with the central schema applied, and the checks
//! that compare it with a site's store: the same ids, no id twice, the
//! newest version of each.

use std::net::SocketAddr;
use std::path::Path;

use sqlx::{Connection, PgConnection};

/// The maintenance database's URL; `GATELOG_TEST_PG_ADMIN` overrides it.
pub fn admin_url() -> String {
    std::env::var("GATELOG_TEST_PG_ADMIN")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database created for one test and dropped with it.
pub struct CentralDb {
    pub name: String,
    /// Its URL, straight to the server.
    pub url: String,
}

impl CentralDb {
    /// Creates a database and applies the central schema. When
    /// PostgreSQL is unreachable, fails under `CI=true` and otherwise
    /// returns None after a loud notice.
    pub async fn create() -> Option<Self> {
        let admin = admin_url();
        let mut conn = match PgConnection::connect(&admin).await {
            Ok(c) => c,
            Err(e) => {
                crate::missing(&format!("PostgreSQL at {admin} is unreachable ({e})"));
                return None;
            }
        };
        let name = format!("gatelog_rel_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create the test database");
        conn.close().await.ok();
        let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
        // Built before the migration, so the database is dropped even when
        // the migration fails.
        let db = Self {
            url: format!("{base}/{name}"),
            name,
        };
        gatelog_sync::migrate_central(&db.url.clone().into())
            .await
            .expect("the central schema applies");
        Some(db)
    }

    /// The URL as seen through `addr`, a proxy in front of the server.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }

    async fn connect(&self) -> PgConnection {
        PgConnection::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Every central row as (id, version), ordered.
    pub async fn ids_and_versions(&self) -> Vec<(String, i64)> {
        let mut conn = self.connect().await;
        let rows = sqlx::query_as("SELECT id::text, version FROM container_logs ORDER BY 1, 2")
            .fetch_all(&mut conn)
            .await
            .expect("read the central rows");
        conn.close().await.ok();
        rows
    }

    /// Ids of central rows last seen before `cutoff`: what a site's
    /// retention may have removed from its store once they were central.
    pub async fn ids_last_seen_before(
        &self,
        cutoff: chrono::DateTime<chrono::Utc>,
    ) -> std::collections::HashSet<String> {
        let mut conn = self.connect().await;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT id::text FROM container_logs WHERE last_seen_at < $1::text::timestamptz",
        )
        .bind(cutoff.to_rfc3339())
        .fetch_all(&mut conn)
        .await
        .expect("read central times");
        conn.close().await.ok();
        rows.into_iter().collect()
    }

    /// Ids that appear more than once centrally.
    pub async fn repeated_ids(&self) -> Vec<String> {
        let mut conn = self.connect().await;
        let rows = sqlx::query_scalar(
            "SELECT id::text FROM container_logs GROUP BY id HAVING count(*) > 1 ORDER BY 1",
        )
        .fetch_all(&mut conn)
        .await
        .expect("count central ids");
        conn.close().await.ok();
        rows
    }
}

impl Drop for CentralDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop cannot await, and the test's runtime may be the one
        // dropping; a runtime of its own on a thread does the cleanup.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        })
        .join()
        .ok();
    }
}

/// What a site's store holds, read from its file through a read-only
/// connection of its own (beside a running server or after one).
pub struct LocalCopy {
    /// Every passage as (id, version), ordered.
    pub ids_and_versions: Vec<(String, i64)>,
    /// Passages whose current version is a dead letter (as sync counts them).
    pub dead_letters: i64,
    /// Passages whose current version the target has not confirmed.
    pub pending: i64,
}

impl LocalCopy {
    pub async fn read(db: &Path) -> Self {
        let mut conn =
            sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
                .await
                .expect("the store opens read-only");
        let ids_and_versions = sqlx::query_as("SELECT id, version FROM passages ORDER BY 1, 2")
            .fetch_all(&mut conn)
            .await
            .expect("read the passages");
        let dead_letters = sqlx::query_scalar(
            "SELECT count(*) FROM passages \
             WHERE version > synced_version AND dead_letter_version = version",
        )
        .fetch_one(&mut conn)
        .await
        .expect("count dead letters");
        let pending = sqlx::query_scalar(
            "SELECT count(*) FROM passages \
             WHERE version > synced_version \
             AND (dead_letter_version IS NULL OR dead_letter_version <> version)",
        )
        .fetch_one(&mut conn)
        .await
        .expect("count pending passages");
        conn.close().await.ok();
        Self {
            ids_and_versions,
            dead_letters,
            pending,
        }
    }
}

/// The JWT secret the test `postrust` servers check signatures with.
pub const JWT_SECRET: &str = "gatelog-test-secret-that-is-at-least-32-bytes-long";

/// A `service_role` key for [`JWT_SECRET`], as Supabase issues one.
pub fn service_key() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use hmac::Mac;
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(br#"{"role":"service_role","exp":4000000000}"#);
    let signing_input = format!("{header}.{body}");
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(JWT_SECRET.as_bytes()).expect("any key length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// A real `postrust` (PostgREST-protocol) server in front of a
/// [`CentralDb`], stopped when dropped.
pub struct Postrust {
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl Postrust {
    /// Starts `postrust` (`POSTRUST_BIN`, else `~/.cargo/bin/postrust`,
    /// else the PATH) on a free port and waits until it answers. When it
    /// is not installed, fails under `CI=true` and otherwise returns None
    /// after a loud notice.
    pub async fn start(db: &CentralDb) -> Option<Self> {
        let bin = std::env::var("POSTRUST_BIN").unwrap_or_else(|_| {
            let candidate = format!(
                "{}/.cargo/bin/postrust",
                std::env::var("HOME").unwrap_or_default()
            );
            if Path::new(&candidate).exists() {
                candidate
            } else {
                "postrust".into()
            }
        });
        let port = crate::free_port();
        let child = tokio::process::Command::new(&bin)
            .env("PGRST_DB_URI", &db.url)
            .env("PGRST_DB_SCHEMAS", "public")
            .env("PGRST_DB_ANON_ROLE", "anon")
            .env("PGRST_JWT_SECRET", JWT_SECRET)
            .env("PGRST_SERVER_HOST", "127.0.0.1")
            .env("PGRST_SERVER_PORT", port.to_string())
            .env("PGRST_COMPAT_MODE", "true")
            .env("PGRST_LOG_LEVEL", "error")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                crate::missing(&format!("postrust is not installed ({bin}: {e})"));
                return None;
            }
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("an address");
        let server = Self { addr, child };
        let client = reqwest::Client::new();
        let key = service_key();
        for _ in 0..200 {
            let r = client
                .get(format!("http://{addr}/container_logs?limit=1"))
                .bearer_auth(&key)
                .send()
                .await;
            if r.is_ok_and(|r| r.status().is_success()) {
                return Some(server);
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("postrust did not become ready at {addr}");
    }
}

impl Drop for Postrust {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// Whether PostgreSQL answers; when it does not, fails under `CI=true`
/// and otherwise returns false after a loud notice.
pub async fn postgres_reachable() -> bool {
    match PgConnection::connect(&admin_url()).await {
        Ok(c) => {
            c.close().await.ok();
            true
        }
        Err(e) => crate::missing(&format!(
            "PostgreSQL at {} is unreachable ({e})",
            admin_url()
        )),
    }
}
