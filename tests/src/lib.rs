//! Helpers for gatelog's end-to-end tests.
//!
//! [`TestApp::spawn`] builds the real application in process on port 0 with
//! a fresh SQLite file in a temporary folder, as `gatelog serve` would.
//! [`BinaryApp`] runs the real `gatelog` binary as a child process, for
//! what only a process can show: restarts, signals, exit codes.
//!
//! [`crash::crash_loop`] kills and restarts the real binary under load;
//! [`soak::soak`] runs it long with a flapping path to the centre (both
//! also run long from the `gatelog-reliability` binary).
//! [`central`] makes a fresh central database (and a `postrust` in front
//! of it) and compares it with a site's store; [`faults::FaultProxy`] puts
//! network faults between the two. [`properties`] holds what fuzzing
//! checks, shared by the fuzz targets and their proptest fallback.
//!
//! Logs stay silent unless `TEST_LOG` is set.

pub mod central;
pub mod crash;
pub mod faults;
pub mod properties;
pub mod soak;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Once;
use std::time::Duration;

use gatelog_supervisor::config::Config;
use gatelog_supervisor::serve::{Application, ServeOptions};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

static TRACING: Once = Once::new();

fn init_tracing() {
    TRACING.call_once(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .init();
        }
    });
}

/// A config for tests: the store in `dir`, port 0 on loopback.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.store.path = dir.join("gatelog.db");
    config.server.bind = "127.0.0.1:0".into();
    config.server.workers = 2;
    config
}

/// The real application, in process.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a config adjusted by `tweak`.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::spawn_in(dir, tweak).await
    }

    /// Spawns on an existing folder, as a restart would.
    pub async fn spawn_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        init_tracing();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        let app = Application::build(config, ServeOptions::default())
            .await
            .expect("application builds");
        let base = format!("http://{}", app.addr());
        let (tx, rx) = oneshot::channel();
        let task = tokio::spawn(app.run_until(async {
            let _ = rx.await;
        }));
        Self {
            base,
            client: reqwest::Client::new(),
            dir,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a JSON body to the recognitions endpoint.
    pub async fn post(&self, body: &Value) -> (StatusCode, Value) {
        let r = self
            .client
            .post(self.url("/api/v1/recognitions"))
            .json(body)
            .send()
            .await
            .expect("request is sent");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// GETs `path` and returns the body as text, such as `/metrics`.
    pub async fn text(&self, path: &str) -> String {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request is sent")
            .text()
            .await
            .expect("a text body")
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        let r = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request is sent");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Shuts down in order and returns the folder, for a restart.
    pub async fn stop(mut self) -> tempfile::TempDir {
        self.shutdown().await;
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("app task joins")
                .expect("app stops cleanly");
        }
    }
}

/// A read of `container` at `captured_at` (RFC 3339).
pub fn read(container: &str, captured_at: &str) -> Value {
    serde_json::json!({ "container": container, "captured_at": captured_at, "camera_id": "cam-1" })
}

/// The `gatelog` binary that cargo built next to this test.
pub fn gatelog_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("GATELOG_BIN") {
        return PathBuf::from(p);
    }
    // Test executables live in target/<profile>/deps, with the binary one
    // up; the tools of this crate (gatelog-reliability) live beside it.
    let exe = std::env::current_exe().expect("test executable path");
    let name = format!("gatelog{}", std::env::consts::EXE_SUFFIX);
    let beside = exe.parent().map(|d| d.join(&name)).expect("target folder");
    let bin = if beside.is_file() {
        beside
    } else {
        exe.parent()
            .and_then(Path::parent)
            .map(|d| d.join(&name))
            .expect("target folder")
    };
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`, which builds it",
        bin.display()
    );
    bin
}

/// A free port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The real `gatelog serve` process.
pub struct BinaryApp {
    pub base: String,
    pub child: tokio::process::Child,
}

impl BinaryApp {
    /// Starts `gatelog serve` on a free port with its store in `dir`.
    pub async fn start(dir: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with(dir, env, |_| {}).await
    }

    /// Starts `gatelog serve` as [`BinaryApp::start`] does, with the
    /// command adjusted by `tweak` before it is spawned: its log (stderr)
    /// sent to a file a test reads, a lower open-file limit… `RUST_LOG` in
    /// `env` overrides the default filter.
    pub async fn start_with(
        dir: &Path,
        env: &[(&str, &str)],
        tweak: impl FnOnce(&mut tokio::process::Command),
    ) -> Self {
        Self::start_under(dir, env, &[], tweak).await
    }

    /// Starts `gatelog serve` as [`BinaryApp::start_with`] does, run by
    /// the command `wrapper` (for example `strace -f -o FILE`), which is
    /// then the child: `wrapper… gatelog serve`. An empty wrapper runs
    /// the binary itself.
    pub async fn start_under(
        dir: &Path,
        env: &[(&str, &str)],
        wrapper: &[std::ffi::OsString],
        tweak: impl FnOnce(&mut tokio::process::Command),
    ) -> Self {
        let port = free_port();
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args).arg(gatelog_bin());
                cmd
            }
            None => tokio::process::Command::new(gatelog_bin()),
        };
        cmd.arg("serve")
            // The harness's own setting, not the server's: `gatelog` would
            // read it as configuration (`GATELOG_…`) and refuse it.
            .env_remove("GATELOG_BIN")
            .current_dir(dir)
            .env("GATELOG_STORE__PATH", dir.join("gatelog.db"))
            .env("GATELOG_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env(
                "RUST_LOG",
                if std::env::var_os("TEST_LOG").is_some() {
                    "info"
                } else {
                    "warn"
                },
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        tweak(&mut cmd);
        let child = cmd.spawn().expect("gatelog starts");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                if r.status().is_success() {
                    return Self { base, child };
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("gatelog serve did not become ready at {base}");
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("child runs");
        let ok = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .expect("kill runs");
        assert!(ok.success());
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("gatelog exits after SIGTERM")
            .expect("exit status")
    }
}

/// What SQLite's `PRAGMA integrity_check` says of the store file at `db`
/// (`"ok"` when whole), read through a read-only connection of its own.
pub async fn integrity_check(db: &Path) -> String {
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .expect("the store file opens read-only");
    sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .expect("the integrity check runs")
}

/// A valid container number (with its check digit) that differs for each
/// `n`, from a few real owner codes.
pub fn container(n: u64) -> String {
    use gatelog_core::{CheckDigit, OwnerCode, SerialNumber};
    const OWNERS: [&str; 5] = ["MSCU", "MAEU", "CMAU", "HLXU", "OOLU"];
    let owner = OWNERS[(n % OWNERS.len() as u64) as usize];
    let serial = format!("{:06}", (n / OWNERS.len() as u64) % 1_000_000);
    let digit = CheckDigit::compute(
        &OwnerCode::parse(owner).expect("valid owner"),
        &SerialNumber::parse(&serial).expect("valid serial"),
    );
    format!("{owner}{serial}{}", digit.value())
}

/// Whether an outside tool a test needs is installed (`probe` runs it,
/// for example with `--version`). Under `CI=true` a missing tool fails the
/// test. Elsewhere it prints a loud notice and the caller returns, so a
/// developer without the tool can still run the rest of the suite.
pub fn require_tool(program: &str, probe: &[&str], install_hint: &str) -> bool {
    let found = std::process::Command::new(program)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    missing(&format!("{program} is not installed ({install_hint})"))
}

/// Reports a missing prerequisite: fails under `CI=true`, otherwise prints
/// a loud notice and returns false.
pub fn missing(what: &str) -> bool {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true and {what}");
    }
    eprintln!("\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!");
    eprintln!("!!! NOT RUN: {what}");
    eprintln!("!!! (under CI=true this test fails instead)");
    eprintln!("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n");
    false
}

/// A fresh PostgreSQL database on 127.0.0.1:5432, as (name, url). Fails
/// under `CI=true` when PostgreSQL is unreachable; elsewhere says so loudly
/// and returns `None`. Drop it with [`drop_database`].
pub async fn fresh_database() -> Option<(String, String)> {
    use sqlx::Connection;
    const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";
    let mut admin = match sqlx::PgConnection::connect(ADMIN).await {
        Ok(c) => c,
        Err(e) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "PostgreSQL at 127.0.0.1:5432 is unreachable: {e}"
            );
            eprintln!("SKIPPED: PostgreSQL at 127.0.0.1:5432 is unreachable: {e}");
            return None;
        }
    };
    let name = format!("gatelog_t_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("the test database is created");
    Some((
        name.clone(),
        format!("postgres://postgres@127.0.0.1:5432/{name}"),
    ))
}

/// Drops a database made by [`fresh_database`].
pub async fn drop_database(name: &str) {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .expect("PostgreSQL answers");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("the test database is dropped");
}
