//! The server under test: `gatelog serve` as a child process.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use prometheus::core::Collector;
use rustix::process::{Pid, Signal};

/// Where the `gatelog` binary is: as given, or beside this one.
pub fn gatelog_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("this binary has no folder")?
            .join("gatelog"),
    };
    if !path.is_file() {
        bail!(
            "no gatelog binary at {}; build it first (cargo build --release --bin gatelog) or pass --gatelog PATH",
            path.display()
        );
    }
    Ok(path)
}

/// The folder a bench works in: the one given (created if missing), or a
/// new temporary folder, removed when this value is dropped.
pub struct WorkDir {
    path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

impl WorkDir {
    pub fn new(given: Option<&Path>, prefix: &str) -> anyhow::Result<Self> {
        match given {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                Ok(Self {
                    path: d.to_path_buf(),
                    _tmp: None,
                })
            }
            None => {
                let tmp = tempfile::Builder::new().prefix(prefix).tempdir()?;
                Ok(Self {
                    path: tmp.path().to_path_buf(),
                    _tmp: Some(tmp),
                })
            }
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The names of the server's metrics the benchmarks read, taken from the
/// metrics crate, which alone declares them.
pub struct MetricNames {
    pub commit_count: String,
    pub commit_sum: String,
    pub ws_clients: String,
}

impl MetricNames {
    pub fn new() -> Self {
        let m = gatelog_metrics::Metrics::new();
        let commit = name_of(&m.store_commit_seconds);
        Self {
            // A histogram's count and sum are exposed with these suffixes.
            commit_count: format!("{commit}_count"),
            commit_sum: format!("{commit}_sum"),
            ws_clients: name_of(&m.ws_clients),
        }
    }
}

fn name_of(metric: &impl Collector) -> String {
    metric.desc()[0].fq_name.clone()
}

/// Options of the server under test.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// HTTP workers (`server.workers`); `None` leaves actix-web's default,
    /// one per CPU.
    pub workers: Option<usize>,
    /// Further settings as environment variables, such as `GATELOG_CAMERAS`.
    pub env: Vec<(&'static str, String)>,
}

/// A `gatelog serve` child process on a free loopback port.
pub struct Server {
    child: tokio::process::Child,
    base: String,
    names: MetricNames,
}

impl Server {
    pub async fn start(gatelog: &Path, db: &Path, options: &ServerOptions) -> anyhow::Result<Self> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let mut cmd = tokio::process::Command::new(gatelog);
        cmd.arg("serve")
            .env("GATELOG_STORE__PATH", db)
            .env("GATELOG_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            // The benchmarks measure the feed with thousands of clients,
            // not the cap that protects a real server from them.
            .env("GATELOG_LIMITS__WS_CONNECTIONS_PER_KEY", "1000000")
            .env("GATELOG_LIMITS__WS_CONNECTIONS_TOTAL", "1000000")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        cmd.envs(options.env.iter().map(|(k, v)| (k, v)));
        if let Some(w) = options.workers {
            cmd.env("GATELOG_SERVER__WORKERS", w.to_string());
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {} serve", gatelog.display()))?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(Self {
                    child,
                    base,
                    names: MetricNames::new(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("gatelog serve did not become ready")
    }

    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// `host:port` of the server.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn names(&self) -> &MetricNames {
        &self.names
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    }

    pub fn rss_mib(&self) -> f64 {
        self.rss_kib() / 1024.0
    }

    /// CPU time the server has used so far (user and system).
    pub fn cpu(&self) -> Duration {
        cpu_time(self.pid()).unwrap_or_default()
    }

    /// The value of the unlabelled sample `name` in `/metrics`.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await?
            .text()
            .await?;
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("metric {name} not found"))
    }

    /// Stops the server as an operator would (SIGTERM) and waits for it.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id().and_then(|p| Pid::from_raw(p as i32)) {
            let _ = rustix::process::kill_process(pid, Signal::TERM);
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// CPU time (user and system) of process `pid`, from `/proc/PID/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; the fields after it are plain.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_sec = rustix::param::clock_ticks_per_second();
    Some(Duration::from_secs_f64(ticks as f64 / per_sec as f64))
}

/// Raises this process's soft open-file limit to the hard limit and
/// returns the limit in force: every client socket is a descriptor.
pub fn raise_open_files() -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let hard = getrlimit(Resource::Nofile).maximum;
    // Some systems refuse an unlimited hard limit as the soft one; the old
    // limit then stands, and is what is reported.
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: hard,
            maximum: hard,
        },
    );
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}
