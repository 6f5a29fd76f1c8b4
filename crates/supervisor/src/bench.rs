//! `gatelog bench`: the measurements recorded in BENCHMARKS.md.
//!
//! Every figure and every ratio comes from one run on one disk, so they can
//! be compared with each other. The server under test is this same binary,
//! started as a child process (`gatelog serve`) and driven over real HTTP
//! with keep-alive connections, one per simulated client.
//!
//! - `bench ingest`: (a) raw SQLite rows/s in WAL+FULL mode, one row per
//!   transaction and 1,000 rows per transaction; (b) durable acks/s and
//!   p50/p99 ack latency at 1, 16 and 64 clients; (c) fsyncs per ack, from
//!   strace, and group commits per ack, from the server's own metrics;
//!   idle RSS.
//! - `bench search`: p50/p99 latency of the SPEC's filters over a generated
//!   store (1,000,000 passages by default).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{TimeZone, Utc};
use clap::Args;
use gatelog_core::passage::SyncState;
use gatelog_core::{CheckDigit, DedupConfig, Flags, OwnerCode, Passage, SerialNumber};
use gatelog_local_store::{Store, StoreConfig};
use gatelog_metrics::Metrics;
use rand::Rng;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Folder for the benchmark's files (on the disk to measure). Default: a
    /// new folder under the system's temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Client counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub clients: Vec<usize>,
}

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Passages to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub passages: usize,
    /// Queries per filter.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
}

/// Owner codes of the generated data.
const OWNERS: [&str; 20] = [
    "MSCU", "MAEU", "CMAU", "HLXU", "OOLU", "EGHU", "TGHU", "CSQU", "SEGU", "TCLU", "TRHU", "FCIU",
    "GESU", "BMOU", "CAIU", "DFSU", "HASU", "ONEU", "YMLU", "ZIMU",
];
const CAMERAS: usize = 8;

fn work_dir(dir: &Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<tempfile_dir::TempDir>)> {
    match dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
            Ok((d.clone(), None))
        }
        None => {
            let t = tempfile_dir::TempDir::new()?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

/// A temporary folder removed on drop, without another dependency.
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    pub struct TempDir(PathBuf);

    impl TempDir {
        pub fn new() -> std::io::Result<Self> {
            let p = std::env::temp_dir().join(format!("gatelog-bench-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&p)?;
            Ok(Self(p))
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// GETs `url` and reads its JSON body, timing both.
async fn timed_get(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<(Duration, serde_json::Value)> {
    let t = Instant::now();
    let body = client
        .get(url)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok((t.elapsed(), body))
}

/// The `q` quantile of sorted latencies (nearest rank).
pub(crate) fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A latency in milliseconds, for the tables.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// (a) Raw SQLite in WAL + synchronous=FULL: rows/s at 1 and 1,000 rows per
/// transaction.
async fn raw_sqlite(dir: &Path, seconds: u64) -> anyhow::Result<(f64, f64)> {
    let path = dir.join("raw.db");
    let mut conn = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .connect()
        .await?;
    sqlx::query("CREATE TABLE IF NOT EXISTS t (id TEXT PRIMARY KEY, container TEXT NOT NULL, captured_at INTEGER NOT NULL, raw TEXT NOT NULL)")
        .execute(&mut conn)
        .await?;
    let row = |i: u64| {
        (
            uuid::Uuid::now_v7().to_string(),
            format!("MSCU{:06}", i % 1_000_000),
            i as i64,
            format!("{{\"n\":{i}}}"),
        )
    };

    let phase = Duration::from_secs(seconds);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < phase {
        let (id, c, t, raw) = row(n);
        let mut tx = conn.begin().await?;
        sqlx::query("INSERT INTO t VALUES (?, ?, ?, ?)")
            .bind(id)
            .bind(c)
            .bind(t)
            .bind(raw)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        n += 1;
    }
    let single = n as f64 / start.elapsed().as_secs_f64();

    let start = Instant::now();
    let mut m = 0u64;
    while start.elapsed() < phase {
        let mut tx = conn.begin().await?;
        for chunk in 0..2 {
            let rows: Vec<_> = (0..500).map(|k| row(m + chunk * 500 + k)).collect();
            let mut q = QueryBuilder::<Sqlite>::new("INSERT INTO t ");
            q.push_values(rows, |mut b, (id, c, t, raw)| {
                b.push_bind(id).push_bind(c).push_bind(t).push_bind(raw);
            });
            q.build().execute(&mut *tx).await?;
        }
        tx.commit().await?;
        m += 1000;
    }
    let batched = m as f64 / start.elapsed().as_secs_f64();
    conn.close().await?;
    Ok((single, batched))
}

/// A `gatelog serve` child process on a free loopback port.
pub(crate) struct Server {
    child: tokio::process::Child,
    base: String,
}

impl Server {
    pub(crate) async fn start(db: &Path) -> anyhow::Result<Self> {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?.port()
        };
        let exe = std::env::current_exe()?;
        let child = tokio::process::Command::new(exe)
            .arg("serve")
            .env("GATELOG_STORE__PATH", db)
            .env("GATELOG_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            // The benchmarks measure the feed with thousands of clients,
            // not the cap that protects a real server from them.
            .env("GATELOG_LIMITS__WS_CONNECTIONS_PER_KEY", "1000000")
            .env("GATELOG_LIMITS__WS_CONNECTIONS_TOTAL", "1000000")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start gatelog serve")?;
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if client
                .get(format!("{base}/readyz"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return Ok(Self { child, base });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("gatelog serve did not become ready")
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// `host:port` of the server.
    pub(crate) fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub(crate) fn rss_kib(&self) -> f64 {
        self.rss_mib() * 1024.0
    }

    fn rss_mib(&self) -> f64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }

    pub(crate) async fn metric(&self, name: &str) -> anyhow::Result<f64> {
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

    pub(crate) async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
    }
}

/// A distinct, valid container number for request `n`.
fn container(n: u64) -> String {
    let owner = OWNERS[(n % OWNERS.len() as u64) as usize];
    let serial = format!("{:06}", (n / OWNERS.len() as u64) % 1_000_000);
    let d = CheckDigit::compute(
        &OwnerCode::parse(owner).expect("valid"),
        &SerialNumber::parse(&serial).expect("valid"),
    );
    format!("{owner}{serial}{d}")
}

struct LoadResult {
    acks: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    errors: u64,
}

/// `clients` keep-alive clients post distinct reads for `phase`.
async fn load(
    base: &str,
    clients: usize,
    phase: Duration,
    counter: Arc<AtomicU64>,
) -> anyhow::Result<LoadResult> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let url = format!("{base}/api/v1/recognitions");
        let counter = counter.clone();
        tasks.push(tokio::spawn(async move {
            // One client each: its own keep-alive connection.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .expect("client builds");
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while start.elapsed() < phase {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let body = serde_json::json!({
                    "container": container(n),
                    "captured_at": Utc::now().to_rfc3339(),
                    "camera_id": "bench",
                });
                let t = Instant::now();
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 || r.status().as_u16() == 200 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.extend(l);
        errors += e;
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Ok(LoadResult {
        acks: latencies.len() as u64,
        elapsed,
        latencies,
        errors,
    })
}

/// Counts fsync and fdatasync calls of `pid` (all threads) while `work`
/// runs, with strace. `None` when strace is not installed.
async fn count_fsyncs<F: std::future::Future<Output = anyhow::Result<LoadResult>>>(
    pid: u32,
    work: F,
) -> anyhow::Result<(Option<u64>, LoadResult)> {
    let out = std::env::temp_dir().join(format!("gatelog-strace-{}.txt", uuid::Uuid::new_v4()));
    let strace = tokio::process::Command::new("strace")
        .args(["-f", "-c", "-e", "trace=fsync,fdatasync", "-o"])
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut strace) = strace else {
        return Ok((None, work.await?));
    };
    // Give strace time to attach to every thread.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let result = work.await?;
    if let Some(id) = strace.id() {
        let _ = std::process::Command::new("kill")
            .arg("-INT")
            .arg(id.to_string())
            .status();
    }
    let _ = strace.wait().await;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let _ = std::fs::remove_file(&out);
    let calls = text
        .lines()
        .filter(|l| l.trim_end().ends_with("fsync") || l.trim_end().ends_with("fdatasync"))
        .filter_map(|l| {
            l.split_whitespace()
                .nth(3)
                .and_then(|c| c.parse::<u64>().ok())
        })
        .sum();
    Ok((Some(calls), result))
}

pub async fn ingest(args: &IngestArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(&args.dir)?;
    let phase = Duration::from_secs(args.seconds);
    println!(
        "# gatelog bench ingest ({}s phases, files in {})\n",
        args.seconds,
        dir.display()
    );

    let (single, batched) = raw_sqlite(&dir, args.seconds).await?;
    println!("| measure | value |\n|---|---|");
    println!("| (a) raw SQLite WAL+FULL, 1 row per transaction | {single:.0} rows/s |");
    println!("| (a) raw SQLite WAL+FULL, 1,000 rows per transaction | {batched:.0} rows/s |");

    let server = Server::start(&dir.join("gatelog.db")).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.rss_mib();
    let counter = Arc::new(AtomicU64::new(0));
    let mut acks_at_max = 0.0;
    for &c in &args.clients {
        let commits_before = server.metric("gatelog_store_commit_seconds_count").await?;
        let commit_secs_before = server.metric("gatelog_store_commit_seconds_sum").await?;
        let r = load(&server.base, c, phase, counter.clone()).await?;
        let commits = server.metric("gatelog_store_commit_seconds_count").await? - commits_before;
        let commit_secs =
            server.metric("gatelog_store_commit_seconds_sum").await? - commit_secs_before;
        let rate = r.acks as f64 / r.elapsed.as_secs_f64();
        acks_at_max = rate;
        println!(
            "| (b) {c} clients: durable acks/s | {rate:.0} acks/s (p50 {}, p99 {}, {} errors, {:.3} commits per ack, mean commit {}, writer busy {:.0}%) |",
            ms(percentile(&r.latencies, 0.5)),
            ms(percentile(&r.latencies, 0.99)),
            r.errors,
            commits / r.acks.max(1) as f64,
            ms(Duration::from_secs_f64(commit_secs / commits.max(1.0))),
            100.0 * commit_secs / r.elapsed.as_secs_f64()
        );
    }
    let max_clients = args.clients.iter().copied().max().unwrap_or(64);
    let (fsyncs, r) = count_fsyncs(
        server.pid(),
        load(&server.base, max_clients, phase, counter.clone()),
    )
    .await?;
    match fsyncs {
        Some(f) => println!(
            "| (c) fsyncs per ack at {max_clients} clients (under strace, {} acks) | {:.3} |",
            r.acks,
            f as f64 / r.acks.max(1) as f64
        ),
        None => println!("| (c) fsyncs per ack | strace not installed |"),
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "| ratio: acks/s at {max_clients} clients ÷ raw 1-row-per-transaction rows/s | {:.1}× |",
        acks_at_max / single
    );
    println!("| idle RSS after start | {idle_rss:.1} MiB |");
    println!("| idle RSS after the load | {:.1} MiB |", server.rss_mib());
    server.stop().await;
    Ok(())
}

/// Generated passages: `n` spread over a year, 20 owners, 8 cameras.
fn generate(n: usize, offset: usize) -> Vec<Passage> {
    let mut rng = rand::rng();
    let year = 365 * 86_400i64;
    let start = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .expect("valid time");
    (0..n)
        .map(|i| {
            let owner = OWNERS[rng.random_range(0..OWNERS.len())];
            let serial = format!("{:06}", rng.random_range(0..1_000_000));
            let d = CheckDigit::compute(
                &OwnerCode::parse(owner).expect("valid"),
                &SerialNumber::parse(&serial).expect("valid"),
            );
            let t = start
                + chrono::Duration::seconds(
                    (offset + i) as i64 * year / 1_000_000 + rng.random_range(0..30),
                );
            Passage {
                id: uuid::Uuid::now_v7(),
                site_id: "site-1".into(),
                container: format!("{owner}{serial}{d}"),
                container_owner: owner.into(),
                container_number: serial,
                check_digit: Some(d.value()),
                check_digit_ok: true,
                flags: Flags::empty(),
                captured_at: t,
                last_seen_at: t + chrono::Duration::seconds(rng.random_range(5..60)),
                seen_count: rng.random_range(3..15),
                camera_id: Some(format!("gate-cam-{}", rng.random_range(1..=CAMERAS))),
                source_video: None,
                cropped_image_ref: None,
                confidence: Some(0.9),
                created_at: t,
                updated_at: t,
                version: 1,
                sync_state: if rng.random_bool(0.99) {
                    SyncState::Synced
                } else {
                    SyncState::Pending
                },
                corrections: Vec::new(),
                direction: Default::default(),
                lane: None,
                truck_plate: None,
                iso_type: None,
                dwell_secs: None,
            }
        })
        .collect()
}

/// Makes one random query string for a filter.
type QueryMaker = Box<dyn Fn(&mut rand::rngs::ThreadRng) -> String>;

pub async fn search(args: &SearchArgs) -> anyhow::Result<()> {
    let (dir, _guard) = work_dir(&args.dir)?;
    let db = dir.join("search.db");
    println!(
        "# gatelog bench search ({} passages, {} queries per filter)\n",
        args.passages, args.queries
    );

    let t = Instant::now();
    {
        let config = StoreConfig {
            path: db.clone(),
            ..StoreConfig::default()
        };
        let opened =
            Store::open(&config, &DedupConfig::default(), "site-1", Metrics::new()).await?;
        let token = CancellationToken::new();
        let writer = opened.writer;
        let stop = token.clone();
        let task = tokio::spawn(async move { writer.run(stop).await });
        let mut done = 0;
        while done < args.passages {
            let n = (args.passages - done).min(20_000);
            opened.store.writer().import(generate(n, done)).await?;
            done += n;
        }
        token.cancel();
        task.await??;
        opened.store.close().await;
        // Planner statistics, as a long-running store has them.
        let mut conn = SqliteConnectOptions::new().filename(&db).connect().await?;
        sqlx::query("ANALYZE").execute(&mut conn).await?;
        conn.close().await?;
    }
    println!("generated in {:.1} s\n", t.elapsed().as_secs_f64());

    let server = Server::start(&db).await?;
    let client = reqwest::Client::new();
    let mut rng = rand::rng();
    let base = format!("{}/api/v1/logs", server.base);
    println!("| filter | p50 | p99 | mean rows |\n|---|---|---|---|");
    let filters: Vec<(&str, QueryMaker)> = vec![
        (
            "owner",
            Box::new(|r| format!("owner={}", OWNERS[r.random_range(0..OWNERS.len())])),
        ),
        (
            "prefix (owner + 2 digits)",
            Box::new(|r| {
                format!(
                    "container={}{:02}",
                    OWNERS[r.random_range(0..OWNERS.len())],
                    r.random_range(0..100)
                )
            }),
        ),
        (
            "substring (4 digits)",
            Box::new(|r| format!("q={:04}", r.random_range(0..10_000))),
        ),
        (
            "time range (1 day) + camera",
            Box::new(|r| {
                let from = Utc
                    .timestamp_opt(1_700_000_000 + r.random_range(0..364) * 86_400, 0)
                    .single()
                    .expect("valid");
                let to = from + chrono::Duration::days(1);
                format!(
                    "from={}&to={}&camera=gate-cam-{}",
                    from.format("%Y-%m-%dT%H:%M:%SZ"),
                    to.format("%Y-%m-%dT%H:%M:%SZ"),
                    r.random_range(1..=CAMERAS)
                )
            }),
        ),
    ];
    for (name, make) in &filters {
        let mut lat = Vec::new();
        let mut rows = 0usize;
        for _ in 0..args.queries {
            let url = format!("{base}?{}", make(&mut rng));
            let (took, body) = timed_get(&client, &url).await?;
            lat.push(took);
            rows += body["logs"].as_array().map_or(0, Vec::len);
        }
        lat.sort_unstable();
        println!(
            "| {name} | {} | {} | {:.0} |",
            ms(percentile(&lat, 0.5)),
            ms(percentile(&lat, 0.99)),
            rows as f64 / args.queries as f64
        );
    }
    // Keyset paging: walk 100 pages of 50, newest first.
    let mut lat = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{base}?limit=50&cursor={c}"),
            None => format!("{base}?limit=50"),
        };
        let (took, body) = timed_get(&client, &url).await?;
        lat.push(took);
        cursor = body["next_cursor"].as_str().map(str::to_string);
    }
    let page_100 = *lat.last().unwrap_or(&Duration::ZERO);
    lat.sort_unstable();
    println!(
        "| keyset pages 1-100 (50 rows each) | {} | {} | 50 |",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99))
    );
    println!("\npage 100 alone: {}", ms(page_100));
    println!("server RSS after the queries: {:.1} MiB", server.rss_mib());
    server.stop().await;
    Ok(())
}
