//! Test helpers: a fresh central database per test, a local store in a
//! temporary file, a TCP proxy that can cut or stall the path, and a real
//! `postrust` process.
//!
//! A test that cannot reach PostgreSQL or find `postrust` fails when
//! `CI=true`; elsewhere it says loudly that it did not run.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, TimeZone, Utc};
use gatelog_core::{DedupConfig, RawRead, Read, ValidationConfig};
use gatelog_local_store::{Store, StoreConfig};
use gatelog_metrics::Metrics;
use gatelog_sync::{SyncActor, SyncConfig, SyncHandle, Target};
use hmac::{Hmac, Mac};
use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

pub const ADMIN_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("GATELOG_TEST_PG_ADMIN").unwrap_or_else(|_| ADMIN_URL_DEFAULT.to_string())
}

/// Fails under CI, otherwise prints why the test did not run.
pub fn unavailable(what: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is unavailable, and CI=true forbids skipping");
    }
    eprintln!("SKIPPED (not CI): {what} is unavailable");
}

/// Logs to stderr when TEST_LOG is set.
pub fn init_log() {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "gatelog_sync=debug".into()),
            )
            .with_test_writer()
            .try_init();
    }
}

/// A database created for one test and dropped after it.
pub struct TestDb {
    pub name: String,
    pub url: String,
    pub pool: PgPool,
}

impl TestDb {
    /// Creates a database with the central schema applied; None when
    /// PostgreSQL is unreachable outside CI.
    pub async fn new() -> Option<Self> {
        let mut admin = match PgConnection::connect(&admin_url()).await {
            Ok(c) => c,
            Err(e) => {
                unavailable(&format!("PostgreSQL at {} ({e})", admin_url()));
                return None;
            }
        };
        let name = format!("gatelog_sync_{}", uuid::Uuid::new_v4().simple());
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create database");
        admin.close().await.ok();
        let url = db_url(&name);
        let pool = PgPool::connect(&url).await.expect("connect to test db");
        // Built before the migration, so that the database is dropped even
        // when the migration fails.
        let db = Self { name, url, pool };
        gatelog_sync::migrate_central(&db.url.clone().into())
            .await
            .expect("central migration applies");
        Some(db)
    }

    /// The URL as seen through `addr` (a proxy).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        format!("postgres://postgres@{addr}/{}", self.name)
    }

    pub async fn ids_and_versions(&self) -> Vec<(uuid::Uuid, i64)> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT id::text, version FROM container_logs ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .unwrap();
        rows.into_iter()
            .map(|(id, v)| (id.parse().unwrap(), v))
            .collect()
    }

    pub async fn count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM container_logs")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

pub fn db_url(name: &str) -> String {
    let admin = admin_url();
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; do the cleanup on its own runtime. The
        // pool is not closed from here: its connections belong to the
        // test's runtime, which is blocked in this very drop, so closing
        // them would wait forever. FORCE ends those sessions instead.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
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

/// A local store in a temporary folder, with its writer running.
pub struct Local {
    pub store: Store,
    pub metrics: Metrics,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Local {
    pub async fn open() -> Self {
        Self::open_site("site-1").await
    }

    /// A store whose passages carry `site_id`.
    pub async fn open_site(site_id: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            path: dir.path().join("gatelog.db"),
            ..StoreConfig::default()
        };
        let metrics = Metrics::new();
        let opened = Store::open(&config, &DedupConfig::default(), site_id, metrics.clone())
            .await
            .expect("store opens");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let writer = opened.writer;
        let task = tokio::spawn(async move { writer.run(token).await.expect("writer runs") });
        Self {
            store: opened.store,
            metrics,
            shutdown,
            task,
            _dir: dir,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.store.close().await;
    }

    /// Ingests `n` reads of distinct containers, owner `owner`, serials
    /// from `first`.
    pub async fn ingest(&self, owner: &str, first: u32, n: u32) {
        let reads: Vec<Read> = (first..first + n)
            .map(|i| read(&format!("{owner}{:06}", i % 1_000_000), at(i64::from(i))))
            .collect();
        self.store.writer().write(reads).await.expect("ingest");
    }

    /// Every local passage as (id, version), ordered by id.
    pub async fn ids_and_versions(&self) -> Vec<(uuid::Uuid, i64)> {
        let mut out = Vec::new();
        let mut filter = gatelog_local_store::LogFilter {
            limit: 1000,
            ..Default::default()
        };
        loop {
            let page = self.store.search(&filter).await.unwrap();
            out.extend(page.logs.iter().map(|p| (p.id, p.version)));
            match page.next_cursor {
                Some(c) => filter.cursor = Some(c),
                None => break,
            }
        }
        out.sort();
        out
    }
}

pub fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_714_552_200 + secs * 400, 0).unwrap()
}

pub fn read(container: &str, t: DateTime<Utc>) -> Read {
    Read::parse(
        RawRead {
            container: Some(container.into()),
            captured_at: Some(t.to_rfc3339()),
            camera_id: Some("cam-1".into()),
            raw: format!(r#"{{"container":"{container}"}}"#),
            ..RawRead::default()
        },
        &ValidationConfig::default(),
    )
    .expect("valid read")
}

/// Fast pacing for tests: short backoffs, so outages are crossed quickly.
pub fn fast_config() -> SyncConfig {
    SyncConfig {
        backoff_initial_ms: 50,
        backoff_max_ms: 400,
        request_timeout_ms: 2_000,
        poll_interval_ms: 100,
        status_interval_ms: 100,
        ..SyncConfig::default()
    }
}

/// A running actor.
pub struct Running {
    pub handle: SyncHandle,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<Result<(), gatelog_sync::SyncError>>,
}

impl Running {
    pub fn start(local: &Local, config: SyncConfig, target: Target) -> Self {
        let (actor, handle) =
            SyncActor::new(config, target, local.store.clone(), local.metrics.clone());
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move { actor.run(token).await });
        Self {
            handle,
            shutdown,
            task,
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap().expect("actor stops cleanly");
    }
}

/// Waits until `f` holds, polling; panics with `what` after `secs`.
pub async fn wait_for<F, Fut>(secs: u64, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !f().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the actor's published status satisfies `f`, and returns
/// it; panics with `what` after `secs`.
pub async fn status_until(
    handle: &SyncHandle,
    secs: u64,
    what: &str,
    f: impl FnMut(&gatelog_sync::SyncStatus) -> bool,
) -> gatelog_sync::SyncStatus {
    let mut status = handle.status();
    let found = tokio::time::timeout(Duration::from_secs(secs), async {
        status
            .wait_for(f)
            .await
            .expect("the actor is alive")
            .clone()
    })
    .await;
    match found {
        Ok(s) => s,
        Err(_) => panic!(
            "timed out waiting for {what}; status: {:?}",
            *handle.status().borrow()
        ),
    }
}

/// Waits until the local backlog is empty.
pub async fn drained(local: &Local, secs: u64) {
    let store = local.store.clone();
    wait_for(secs, "the backlog to drain", || {
        let store = store.clone();
        async move { store.sync_backlog().await.unwrap().pending == 0 }
    })
    .await;
}

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    Forward,
    /// Existing connections are closed and new ones are accepted and closed
    /// at once.
    Cut,
    /// Existing connections are closed and the listening socket too, so a
    /// new connection is refused by the operating system, as when the
    /// target's host is up but its service is down.
    Refuse,
}

/// A TCP proxy in front of a service, which the test can cut, make refuse
/// connections, restore, or arm to swallow the reply to one request.
pub struct Proxy {
    pub addr: SocketAddr,
    mode: Arc<Mutex<ProxyMode>>,
    /// Poked on every change of mode, so the accept loop can close or
    /// reopen its socket.
    changed: Arc<tokio::sync::Notify>,
    /// Bumped by every cut; connections from an older epoch close.
    epoch: Arc<AtomicU64>,
    /// When set, the next connection whose client sends this pattern has
    /// everything the server says afterwards discarded: the request is
    /// served and committed, the reply never arrives.
    stall_on: Arc<Mutex<Option<Vec<u8>>>>,
    /// Set once a reply has been swallowed.
    pub stalled: Arc<AtomicBool>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let proxy = Self {
            addr,
            mode: Arc::new(Mutex::new(ProxyMode::Forward)),
            changed: Arc::new(tokio::sync::Notify::new()),
            epoch: Arc::new(AtomicU64::new(0)),
            stall_on: Arc::new(Mutex::new(None)),
            stalled: Arc::new(AtomicBool::new(false)),
        };
        let (mode, changed, epoch, stall_on, stalled) = (
            proxy.mode.clone(),
            proxy.changed.clone(),
            proxy.epoch.clone(),
            proxy.stall_on.clone(),
            proxy.stalled.clone(),
        );
        tokio::spawn(async move {
            let mut listener = Some(listener);
            loop {
                let current = *mode.lock().unwrap();
                if current == ProxyMode::Refuse {
                    // Closing the socket makes the kernel refuse connects.
                    listener = None;
                    changed.notified().await;
                    continue;
                }
                let l = match &listener {
                    Some(l) => l,
                    None => {
                        listener.insert(TcpListener::bind(addr).await.expect("rebind the proxy"))
                    }
                };
                let client = tokio::select! {
                    r = l.accept() => match r { Ok((c, _)) => c, Err(_) => continue },
                    _ = changed.notified() => continue,
                };
                if *mode.lock().unwrap() != ProxyMode::Forward {
                    drop(client);
                    continue;
                }
                let my_epoch = epoch.load(Ordering::SeqCst);
                let (epoch, stall_on, stalled) = (epoch.clone(), stall_on.clone(), stalled.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    pipe(client, server, my_epoch, epoch, stall_on, stalled).await;
                });
            }
        });
        proxy
    }

    fn set(&self, mode: ProxyMode) {
        *self.mode.lock().unwrap() = mode;
        if mode != ProxyMode::Forward {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
        self.changed.notify_one();
    }

    pub fn cut(&self) {
        self.set(ProxyMode::Cut);
    }

    pub fn refuse(&self) {
        self.set(ProxyMode::Refuse);
    }

    pub fn restore(&self) {
        self.set(ProxyMode::Forward);
    }

    pub fn stall_reply_after(&self, pattern: &[u8]) {
        *self.stall_on.lock().unwrap() = Some(pattern.to_vec());
    }
}

async fn pipe(
    client: TcpStream,
    server: TcpStream,
    my_epoch: u64,
    epoch: Arc<AtomicU64>,
    stall_on: Arc<Mutex<Option<Vec<u8>>>>,
    stalled: Arc<AtomicBool>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // Set when this connection's replies are to be swallowed.
    let swallow = Arc::new(AtomicBool::new(false));
    let alive = |epoch: &AtomicU64| epoch.load(Ordering::SeqCst) == my_epoch;
    let up = {
        let (epoch, swallow) = (epoch.clone(), swallow.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = tokio::select! {
                    r = cr.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
                    _ = tokio::time::sleep(Duration::from_millis(20)), if true => {
                        if !alive(&epoch) { break; }
                        continue;
                    }
                };
                if !alive(&epoch) {
                    break;
                }
                {
                    let mut armed = stall_on.lock().unwrap();
                    if let Some(p) = armed.as_ref() {
                        if buf[..n].windows(p.len()).any(|w| w == p.as_slice()) {
                            *armed = None;
                            swallow.store(true, Ordering::SeqCst);
                            stalled.store(true, Ordering::SeqCst);
                        }
                    }
                }
                if sw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    };
    let down = {
        let (epoch, swallow) = (epoch.clone(), swallow.clone());
        async move {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = tokio::select! {
                    r = sr.read(&mut buf) => match r { Ok(0) | Err(_) => break, Ok(n) => n },
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {
                        if !alive(&epoch) { break; }
                        continue;
                    }
                };
                if !alive(&epoch) {
                    break;
                }
                if swallow.load(Ordering::SeqCst) {
                    continue;
                }
                if cw.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    };
    // Either direction ending ends the connection, as a cut path would.
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// An HS256 JWT for `claims`.
pub fn jwt(secret: &str, claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).unwrap());
    let signing_input = format!("{header}.{body}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

pub const JWT_SECRET: &str = "gatelog-test-secret-that-is-at-least-32-bytes-long";

pub fn service_key() -> String {
    jwt(
        JWT_SECRET,
        &serde_json::json!({"role": "service_role", "exp": 4_000_000_000u64}),
    )
}

/// A `postrust` process serving a test database.
pub struct Postrust {
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl Postrust {
    /// Starts postrust on a free port; None when it is not installed
    /// outside CI.
    pub async fn start(db: &TestDb) -> Option<Self> {
        let bin = std::env::var("POSTRUST_BIN").unwrap_or_else(|_| {
            let home = std::env::var("HOME").unwrap_or_default();
            let candidate = format!("{home}/.cargo/bin/postrust");
            if std::path::Path::new(&candidate).exists() {
                candidate
            } else {
                "postrust".into()
            }
        });
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = tokio::process::Command::new(&bin)
            .env("PGRST_DB_URI", &db.url)
            .env("PGRST_DB_SCHEMAS", "public")
            .env("PGRST_DB_ANON_ROLE", "anon")
            .env("PGRST_JWT_SECRET", JWT_SECRET)
            .env("PGRST_SERVER_HOST", "127.0.0.1")
            .env("PGRST_SERVER_PORT", port.to_string())
            .env("PGRST_COMPAT_MODE", "true")
            // As PostgREST does by default: `NOTIFY pgrst, 'reload schema'`
            // reloads the schema cache.
            .env("PGRST_DB_CHANNEL_ENABLED", "true")
            .env("PGRST_LOG_LEVEL", "error")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                unavailable(&format!("postrust ({bin}: {e})"));
                return None;
            }
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let server = Self { addr, child };
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/container_logs?limit=1");
        let key = service_key();
        for _ in 0..200 {
            if let Ok(r) = client.get(&url).bearer_auth(&key).send().await {
                if r.status().is_success() {
                    return Some(server);
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("postrust did not become ready at {addr}");
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Postrust {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A TCP server that accepts connections, reads what it is sent and never
/// answers: a target whose host takes the connection but whose service
/// hangs.
pub struct Unanswering {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Unanswering {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while matches!(socket.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        });
        Self {
            addr,
            accepted,
            task,
        }
    }
}

impl Drop for Unanswering {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An address where nothing listens, so a connect is refused at once.
pub fn refusing_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}
