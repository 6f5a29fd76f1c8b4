//! Backlog drain benchmark (issue 3).
//!
//! Run: `cargo bench -p gatelog-sync --bench drain`
//! (PostgreSQL at 127.0.0.1:5432 and `postrust` on PATH or in
//! ~/.cargo/bin; `GATELOG_BENCH_ROWS` changes the backlog, 100,000 by
//! default).
//!
//! In one run, against a fresh database:
//! - the ceiling: the same rows inserted raw with one multi-row
//!   `INSERT … ON CONFLICT DO NOTHING` per 1,000 rows through sqlx;
//! - the drain of a local backlog by the sync actor to the direct target;
//! - a plain loop of 1,000-row bulk POSTs to postrust, as the REST ceiling;
//! - the drain by the sync actor to postrust (the REST target);
//! - a 1-hour backlog at 1 read/s (3,600 passages) to each target.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::*;
use gatelog_core::passage::SyncState;
use gatelog_core::{Flags, Passage};
use gatelog_sync::{PostgresConfig, SupabaseConfig, SyncConfig, Target};
use sqlx::{Postgres, QueryBuilder};

fn passages(n: usize) -> Vec<Passage> {
    let base = Utc.timestamp_opt(1_714_552_200, 0).unwrap();
    (0..n)
        .map(|i| {
            let t = base + chrono::Duration::seconds(i as i64);
            Passage {
                id: uuid::Uuid::now_v7(),
                site_id: "site-1".into(),
                container: format!("MSCU{:06}", i % 1_000_000),
                container_owner: "MSCU".into(),
                container_number: format!("{:06}", i % 1_000_000),
                check_digit: None,
                check_digit_ok: false,
                flags: Flags::CHECK_DIGIT_MISSING,
                captured_at: t,
                last_seen_at: t,
                seen_count: 1,
                camera_id: Some("cam-1".into()),
                source_video: Some(format!("video/{i}.mp4")),
                cropped_image_ref: Some(format!("crops/{i}.jpg")),
                confidence: Some(0.93),
                created_at: t,
                updated_at: t,
                version: 1,
                sync_state: SyncState::Pending,
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

async fn truncate(db: &TestDb) {
    sqlx::raw_sql("TRUNCATE container_logs")
        .execute(&db.pool)
        .await
        .unwrap();
}

fn ts(t: chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Raw multi-row INSERT … ON CONFLICT DO NOTHING, 1,000 rows a statement.
async fn raw_ceiling(db: &TestDb, rows: &[Passage]) -> Duration {
    truncate(db).await;
    let started = Instant::now();
    for chunk in rows.chunks(1_000) {
        let mut q = QueryBuilder::<Postgres>::new(
            "INSERT INTO container_logs (id, site_id, captured_at, container_owner, \
             container_number, check_digit, check_digit_ok, flags, source_video, \
             cropped_image_ref, camera_id, confidence, seen_count, last_seen_at, created_at, \
             updated_at, version) ",
        );
        q.push_values(chunk, |mut b, p| {
            b.push_bind(p.id.to_string())
                .push_unseparated("::uuid")
                .push_bind(p.site_id.clone())
                .push_bind(ts(p.captured_at))
                .push_unseparated("::timestamptz")
                .push_bind(p.container_owner.clone())
                .push_bind(p.container_number.clone())
                .push_bind(p.check_digit.map(i16::from))
                .push_bind(p.check_digit_ok)
                .push_bind(p.flags.to_i16())
                .push_bind(p.source_video.clone())
                .push_bind(p.cropped_image_ref.clone())
                .push_bind(p.camera_id.clone())
                .push_bind(p.confidence)
                .push_bind(p.seen_count as i32)
                .push_bind(ts(p.last_seen_at))
                .push_unseparated("::timestamptz")
                .push_bind(ts(p.created_at))
                .push_unseparated("::timestamptz")
                .push_bind(ts(p.updated_at))
                .push_unseparated("::timestamptz")
                .push_bind(p.version);
        });
        q.push(" ON CONFLICT DO NOTHING");
        q.build().execute(&db.pool).await.unwrap();
    }
    let took = started.elapsed();
    assert_eq!(db.count().await as usize, rows.len());
    took
}

/// A plain loop of 1,000-row bulk POSTs (no upsert) to postrust.
async fn rest_ceiling(db: &TestDb, postrust: &Postrust, rows: &[Passage]) -> Duration {
    truncate(db).await;
    let client = reqwest::Client::new();
    let url = format!("{}/container_logs", postrust.url());
    let key = service_key();
    let started = Instant::now();
    for chunk in rows.chunks(1_000) {
        let body: Vec<serde_json::Value> = chunk
            .iter()
            .map(|p| {
                serde_json::json!({
                    "id": p.id, "site_id": p.site_id, "captured_at": p.captured_at,
                    "container_owner": p.container_owner, "container_number": p.container_number,
                    "check_digit": p.check_digit, "check_digit_ok": p.check_digit_ok,
                    "flags": p.flags.bits(), "source_video": p.source_video,
                    "cropped_image_ref": p.cropped_image_ref, "camera_id": p.camera_id,
                    "confidence": p.confidence, "seen_count": p.seen_count,
                    "last_seen_at": p.last_seen_at, "created_at": p.created_at,
                    "updated_at": p.updated_at, "version": p.version,
                })
            })
            .collect();
        let r = client
            .post(&url)
            .bearer_auth(&key)
            .header("apikey", &key)
            .header("Prefer", "return=minimal")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
    }
    let took = started.elapsed();
    assert_eq!(db.count().await as usize, rows.len());
    took
}

/// Imports `rows` into a fresh local store as an unsynced backlog and
/// times the actor draining it into `target`.
async fn drain(db: &TestDb, target: Target, rows: &[Passage]) -> Duration {
    truncate(db).await;
    let local = Local::open().await;
    for chunk in rows.chunks(10_000) {
        local.store.writer().import(chunk.to_vec()).await.unwrap();
    }
    let started = Instant::now();
    let running = Running::start(&local, SyncConfig::default(), target);
    // Watch the actor's own status rather than polling the store, so the
    // measurement adds no load: `pending` counts down with each confirmed
    // batch.
    let mut status = running.handle.status();
    status
        .wait_for(|s| s.last_success_at.is_some() && s.pending == 0)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(local.store.sync_backlog().await.unwrap().pending, 0);
    running.stop().await;
    assert_eq!(db.count().await as usize, rows.len());
    local.stop().await;
    took
}

fn rate(n: usize, d: Duration) -> String {
    format!("{:>9.0}", n as f64 / d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("GATELOG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let db = TestDb::new().await.expect("PostgreSQL at 127.0.0.1:5432");
    let postrust = Postrust::start(&db).await.expect("postrust");
    let direct = || Target::Postgres(PostgresConfig::new(db.url.clone()));
    let rest = || {
        Target::Supabase(SupabaseConfig {
            rest_path: String::new(),
            ..SupabaseConfig::new(postrust.url(), service_key())
        })
    };
    let rows = passages(n);
    let hour = passages(3_600);

    let raw = raw_ceiling(&db, &rows).await;
    let direct_drain = drain(&db, direct(), &rows).await;
    let post = rest_ceiling(&db, &postrust, &rows).await;
    let rest_drain = drain(&db, rest(), &rows).await;
    let hour_direct = drain(&db, direct(), &hour).await;
    let hour_rest = drain(&db, rest(), &hour).await;

    println!("backlog: {n} passages; batch 500 for the actor, 1,000 for the ceilings\n");
    println!("| run | seconds | rows/s |");
    println!("|---|---:|---:|");
    let line = |name: &str, rows: usize, d: Duration| {
        println!("| {name} | {:.2} | {} |", d.as_secs_f64(), rate(rows, d));
    };
    line(
        "raw INSERT … ON CONFLICT DO NOTHING, 1,000/stmt (ceiling)",
        n,
        raw,
    );
    line("sync actor → direct Postgres", n, direct_drain);
    line(
        "plain bulk POST loop, 1,000/request, postrust (ceiling)",
        n,
        post,
    );
    line("sync actor → postrust (REST)", n, rest_drain);
    line(
        "1-hour backlog (3,600) → direct Postgres",
        3_600,
        hour_direct,
    );
    line("1-hour backlog (3,600) → postrust (REST)", 3_600, hour_rest);
    println!(
        "\ndirect drain / raw ceiling = {:.2}; REST drain / POST loop = {:.2}",
        raw.as_secs_f64() / direct_drain.as_secs_f64(),
        post.as_secs_f64() / rest_drain.as_secs_f64()
    );
}
