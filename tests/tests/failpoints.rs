//! Fail points at the seams: inside the writer's transaction, between
//! COMMIT and the answer, between the central upsert and marking rows
//! synced, and during a backup. After every fault: no false ack, a 503
//! with a clear message where a client waits, and once the fault clears
//! the same process carries on, with the store intact and exact.
//!
//! Fail points are process-wide, so these tests live in their own test
//! executable, and each holds a `FailScenario`, which runs them one at a
//! time.

use gatelog_tests::{integrity_check, read, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn with_id(mut body: Value, id: &str) -> Value {
    body["id"] = json!(id);
    body
}

async fn passages(app: &TestApp) -> Vec<Value> {
    let (_, page) = app.get("/api/v1/logs?limit=1000").await;
    page["logs"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_fault_inside_the_writers_transaction_acks_nothing_and_clears() {
    let scenario = fail::FailScenario::setup();
    let app = TestApp::spawn().await;
    let (s, _) = app.post(&read("CSQU3054383", "2024-05-01T07:59:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);

    fail::cfg("writer-in-transaction", "return").unwrap();
    let (s, err) = app.post(&read("MSCU1234566", "2024-05-01T08:00:00Z")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{err}");
    assert_eq!(err["code"], "store_unavailable");
    assert!(err["message"].as_str().unwrap().contains("retry"), "{err}");
    let (s, _) = app
        .post(&json!([read("TGHU7654320", "2024-05-01T08:00:00Z")]))
        .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);

    fail::remove("writer-in-transaction");
    let (s, ok) = app.post(&read("MSCU1234566", "2024-05-01T08:00:00Z")).await;
    assert_eq!(
        s,
        StatusCode::CREATED,
        "the same process takes reads again: {ok}"
    );
    let stored = passages(&app).await;
    assert_eq!(stored.len(), 2, "nothing of the refused reads was stored");
    assert!(stored.iter().all(|p| p["seen_count"] == 1));
    let dir = app.stop().await;
    assert_eq!(integrity_check(&dir.path().join("gatelog.db")).await, "ok");
    scenario.teardown();
}

#[tokio::test]
async fn a_fault_between_commit_and_answer_is_retried_as_a_replay() {
    let scenario = fail::FailScenario::setup();
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4().to_string();
    let body = with_id(read("MSCU1234566", "2024-05-01T08:00:00Z"), &id);

    fail::cfg("writer-after-commit", "1*return").unwrap();
    let (s, err) = app.post(&body).await;
    assert_eq!(
        s,
        StatusCode::SERVICE_UNAVAILABLE,
        "no ack for a commit whose answer was lost: {err}"
    );

    // The client retries with its id: the committed read answers, and
    // nothing is stored twice.
    let (s, replay) = app.post(&body).await;
    assert_eq!(s, StatusCode::CREATED, "{replay}");
    assert_eq!(replay["data"]["seen_count"], 1);
    let stored = passages(&app).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0]["id"], replay["data"]["id"]);
    fail::remove("writer-after-commit");
    let dir = app.stop().await;
    assert_eq!(integrity_check(&dir.path().join("gatelog.db")).await, "ok");
    scenario.teardown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_after_the_central_upsert_resends_and_ends_exact() {
    let scenario = fail::FailScenario::setup();
    let Some((name, url)) = gatelog_tests::fresh_database().await else {
        return;
    };
    let secret = secrecy::SecretString::from(url.clone());
    gatelog_sync::migrate_central(&secret).await.unwrap();
    // The first three confirmations are lost after the centre committed.
    fail::cfg("sync-before-mark-synced", "3*return").unwrap();
    let app = TestApp::spawn_with(|c| {
        c.sync.target = gatelog_sync::TargetKind::Postgres;
        c.postgres.url = Some(secret.clone());
        c.sync.backoff_initial_ms = 20;
        c.sync.backoff_max_ms = 100;
    })
    .await;
    let reads: Vec<Value> = (0..20)
        .map(|i| read(&gatelog_tests::container(i), "2024-05-01T08:00:00Z"))
        .collect();
    let (s, _) = app.post(&Value::Array(reads)).await;
    assert_eq!(s, StatusCode::OK);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, status) = app.get("/api/v1/sync/status").await;
        if status["pending"] == 0 && status["last_success_at"].is_string() {
            assert_eq!(
                status["dead_letters"], 0,
                "a lost reply is not a dead letter"
            );
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sync did not drain: {status}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let local: Vec<(String, i64)> = passages(&app)
        .await
        .iter()
        .map(|p| {
            (
                p["id"].as_str().unwrap().to_string(),
                p["version"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut local = local;
    local.sort();
    use sqlx::Connection;
    let mut pg = sqlx::PgConnection::connect(&url).await.unwrap();
    let central: Vec<(String, i64)> =
        sqlx::query_as("SELECT id::text, version FROM container_logs ORDER BY id::text")
            .fetch_all(&mut pg)
            .await
            .unwrap();
    assert_eq!(
        central, local,
        "every passage central exactly once, newest version"
    );
    // The three lost confirmations were seen as failed attempts.
    let metrics = app.text("/metrics").await;
    let retries: f64 = metrics
        .lines()
        .find(|l| l.starts_with("gatelog_sync_batches_total{result=\"retry\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .expect("the retry series exists");
    assert!(retries >= 3.0, "{metrics}");
    pg.close().await.unwrap();
    fail::remove("sync-before-mark-synced");
    app.stop().await;
    gatelog_tests::drop_database(&name).await;
    scenario.teardown();
}

#[tokio::test]
async fn a_fault_during_a_backup_leaves_no_file_and_the_store_whole() {
    let scenario = fail::FailScenario::setup();
    let app = TestApp::spawn().await;
    for i in 0..10 {
        let (s, _) = app
            .post(&read(&gatelog_tests::container(i), "2024-05-01T08:00:00Z"))
            .await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let store = gatelog_local_store::StoreConfig {
        path: app.dir.path().join("gatelog.db"),
        ..gatelog_local_store::StoreConfig::default()
    };
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("copy.db");

    fail::cfg("backup-before-verify", "return").unwrap();
    let err = gatelog_local_store::backup::backup(&store, &dest, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("backup-before-verify"), "{err}");
    assert!(!dest.exists(), "no backup file after a failed backup");
    assert!(!gatelog_local_store::backup::partial_path(&dest).exists());
    // The server carries on meanwhile.
    let (s, _) = app.post(&read("MSCU1234566", "2024-05-01T08:10:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);

    fail::remove("backup-before-verify");
    gatelog_local_store::backup::backup(&store, &dest, false)
        .await
        .unwrap();
    assert_eq!(integrity_check(&dest).await, "ok");
    assert_eq!(passages(&app).await.len(), 11);
    let dir = app.stop().await;
    assert_eq!(integrity_check(&dir.path().join("gatelog.db")).await, "ok");
    scenario.teardown();
}
