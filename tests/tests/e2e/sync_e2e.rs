//! Sync wired end to end: `gatelog migrate --central`, then the real binary
//! replicating to a fresh PostgreSQL database, with its status over HTTP
//! and from `gatelog sync status`.

use std::time::Duration;

use gatelog_tests::{gatelog_bin, read, BinaryApp};
use serde_json::Value;
use sqlx::{Connection, PgConnection};

const ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database, dropped by [`drop_db`]. Fails under `CI=true` when
/// PostgreSQL is unreachable; elsewhere says so loudly and returns None.
async fn fresh_db() -> Option<(String, String)> {
    let mut admin = match PgConnection::connect(ADMIN).await {
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
    let name = format!("gatelog_e2e_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .unwrap();
    Some((
        name.clone(),
        format!("postgres://postgres@127.0.0.1:5432/{name}"),
    ))
}

async fn drop_db(name: &str) {
    let mut admin = PgConnection::connect(ADMIN).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_replicates_to_postgres_and_reports_status() {
    let Some((name, url)) = fresh_db().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    let out = tokio::process::Command::new(gatelog_bin())
        .args(["migrate", "--central"])
        .current_dir(dir.path())
        .env("DATABASE_URL", &url)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let app = BinaryApp::start(
        dir.path(),
        &[
            ("DATABASE_URL", url.as_str()),
            ("GATELOG_SYNC__TARGET", "postgres"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let items: Vec<Value> = (0..30)
        .map(|i| read(&format!("MSCU{:06}", 300_000 + i), "2024-05-01T08:30:00Z"))
        .collect();
    let r = client
        .post(format!("{}/api/v1/recognitions", app.base))
        .json(&items)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    // A duplicate changes one passage after it may have been sent.
    client
        .post(format!("{}/api/v1/recognitions", app.base))
        .json(&read("MSCU300000", "2024-05-01T08:31:00Z"))
        .send()
        .await
        .unwrap();

    let mut status = Value::Null;
    for _ in 0..100 {
        status = client
            .get(format!("{}/api/v1/sync/status", app.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["pending"] == 0 && status["last_success_at"].is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status["target"], "postgres");
    assert_eq!(status["pending"], 0, "{status}");
    assert_eq!(status["dead_letters"], 0);
    assert!(
        !status.to_string().contains("postgres://"),
        "no URL in the status: {status}"
    );

    let mut pg = PgConnection::connect(&url).await.unwrap();
    let (n, seen): (i64, i64) =
        sqlx::query_as("SELECT count(*), coalesce(sum(seen_count), 0)::bigint FROM container_logs")
            .fetch_one(&mut pg)
            .await
            .unwrap();
    assert_eq!((n, seen), (30, 31));
    let (_, logs) = {
        let r = client
            .get(format!("{}/api/v1/logs?sync=pending", app.base))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(logs["logs"].as_array().unwrap().len(), 0);
    assert!(app.terminate().await.success());

    let out = tokio::process::Command::new(gatelog_bin())
        .args(["sync", "status"])
        .current_dir(dir.path())
        .env("GATELOG_STORE__PATH", dir.path().join("gatelog.db"))
        .env("DATABASE_URL", &url)
        .env("GATELOG_SYNC__TARGET", "postgres")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let cli: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(
        (cli["target"].as_str(), cli["pending"].as_i64()),
        (Some("postgres"), Some(0))
    );

    // Nothing was refused, so a retry puts nothing back, and says so.
    let out = tokio::process::Command::new(gatelog_bin())
        .args(["sync", "retry"])
        .current_dir(dir.path())
        .env("GATELOG_STORE__PATH", dir.path().join("gatelog.db"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("0 dead letters put back"));
    pg.close().await.unwrap();
    drop_db(&name).await;
}
