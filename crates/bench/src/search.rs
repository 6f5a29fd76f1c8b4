//! `gatelog-bench search`: search latency over a generated store.
//!
//! The bench generates a year of passages (20 owners, 8 cameras) through
//! the store's writer (bulk import; the writer refreshes the planner's
//! statistics as it closes), starts `gatelog serve` on the file and queries
//! `GET /api/v1/logs` over HTTP with random values for each filter. Half
//! the history came through `in` cameras and half through `out` ones;
//! then a gate-in camera's reads put `--yard` containers in the yard
//! through the real ingest path, and the bench measures `GET
//! /api/v1/yard` and `/api/v1/yard/stats` over the same history.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use clap::Args;
use gatelog_core::passage::SyncState;
use gatelog_core::{CheckDigit, DedupConfig, Direction, Flags, OwnerCode, Passage, SerialNumber};
use gatelog_local_store::{Store, StoreConfig};
use gatelog_metrics::Metrics;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::latency::{ms, timed_get, Latencies};
use crate::reads::OWNERS;
use crate::server::{Server, ServerOptions};

#[derive(Debug, Clone, Args)]
pub struct SearchArgs {
    /// Folder for the generated store. Default: a new temporary folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Passages to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub passages: usize,
    /// Queries per filter.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Containers put in the yard through a gate-in camera before the
    /// yard is measured.
    #[arg(long, default_value_t = 5_000)]
    pub yard: usize,
}

const CAMERAS: usize = 8;

/// Whose passages a generated store holds, and how many wait for sync.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The site every passage belongs to, and the store's own site id.
    pub site_id: &'a str,
    /// How each passage's sync state is drawn.
    pub sync: SyncMix,
}

/// How the sync states of generated passages are drawn.
#[derive(Debug, Clone, Copy)]
pub enum SyncMix {
    /// One in a hundred pending, the rest synced: a site that keeps up.
    MostlySynced,
    /// Every passage pending: a site whose whole store waits for sync.
    AllPending,
}

/// The one site of the search and ingest benches.
const SEARCH_ORIGIN: Origin<'static> = Origin {
    site_id: "site-1",
    sync: SyncMix::MostlySynced,
};

/// Writes `passages` generated passages into a new store at `db`, through
/// the store's own writer, the one connection that writes.
pub async fn generate_store(db: &Path, passages: usize) -> anyhow::Result<()> {
    generate_store_of(db, passages, SEARCH_ORIGIN).await
}

/// [`generate_store`] for the site and sync states `origin` names.
pub async fn generate_store_of(
    db: &Path,
    passages: usize,
    origin: Origin<'_>,
) -> anyhow::Result<()> {
    let config = StoreConfig {
        path: db.to_path_buf(),
        ..StoreConfig::default()
    };
    let opened = Store::open(
        &config,
        &DedupConfig::default(),
        origin.site_id,
        Metrics::new(),
    )
    .await?;
    let token = CancellationToken::new();
    let writer = opened.writer;
    let stop = token.clone();
    let task = tokio::spawn(async move { writer.run(stop).await });
    let mut done = 0;
    while done < passages {
        let n = (passages - done).min(20_000);
        opened
            .store
            .writer()
            .import(generate(n, done, origin))
            .await?;
        done += n;
    }
    token.cancel();
    task.await??;
    opened.store.close().await;
    Ok(())
}

/// Generated passages of `origin`'s site: `n` spread over a year, 20
/// owners, 8 cameras.
pub fn generate(n: usize, offset: usize, origin: Origin<'_>) -> Vec<Passage> {
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
            let camera = rng.random_range(1..=CAMERAS);
            let t = start
                + chrono::Duration::seconds(
                    (offset + i) as i64 * year / 1_000_000 + rng.random_range(0..30),
                );
            Passage {
                id: uuid::Uuid::now_v7(),
                site_id: origin.site_id.into(),
                container: format!("{owner}{serial}{d}"),
                container_owner: owner.into(),
                container_number: serial,
                check_digit: Some(d.value()),
                check_digit_ok: true,
                flags: Flags::empty(),
                captured_at: t,
                last_seen_at: t + chrono::Duration::seconds(rng.random_range(5..60)),
                seen_count: rng.random_range(3..15),
                camera_id: Some(format!("gate-cam-{camera}")),
                source_video: None,
                cropped_image_ref: None,
                confidence: Some(0.9),
                created_at: t,
                updated_at: t,
                version: 1,
                sync_state: match origin.sync {
                    SyncMix::MostlySynced if rng.random_bool(0.99) => SyncState::Synced,
                    SyncMix::MostlySynced | SyncMix::AllPending => SyncState::Pending,
                },
                corrections: Vec::new(),
                // Odd cameras face in, even ones out.
                direction: if camera % 2 == 1 {
                    Direction::In
                } else {
                    Direction::Out
                },
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

pub async fn run(gatelog: &Path, args: &SearchArgs) -> anyhow::Result<()> {
    let work = crate::server::WorkDir::new(args.dir.as_deref(), "gatelog-bench-")?;
    let dir = work.path().to_path_buf();
    let db = dir.join("search.db");
    println!(
        "# gatelog-bench search ({} passages, {} queries per filter)\n",
        args.passages, args.queries
    );

    let t = Instant::now();
    generate_store(&db, args.passages).await?;
    println!("generated in {:.1} s\n", t.elapsed().as_secs_f64());

    let options = ServerOptions {
        env: vec![(
            "GATELOG_CAMERAS",
            r#"[{id="yard-in",direction="in",lane="1"}]"#.to_string(),
        )],
        ..ServerOptions::default()
    };
    let server = Server::start(gatelog, &db, &options).await?;
    let client = reqwest::Client::new();
    let mut rng = rand::rng();
    let base = format!("{}/api/v1/logs", server.base());
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
        let mut lat = Latencies::new();
        let mut rows = 0usize;
        for _ in 0..args.queries {
            let url = format!("{base}?{}", make(&mut rng));
            let (took, body) = timed_get(&client, &url).await?;
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
    // Keyset paging: walk 100 pages of 50, newest first.
    let mut lat = Latencies::new();
    let mut page_100 = Duration::ZERO;
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("{base}?limit=50&cursor={c}"),
            None => format!("{base}?limit=50"),
        };
        let (took, body) = timed_get(&client, &url).await?;
        lat.record(took);
        page_100 = took;
        cursor = body["next_cursor"].as_str().map(str::to_string);
    }
    println!(
        "| keyset pages 1-100 (50 rows each) | {} | {} | 50 |",
        ms(lat.quantile(0.5)),
        ms(lat.quantile(0.99))
    );
    println!("\npage 100 alone: {}", ms(page_100));
    yard(&server, &client, args).await?;
    println!("server RSS after the queries: {:.1} MiB", server.rss_mib());
    server.stop().await;
    Ok(())
}

/// Puts `args.yard` containers in the yard through a gate-in camera (the
/// real ingest path, which keeps the yard), then measures the yard view
/// and its statistics over the whole history.
async fn yard(server: &Server, client: &reqwest::Client, args: &SearchArgs) -> anyhow::Result<()> {
    let t = Instant::now();
    let now = Utc::now();
    // The history's 20 owners, and gate-in times spread over the last 60
    // days, so dwell times differ. The history is a year old, so no read
    // here joins one of its passages.
    let reads: Vec<serde_json::Value> = (0..args.yard)
        .map(|i| {
            let serial = format!("{:06}", i * 7 % 1_000_000);
            let code = OWNERS[i % OWNERS.len()];
            let owner = OwnerCode::parse(code).expect("valid");
            let d = CheckDigit::compute(&owner, &SerialNumber::parse(&serial).expect("valid"));
            let at = now - chrono::Duration::seconds((i as i64 * 1_037) % (60 * 86_400));
            serde_json::json!({
                "container": format!("{code}{serial}{}", d.value()),
                "captured_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "camera_id": "yard-in",
            })
        })
        .collect();
    for batch in reads.chunks(100) {
        client
            .post(format!("{}/api/v1/recognitions", server.base()))
            .json(&batch)
            .send()
            .await?
            .error_for_status()?;
    }
    let base = format!("{}/api/v1/yard", server.base());
    let (_, first) = timed_get(client, &format!("{base}?limit=1")).await?;
    let count = first["count"].as_u64().unwrap_or(0) as usize;
    anyhow::ensure!(
        count == args.yard,
        "the yard holds {count} containers, not the {} posted",
        args.yard
    );
    println!(
        "\nyard: {} containers put in through a gate-in camera in {:.1} s, over {} passages of history\n",
        count,
        t.elapsed().as_secs_f64(),
        args.passages
    );
    println!("| yard query | p50 | p99 | mean rows |\n|---|---|---|---|");
    let mut rng = rand::rng();
    let queries: Vec<(&str, QueryMaker)> = vec![
        ("longest stays first (50)", Box::new(|_| String::new())),
        (
            "owner (1 of 20)",
            Box::new(|r| format!("owner={}", OWNERS[r.random_range(0..OWNERS.len())])),
        ),
        (
            "min_dwell_secs (0-60 days)",
            Box::new(|r| format!("min_dwell_secs={}", r.random_range(0..60 * 86_400))),
        ),
        ("1,000 at once", Box::new(|_| "limit=1000".to_string())),
    ];
    for (name, make) in &queries {
        let mut lat = Latencies::new();
        let mut rows = 0usize;
        for _ in 0..args.queries {
            let (took, body) = timed_get(client, &format!("{base}?{}", make(&mut rng))).await?;
            lat.record(took);
            rows += body["yard"].as_array().map_or(0, Vec::len);
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
    let mut pages = 0;
    loop {
        let url = match &cursor {
            Some(c) => format!("{base}?limit=50&cursor={c}"),
            None => format!("{base}?limit=50"),
        };
        let (took, body) = timed_get(client, &url).await?;
        lat.record(took);
        pages += 1;
        cursor = body["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            break;
        }
    }
    println!(
        "| keyset pages 1-{pages} (50 rows each) | {} | {} | 50 |",
        ms(lat.quantile(0.5)),
        ms(lat.quantile(0.99))
    );
    let stats = format!("{}/api/v1/yard/stats", server.base());
    for (name, q) in [
        ("stats, default range", ""),
        (
            "stats, a year by day",
            "from=2023-11-14T00:00:00Z&to=2024-11-14T00:00:00Z&bucket=day",
        ),
    ] {
        let mut lat = Latencies::new();
        for _ in 0..args.queries.min(50) {
            let (took, _) = timed_get(client, &format!("{stats}?{q}")).await?;
            lat.record(took);
        }
        println!(
            "| {name} | {} | {} | |",
            ms(lat.quantile(0.5)),
            ms(lat.quantile(0.99))
        );
    }
    Ok(())
}
