//! `gatelog-bench ingest`: how fast reads become durable acknowledgements.
//!
//! Every figure and ratio comes from one run on one disk, so they can be
//! compared with each other:
//! - (a) raw SQLite in WAL + `synchronous=FULL` through sqlx, on a file of
//!   its own (never the store), one row per transaction and 1,000 rows per
//!   transaction: the ceiling the server's group commit is measured
//!   against;
//! - (b) durable acks/s and ack latency at each client count, from a load
//!   generator in this process (one keep-alive reqwest client per
//!   simulated camera) or from wrk, or both, with the server's own CPU
//!   time and the generator's beside them, since on a small machine the
//!   two compete for the same cores;
//! - (c) fsync and fdatasync calls per ack, counted with strace during a
//!   second phase at the highest client count.
//!
//! Options expose what moves the figures: the phase order (`--clients`
//! is measured in the order given), the size of the store before the run
//! (`--prefill`), the server's HTTP workers (`--workers`) and the load
//! generator (`--load`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use rustix::process::{Pid, Signal};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, QueryBuilder, Sqlite};

use crate::latency::{ms, Latencies};
use crate::reads;
use crate::server::{cpu_time, Server, ServerOptions};

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Folder for the benchmark's files (on the disk to measure). Default: a
    /// new folder under the system's temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Client counts to measure, in this order.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub clients: Vec<usize>,
    /// Which load generator posts the reads.
    #[arg(long, value_enum, default_value_t = Load::InProcess)]
    pub load: Load,
    /// wrk's threads, when wrk posts.
    #[arg(long, default_value_t = 2)]
    pub wrk_threads: usize,
    /// The server's HTTP workers; default: actix-web's, one per CPU.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Passages put in the store before the server starts, to measure
    /// ingest into a store that already holds data.
    #[arg(long, default_value_t = 0)]
    pub prefill: usize,
    /// Skip the strace phase (c).
    #[arg(long)]
    pub no_strace: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, ValueEnum)]
pub enum Load {
    /// Keep-alive reqwest clients in this process.
    InProcess,
    /// wrk (Debian package `wrk`), one distinct read per request.
    Wrk,
    /// Both, one after the other at each client count.
    Both,
}

/// Reads each wrk thread may post in one phase; ranges never overlap, so
/// every read of a run is distinct.
const WRK_STRIDE: u64 = 500_000;

/// What one phase of load measured.
struct Phase {
    acks: u64,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
    errors: u64,
    /// CPU time the load generator used during the phase.
    generator_cpu: Duration,
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
            reads::container(i),
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

/// `clients` keep-alive clients in this process post distinct reads for
/// `phase`.
async fn in_process(
    base: &str,
    clients: usize,
    phase: Duration,
    counter: Arc<AtomicU64>,
) -> anyhow::Result<Phase> {
    let cpu_before = cpu_time(std::process::id()).unwrap_or_default();
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
            let mut lat = Latencies::new();
            let mut errors = 0u64;
            while start.elapsed() < phase {
                let body = reads::body(counter.fetch_add(1, Ordering::Relaxed));
                let t = Instant::now();
                match client.post(&url).json(&body).send().await {
                    Ok(r) if r.status().as_u16() == 201 || r.status().as_u16() == 200 => {
                        let _ = r.bytes().await;
                        lat.record(t.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut latencies = Latencies::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await?;
        latencies.merge(&l);
        errors += e;
    }
    let elapsed = start.elapsed();
    Ok(Phase {
        acks: latencies.count(),
        elapsed,
        p50: latencies.quantile(0.5),
        p99: latencies.quantile(0.99),
        errors,
        generator_cpu: cpu_time(std::process::id())
            .unwrap_or_default()
            .saturating_sub(cpu_before),
    })
}

/// wrk posts distinct reads with `clients` connections for `phase`. The
/// latencies are wrk's own percentiles.
async fn wrk(
    dir: &Path,
    base: &str,
    clients: usize,
    threads: usize,
    phase: Duration,
    counter: &AtomicU64,
) -> anyhow::Result<Phase> {
    let script = dir.join("gatelog-bench.lua");
    std::fs::write(&script, reads::WRK_SCRIPT)?;
    let threads = threads.clamp(1, clients.max(1));
    let first = counter.fetch_add(threads as u64 * WRK_STRIDE, Ordering::Relaxed);
    let child = tokio::process::Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{clients}"))
        .arg(format!("-d{}s", phase.as_secs().max(1)))
        .arg("--timeout=10s")
        .arg("-s")
        .arg(&script)
        .arg(format!("{base}/api/v1/recognitions"))
        .arg("--")
        .arg(first.to_string())
        .arg(WRK_STRIDE.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .context("cannot run wrk; install it (apt-get install wrk) or use --load in-process")?;
    // wrk's CPU time, sampled while it runs: /proc has it only until it
    // exits.
    let pid = child.id().unwrap_or(0);
    let sampler = tokio::spawn(async move {
        let mut last = Duration::ZERO;
        while let Some(t) = cpu_time(pid) {
            last = t;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        last
    });
    let out = child.wait_with_output().await?;
    let generator_cpu = sampler.await.unwrap_or_default();
    if !out.status.success() {
        bail!("wrk failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("gatelog-bench: "))
        .with_context(|| format!("wrk printed no summary:\n{text}"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("no {name} in wrk's summary {line:?}"))
    };
    let errors = field("errors")?;
    let requests = field("requests")?;
    Ok(Phase {
        acks: requests.saturating_sub(errors),
        elapsed: Duration::from_micros(field("duration_us")?),
        p50: Duration::from_micros(field("p50_us")?),
        p99: Duration::from_micros(field("p99_us")?),
        errors,
        generator_cpu,
    })
}

/// Counts fsync and fdatasync calls of `pid` (all threads) while `work`
/// runs, with strace. `None` when strace is not installed.
async fn count_fsyncs<F: std::future::Future<Output = anyhow::Result<Phase>>>(
    dir: &Path,
    pid: u32,
    work: F,
) -> anyhow::Result<(Option<u64>, Phase)> {
    let out = dir.join("strace.txt");
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
    // strace writes its summary when interrupted.
    if let Some(id) = strace.id().and_then(|p| Pid::from_raw(p as i32)) {
        let _ = rustix::process::kill_process(id, Signal::INT);
    }
    let _ = strace.wait().await;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
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

pub async fn run(gatelog: &Path, args: &IngestArgs) -> anyhow::Result<()> {
    let work = crate::server::WorkDir::new(args.dir.as_deref(), "gatelog-bench-")?;
    let dir = work.path().to_path_buf();
    let phase = Duration::from_secs(args.seconds);
    println!(
        "# gatelog-bench ingest ({}s phases, load {:?}, workers {}, prefill {}, files in {})\n",
        args.seconds,
        args.load,
        args.workers
            .map_or_else(|| "default".to_string(), |w| w.to_string()),
        args.prefill,
        dir.display()
    );

    let (single, batched) = raw_sqlite(&dir, args.seconds).await?;
    println!("| measure | value |\n|---|---|");
    println!("| (a) raw SQLite WAL+FULL, 1 row per transaction | {single:.0} rows/s |");
    println!("| (a) raw SQLite WAL+FULL, 1,000 rows per transaction | {batched:.0} rows/s |");

    let db = dir.join("gatelog.db");
    if args.prefill > 0 {
        let t = Instant::now();
        crate::search::generate_store(&db, args.prefill).await?;
        println!(
            "| store prefilled with | {} passages ({:.1} s) |",
            args.prefill,
            t.elapsed().as_secs_f64()
        );
    }
    let options = ServerOptions {
        workers: args.workers,
        ..ServerOptions::default()
    };
    let server = Server::start(gatelog, &db, &options).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = server.rss_mib();
    println!("| idle RSS after start | {idle_rss:.1} MiB |");

    println!(
        "\n| load | clients | acks/s | p50 | p99 | errors | commits per ack | mean commit | writer busy | server CPU | generator CPU |\n|---|---|---|---|---|---|---|---|---|---|---|"
    );
    let counter = Arc::new(AtomicU64::new(0));
    let loads: &[Load] = match args.load {
        Load::Both => &[Load::InProcess, Load::Wrk],
        Load::InProcess => &[Load::InProcess],
        Load::Wrk => &[Load::Wrk],
    };
    let mut last_rate = std::collections::HashMap::new();
    let names = server.names();
    for &c in &args.clients {
        for &load in loads {
            let commits_before = server.metric(&names.commit_count).await?;
            let commit_secs_before = server.metric(&names.commit_sum).await?;
            let cpu_before = server.cpu();
            let r = match load {
                Load::Wrk => wrk(&dir, server.base(), c, args.wrk_threads, phase, &counter).await?,
                _ => in_process(server.base(), c, phase, counter.clone()).await?,
            };
            let server_cpu = server.cpu().saturating_sub(cpu_before);
            let commits = server.metric(&names.commit_count).await? - commits_before;
            let commit_secs = server.metric(&names.commit_sum).await? - commit_secs_before;
            let secs = r.elapsed.as_secs_f64();
            let rate = r.acks as f64 / secs;
            last_rate.insert((load, c), rate);
            println!(
                "| {} | {c} | {rate:.0} | {} | {} | {} | {:.3} | {} | {:.0}% | {:.0}% | {:.0}% |",
                match load {
                    Load::Wrk => "wrk",
                    _ => "in-process",
                },
                ms(r.p50),
                ms(r.p99),
                r.errors,
                commits / r.acks.max(1) as f64,
                ms(Duration::from_secs_f64(commit_secs / commits.max(1.0))),
                100.0 * commit_secs / secs,
                100.0 * server_cpu.as_secs_f64() / secs,
                100.0 * r.generator_cpu.as_secs_f64() / secs,
            );
        }
    }
    println!(
        "\nCPU is a share of one core; the machine has {} cores.\n",
        available_cores()
    );

    let max_clients = args.clients.iter().copied().max().unwrap_or(64);
    if !args.no_strace {
        let (fsyncs, r) = count_fsyncs(
            &dir,
            server.pid(),
            in_process(server.base(), max_clients, phase, counter.clone()),
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
    }
    for &load in loads {
        if let Some(rate) = last_rate.get(&(load, max_clients)) {
            println!(
                "| ratio: acks/s at {max_clients} clients ({load:?}) ÷ raw 1-row-per-transaction rows/s | {:.2}× |",
                rate / single
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!("| idle RSS after the load | {:.1} MiB |", server.rss_mib());
    server.stop().await;
    Ok(())
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
