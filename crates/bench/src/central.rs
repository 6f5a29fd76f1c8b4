//! `gatelog-bench central`: the head-office view's read latency over a
//! generated central table.
//!
//! The bench applies the central schema (`gatelog migrate --central`) to a
//! database it is given (it must be empty, and the user a superuser, since
//! the load skips the table's triggers), generates passages of 20 sites
//! spread over the 12 months before now inside PostgreSQL (`INSERT …
//! SELECT generate_series`, one statement per month), analyses the table,
//! starts `gatelog central serve` on it, and times its HTTP API per
//! filter.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::Utc;
use clap::Args;
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
}

const SITES: u32 = 20;
const MONTHS: u32 = 12;

/// Generates `rows` passages across [`SITES`] sites and the [`MONTHS`]
/// months before now, one statement per month. Triggers are skipped for
/// the load (`session_replication_role = replica`): the ids are new, so
/// no row moves, and a million notifications would only fill the queue.
async fn generate(conn: &mut PgConnection, rows: u64) -> anyhow::Result<()> {
    sqlx::raw_sql("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await?;
    let per_month = rows / u64::from(MONTHS);
    let owners: Vec<String> = OWNERS.iter().map(|o| o.to_string()).collect();
    for m in 0..MONTHS {
        sqlx::query(
            "INSERT INTO public.container_logs (id, site_id, captured_at, container_owner, \
                 container_number, check_digit, check_digit_ok, camera_id, seen_count, \
                 last_seen_at, created_at, updated_at, version)
             SELECT gen_random_uuid(), 'site-' || lpad((i % $3)::text, 2, '0'), t,
                    ($4::text[])[1 + (i * 7919) % array_length($4::text[], 1)],
                    lpad(((i * 104729) % 1000000)::text, 6, '0'), (i % 10)::int2, true,
                    'cam-' || (i % 8), 1 + i % 9, t + interval '30 seconds', t, t, 1
             FROM generate_series(1, $1) i,
                  LATERAL (SELECT now() - make_interval(days => 30 * ($2 + 1))
                                  + (i * interval '30 days') / $1) g(t)",
        )
        .bind(i64::try_from(per_month)?)
        .bind(i32::try_from(m)?)
        .bind(i64::from(SITES))
        .bind(&owners)
        .execute(&mut *conn)
        .await?;
        println!("  month {} of {MONTHS}: {per_month} rows", m + 1);
    }
    sqlx::raw_sql("SET session_replication_role = origin; ANALYZE public.container_logs")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

type QueryMaker = Box<dyn Fn(&mut rand::rngs::ThreadRng) -> String>;

pub async fn run(gatelog: &Path, args: &CentralArgs) -> anyhow::Result<()> {
    println!(
        "# gatelog-bench central ({} rows, {SITES} sites, {MONTHS} months, {} queries per filter)\n",
        args.rows, args.queries
    );
    let out = tokio::process::Command::new(gatelog)
        .args(["migrate", "--central"])
        .env("DATABASE_URL", &args.url)
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "gatelog migrate --central failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut conn = PgConnection::connect(&args.url).await?;
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM public.container_logs")
        .fetch_one(&mut conn)
        .await?;
    anyhow::ensure!(
        existing == 0,
        "the database must be empty ({existing} rows)"
    );
    let t = Instant::now();
    generate(&mut conn, args.rows).await?;
    println!("generated in {:.1} s\n", t.elapsed().as_secs_f64());
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
    Ok(())
}
