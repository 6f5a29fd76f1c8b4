//! `gatelog-bench central`: the head-office view's read latency over a
//! generated central table.
//!
//! The bench applies the central schema (`gatelog migrate --central`) to a
//! database it is given (it must be empty, and the user a superuser, since
//! the load skips the table's triggers), creates the partitions of the
//! 12 months before now, streams passages of 20 sites spread over those
//! months into it with `COPY` (one per month), counts the hourly statistics, vacuums and analyses the table, starts
//! `gatelog central serve` on it, and times its HTTP API per filter.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
use gatelog_core::{CheckDigit, OwnerCode, SerialNumber};
use rand::Rng;
use sqlx::{Connection, PgConnection};

use crate::latency::{ms, timed_get, Latencies};
use crate::reads::OWNERS;

#[derive(Debug, Clone, Args)]
pub struct CentralArgs {
    /// An empty PostgreSQL database, reached as a superuser.
    #[arg(long, env = "DATABASE_URL")]
    pub url: String,
    /// Passages to generate, spread over 20 sites and 12 months.
    #[arg(long, default_value_t = 1_000_000)]
    pub rows: u64,
    /// Queries per filter.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Measure the passages an earlier run generated in this database
    /// (left in place) instead of generating them again.
    #[arg(long)]
    pub reuse: bool,
}

const SITES: u32 = 20;
const MONTHS: u32 = 12;

/// Generates `rows` passages across [`SITES`] sites and the [`MONTHS`]
/// months before now, streamed with `COPY … FROM STDIN` (text format), one
/// `COPY` per month. Triggers are skipped for the load
/// (`session_replication_role = replica`): the ids are new, so no row
/// moves, and millions of notifications would only fill the queue; the
/// hourly statistics the triggers would have kept are then counted once
/// with `container_logs_hourly_rebuild`, as the migration says to after
/// such a load.
async fn generate(conn: &mut PgConnection, rows: u64) -> anyhow::Result<()> {
    // Each month has its partition, as the daily upkeep would have made
    // it at the time; without them every row would wait in the default
    // partition, and nothing could be pruned.
    sqlx::query(
        "SELECT public.container_logs_ensure_partition('container_logs', \
                (now() - make_interval(months => m))::date) \
         FROM generate_series(0, $1) m",
    )
    .bind(i32::try_from(MONTHS)? + 1)
    .execute(&mut *conn)
    .await?;
    sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await?;
    let per_month = rows / u64::from(MONTHS);
    let now = Utc::now();
    let month = chrono::Duration::days(30);
    let mut rng = rand::rng();
    for m in 0..MONTHS {
        let start = now - month * (i32::try_from(m)? + 1);
        let mut copy = conn
            .copy_in_raw(
                "COPY public.container_logs (id, site_id, captured_at, container_owner, \
                     container_number, check_digit, check_digit_ok, camera_id, seen_count, \
                     last_seen_at, created_at, updated_at, version, direction) FROM STDIN",
            )
            .await?;
        let mut buf = String::with_capacity(1 << 20);
        for i in 0..per_month {
            let t = start + month * i32::try_from(i)? / i32::try_from(per_month)?;
            let owner = OWNERS[rng.random_range(0..OWNERS.len())];
            let serial = format!("{:06}", rng.random_range(0..1_000_000));
            let digit = CheckDigit::compute(
                &OwnerCode::parse(owner).expect("valid owner"),
                &SerialNumber::parse(&serial).expect("valid serial"),
            );
            let camera = rng.random_range(1..=8);
            let seen = rng.random_range(1..10);
            let at = t.format("%Y-%m-%d %H:%M:%S%.6f+00");
            let last = (t + chrono::Duration::seconds(30)).format("%Y-%m-%d %H:%M:%S%.6f+00");
            let _ = writeln!(
                buf,
                "{}\tsite-{:02}\t{at}\t{owner}\t{serial}\t{}\tt\tgate-cam-{camera}\t{seen}\t{last}\t{at}\t{at}\t1\t{}",
                uuid::Uuid::new_v4(),
                rng.random_range(0..SITES),
                digit.value(),
                if camera % 2 == 1 { "in" } else { "out" },
            );
            if buf.len() >= 1 << 20 {
                copy.send(buf.as_bytes()).await?;
                buf.clear();
            }
        }
        copy.send(buf.as_bytes()).await?;
        copy.finish().await?;
        println!("  month {} of {MONTHS}: {per_month} rows", m + 1);
    }
    sqlx::raw_sql(
        "SET session_replication_role = origin; \
         SELECT public.container_logs_hourly_rebuild(NULL, NULL)",
    )
    .execute(&mut *conn)
    .await?;
    // As autovacuum leaves a table some time after a load: statistics for
    // the planner, and the trigram indexes' pending lists merged (until
    // then every query reads each partition's list from end to end).
    for table in ["public.container_logs", "public.container_logs_hourly"] {
        sqlx::raw_sql(&format!("VACUUM (ANALYZE) {table}"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Applies the central schema with `gatelog migrate --central`, then
/// connects: the connection and the passages the table already holds.
pub async fn migrate(gatelog: &Path, url: &str) -> anyhow::Result<(PgConnection, i64)> {
    let out = tokio::process::Command::new(gatelog)
        .args(["migrate", "--central"])
        .env("DATABASE_URL", url)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "gatelog migrate --central failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = PgConnection::connect(url).await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM public.container_logs")
        .fetch_one(&mut conn)
        .await?;
    Ok((conn, existing))
}

type QueryMaker = Box<dyn Fn(&mut rand::rngs::ThreadRng) -> String>;

pub async fn run(gatelog: &Path, args: &CentralArgs) -> anyhow::Result<()> {
    println!(
        "# gatelog-bench central ({} rows, {SITES} sites, {MONTHS} months, {} queries per filter)\n",
        args.rows, args.queries
    );
    let (mut conn, existing) = migrate(gatelog, &args.url).await?;
    if args.reuse {
        anyhow::ensure!(existing > 0, "--reuse: the database holds no passages");
        println!("reusing {existing} passages\n");
    } else {
        anyhow::ensure!(
            existing == 0,
            "the database must be empty ({existing} rows), or pass --reuse"
        );
        let t = Instant::now();
        generate(&mut conn, args.rows).await?;
        println!("generated in {:.1} s\n", t.elapsed().as_secs_f64());
    }
    conn.close().await?;

    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(gatelog)
        .args(["central", "serve"])
        .env("DATABASE_URL", &args.url)
        .env("GATELOG_SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..500 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::ensure!(ready, "gatelog central serve did not become ready");

    let now = Utc::now();
    let logs = format!("{base}/api/v1/logs");
    let filters: Vec<(&str, QueryMaker)> = vec![
        (
            "site + time range (1 day)",
            Box::new(move |r| {
                let from = now - chrono::Duration::days(r.random_range(1..360));
                let to = from + chrono::Duration::days(1);
                format!(
                    "site=site-{:02}&from={}&to={}",
                    r.random_range(0..SITES),
                    from.format("%Y-%m-%dT%H:%M:%SZ"),
                    to.format("%Y-%m-%dT%H:%M:%SZ")
                )
            }),
        ),
        (
            "owner",
            Box::new(|r| format!("owner={}", OWNERS[r.random_range(0..OWNERS.len())])),
        ),
        (
            "container prefix (owner + 2 digits)",
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
    ];
    println!("| filter | p50 | p99 | mean rows |\n|---|---|---|---|");
    let mut rng = rand::rng();
    for (name, make) in &filters {
        let mut lat = Latencies::new();
        let mut rows = 0usize;
        for _ in 0..args.queries {
            let (took, body) = timed_get(&client, &format!("{logs}?{}", make(&mut rng))).await?;
            lat.record(took);
            rows += body["logs"].as_array().map_or(0, Vec::len);
        }
        println!(
            "| {name} | {} | {} | {:.0} |",
            ms(lat.quantile(0.5)),
            ms(lat.quantile(0.99)),
            rows as f64 / args.queries as f64
        );
    }
    let mut lat = Latencies::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{logs}?limit=50&cursor={c}"),
            None => format!("{logs}?limit=50"),
        };
        let (took, body) = timed_get(&client, &url).await?;
        lat.record(took);
        cursor = body["next_cursor"].as_str().map(str::to_string);
    }
    println!(
        "| keyset pages 1-100 (50 rows each) | {} | {} | 50 |",
        ms(lat.quantile(0.5)),
        ms(lat.quantile(0.99))
    );
    let mut lat = Latencies::new();
    for _ in 0..args.queries.min(50) {
        let to = now - chrono::Duration::days(rng.random_range(0..300));
        let from = to - chrono::Duration::days(30);
        let url = format!(
            "{base}/api/v1/stats?bucket=day&from={}&to={}",
            from.format("%Y-%m-%dT%H:%M:%SZ"),
            to.format("%Y-%m-%dT%H:%M:%SZ")
        );
        let (took, _) = timed_get(&client, &url).await?;
        lat.record(took);
    }
    println!(
        "| stats per site per day (30 days) | {} | {} | - |",
        ms(lat.quantile(0.5)),
        ms(lat.quantile(0.99))
    );
    let (took, body) = timed_get(&client, &format!("{base}/api/v1/sites")).await?;
    println!(
        "\n/api/v1/sites: {} sites in {}",
        body["sites"].as_array().map_or(0, Vec::len),
        ms(took)
    );
    child.kill().await.ok();
    contributions(&args.url, args.queries.min(50)).await
}

/// What partition pruning and the hourly counts contribute, timed in SQL
/// on one connection (no HTTP): a site's day with pruning on and off
/// (`enable_partition_pruning`), and 30 days of per-site daily counts from
/// `container_logs_hourly` and from the table itself.
async fn contributions(url: &str, queries: usize) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(url).await?;
    let partitions: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits WHERE inhparent = 'public.container_logs'::regclass",
    )
    .fetch_one(&mut conn)
    .await?;
    println!("\n{partitions} partitions. In SQL, one connection, {queries} queries each:\n");
    println!("| query | p50 | p99 |\n|---|---|---|");
    let mut rng = rand::rng();
    let now = Utc::now();
    for pruning in ["on", "off"] {
        sqlx::raw_sql(&format!("SET enable_partition_pruning = {pruning}"))
            .execute(&mut conn)
            .await?;
        let mut lat = Latencies::new();
        for _ in 0..queries {
            let from = now - chrono::Duration::days(rng.random_range(1..360));
            let t = Instant::now();
            sqlx::query(
                "SELECT id FROM public.container_logs WHERE site_id = $1 \
                 AND captured_at >= $2::timestamptz AND captured_at < $3::timestamptz \
                 ORDER BY captured_at DESC, id DESC LIMIT 51",
            )
            .bind(format!("site-{:02}", rng.random_range(0..SITES)))
            .bind(from.to_rfc3339())
            .bind((from + chrono::Duration::days(1)).to_rfc3339())
            .fetch_all(&mut conn)
            .await?;
            lat.record(t.elapsed());
        }
        println!(
            "| a site's day, 51 rows, pruning {pruning} | {} | {} |",
            ms(lat.quantile(0.5)),
            ms(lat.quantile(0.99))
        );
    }
    sqlx::raw_sql("RESET enable_partition_pruning")
        .execute(&mut conn)
        .await?;
    let from_hourly = "SELECT site_id, date_bin('1 day', hour, $1::timestamptz), sum(passages), \
         sum(sightings) FROM public.container_logs_hourly \
         WHERE hour >= $1::timestamptz AND hour < $2::timestamptz GROUP BY 1, 2";
    let from_table = "SELECT site_id, date_bin('1 day', captured_at, $1::timestamptz), count(*), \
         sum(seen_count) FROM public.container_logs \
         WHERE captured_at >= $1::timestamptz AND captured_at < $2::timestamptz GROUP BY 1, 2";
    // Counting the table reads a month of rows per query: a few suffice.
    for (name, sql, n) in [
        ("hourly counts", from_hourly, queries),
        ("the table itself", from_table, queries.min(5)),
    ] {
        let mut lat = Latencies::new();
        for _ in 0..n {
            let to = (now - chrono::Duration::days(rng.random_range(0..300)))
                .date_naive()
                .and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc();
            let t = Instant::now();
            sqlx::query(sql)
                .bind((to - chrono::Duration::days(30)).to_rfc3339())
                .bind(to.to_rfc3339())
                .fetch_all(&mut conn)
                .await?;
            lat.record(t.elapsed());
        }
        println!(
            "| 30 days per site per day, from {name} ({n} queries) | {} | {} |",
            ms(lat.quantile(0.5)),
            ms(lat.quantile(0.99))
        );
    }
    conn.close().await?;
    Ok(())
}
