//! `gatelog-bench sites`: many sites syncing into one central database at
//! once, against a raw upsert of the same volume by as many clients.
//!
//! The bench applies the central schema (`gatelog migrate --central`) to a
//! database it is given (it must be empty, and the user a superuser, since
//! the bench locks and truncates the table), and then:
//!
//! 1. fills one store per site (`site-00`, `site-01`, …) with `--passages`
//!    generated passages through the store's own writer, every one pending
//!    sync (timed apart, not measured);
//! 2. measures the baseline: one tokio task per site, each on its own
//!    connection, upserts as many rows (sites `raw-00`, …, fresh ids) in
//!    batches of `sync.batch_size`'s default, with the statement the direct
//!    PostgreSQL target sends; its rate is all rows over the wall time.
//!    The table is then truncated, so the sites start from empty as the
//!    baseline did;
//! 3. measures the sites: one `gatelog serve` per store (one HTTP worker,
//!    the default sync settings), syncing over the direct PostgreSQL
//!    target. While they start, the bench holds an EXCLUSIVE lock on
//!    `container_logs`, so each site's first batch waits at the table. The
//!    clock starts when every site's sync connection is seen waiting there
//!    and the lock is released: every site then starts at the same
//!    instant, and no server's start-up is timed. Every 200 ms the bench
//!    reads each site's sync status; a site that reports an empty backlog
//!    has its central rows counted, and is drained once that count
//!    reaches its local count. The rate is all rows over the time the last
//!    site took. (Counting every site's central rows at each poll costs
//!    PostgreSQL a scan of the table, which the baseline does not pay.)
//!    Retention is pushed out of the way: it would delete the generated
//!    passages, two years old, as they sync;
//! 4. checks, after the servers stopped, and fails unless all hold: each
//!    site's central ids are its local ids, with the local versions (no
//!    lost update); no id is in the table twice; no local passage is a dead
//!    letter (a conflict the target refused) or left unconfirmed.
//!
//! The machine's CPU use during each phase is printed beside the rates: on
//! a small machine the sites' own processes (HTTP server, SQLite reads and
//! writes, binding) share the cores with PostgreSQL, where the baseline's
//! one client process only binds.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures_util::future::{join_all, try_join_all};
use prometheus::core::Collector;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::search::{generate, generate_store_of, Origin, SyncMix};
use crate::server::{Server, ServerOptions};

#[derive(Debug, Clone, Args)]
pub struct SitesArgs {
    /// An empty PostgreSQL database, reached as a superuser.
    #[arg(long, env = "DATABASE_URL")]
    pub url: String,
    /// Site servers syncing at once; also the baseline's clients.
    #[arg(long, default_value_t = 20)]
    pub sites: usize,
    /// Passages in each site's store; also each baseline client's rows.
    #[arg(long, default_value_t = 25_000)]
    pub passages: usize,
    /// Folder for the sites' stores. Default: a new temporary folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Rows per upsert in the baseline: `sync.batch_size`'s default, which the
/// sites run with.
const BATCH_SIZE: usize = 500;
/// How often the central counts are read while the sites drain.
const POLL: Duration = Duration::from_millis(200);
/// How long the central table may go without a new row before the bench
/// gives up on the sites.
const STALL: Duration = Duration::from_secs(60);
/// How long the sites' first batches may take to reach the locked table.
const GATHER: Duration = Duration::from_secs(60);

pub async fn run(gatelog: &Path, args: &SitesArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.sites > 0, "--sites must be at least 1");
    anyhow::ensure!(args.passages > 0, "--passages must be at least 1");
    println!(
        "# gatelog-bench sites ({} sites, {} passages each, batches of {BATCH_SIZE})\n",
        args.sites, args.passages
    );
    let work = crate::server::WorkDir::new(args.dir.as_deref(), "gatelog-bench-")?;
    let dir = work.path().to_path_buf();

    let (mut conn, existing) = crate::central::migrate(gatelog, &args.url).await?;
    anyhow::ensure!(
        existing == 0,
        "the database must be empty ({existing} rows)"
    );

    let sites: Vec<Site> = (0..args.sites)
        .map(|i| {
            let id = format!("site-{i:02}");
            Site {
                db: dir.join(format!("{id}.db")),
                id,
            }
        })
        .collect();
    let t = Instant::now();
    try_join_all(sites.iter().map(|s| {
        generate_store_of(
            &s.db,
            args.passages,
            Origin {
                site_id: &s.id,
                sync: SyncMix::AllPending,
            },
        )
    }))
    .await?;
    let mut local_counts = Vec::with_capacity(sites.len());
    for s in &sites {
        local_counts.push(read_local(&s.db).await?.len() as i64);
    }
    println!(
        "generated {} stores ({} passages) in {:.1} s\n",
        sites.len(),
        local_counts.iter().sum::<i64>(),
        t.elapsed().as_secs_f64()
    );

    let raw = raw_baseline(&mut conn, args).await?;
    let synced = site_phase(gatelog, &mut conn, args, &sites, &local_counts).await?;
    let checks = check(&mut conn, &sites).await?;
    conn.close().await?;

    let ratio = synced.rate() / raw.rate();
    let (fastest, slowest) = synced.drain_range();
    println!("| measure | value |\n|---|---|");
    println!(
        "| baseline: {} clients, raw multi-row upsert | {:.0} rows/s ({} rows in {:.2} s) |",
        args.sites,
        raw.rate(),
        raw.rows,
        raw.wall.as_secs_f64()
    );
    println!(
        "| sites: {} `gatelog serve` syncing at once | {:.0} rows/s ({} rows in {:.2} s) |",
        args.sites,
        synced.rate(),
        synced.rows,
        synced.wall.as_secs_f64()
    );
    println!(
        "| ratio sites / baseline (target ≥ 0.5) | {ratio:.2}{} |",
        if ratio >= 0.5 { "" } else { ", below target" }
    );
    println!(
        "| per-site drain time, min / max | {:.2} s / {:.2} s |",
        fastest.as_secs_f64(),
        slowest.as_secs_f64()
    );
    println!(
        "| machine CPU busy, baseline / sites (2 = two cores) | {:.2} / {:.2} |",
        raw.cores_busy, synced.cores_busy
    );
    println!(
        "| CPU time of the site servers, all together | {:.1} s |",
        synced.server_cpu.as_secs_f64()
    );
    println!(
        "| central counts of drained sites, their share of the wall time | {} counts, {:.0} % |",
        synced.polls,
        100.0 * synced.poll_time.as_secs_f64() / synced.wall.as_secs_f64()
    );
    println!(
        "| failed batches retried (all sites) | {} |",
        synced.retries
    );

    println!("\n| check | result |\n|---|---|");
    let failed: Vec<&str> = checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| c.name)
        .collect();
    for c in &checks {
        let verdict = if c.passed { "pass" } else { "FAIL" };
        println!("| {} | {verdict}: {} |", c.name, c.detail);
    }
    if !failed.is_empty() {
        bail!("{} check(s) failed: {}", failed.len(), failed.join("; "));
    }
    Ok(())
}

/// One site: its id and its store.
struct Site {
    id: String,
    db: PathBuf,
}

/// The figures of the baseline.
struct RawRun {
    rows: u64,
    wall: Duration,
    /// Cores the machine kept busy on average, whatever the process.
    cores_busy: f64,
}

impl RawRun {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.wall.as_secs_f64()
    }
}

/// The figures of the sites' phase.
struct SiteRun {
    rows: u64,
    wall: Duration,
    /// When the poll first saw each site's rows all in the table.
    drained: Vec<Duration>,
    cores_busy: f64,
    /// CPU time the servers used from their start to their stop.
    server_cpu: Duration,
    /// Central counts of sites that reported an empty backlog, and the
    /// time they took: load the baseline does not carry.
    polls: u64,
    poll_time: Duration,
    /// `gatelog_sync_retries_total`, summed over the servers.
    retries: u64,
}

impl SiteRun {
    fn rate(&self) -> f64 {
        self.rows as f64 / self.wall.as_secs_f64()
    }

    fn drain_range(&self) -> (Duration, Duration) {
        let min = self.drained.iter().min().copied().unwrap_or_default();
        let max = self.drained.iter().max().copied().unwrap_or_default();
        (min, max)
    }
}

/// The baseline: one task per site, each on its own connection, upserting
/// `args.passages` fresh rows in batches of [`BATCH_SIZE`], all at once.
/// The rows are generated and the connections opened before the clock
/// starts; the sites' servers too have connected before theirs does.
async fn raw_baseline(conn: &mut PgConnection, args: &SitesArgs) -> anyhow::Result<RawRun> {
    let mut clients = Vec::with_capacity(args.sites);
    for i in 0..args.sites {
        let site_id = format!("raw-{i:02}");
        let rows = generate(
            args.passages,
            0,
            Origin {
                site_id: &site_id,
                sync: SyncMix::AllPending,
            },
        );
        clients.push((PgConnection::connect(&args.url).await?, rows));
    }
    let cpu = CpuTicks::now();
    let t = Instant::now();
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|(mut client, rows)| {
            tokio::spawn(async move {
                for batch in rows.chunks(BATCH_SIZE) {
                    // The direct target's own statement, unnamed as it
                    // sends it, so neither side gains from a prepared one.
                    gatelog_sync::postgres::upsert_rows(&mut client, batch).await?;
                }
                anyhow::Ok(client)
            })
        })
        .collect();
    let mut done = Vec::with_capacity(tasks.len());
    for task in tasks {
        done.push(task.await??);
    }
    let wall = t.elapsed();
    let cores_busy = cpu.cores_busy_since();
    for client in done {
        client.close().await?;
    }
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM public.container_logs")
        .fetch_one(&mut *conn)
        .await?;
    let expected = (args.sites * args.passages) as i64;
    anyhow::ensure!(
        rows == expected,
        "the baseline left {rows} rows in the table, not {expected}"
    );
    sqlx::raw_sql("TRUNCATE public.container_logs")
        .execute(&mut *conn)
        .await?;
    println!(
        "baseline: {rows} rows in {:.2} s, table truncated\n",
        wall.as_secs_f64()
    );
    Ok(RawRun {
        rows: rows as u64,
        wall,
        cores_busy,
    })
}

/// Starts one server per site behind a locked table, releases them at
/// once, and times until every site's rows are all in the table.
async fn site_phase(
    gatelog: &Path,
    conn: &mut PgConnection,
    args: &SitesArgs,
    sites: &[Site],
    local_counts: &[i64],
) -> anyhow::Result<SiteRun> {
    let mut gate = PgConnection::connect(&args.url).await?;
    let mut lock = gate.begin().await?;
    sqlx::query("LOCK TABLE public.container_logs IN EXCLUSIVE MODE")
        .execute(&mut *lock)
        .await?;

    let options: Vec<ServerOptions> = sites
        .iter()
        .map(|s| ServerOptions {
            workers: Some(1),
            env: vec![
                ("GATELOG_SITE__ID", s.id.clone()),
                ("GATELOG_SYNC__TARGET", "postgres".to_string()),
                ("DATABASE_URL", args.url.clone()),
                // The first batch waits at the locked table until every
                // site has started; the default 10 s could run out on a
                // slow machine, and a timed-out batch would be retried
                // after a backoff, which the clock would then measure.
                ("GATELOG_SYNC__REQUEST_TIMEOUT_MS", "120000".to_string()),
                // The generated passages are from 2023: retention, which
                // deletes synced passages older than 30 days, would delete
                // them as they sync, and the local check would then find
                // central rows the site no longer has.
                ("GATELOG_RETENTION__LOCAL_DAYS", "36500".to_string()),
                // Sync's warnings stay; the start-up notices every server
                // gives (no keys on loopback, the WebSocket cap the bench
                // raised) would only bury them.
                (
                    "RUST_LOG",
                    "warn,gatelog_supervisor::serve=error".to_string(),
                ),
            ],
        })
        .collect();
    let t = Instant::now();
    let servers = try_join_all(
        sites
            .iter()
            .zip(&options)
            .map(|(s, o)| Server::start(gatelog, &s.db, o)),
    )
    .await?;
    // Every site's first batch is ready when its sync connection waits for
    // the lock; only then are all sites released together.
    let waiting_since = Instant::now();
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = 'gatelog-sync' \
               AND wait_event_type = 'Lock'",
        )
        .fetch_one(&mut *conn)
        .await?;
        if waiting == sites.len() as i64 {
            break;
        }
        if waiting_since.elapsed() > GATHER {
            bail!(
                "only {waiting} of {} sites' sync reached the central table within {} s",
                sites.len(),
                GATHER.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "sites: {} servers started, each with its first batch waiting at the table, in {:.1} s",
        servers.len(),
        t.elapsed().as_secs_f64()
    );

    let mut drained: Vec<Option<Duration>> = vec![None; sites.len()];
    let client = reqwest::Client::new();
    let cpu = CpuTicks::now();
    let cpu_before: Vec<Duration> = servers.iter().map(Server::cpu).collect();
    let t0 = Instant::now();
    lock.commit().await?;
    gate.close().await?;

    // Counting a site's central rows scans them, so the bench counts only
    // the sites that say their backlog is empty (their sync status, read
    // from memory), and records a site's drain time when its count has
    // reached its local count as well. A `GROUP BY site_id` count of the
    // whole table every 200 ms kept one PostgreSQL backend busy for more
    // than half the phase at 500,000 rows, load the baseline never carried.
    let mut polls = 0u64;
    let mut poll_time = Duration::ZERO;
    let mut last_pending = i64::MAX;
    let mut last_progress = Instant::now();
    let wall = loop {
        tokio::time::sleep(POLL).await;
        let undrained: Vec<usize> = (0..sites.len()).filter(|&i| drained[i].is_none()).collect();
        let statuses =
            try_join_all(undrained.iter().map(|&i| sync_status(&client, &servers[i]))).await?;
        let mut pending = 0;
        for (&i, status) in undrained.iter().zip(&statuses) {
            let site_pending = status["pending"]
                .as_i64()
                .with_context(|| format!("{}'s sync status has no pending", sites[i].id))?;
            pending += site_pending;
            if site_pending != 0 {
                continue;
            }
            let started = Instant::now();
            let count: i64 =
                sqlx::query_scalar("SELECT count(*) FROM public.container_logs WHERE site_id = $1")
                    .bind(&sites[i].id)
                    .fetch_one(&mut *conn)
                    .await?;
            poll_time += started.elapsed();
            polls += 1;
            if count >= local_counts[i] {
                drained[i] = Some(t0.elapsed());
            }
        }
        if drained.iter().all(Option::is_some) {
            break t0.elapsed();
        }
        if pending < last_pending {
            last_pending = pending;
            last_progress = Instant::now();
        } else if last_progress.elapsed() > STALL {
            let missing: Vec<&str> = undrained.iter().map(|&i| sites[i].id.as_str()).collect();
            bail!(
                "the sites' backlog has not shrunk for {} s ({pending} pending); not done: {}",
                STALL.as_secs(),
                missing.join(", ")
            );
        }
    };
    let cores_busy = cpu.cores_busy_since();

    // A site's rows are all central before its last confirmation is
    // recorded locally; wait for every site to say so before stopping it,
    // so the local check sees what the site knows.
    let mut settled = Vec::with_capacity(servers.len());
    for (server, site) in servers.iter().zip(sites) {
        settled.push(settle(&client, server, &site.id).await?);
    }
    let retries_name = gatelog_metrics::Metrics::new().sync_retries_total.desc()[0]
        .fq_name
        .clone();
    let mut retries = 0u64;
    for server in &servers {
        retries += server.metric(&retries_name).await? as u64;
    }
    let server_cpu = servers
        .iter()
        .zip(&cpu_before)
        .map(|(s, before)| s.cpu().saturating_sub(*before))
        .sum();
    join_all(servers.into_iter().map(Server::stop)).await;
    for (site, status) in sites.iter().zip(&settled) {
        if let Some(e) = status["last_error"].as_str() {
            println!("  {}: last sync error: {e}", site.id);
        }
    }
    Ok(SiteRun {
        rows: local_counts.iter().sum::<i64>() as u64,
        wall,
        drained: drained.into_iter().flatten().collect(),
        cores_busy,
        server_cpu,
        polls,
        poll_time,
        retries,
    })
}

/// `server`'s sync status (`GET /api/v1/sync/status`).
async fn sync_status(
    client: &reqwest::Client,
    server: &Server,
) -> anyhow::Result<serde_json::Value> {
    Ok(client
        .get(format!("{}/api/v1/sync/status", server.base()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

/// Waits until `server`'s sync status shows nothing pending, and returns
/// that status.
async fn settle(
    client: &reqwest::Client,
    server: &Server,
    site: &str,
) -> anyhow::Result<serde_json::Value> {
    for _ in 0..100 {
        let status = sync_status(client, server).await?;
        if status["pending"].as_i64() == Some(0) {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("{site} still reports passages pending after its rows reached the table")
}

/// One passage as the site's store holds it.
#[derive(sqlx::FromRow)]
struct LocalRow {
    id: String,
    version: i64,
    synced_version: i64,
    dead_letter_version: Option<i64>,
}

/// Every passage of the store at `db`, read on a read-only connection.
async fn read_local(db: &Path) -> anyhow::Result<Vec<LocalRow>> {
    let mut local = SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .with_context(|| format!("cannot open {} read-only", db.display()))?;
    let rows =
        sqlx::query_as("SELECT id, version, synced_version, dead_letter_version FROM passages")
            .fetch_all(&mut local)
            .await?;
    local.close().await?;
    Ok(rows)
}

/// One enforced check and what it found.
struct Check {
    name: &'static str,
    passed: bool,
    detail: String,
}

/// Compares every site's store with its central rows, after the servers
/// stopped.
async fn check(conn: &mut PgConnection, sites: &[Site]) -> anyhow::Result<Vec<Check>> {
    let mut ids_equal = 0usize;
    let mut id_detail = Vec::new();
    let mut version_mismatches = 0usize;
    let mut dead_letters = 0usize;
    let mut unconfirmed = 0usize;
    for site in sites {
        let local = read_local(&site.db).await?;
        let central: Vec<(String, i64)> = sqlx::query_as(
            "SELECT id::text, version FROM public.container_logs WHERE site_id = $1",
        )
        .bind(&site.id)
        .fetch_all(&mut *conn)
        .await?;
        let central: HashMap<String, i64> = central.into_iter().collect();
        let local_ids: HashSet<&str> = local.iter().map(|r| r.id.as_str()).collect();
        let missing = local
            .iter()
            .filter(|r| !central.contains_key(&r.id))
            .count();
        let extra = central
            .keys()
            .filter(|id| !local_ids.contains(id.as_str()))
            .count();
        if missing == 0 && extra == 0 {
            ids_equal += 1;
        } else {
            id_detail.push(format!("{}: {missing} missing, {extra} extra", site.id));
        }
        version_mismatches += local
            .iter()
            .filter(|r| central.get(&r.id).is_some_and(|v| *v != r.version))
            .count();
        dead_letters += local
            .iter()
            .filter(|r| r.dead_letter_version == Some(r.version))
            .count();
        unconfirmed += local
            .iter()
            .filter(|r| r.synced_version < r.version)
            .count();
    }
    let duplicated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT id FROM public.container_logs \
         GROUP BY id HAVING count(*) > 1) d",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(vec![
        Check {
            name: "every site's central ids equal its local ids",
            passed: id_detail.is_empty(),
            detail: if id_detail.is_empty() {
                format!("{ids_equal} of {} sites", sites.len())
            } else {
                id_detail.join("; ")
            },
        },
        Check {
            name: "no id twice in the central table",
            passed: duplicated == 0,
            detail: format!("{duplicated} ids more than once"),
        },
        Check {
            name: "every central version equals the local one (no lost update)",
            passed: version_mismatches == 0,
            detail: format!("{version_mismatches} differ"),
        },
        Check {
            name: "no dead letters (no conflict refused by the target)",
            passed: dead_letters == 0,
            detail: format!("{dead_letters} dead letters"),
        },
        Check {
            name: "every local passage confirmed as synced",
            passed: unconfirmed == 0,
            detail: format!("{unconfirmed} unconfirmed"),
        },
    ])
}

/// The machine's CPU counters (`/proc/stat`), to tell how busy all cores
/// were over a phase, whichever process used them.
struct CpuTicks {
    /// Ticks any process used, on all cores together.
    busy: u64,
    at: Instant,
}

impl CpuTicks {
    fn now() -> Self {
        let busy = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                let fields: Vec<u64> = s
                    .lines()
                    .next()?
                    .split_whitespace()
                    .skip(1)
                    .filter_map(|f| f.parse().ok())
                    .collect();
                // user nice system idle iowait irq softirq steal …: idle
                // and iowait are the time no process used.
                let total: u64 = fields.iter().take(8).sum();
                let idle = fields.get(3)? + fields.get(4)?;
                Some(total - idle)
            })
            .unwrap_or(0);
        Self {
            busy,
            at: Instant::now(),
        }
    }

    /// Cores kept busy on average since `self` was taken.
    fn cores_busy_since(&self) -> f64 {
        let now = Self::now();
        let ticks = rustix::param::clock_ticks_per_second() as f64;
        let busy = now.busy.saturating_sub(self.busy) as f64 / ticks;
        busy / self.at.elapsed().as_secs_f64()
    }
}
