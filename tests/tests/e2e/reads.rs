//! What a read keeps and how it is answered: client ids as idempotency
//! keys, the raw read as received and its cap, and camera times that
//! cannot be trusted.

use gatelog_tests::{read, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// POSTs `text` exactly as given.
async fn post_text(app: &TestApp, text: &str) -> (StatusCode, Value) {
    let r = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .header("content-type", "application/json")
        .body(text.to_string())
        .send()
        .await
        .expect("request is sent");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn with_id(mut body: Value, id: &str) -> Value {
    body["id"] = json!(id);
    body
}

#[tokio::test]
async fn a_client_id_is_never_a_passage_id_and_each_site_keeps_its_read() {
    let a = TestApp::spawn_with(|c| c.site.id = "site-a".into()).await;
    let b = TestApp::spawn_with(|c| c.site.id = "site-b".into()).await;
    let id = uuid::Uuid::new_v4().to_string();
    let (sa, ra) = a
        .post(&with_id(read("MSCU1234566", "2024-05-01T08:30:00Z"), &id))
        .await;
    let (sb, rb) = b
        .post(&with_id(read("CSQU3054383", "2024-05-01T08:30:00Z"), &id))
        .await;
    assert_eq!((sa, sb), (StatusCode::CREATED, StatusCode::CREATED));
    let (pa, pb) = (ra["data"]["id"].as_str(), rb["data"]["id"].as_str());
    assert_ne!(pa, Some(id.as_str()), "site A's passage id is its own");
    assert_ne!(pb, Some(id.as_str()), "site B's passage id is its own");
    assert_ne!(pa, pb);
    // Each passage's only sighting has an id of the site's making too.
    for (app, p, container) in [(&a, pa, "MSCU1234566"), (&b, pb, "CSQU3054383")] {
        let (s, detail) = app.get(&format!("/api/v1/logs/{}", p.unwrap())).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(detail["container"], container);
        let sightings = detail["sightings"].as_array().unwrap();
        assert_eq!(sightings.len(), 1);
        assert_ne!(sightings[0]["id"], json!(id));
        // The client id names no passage.
        let (s, _) = app.get(&format!("/api/v1/logs/{id}")).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn a_reused_client_id_with_other_content_is_409() {
    let app = TestApp::spawn().await;
    let id = uuid::Uuid::new_v4().to_string();
    let first = with_id(read("MSCU1234566", "2024-05-01T08:30:00Z"), &id);
    let (s, original) = app.post(&first).await;
    assert_eq!(s, StatusCode::CREATED);

    // The same content spelled otherwise is a retry.
    let (s, retry) = app
        .post(
            &json!({"id": id, "owner": "mscu", "number": "123456", "check_digit": 6,
                      "captured_at": "2024-05-01T17:30:00+09:00", "camera_id": "cam-1"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{retry}");
    assert_eq!(retry["data"]["id"], original["data"]["id"]);

    // Other content under the same id: 409, alone or inside a batch.
    for other in [
        with_id(read("CSQU3054383", "2024-05-01T08:30:00Z"), &id),
        with_id(read("MSCU1234566", "2024-05-01T08:31:00Z"), &id),
    ] {
        let (s, err) = app.post(&other).await;
        assert_eq!(s, StatusCode::CONFLICT, "{err}");
        assert_eq!(
            (err["code"].as_str(), err["field"].as_str()),
            (Some("id_conflict"), Some("id"))
        );
        assert!(
            err["message"].as_str().unwrap().contains("different read"),
            "{err}"
        );
    }
    let (s, results) = app
        .post(&json!([
            with_id(read("CSQU3054383", "2024-05-01T08:30:00Z"), &id),
            read("TGHU7654320", "2024-05-01T08:30:00Z"),
        ]))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(results["results"][0]["code"], "id_conflict");
    assert_eq!(results["results"][1]["status"], "success");

    // Nothing of the refused reads was stored.
    let (_, logs) = app.get("/api/v1/logs").await;
    let containers: Vec<&str> = logs["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["container"].as_str().unwrap())
        .collect();
    assert_eq!(containers.len(), 2, "{containers:?}");
    assert!(!containers.contains(&"CSQU3054383"));
    let (_, p) = app
        .get(&format!(
            "/api/v1/logs/{}",
            original["data"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(p["seen_count"], 1);
    app.stop().await;
}

#[tokio::test]
async fn the_raw_read_is_kept_byte_for_byte_and_capped() {
    let app = TestApp::spawn().await;
    let text = r#"{ "container" :"MSCU1234566",   "captured_at":"2024-05-01T08:30:00Z", "lane": 3, "note":"ü" }"#;
    let (s, created) = post_text(&app, text).await;
    assert_eq!(s, StatusCode::CREATED);
    let id = created["data"]["id"].as_str().unwrap();
    let detail = app.text(&format!("/api/v1/logs/{id}")).await;
    assert!(detail.contains(text), "raw as received is in {detail}");

    // Inside a batch, each item keeps its own text.
    let item = r#"{"captured_at": "2024-05-01T09:00:00Z" , "container":"CSQU3054383"}"#;
    let (s, results) = post_text(&app, &format!("[ {item} ]")).await;
    assert_eq!(s, StatusCode::OK);
    let id = results["results"][0]["data"]["id"].as_str().unwrap();
    assert!(app.text(&format!("/api/v1/logs/{id}")).await.contains(item));

    // A read over the cap is a 413 that names the limit; in a batch, that
    // item alone.
    let mut big = read("TGHU7654320", "2024-05-01T10:00:00Z");
    big["junk"] = json!("x".repeat(5_000));
    let (s, err) = app.post(&big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{err}");
    assert_eq!(err["code"], "read_too_large");
    assert!(err["message"].as_str().unwrap().contains("4096"), "{err}");
    let (s, results) = app
        .post(&json!([big, read("TGHU7654320", "2024-05-01T10:00:00Z")]))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(results["results"][0]["code"], "read_too_large");
    assert_eq!(results["results"][1]["status"], "success");
    let (_, logs) = app.get("/api/v1/logs").await;
    assert_eq!(logs["logs"].as_array().unwrap().len(), 3);
    app.stop().await;
}

#[tokio::test]
async fn untrusted_camera_times_take_the_receive_time_and_are_flagged() {
    let app = TestApp::spawn().await;
    let (_, honest) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    let before = chrono::Utc::now();
    let mut got = Vec::new();
    for (container, body) in [
        ("CSQU3054383", read("CSQU3054383", "9999-12-31T23:59:59Z")),
        ("TGHU7654320", read("TGHU7654320", "0001-01-01T00:00:00Z")),
        (
            "TCLU1111110",
            json!({"container": "TCLU1111110", "camera_id": "cam-1"}),
        ),
    ] {
        let (s, r) = app.post(&body).await;
        assert_eq!(s, StatusCode::CREATED, "{container}: {r}");
        got.push((container, r));
    }
    let after = chrono::Utc::now();
    for ((container, r), flag) in got.iter().zip(["clock_skew", "clock_skew", "time_assumed"]) {
        let p = &r["data"];
        let t: chrono::DateTime<chrono::Utc> = p["captured_at"].as_str().unwrap().parse().unwrap();
        assert!(
            t >= before - chrono::Duration::seconds(1) && t <= after,
            "{container}: {t}"
        );
        assert!(
            p["flags"].as_array().unwrap().contains(&json!(flag)),
            "{container}: {p}"
        );
        // The camera's own time stays in the raw read.
        let detail = app
            .text(&format!("/api/v1/logs/{}", p["id"].as_str().unwrap()))
            .await;
        if *container == "CSQU3054383" {
            assert!(detail.contains("9999-12-31T23:59:59Z"));
        }
    }
    // The skewed reads do not pin the top of an oldest-first list either.
    let (_, asc) = app.get("/api/v1/logs?order=asc&limit=1").await;
    assert_eq!(asc["logs"][0]["id"], honest["data"]["id"]);
    app.stop().await;
}

#[tokio::test]
async fn a_leap_second_is_answered_as_it_is_stored() {
    let app = TestApp::spawn().await;
    let (s, r) = app.post(&read("MSCU1234566", "2016-12-31T23:59:60Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    let answered = r["data"]["captured_at"].clone();
    let (_, stored) = app
        .get(&format!(
            "/api/v1/logs/{}",
            r["data"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(stored["captured_at"], answered);
    assert!(
        answered
            .as_str()
            .unwrap()
            .starts_with("2016-12-31T23:59:59"),
        "{answered}"
    );
    app.stop().await;
}

#[tokio::test]
async fn misreads_are_corrected_and_unreadable_reads_are_queued_not_refused() {
    let app = TestApp::spawn().await;
    // A digit where the owner code needs a letter: once a 422.
    let (s, r) = app
        .post(&read("M5CU 123456 6", "2024-05-01T08:30:00Z"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{r}");
    assert_eq!(r["data"]["container"], "MSCU1234566");
    let id = r["data"]["id"].as_str().unwrap().to_string();
    let detail = app.get(&format!("/api/v1/logs/{id}")).await.1;
    assert_eq!(detail["corrections"][0]["from"], "M5CU1234566");
    assert_eq!(detail["corrections"][0]["rule"], "lookalike");
    assert_eq!(detail["sightings"][0]["raw"]["container"], "M5CU 123456 6");

    // Ten letters and digits that cannot be a number: 202, kept; a retry
    // with its id answers the same, other content under the id is 409.
    let client_id = uuid::Uuid::new_v4().to_string();
    let unreadable = with_id(read("M7CU12K456", "2024-05-01T08:31:00Z"), &client_id);
    let (s, q) = app.post(&unreadable).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{q}");
    assert_eq!(q["status"], "queued");
    let (s, again) = app.post(&unreadable).await;
    assert_eq!(
        (s, &again["data"]["id"]),
        (StatusCode::ACCEPTED, &q["data"]["id"])
    );
    let (s, _) = app
        .post(&with_id(
            read("M7CU12K457", "2024-05-01T08:31:00Z"),
            &client_id,
        ))
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    // Text that cannot be a container number at all is still refused.
    let (s, err) = app.post(&read("HELLO", "2024-05-01T08:31:00Z")).await;
    assert_eq!(
        (s, err["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("container"))
    );
    let metrics = app.text("/metrics").await;
    assert!(
        metrics.contains(r#"gatelog_recognitions_total{result="queued"} 1"#),
        "{metrics}"
    );
    app.stop().await;
}
