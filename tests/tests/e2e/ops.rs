//! Retention, backup, restore and export, run as an operator runs them:
//! the real binary on a real SQLite file, next to a real server.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use gatelog_tests::{gatelog_bin, BinaryApp, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Connection;

/// `gatelog <args>` on the store at `db`, with no ambient configuration.
async fn gatelog(db: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(gatelog_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GATELOG_") || k.starts_with("SUPABASE_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(db.parent().unwrap())
        .env("GATELOG_STORE__PATH", db)
        .env("RUST_LOG", "warn")
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("gatelog runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

async fn sqlite(db: &Path) -> sqlx::SqliteConnection {
    sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

async fn scalar(conn: &mut sqlx::SqliteConnection, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(conn).await.unwrap()
}

fn days_ago(days: i64) -> String {
    (Utc::now() - chrono::Duration::days(days)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Four passages of two sightings each: synced and old, unsynced and old,
/// dead-letter and old, synced and recent. Returns the store's path and
/// folder (kept alive by the caller).
async fn seed_retention() -> (tempfile::TempDir, std::path::PathBuf) {
    let app = TestApp::spawn().await;
    for (owner, days) in [("MSCU", 60), ("MAEU", 60), ("CMAU", 60), ("HLXU", 1)] {
        for _ in 0..2 {
            let (s, _) = app
                .post(&json!({"owner": owner, "number": "100001", "captured_at": days_ago(days)}))
                .await;
            assert!(s.is_success());
        }
    }
    let dir = app.stop().await;
    let db = dir.path().join("gatelog.db");
    let mut conn = sqlite(&db).await;
    // Sync is another component; here its effect is written directly.
    sqlx::query(
        "UPDATE passages SET synced_version = version WHERE container_owner IN ('MSCU', 'HLXU')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE passages SET dead_letter_version = version, dead_letter_reason = 'refused' \
         WHERE container_owner = 'CMAU'",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    (dir, db)
}

async fn owners_left(db: &Path) -> (Vec<String>, i64) {
    let mut conn = sqlite(db).await;
    let owners: Vec<String> =
        sqlx::query_scalar("SELECT container_owner FROM passages ORDER BY container_owner")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let sightings = scalar(&mut conn, "SELECT count(*) FROM sightings").await;
    (owners, sightings)
}

/// `gatelog <args>` with a config file naming a sync target (never
/// contacted by `retention`), so that retention keeps what the target has
/// not confirmed.
async fn gatelog_with_target(db: &Path, args: &[&str]) -> std::process::Output {
    let file = db.parent().unwrap().join("with-target.toml");
    std::fs::write(
        &file,
        "[sync]\ntarget = \"postgres\"\n[postgres]\nurl = \"postgres://gatelog@127.0.0.1:1/central\"\n",
    )
    .unwrap();
    let mut all = vec!["--config", file.to_str().unwrap()];
    all.extend_from_slice(args);
    gatelog(db, &all).await
}

#[tokio::test]
async fn retention_deletes_old_synced_passages_and_keeps_unsynced_and_dead_letters() {
    let (_dir, db) = seed_retention().await;
    let gatelog = gatelog_with_target;

    let out = gatelog(&db, &["retention", "--days", "30", "--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("1 synced passages"),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(
        owners_left(&db).await.0.len(),
        4,
        "a dry run deletes nothing"
    );

    let out = gatelog(&db, &["retention", "--days", "30"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(
        report.contains("removed 1 passages and 2 sightings"),
        "{report}"
    );
    let (owners, sightings) = owners_left(&db).await;
    assert_eq!(owners, ["CMAU", "HLXU", "MAEU"]);
    assert_eq!(
        sightings, 6,
        "the sightings of the deleted passage went with it"
    );

    // A second run finds nothing more; 0 days is refused.
    let out = gatelog(&db, &["retention", "--days", "30"]).await;
    assert!(text(&out.stdout).contains("removed 0 passages"));
    let out = gatelog(&db, &["retention", "--days", "0"]).await;
    assert!(!out.status.success());
}

/// With `sync.target = none` nothing is ever confirmed, and the local
/// store is the system of record: every passage older than the cutoff
/// goes, whatever its sync state, and the recent one stays.
#[tokio::test]
async fn retention_without_a_target_deletes_every_old_passage() {
    let (_dir, db) = seed_retention().await;
    let out = gatelog(&db, &["retention", "--days", "30", "--dry-run"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("3 passages (sync.target is none)"),
        "{}",
        text(&out.stdout)
    );
    let out = gatelog(&db, &["retention", "--days", "30"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("removed 3 passages and 6 sightings"),
        "{}",
        text(&out.stdout)
    );
    let (owners, sightings) = owners_left(&db).await;
    assert_eq!(owners, ["HLXU"]);
    assert_eq!(sightings, 2);

    // Nothing is pending without a target, so the status shows no backlog.
    let out = gatelog(&db, &["sync", "status"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let status: Value = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    assert_eq!(status["target"], "none");
    assert_eq!(status["pending"], 0, "{status}");
}

#[tokio::test]
async fn retention_through_the_running_writer_keeps_unsynced_passages() {
    use gatelog_local_store::{RetentionScope, Store};
    let (_dir, db) = seed_retention().await;
    let mut config = gatelog_tests::test_config(db.parent().unwrap());
    config.store.path = db.clone();
    let opened = Store::open(
        &config.store,
        &config.dedup,
        &config.site.id,
        gatelog_metrics::Metrics::new(),
    )
    .await
    .unwrap();
    let token = tokio_util::sync::CancellationToken::new();
    let writer = opened.writer;
    let run = tokio::spawn({
        let token = token.clone();
        async move { writer.run(token).await }
    });
    let cutoff = Utc::now() - chrono::Duration::days(30);
    // One passage per chunk, as the serve loop calls it until nothing is left.
    let mut removed = Vec::new();
    loop {
        let r = opened
            .store
            .writer()
            .retain(cutoff, 1, RetentionScope::SyncedOnly)
            .await
            .unwrap();
        if r.passages == 0 {
            break;
        }
        removed.push(r);
    }
    assert_eq!(removed.len(), 1);
    assert_eq!((removed[0].passages, removed[0].sightings), (1, 2));
    // Everything within the cutoff stays, synced or not.
    let r = opened
        .store
        .writer()
        .retain(
            Utc::now() + chrono::Duration::days(1),
            100,
            RetentionScope::SyncedOnly,
        )
        .await
        .unwrap();
    assert_eq!(r.passages, 1, "only the recent synced passage goes");
    token.cancel();
    run.await.unwrap().unwrap();
    opened.store.close().await;
    let (owners, _) = owners_left(&db).await;
    assert_eq!(owners, ["CMAU", "MAEU"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_under_continuous_ingest_restores_every_passage_committed_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gatelog.db");
    let app = BinaryApp::start(dir.path(), &[]).await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut writers = Vec::new();
    for w in 0..4u32 {
        let base = app.base.clone();
        let acked = acked.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut i = 0u32;
            while !stop.is_cancelled() {
                let serial = format!("{:06}", w * 100_000 + i);
                i += 1;
                let body = json!({"owner": "TGHU", "number": serial, "captured_at": "2024-05-01T08:30:00Z"});
                let r = client
                    .post(format!("{base}/api/v1/recognitions"))
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED);
                acked.lock().unwrap().push(serial);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // Every read acknowledged by now was committed before the backup began.
    let before: Vec<String> = acked.lock().unwrap().clone();
    assert!(before.len() > 20, "ingest is running: {}", before.len());
    let backup = dir.path().join("backup.db");
    let out = gatelog(&db, &["backup", backup.to_str().unwrap()]).await;
    let during = acked.lock().unwrap().len();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("integrity ok"),
        "{}",
        text(&out.stdout)
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.cancel();
    for w in writers {
        w.await.unwrap();
    }
    let total = acked.lock().unwrap().len();
    assert!(total > during, "ingest went on after the backup");

    // A backup refuses to overwrite unless told to.
    let out = gatelog(&db, &["backup", backup.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("exists"),
        "{}",
        text(&out.stderr)
    );

    // Restore refuses while the server runs, and changes nothing.
    let out = gatelog(&db, &["restore", backup.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("in use"),
        "{}",
        text(&out.stderr)
    );
    assert!(app.terminate().await.success());
    let mut conn = sqlite(&db).await;
    assert_eq!(
        scalar(&mut conn, "SELECT count(*) FROM passages").await as usize,
        total
    );
    conn.close().await.unwrap();

    let out = gatelog(&db, &["restore", backup.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("previous store is kept"));

    let mut conn = sqlite(&db).await;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let restored: HashSet<String> = sqlx::query_scalar("SELECT container_number FROM passages")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    conn.close().await.unwrap();
    for s in &before {
        assert!(
            restored.contains(s),
            "passage {s}, committed before the backup, is missing"
        );
    }
    assert!(restored.len() >= before.len() && restored.len() <= total);

    // The restored store serves.
    let app = TestApp::spawn_in(dir, |_| {}).await;
    let (s, page) = app.get(&format!("/api/v1/logs?number={}", before[0])).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["logs"].as_array().unwrap().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn restore_refuses_corrupt_and_foreign_files_and_leaves_the_store_unchanged() {
    let app = TestApp::spawn().await;
    let items: Vec<Value> = (0..300)
        .map(|i| json!({"owner": "MSCU", "number": format!("{:06}", i), "captured_at": "2024-05-01T08:30:00Z"}))
        .collect();
    let (s, _) = app.post(&Value::Array(items)).await;
    assert_eq!(s, StatusCode::OK);
    let dir = app.stop().await;
    let db = dir.path().join("gatelog.db");
    let good = dir.path().join("good.db");
    let out = gatelog(&db, &["backup", good.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Damaged: pages in the middle overwritten.
    let mut bytes = std::fs::read(&good).unwrap();
    assert!(bytes.len() > 6 * 4096, "{}", bytes.len());
    for b in &mut bytes[2 * 4096..5 * 4096] {
        *b = 0xA5;
    }
    let corrupt = dir.path().join("corrupt.db");
    std::fs::write(&corrupt, &bytes).unwrap();
    // Cut short.
    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &std::fs::read(&good).unwrap()[..3 * 4096 + 100]).unwrap();
    // Not SQLite at all.
    let text_file = dir.path().join("notes.db");
    std::fs::write(&text_file, "container,owner\nMSCU1234566,MSCU\n").unwrap();
    // SQLite, but not gatelog's.
    let foreign = dir.path().join("foreign.db");
    let mut conn =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", foreign.display()))
            .await
            .unwrap();
    sqlx::query("CREATE TABLE passages (id TEXT)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    // The store is checkpointed into one file so its bytes can be compared.
    let mut conn = sqlite(&db).await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let before = std::fs::read(&db).unwrap();
    let files_before = std::fs::read_dir(dir.path()).unwrap().count();

    for (file, why) in [
        (&corrupt, "integrity"),
        (&truncated, ""),
        (&text_file, "not a SQLite database"),
        (&foreign, "not a gatelog store"),
        (&dir.path().join("missing.db"), ""),
    ] {
        let out = gatelog(&db, &["restore", file.to_str().unwrap()]).await;
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", file.display());
        assert!(err.contains(why), "{}: {err}", file.display());
        assert!(
            !err.contains("was not changed") || err.contains("refused"),
            "{err}"
        );
        assert_eq!(std::fs::read(&db).unwrap(), before, "the store changed");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            files_before,
            "a temporary file was left behind"
        );
    }
    // The damaged copy is refused for its damage, not by accident.
    let out = gatelog(&db, &["restore", corrupt.to_str().unwrap()]).await;
    let err = text(&out.stderr);
    assert!(
        err.contains("integrity check") || err.contains("damaged"),
        "{err}"
    );

    // The good one is accepted.
    let out = gatelog(&db, &["restore", good.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("restored 300 passages"));
}

#[tokio::test]
async fn restore_refuses_a_backup_missing_a_table_column_or_trigger_of_its_schema() {
    let app = TestApp::spawn().await;
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"owner": "MSCU", "number": format!("{:06}", i), "captured_at": "2024-05-01T08:30:00Z"}))
        .collect();
    let (s, _) = app.post(&Value::Array(items)).await;
    assert_eq!(s, StatusCode::OK);
    let dir = app.stop().await;
    let db = dir.path().join("gatelog.db");
    let good = dir.path().join("good.db");
    let out = gatelog(&db, &["backup", good.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Each copy is whole (its integrity check passes) and its migration
    // history is intact, but part of the schema was dropped by hand.
    let mut damaged = Vec::new();
    for (name, sql, named) in [
        ("no-readiness.db", "DROP TABLE readiness", "table readiness"),
        (
            "no-column.db",
            "ALTER TABLE sightings DROP COLUMN source_video",
            "column sightings.source_video",
        ),
        (
            "no-trigger.db",
            "DROP TRIGGER passages_trigram_insert",
            "trigger passages_trigram_insert",
        ),
    ] {
        let file = dir.path().join(name);
        std::fs::copy(&good, &file).unwrap();
        let mut conn = sqlite(&file).await;
        sqlx::query(sql).execute(&mut conn).await.unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        assert_eq!(gatelog_tests::integrity_check(&file).await, "ok");
        damaged.push((file, named));
    }

    let mut conn = sqlite(&db).await;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let before = std::fs::read(&db).unwrap();
    for (file, named) in &damaged {
        let out = gatelog(&db, &["restore", file.to_str().unwrap()]).await;
        let err = text(&out.stderr);
        assert!(!out.status.success(), "{} was accepted", file.display());
        assert!(
            err.contains("restore refused") && err.contains(named),
            "{}: {err}",
            file.display()
        );
        assert_eq!(std::fs::read(&db).unwrap(), before, "the store changed");
    }

    // The whole backup is still accepted, and the restored store is ready.
    let out = gatelog(&db, &["restore", good.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let app = TestApp::spawn_in(dir, |_| {}).await;
    let (s, _) = app.get("/readyz").await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn export_row_counts_equal_passage_counts_over_http_and_the_cli() {
    let app = TestApp::spawn().await;
    let mut created = 0;
    for batch in 0..2 {
        let items: Vec<Value> = (0..1000)
            .map(|i| {
                // Every tenth item repeats the previous one: a duplicate.
                let n = if i % 10 == 9 { i - 1 } else { i };
                let owner = if n % 4 == 0 { "MAEU" } else { "MSCU" };
                json!({"owner": owner, "number": format!("{:06}", batch * 1000 + n),
                       "captured_at": "2024-05-01T08:30:00Z", "camera_id": "=cmd|' /C calc'!A0"})
            })
            .collect();
        let (s, body) = app.post(&Value::Array(items)).await;
        assert_eq!(s, StatusCode::OK);
        created += body["results"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["status"] == "success")
            .count();
    }
    assert_eq!(created, 1800);

    let export = |q: &str| {
        let url = app.url(&format!("/api/v1/logs/export?{q}"));
        let client = app.client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let ct = r.headers()["content-type"].to_str().unwrap().to_string();
            (ct, r.text().await.unwrap())
        }
    };
    let (ct, csv) = export("format=csv").await;
    assert!(ct.starts_with("text/csv"), "{ct}");
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].starts_with("id,site_id,container,"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines.len(),
        1 + created,
        "a header row and one row a passage"
    );
    assert!(
        lines[1].contains(",'=cmd|' /C calc'!A0,"),
        "formulas are defused: {}",
        lines[1]
    );

    let (ct, jsonl) = export("format=jsonl&order=asc").await;
    assert_eq!(ct, "application/x-ndjson");
    let ids: HashSet<String> = jsonl
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            v["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(ids.len(), created);
    assert_eq!(jsonl.lines().count(), created);

    // Filters are the API's: an export matches the listing's count.
    let (_, maeu) = export("format=jsonl&owner=MAEU").await;
    let (_, page) = app.get("/api/v1/logs?owner=MAEU&limit=1000").await;
    assert_eq!(maeu.lines().count(), page["logs"].as_array().unwrap().len());
    assert!(maeu.lines().count() > 0);
    let r = app
        .client
        .get(app.url("/api/v1/logs/export?format=xml"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // The CLI, to a file and to stdout, gives the same counts.
    let dir = app.stop().await;
    let db = dir.path().join("gatelog.db");
    let out_file = dir.path().join("out.csv");
    let out = gatelog(
        &db,
        &[
            "export",
            "--format",
            "csv",
            "--out",
            out_file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read_to_string(&out_file).unwrap().lines().count(),
        1 + created
    );
    assert!(text(&out.stderr).contains(&format!("{created} passages written")));
    let out = gatelog(&db, &["export", "--format", "jsonl", "--owner", "MAEU"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), maeu.lines().count());
    let out = gatelog(&db, &["export", "--format", "csv", "--owner", "M5CU"]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--owner"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn a_second_server_on_the_same_store_is_refused() {
    let app = TestApp::spawn().await;
    let mut config = gatelog_tests::test_config(app.dir.path());
    config.server.bind = "127.0.0.1:0".into();
    let second = gatelog_supervisor::serve::Application::build(
        config,
        gatelog_supervisor::serve::ServeOptions::default(),
    )
    .await;
    let err = match second {
        Ok(_) => panic!("a second server started on the same store"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("in use"), "{err}");
    app.stop().await;
}

/// Posts `count` new passages, numbered from `first`, to the server at
/// `base`; each must be acknowledged. Returns their serials.
async fn ingest(base: &str, first: u32, count: u32) -> Vec<String> {
    let client = reqwest::Client::new();
    let mut acked = Vec::new();
    for i in first..first + count {
        let serial = format!("{i:06}");
        let r = client
            .post(format!("{base}/api/v1/recognitions"))
            .json(
                &json!({"owner": "TGHU", "number": serial, "captured_at": "2024-05-01T08:30:00Z"}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        acked.push(serial);
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_onto_the_live_store_its_wal_or_a_link_to_them_is_refused_and_every_ack_survives() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gatelog.db");
    let app = BinaryApp::start(dir.path(), &[]).await;
    let mut acked = ingest(&app.base, 0, 40).await;
    let canonical = std::fs::canonicalize(&db).unwrap();

    // A link to the store file, and a link to its folder.
    let links = tempfile::tempdir().unwrap();
    let file_link = links.path().join("store-link.db");
    std::os::unix::fs::symlink(&db, &file_link).unwrap();
    let dir_link = links.path().join("alias");
    std::os::unix::fs::symlink(dir.path(), &dir_link).unwrap();

    let targets = [
        db.clone(),
        dir.path().join("gatelog.db-wal"),
        dir.path().join("gatelog.db-shm"),
        dir.path().join("gatelog.db.lock"),
        file_link,
        dir_link.join("gatelog.db"),
        dir_link.join("gatelog.db-wal"),
        dir.path().join("sub/../gatelog.db"),
    ];
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    for target in &targets {
        for force in [false, true] {
            let mut args = vec!["backup", target.to_str().unwrap()];
            if force {
                args.push("--force");
            }
            let out = gatelog(&db, &args).await;
            let err = text(&out.stderr);
            assert!(
                !out.status.success(),
                "backup to {} (force: {force}) was accepted: {}",
                target.display(),
                text(&out.stdout)
            );
            assert!(
                err.contains("backup refused")
                    && err.contains(&target.display().to_string())
                    && err.contains(&canonical.display().to_string()),
                "the refusal names both paths: {err}"
            );
        }
    }
    // Nothing was left beside the store, and the server still takes reads.
    let stray: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("partial"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    acked.extend(ingest(&app.base, 40, 40).await);
    assert!(app.terminate().await.success());

    assert_eq!(gatelog_tests::integrity_check(&db).await, "ok");
    let mut conn = sqlite(&db).await;
    let stored: HashSet<String> = sqlx::query_scalar("SELECT container_number FROM passages")
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .into_iter()
        .collect();
    conn.close().await.unwrap();
    for s in &acked {
        assert!(stored.contains(s), "acknowledged passage {s} is missing");
    }
    assert_eq!(stored.len(), acked.len());

    // The store restarts, and a backup beside it still works.
    let app = BinaryApp::start(dir.path(), &[]).await;
    let good = dir.path().join("good.db");
    let out = gatelog(&db, &["backup", good.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("80 passages"),
        "{}",
        text(&out.stdout)
    );
    assert!(app.terminate().await.success());
}

#[tokio::test]
async fn a_second_serve_through_a_link_to_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gatelog.db");
    let app = BinaryApp::start(dir.path(), &[]).await;
    let acked = ingest(&app.base, 0, 5).await;

    let links = tempfile::tempdir().unwrap();
    let file_link = links.path().join("store-link.db");
    std::os::unix::fs::symlink(&db, &file_link).unwrap();
    let dir_link = links.path().join("alias");
    std::os::unix::fs::symlink(dir.path(), &dir_link).unwrap();

    for store in [file_link, dir_link.join("gatelog.db")] {
        let port = gatelog_tests::free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut second = tokio::process::Command::new(gatelog_bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("GATELOG_") || k.starts_with("SUPABASE_") || k == "DATABASE_URL" {
                second.env_remove(k);
            }
        }
        let mut second = second
            .arg("serve")
            .current_dir(links.path())
            .env("GATELOG_STORE__PATH", &store)
            .env("GATELOG_SERVER__BIND", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Whichever comes first: the second server exits, or it answers.
        let client = reqwest::Client::new();
        let mut polls = 0;
        let status = loop {
            polls += 1;
            assert!(polls < 3_000, "the second server neither exits nor answers");
            if let Some(status) = second.try_wait().unwrap() {
                break status;
            }
            if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
                panic!(
                    "a second server started on {} ({})",
                    store.display(),
                    r.status()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert!(!status.success());
        let mut err = String::new();
        use tokio::io::AsyncReadExt;
        second
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .await
            .unwrap();
        assert!(err.contains("in use"), "{err}");
    }

    // The first server is untouched.
    let (s, page) = {
        let r = reqwest::get(format!("{}/api/v1/logs?limit=10", app.base))
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["logs"].as_array().unwrap().len(), acked.len());
    assert!(app.terminate().await.success());
    assert_eq!(gatelog_tests::integrity_check(&db).await, "ok");
}

#[tokio::test]
async fn simulate_posts_a_realistic_feed_that_the_server_stores() {
    let dir = tempfile::tempdir().unwrap();
    let app = BinaryApp::start(
        dir.path(),
        &[
            ("GATELOG_AUTH__INGEST_KEYS", "sim-ingest-key-0123456789"),
            ("GATELOG_AUTH__READ_KEYS", "sim-read-key-0123456789"),
        ],
    )
    .await;
    let db = dir.path().join("gatelog.db");
    let out = tokio::process::Command::new(gatelog_bin())
        .current_dir(dir.path())
        .env("SIMULATE_INGEST_KEY", "sim-ingest-key-0123456789")
        .args([
            "simulate",
            "--url",
            &app.base,
            "--rate",
            "600",
            "--duration",
            "3s",
            "--cameras",
            "2",
        ])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let summary = text(&out.stdout);
    let new: u64 = summary
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary:?}"));
    assert!(new > 0, "{summary}");
    assert!(summary.contains("duplicates"), "{summary}");
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/logs?limit=1000", app.base))
        .bearer_auth("sim-read-key-0123456789")
        .send()
        .await
        .unwrap();
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["logs"].as_array().unwrap().len() as u64, new);

    // A wrong key stops it with a clear error.
    let out = tokio::process::Command::new(gatelog_bin())
        .current_dir(dir.path())
        .args([
            "simulate",
            "--url",
            &app.base,
            "--rate",
            "600",
            "--duration",
            "2s",
            "--key",
            "wrong",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("refused the key"),
        "{}",
        text(&out.stderr)
    );
    assert!(app.terminate().await.success());
    let _ = db;
}

#[tokio::test]
async fn the_production_example_config_loads_and_demands_its_secrets() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/production.toml");
    let dir = tempfile::tempdir().unwrap();
    let run = |env: Vec<(&'static str, &'static str)>| {
        let mut cmd = tokio::process::Command::new(gatelog_bin());
        for (k, _) in std::env::vars() {
            if k.starts_with("GATELOG_") || k.starts_with("SUPABASE_") || k == "DATABASE_URL" {
                cmd.env_remove(k);
            }
        }
        cmd.current_dir(dir.path())
            .arg("--config")
            .arg(&file)
            .arg("config")
            .envs(env)
            .output()
    };
    let out = run(vec![
        ("SUPABASE_URL", "https://example.invalid"),
        ("SUPABASE_KEY", "k"),
    ])
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let shown = text(&out.stdout);
    assert!(shown.contains("bind = \"0.0.0.0:8080\""), "{shown}");
    assert!(shown.contains("[limits]"), "{shown}");
    // Without the Supabase secrets from the environment it stops, naming them.
    let out = run(vec![]).await.unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("SUPABASE_KEY"),
        "{}",
        text(&out.stderr)
    );
}

#[tokio::test]
async fn deployment_files_agree_with_each_other_and_the_readme() {
    // The compose, Prometheus, Grafana and systemd files cannot run here
    // (no Docker engine); `deploy/check.sh` checks what can be checked.
    if !gatelog_tests::require_tool(
        "python3",
        &["-c", "import yaml"],
        "Debian package python3-yaml",
    ) {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = tokio::process::Command::new("bash")
        .arg("deploy/check.sh")
        .current_dir(&root)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    // The README's deployment section names the same services and ports.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let readme = readme.split_whitespace().collect::<Vec<_>>().join(" ");
    for (service, port) in [
        ("gatelog", "port **8080**"),
        ("postgres", "**127.0.0.1:5432**"),
        ("prometheus", "**127.0.0.1:9090**"),
        ("grafana", "**3000**"),
    ] {
        let said = format!("**{service}** on {port}");
        assert!(readme.contains(&said), "README does not say {said:?}");
    }
}

/// A small tmpfs, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on a new
    /// folder. Needs root; `None` when it cannot.
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("gatelog-disk-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self(dir))
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn a_full_disk_answers_503_keeps_what_was_stored_and_recovers() {
    let Some(disk) = SmallDisk::mount("3m") else {
        gatelog_tests::missing("mounting a small tmpfs needs root (the disk-full test)");
        return;
    };
    let app = TestApp::spawn_in(tempfile::tempdir_in(&disk.0).unwrap(), |_| {}).await;
    let batch = |from: u64| {
        Value::Array(
            (from..from + 200)
                .map(|n| {
                    json!({
                        "container": gatelog_tests::container(n),
                        "captured_at": "2024-05-01T08:30:00Z",
                        "source_video": format!("rtsp://gate/{n}/{}", "v".repeat(400)),
                    })
                })
                .collect(),
        )
    };
    // Fill the disk until the store refuses.
    let mut stored = 0u64;
    let refusal = loop {
        let r = app
            .client
            .post(app.url("/api/v1/recognitions"))
            .json(&batch(stored))
            .send()
            .await
            .unwrap();
        if r.status() != StatusCode::OK {
            break r;
        }
        stored += 200;
        assert!(stored < 100_000, "a 3 MB disk never filled");
    };
    assert!(stored > 0, "something fit before the disk filled");
    assert_eq!(refusal.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refusal.headers().contains_key("retry-after"));
    let body: Value = refusal.json().await.unwrap();
    assert_eq!(body["status"], "error", "{body}");
    let message = body["message"].as_str().unwrap_or_default().to_lowercase();
    assert!(
        !message.contains("sqlite") && !message.contains("insert"),
        "{body}"
    );
    // (A one-row write such as the readiness probe's may still fit in
    // the WAL's free space here, so readiness is not asserted while full;
    // see the read-only test.)

    // Space comes back: the same server takes reads again, and everything
    // acknowledged before is there, in a whole file.
    disk.resize("64m");
    let mut resumed = false;
    for _ in 0..50 {
        let r = app
            .client
            .post(app.url("/api/v1/recognitions"))
            .json(&batch(stored))
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::OK {
            resumed = true;
            stored += 200;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(resumed, "ingest resumed once the disk had room");
    let r = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK, "ready again");
    let (_, stats) = app
        .get("/api/v1/stats?from=2024-05-01T08:00:00Z&to=2024-05-01T09:00:00Z&bucket=hour")
        .await;
    assert_eq!(stats["buckets"][0]["passages"], stored, "{stats}");
    assert_eq!(stats["buckets"][0]["sightings"], stored, "{stats}");
    let db = app.dir.path().join("gatelog.db");
    assert_eq!(gatelog_tests::integrity_check(&db).await, "ok");
    app.stop().await;
}
