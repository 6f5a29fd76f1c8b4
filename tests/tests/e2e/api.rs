//! The REST API over real HTTP, with a real SQLite file.

use std::collections::HashSet;

use gatelog_tests::{read, BinaryApp, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test]
async fn new_read_is_201_and_repeat_is_skipped_with_the_passage() {
    let app = TestApp::spawn().await;
    let (s, body) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(body["status"], "success");
    assert_eq!(body["data"]["container"], "MSCU1234566");
    assert_eq!(body["data"]["check_digit_ok"], true);
    let (s, body) = app
        .post(&json!({"owner": "mscu", "number": "123456", "check_digit": "6", "captured_at": "2024-05-01T08:34:00Z"}))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["status"], "skipped");
    assert_eq!(body["message"], "Duplicate record");
    assert_eq!(body["data"]["seen_count"], 2);
    assert_eq!(body["data"]["last_seen_at"], "2024-05-01T08:34:00Z");
    app.stop().await;
}

#[tokio::test]
async fn validation_errors_are_422_naming_the_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (
            json!({"owner": "M5C", "number": "123456", "captured_at": "2024-05-01T08:30:00Z"}),
            "owner",
        ),
        (
            json!({"owner": "MSCU", "number": "12345", "captured_at": "2024-05-01T08:30:00Z"}),
            "number",
        ),
        (
            json!({"container": "MSCU1234566", "captured_at": "yesterday"}),
            "captured_at",
        ),
        (
            json!({"container": "MSCU1234566", "captured_at": "2024-05-01T08:30:00Z", "check_digit": 12}),
            "check_digit",
        ),
        (
            json!({"container": "MSCU1234566", "captured_at": "2024-05-01T08:30:00Z", "confidence": "high"}),
            "confidence",
        ),
    ] {
        let (s, err) = app.post(&body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(err["status"], "error");
        assert_eq!(err["field"], field, "{body}");
        assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A wrong check digit is flagged, not rejected.
    let (s, body) = app.post(&read("MSCU1234560", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(body["data"]["check_digit_ok"], false);
    assert_eq!(body["data"]["flags"], json!(["check_digit_mismatch"]));
    app.stop().await;
}

#[tokio::test]
async fn malformed_json_is_400_and_oversized_body_is_413() {
    let app = TestApp::spawn().await;
    let r = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .header("content-type", "application/json")
        .body("{\"container\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "malformed_json");

    let big = format!("[{}]", vec![r#"{"container":"MSCU1234566","pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#; 40_000].join(","));
    assert!(big.len() > 3 * 1024 * 1024 - 200_000);
    let r = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "body_too_large");

    // Nothing was stored by either.
    let (_, logs) = app.get("/api/v1/logs").await;
    assert_eq!(logs["logs"].as_array().unwrap().len(), 0);
    app.stop().await;
}

#[tokio::test]
async fn locked_store_answers_503_with_retry_after_and_recovers() {
    use sqlx::Connection;
    let app = TestApp::spawn_with(|c| c.store.busy_timeout_ms = 200).await;
    let (s, _) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);

    // Another process-like connection holds the write lock.
    let mut other = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        app.dir.path().join("gatelog.db").display()
    ))
    .await
    .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut other)
        .await
        .unwrap();
    let r = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .json(&read("CSQU3054383", "2024-05-01T08:30:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().get("retry-after").is_some());
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["code"], "store_unavailable");
    let text = body.to_string().to_lowercase();
    assert!(
        !text.contains("sqlite") && !text.contains("locked") && !text.contains("insert"),
        "{text}"
    );
    let (s, _) = app.get("/readyz").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);

    sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();
    let (s, _) = app.post(&read("CSQU3054383", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, logs) = app.get("/api/v1/logs").await;
    assert_eq!(
        logs["logs"].as_array().unwrap().len(),
        2,
        "the first passage is intact"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_four_concurrent_identical_reads_give_one_passage() {
    let app = TestApp::spawn().await;
    let body = read("MSCU1234566", "2024-05-01T08:30:00Z");
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let client = app.client.clone();
        let url = app.url("/api/v1/recognitions");
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let r = client.post(url).json(&body).send().await.unwrap();
            let s = r.status();
            (s, r.json::<Value>().await.unwrap())
        }));
    }
    let mut created = 0;
    let mut skipped = 0;
    let mut ids = HashSet::new();
    for t in tasks {
        let (s, body) = t.await.unwrap();
        match s {
            StatusCode::CREATED => created += 1,
            StatusCode::OK if body["status"] == "skipped" => skipped += 1,
            other => panic!("unexpected {other}: {body}"),
        }
        ids.insert(body["data"]["id"].as_str().unwrap().to_string());
    }
    assert_eq!((created, skipped), (1, 23));
    assert_eq!(ids.len(), 1);

    // seen_count counts the sightings.
    let id = ids.into_iter().next().unwrap();
    let (s, p) = app.get(&format!("/api/v1/logs/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["seen_count"], 24);
    let sightings = p["sightings"].as_array().unwrap();
    assert_eq!(sightings.len(), 24);
    assert_eq!(sightings[0]["raw"]["container"], "MSCU1234566");
    for key in [
        "id",
        "captured_at",
        "raw",
        "source_video",
        "camera_id",
        "cropped_image_ref",
        "confidence",
        "check_digit_ok",
    ] {
        assert!(sightings[0].get(key).is_some(), "sighting lacks {key}");
    }
    app.stop().await;
}

#[tokio::test]
async fn dedup_holds_across_a_restart_on_the_same_data() {
    let app = TestApp::spawn().await;
    let (s, first) = app.post(&read("CSQU3054383", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    let dir = app.stop().await;

    let app = TestApp::spawn_in(dir, |_| {}).await;
    let (s, again) = app
        .post(&read("CSQU 305438 3", "2024-05-01T08:33:00Z"))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(again["status"], "skipped");
    assert_eq!(again["data"]["id"], first["data"]["id"]);
    assert_eq!(again["data"]["seen_count"], 2);
    // Outside the window, it is a new passage.
    let (s, _) = app.post(&read("CSQU3054383", "2024-05-01T08:38:01Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn real_binary_restart_keeps_dedup_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();
    let app = BinaryApp::start(dir.path(), &[]).await;
    let r = client
        .post(format!("{}/api/v1/recognitions", app.base))
        .json(&read("MSCU1234566", "2024-05-01T08:30:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(app.terminate().await.success());

    let app = BinaryApp::start(dir.path(), &[]).await;
    let r = client
        .post(format!("{}/api/v1/recognitions", app.base))
        .json(&read("MSCU1234566", "2024-05-01T08:31:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["seen_count"], 2);
    assert!(app.terminate().await.success());
}

/// Eight clients posting distinct TGHU reads to `base` until a request
/// fails; each returns the serials it got a 2xx for.
fn post_until_stopped(base: &str) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    (0..8u32)
        .map(|c| {
            let base = base.to_string();
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut acked = Vec::new();
                for i in 0..2000u32 {
                    let serial = format!("{:06}", c * 10_000 + i);
                    let body = json!({"owner": "TGHU", "number": serial, "captured_at": "2024-05-01T08:30:00Z"});
                    match client.post(format!("{base}/api/v1/recognitions")).json(&body).send().await {
                        Ok(r) if r.status().is_success() => acked.push(serial),
                        _ => break,
                    }
                }
                acked
            })
        })
        .collect()
}

/// Every TGHU serial stored, paging through `GET /api/v1/logs`.
async fn stored_serials(app: &TestApp) -> HashSet<String> {
    let mut stored = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/logs?owner=TGHU&limit=1000&cursor={c}"),
            None => "/api/v1/logs?owner=TGHU&limit=1000".to_string(),
        };
        let (_, page) = app.get(&path).await;
        stored.extend(
            page["logs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["container_number"].as_str().unwrap().to_string()),
        );
        cursor = page["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            return stored;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_and_every_ack_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let app = BinaryApp::start(dir.path(), &[]).await;
    let tasks = post_until_stopped(&app.base);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(app.terminate().await.success(), "clean exit after SIGTERM");
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "some requests were acknowledged before the signal"
    );

    let app = TestApp::spawn_in(dir, |_| {}).await;
    let stored = stored_serials(&app).await;
    for s in &acked {
        assert!(stored.contains(s), "acknowledged read {s} was lost");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_mid_stream_loses_no_acknowledged_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = BinaryApp::start(dir.path(), &[]).await;
    let tasks = post_until_stopped(&app.base);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    // SIGKILL: no shutdown, no final checkpoint, the lock file left behind.
    app.child.start_kill().unwrap();
    let status = app.child.wait().await.unwrap();
    assert!(!status.success(), "killed, not exited: {status:?}");
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    assert!(
        !acked.is_empty(),
        "some requests were acknowledged before the kill"
    );

    // The store opens again, whole, with every acknowledged read.
    let db = dir.path().join("gatelog.db");
    let app = TestApp::spawn_in(dir, |_| {}).await;
    assert_eq!(gatelog_tests::integrity_check(&db).await, "ok");
    let stored = stored_serials(&app).await;
    for s in &acked {
        assert!(stored.contains(s), "acknowledged read {s} was lost");
    }
    // Dedup picks up where it was: a repeat of an acknowledged read joins
    // its passage, and new reads are taken.
    let (s, body) = app
        .post(&json!({"owner": "TGHU", "number": acked[0], "captured_at": "2024-05-01T08:31:00Z"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["seen_count"], 2);
    let (s, _) = app.post(&read("MSCU1234566", "2024-05-01T09:00:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    app.stop().await;
}

#[tokio::test]
async fn client_ids_make_retries_idempotent() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut body = read("MSCU1234566", "2024-05-01T08:30:00Z");
    body["id"] = json!(id);
    let (s1, r1) = app.post(&body).await;
    let (s2, r2) = app.post(&body).await;
    assert_eq!((s1, s2), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(r1["data"]["id"], r2["data"]["id"]);
    assert_ne!(
        r1["data"]["id"],
        json!(id),
        "a client id is not a passage id"
    );
    assert_eq!(r2["data"]["seen_count"], 1, "the retry stored nothing");

    // A duplicate read with its own id, retried, stays skipped and counts once.
    let dup_id = uuid::Uuid::new_v4().to_string();
    let mut dup = read("MSCU1234566", "2024-05-01T08:31:00Z");
    dup["id"] = json!(dup_id);
    let (s3, r3) = app.post(&dup).await;
    let (s4, r4) = app.post(&json!([dup.clone(), dup])).await;
    assert_eq!(
        (s3, r3["data"]["seen_count"].as_i64()),
        (StatusCode::OK, Some(2))
    );
    assert_eq!(s4, StatusCode::OK);
    for r in r4["results"].as_array().unwrap() {
        assert_eq!(r["status"], "skipped");
        assert_eq!(r["data"]["seen_count"], 2);
    }
    let passage = r1["data"]["id"].as_str().unwrap();
    let (_, p) = app.get(&format!("/api/v1/logs/{passage}")).await;
    assert_eq!(p["sightings"].as_array().unwrap().len(), 2);

    let (s, err) = app.post(&json!({"id": "nope", "container": "MSCU1234566", "captured_at": "2024-05-01T08:30:00Z"})).await;
    assert_eq!(
        (s, err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("id"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_batch_of_51_with_one_bad_item_answers_per_item() {
    let app = TestApp::spawn().await;
    let mut items: Vec<Value> = (0..51)
        .map(|i| json!({"owner": "MSCU", "number": format!("{:06}", 200_000 + i), "captured_at": "2024-05-01T08:30:00Z"}))
        .collect();
    items[17] = json!({"owner": "MSCU", "number": "12x456", "captured_at": "2024-05-01T08:30:00Z"});
    items[30] = items[29].clone();
    let (s, body) = app.post(&Value::Array(items)).await;
    assert_eq!(s, StatusCode::OK);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 51);
    // A serial with a letter that has no digit look-alike, and no check
    // digit to find it by: kept for an operator, not refused.
    assert_eq!(results[17]["status"], "queued", "{}", results[17]);
    assert!(results[17]["data"]["id"].is_string());
    assert_eq!(results[29]["status"], "success");
    assert_eq!(results[30]["status"], "skipped");
    let successes = results.iter().filter(|r| r["status"] == "success").count();
    assert_eq!(successes, 49);
    let (_, logs) = app.get("/api/v1/logs?limit=1000").await;
    assert_eq!(logs["logs"].as_array().unwrap().len(), 49);

    let too_many: Vec<Value> = (0..1001)
        .map(|_| read("MSCU1234566", "2024-05-01T08:30:00Z"))
        .collect();
    let (s, err) = app.post(&Value::Array(too_many)).await;
    assert_eq!(
        (s, err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("body"))
    );
    app.stop().await;
}

#[tokio::test]
async fn keyset_pages_cover_every_passage_exactly_once() {
    let app = TestApp::spawn().await;
    let items: Vec<Value> = (0..137)
        .map(|i| json!({"owner": "HLXU", "number": format!("{:06}", i), "captured_at": format!("2024-05-01T08:{:02}:00Z", i % 60)}))
        .collect();
    let (s, _) = app.post(&Value::Array(items)).await;
    assert_eq!(s, StatusCode::OK);
    for order in ["desc", "asc"] {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        let mut last: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/api/v1/logs?limit=10&order={order}&cursor={c}"),
                None => format!("/api/v1/logs?limit=10&order={order}"),
            };
            let (s, page) = app.get(&path).await;
            assert_eq!(s, StatusCode::OK);
            for p in page["logs"].as_array().unwrap() {
                let t = p["captured_at"].as_str().unwrap().to_string();
                if let Some(l) = &last {
                    assert!(
                        if order == "desc" { &t <= l } else { &t >= l },
                        "order {order} broken"
                    );
                }
                last = Some(t);
                ids.push(p["id"].as_str().unwrap().to_string());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        let unique: HashSet<_> = ids.iter().collect();
        assert_eq!((ids.len(), unique.len()), (137, 137), "{order}");
    }
    app.stop().await;
}

#[tokio::test]
async fn filters_select_what_they_name() {
    let app = TestApp::spawn().await;
    let items = json!([
        {"container": "MSCU1234566", "captured_at": "2024-05-01T08:00:00Z", "camera_id": "north"},
        {"container": "MSCU7654329", "captured_at": "2024-05-01T09:00:00Z", "camera_id": "south"},
        {"container": "CSQU3054383", "captured_at": "2024-05-01T10:00:00Z", "camera_id": "north"},
        {"container": "CSQU3054380", "captured_at": "2024-05-01T11:00:00Z", "camera_id": "south"}
    ]);
    app.post(&items).await;
    let count = |v: &Value| v["logs"].as_array().unwrap().len();
    for (q, n) in [
        ("owner=MSCU", 2),
        ("owner=msc", 2),
        ("number=305438", 2),
        ("container=CSQU305", 2),
        ("container=MSCU1234566", 1),
        ("q=5438", 2),
        ("q=1234", 1),
        ("camera=north", 2),
        ("from=2024-05-01T08:30:00Z&to=2024-05-01T10:00:00Z", 2),
        ("check=bad", 1),
        ("check=ok", 3),
        ("sync=pending", 4),
        ("sync=synced", 0),
        ("site=site-1", 4),
        ("site=elsewhere", 0),
    ] {
        let (s, body) = app.get(&format!("/api/v1/logs?{q}")).await;
        assert_eq!(s, StatusCode::OK, "{q}: {body}");
        assert_eq!(count(&body), n, "{q}");
    }
    let (s, body) = app.get("/api/v1/logs?order=newest").await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("order"))
    );
    let (s, _) = app.get("/api/v1/logs/not-a-uuid").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, body) = app
        .get(&format!("/api/v1/logs/{}", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(
        (s, body["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    app.stop().await;
}

/// Every route of the JSON API that reads parses its query the same
/// strict way: an unknown or repeated parameter is a 400 naming it.
#[tokio::test]
async fn every_read_route_names_an_unknown_or_repeated_parameter() {
    let app = TestApp::spawn().await;
    let (s, body) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED, "{body}");
    let id = body["data"]["id"].as_str().unwrap().to_string();
    for (path, repeatable) in [
        ("/api/v1/logs".to_string(), Some("limit=1&limit=2")),
        ("/api/v1/logs/export".into(), Some("format=csv&format=csv")),
        (format!("/api/v1/logs/{id}"), None),
        (
            format!("/api/v1/logs/{id}/sightings"),
            Some("limit=1&limit=2"),
        ),
        ("/api/v1/stats".into(), Some("bucket=day&bucket=day")),
        ("/api/v1/sync/status".into(), None),
        ("/ws/logs".into(), Some("limit=1&limit=2")),
    ] {
        let (s, body) = app.get(&format!("{path}?colour=red")).await;
        assert_eq!(
            (s, body["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some("colour")),
            "{path}: {body}"
        );
        if let Some(query) = repeatable {
            let (s, body) = app.get(&format!("{path}?{query}")).await;
            let name = query.split('=').next().unwrap();
            assert_eq!(
                (s, body["field"].as_str()),
                (StatusCode::BAD_REQUEST, Some(name)),
                "{path}?{query}: {body}"
            );
        }
    }
    let (s, _) = app.get("/api/v1/sync/status").await;
    assert_eq!(s, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(app.get("/readyz").await.0, StatusCode::OK);
    for probe in ["/healthz", "/readyz"] {
        let r = app.client.head(app.url(probe)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "HEAD {probe}");
    }
    app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    app.post(&read("MSCU1234566", "2024-05-01T08:30:01Z")).await;
    app.post(&json!({"container": "bad"})).await;
    let text = app.text("/metrics").await;
    for line in [
        "gatelog_recognitions_total{result=\"accepted\"} 1",
        "gatelog_recognitions_total{result=\"duplicate\"} 1",
        "gatelog_recognitions_total{result=\"invalid\"} 1",
        "gatelog_store_commit_seconds_count 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text
        .contains("gatelog_http_requests_total{route=\"/api/v1/recognitions\",status=\"201\"} 1"));
    app.stop().await;
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_405_in_the_error_shape() {
    let app = TestApp::spawn().await;
    for (method, path, pattern, allowed) in [
        (
            reqwest::Method::DELETE,
            "/api/v1/logs",
            "/api/v1/logs",
            "GET",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/recognitions",
            "/api/v1/recognitions",
            "POST",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/logs/0190d8f4-0000-7000-8000-000000000000",
            "/api/v1/logs/{id}",
            "GET",
        ),
    ] {
        let r = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        let allow = r.headers()[reqwest::header::ALLOW]
            .to_str()
            .unwrap()
            .to_string();
        assert!(allow.contains(allowed), "{method} {path}: Allow: {allow}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "method_not_allowed", "{body}");
        assert_eq!(
            body["message"],
            format!("{method} is not allowed on {pattern}"),
            "{body}"
        );
    }
    app.stop().await;
}
