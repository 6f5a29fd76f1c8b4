//! The exceptions queue and operator corrections, over real HTTP and a
//! real WebSocket: `GET /api/v1/exceptions`, `POST
//! /api/v1/exceptions/{id}/resolve`, `PATCH /api/v1/logs/{id}`, and who
//! may use them.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use gatelog_supervisor::config::Config;
use gatelog_tests::TestApp;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const INGEST: &str = "ingest-key-5b1e0c7d9a2f4e38";
const READ: &str = "read-key-8c2d4f6a1b3e5d70";
/// Configured as `kim:<key>`: corrections record `kim`.
const OPERATOR: &str = "operator-key-1f3e5a7c9b2d4e6f";

fn with_keys(c: &mut Config) {
    c.auth.ingest_keys = vec![SecretString::from(INGEST)];
    c.auth.read_keys = vec![SecretString::from(READ)];
    c.auth.operator_keys = vec![SecretString::from(format!("kim:{OPERATOR}"))];
}

/// A time on the test day, `secs` after 08:00.
fn at(secs: u64) -> String {
    format!(
        "2024-05-01T{:02}:{:02}:{:02}Z",
        8 + secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Sends `r` and returns the status and JSON body.
async fn call(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = r.send().await.expect("request is sent");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Posts one read with the ingest key.
async fn post(app: &TestApp, body: Value) -> (StatusCode, Value) {
    call(
        app.client
            .post(app.url("/api/v1/recognitions"))
            .bearer_auth(INGEST)
            .json(&body),
    )
    .await
}

/// Posts a read whose text cannot be made into a number and returns its
/// id in the queue.
async fn queue(app: &TestApp, text: &str, secs: u64, camera: &str) -> String {
    let (s, body) = post(
        app,
        json!({"container": text, "captured_at": at(secs), "camera_id": camera,
               "cropped_image_ref": "crops/1.png", "confidence": 0.4}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["status"], "queued");
    body["data"]["id"].as_str().unwrap().to_string()
}

async fn get(app: &TestApp, path: &str, key: &str) -> (StatusCode, Value) {
    call(app.client.get(app.url(path)).bearer_auth(key)).await
}

async fn resolve(app: &TestApp, id: &str, key: &str, container: &str) -> (StatusCode, Value) {
    call(
        app.client
            .post(app.url(&format!("/api/v1/exceptions/{id}/resolve")))
            .bearer_auth(key)
            .json(&json!({ "container": container })),
    )
    .await
}

async fn patch(app: &TestApp, id: &str, key: &str, body: Value) -> (StatusCode, Value) {
    call(
        app.client
            .patch(app.url(&format!("/api/v1/logs/{id}")))
            .bearer_auth(key)
            .json(&body),
    )
    .await
}

#[tokio::test]
async fn resolving_a_queued_read_makes_a_sighting_with_the_operators_correction() {
    let app = TestApp::spawn_with(with_keys).await;
    let id = queue(&app, "CSQU30K438", 10, "gate-cam-1").await;

    // The queue shows what an operator needs to decide.
    let (s, list) = get(&app, "/api/v1/exceptions", OPERATOR).await;
    assert_eq!(s, StatusCode::OK, "{list}");
    assert_eq!(list["open"]["unresolved_reads"], 1, "{list}");
    let item = &list["exceptions"][0];
    assert_eq!(item["kind"], "unresolved_read");
    assert_eq!(item["id"], id.as_str());
    assert_eq!(item["text"], "CSQU30K438");
    assert_eq!(item["camera_id"], "gate-cam-1");
    assert_eq!(item["cropped_image_ref"], "crops/1.png");
    assert_eq!(item["captured_at"], "2024-05-01T08:00:10Z");
    assert_eq!(item["raw"]["container"], "CSQU30K438");

    // Anything but a whole valid number is refused, naming the field, and
    // leaves the read queued.
    for bad in ["CSQU305438", "CSQU3054384", "CSQX3054383", "HELLO"] {
        let (s, e) = resolve(&app, &id, OPERATOR, bad).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {e}");
        assert_eq!(e["field"], "container", "{bad}: {e}");
    }
    let (s, e) = call(
        app.client
            .post(app.url(&format!("/api/v1/exceptions/{id}/resolve")))
            .bearer_auth(OPERATOR)
            .json(&json!({"container": "CSQU3054383", "note": "x"})),
    )
    .await;
    assert_eq!(
        (s, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("note"))
    );

    let (s, done) = resolve(&app, &id, OPERATOR, "csqu 305438-3").await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "resolved");
    assert_eq!(done["outcome"], "created");
    let passage = &done["data"];
    assert_eq!(passage["container"], "CSQU3054383");
    assert_eq!(passage["check_digit_ok"], true);
    assert_eq!(passage["captured_at"], "2024-05-01T08:00:10Z");
    let corrections = passage["corrections"].as_array().unwrap();
    assert_eq!(corrections.len(), 1, "{passage}");
    assert_eq!(corrections[0]["from"], "CSQU30K438");
    assert_eq!(corrections[0]["to"], "CSQU3054383");
    assert_eq!(corrections[0]["rule"], "operator");
    assert_eq!(corrections[0]["by"], "kim");

    // The sighting keeps the read as it came, and says how it was
    // corrected.
    let pid = passage["id"].as_str().unwrap();
    let (s, detail) = get(&app, &format!("/api/v1/logs/{pid}"), READ).await;
    assert_eq!(s, StatusCode::OK);
    let sighting = &detail["sightings"][0];
    assert_eq!(sighting["container"], "CSQU3054383");
    assert_eq!(sighting["corrected_from"], "CSQU30K438");
    assert_eq!(sighting["rule"], "operator");
    assert_eq!(sighting["raw"]["container"], "CSQU30K438");
    assert_eq!(sighting["camera_id"], "gate-cam-1");
    assert_eq!(detail["corrections"][0]["by"], "kim");

    // The queue is empty now; resolving again is a 409 that writes nothing.
    let (_, list) = get(&app, "/api/v1/exceptions", READ).await;
    assert_eq!(list["open"]["total"], 0, "{list}");
    assert_eq!(list["exceptions"], json!([]));
    let (s, e) = resolve(&app, &id, OPERATOR, "CSQU3054383").await;
    assert_eq!(s, StatusCode::CONFLICT, "{e}");
    assert_eq!(e["code"], "already_resolved");
    assert!(e["message"].as_str().unwrap().contains(pid), "{e}");
    let (_, detail) = get(&app, &format!("/api/v1/logs/{pid}"), READ).await;
    assert_eq!(detail["seen_count"], 1);

    // Unknown and malformed ids.
    let unknown = uuid::Uuid::now_v7().to_string();
    let (s, _) = resolve(&app, &unknown, OPERATOR, "CSQU3054383").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, e) = resolve(&app, "nope", OPERATOR, "CSQU3054383").await;
    assert_eq!(
        (s, e["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("id"))
    );
    app.stop().await;
}

#[tokio::test]
async fn a_resolved_read_joins_its_trucks_passage_and_two_resolves_race_to_one() {
    let app = TestApp::spawn_with(with_keys).await;
    let (s, first) = post(
        &app,
        json!({"container": "CSQU3054383", "captured_at": at(100), "camera_id": "gate-cam-1"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let pid = first["data"]["id"].as_str().unwrap().to_string();
    let id = queue(&app, "CSQU30K438", 102, "gate-cam-1").await;

    // Two operators resolve it at once: exactly one of them does.
    let (a, b) = tokio::join!(
        resolve(&app, &id, OPERATOR, "CSQU3054383"),
        resolve(&app, &id, OPERATOR, "CSQU3054383")
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::CONFLICT],
        "{a:?} {b:?}"
    );
    let done = if a.0 == StatusCode::OK { a.1 } else { b.1 };
    assert_eq!(done["outcome"], "joined");
    assert_eq!(done["data"]["id"], pid.as_str());
    assert_eq!(done["data"]["seen_count"], 2);
    assert_eq!(done["data"]["version"], 2);
    let corrections = done["data"]["corrections"].as_array().unwrap();
    assert_eq!(corrections.len(), 1);
    assert_eq!(
        (&corrections[0]["from"], &corrections[0]["by"]),
        (&json!("CSQU30K438"), &json!("kim"))
    );
    let (_, detail) = get(&app, &format!("/api/v1/logs/{pid}"), READ).await;
    assert_eq!(detail["seen_count"], 2);
    assert_eq!(detail["sightings"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test]
async fn patching_a_passage_bumps_its_version_and_pushes_corrected() {
    let app = TestApp::spawn_with(with_keys).await;
    // Reads without a check digit leave the passage unverified.
    let mut pid = String::new();
    for i in 0..3 {
        let (_, body) = post(
            &app,
            json!({"container": "CSQU305488", "captured_at": at(200 + i), "camera_id": "gate-cam-2"}),
        )
        .await;
        pid = body["data"]["id"].as_str().unwrap().to_string();
    }
    let (_, before) = get(&app, &format!("/api/v1/logs/{pid}"), READ).await;
    let version = before["version"].as_i64().unwrap();
    let (_, list) = get(&app, "/api/v1/exceptions?kind=unverified_passage", READ).await;
    assert_eq!(list["exceptions"][0]["id"], pid.as_str(), "{list}");
    assert_eq!(list["exceptions"][0]["passage"]["container"], "CSQU305488");

    let url = format!("{}/ws/logs", app.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {READ}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("websocket connects");
    // The feed has joined once initial_data arrives.
    next_of(&mut ws, "initial_data").await;

    // Bad bodies are refused, naming the field.
    for (body, field, status) in [
        (json!({}), "container", StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"container": 5}),
            "container",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"container": "CSQU3054384"}),
            "container",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"container": "CSQU3054383", "reason": 1}),
            "reason",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"container": "CSQU3054383", "reason": "a\nb"}),
            "reason",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"container": "CSQU3054383", "reson": "typo"}),
            "reson",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, e) = patch(&app, &pid, OPERATOR, body.clone()).await;
        assert_eq!(
            (s, e["field"].as_str()),
            (status, Some(field)),
            "{body}: {e}"
        );
    }

    let (s, done) = patch(
        &app,
        &pid,
        OPERATOR,
        json!({"container": "CSQU3054383", "reason": "number read from the seal photo"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["status"], "corrected");
    let p = &done["data"];
    assert_eq!(p["container"], "CSQU3054383");
    assert_eq!(p["check_digit_ok"], true);
    assert_eq!(
        p["version"],
        version + 1,
        "the version is bumped so sync sends it"
    );
    assert_eq!(p["sync_state"], "pending");
    let c = p["corrections"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(c["from"], "CSQU305488");
    assert_eq!(c["to"], "CSQU3054383");
    assert_eq!(c["rule"], "operator");
    assert_eq!(c["by"], "kim");
    assert_eq!(c["reason"], "number read from the seal photo");

    let event = next_of(&mut ws, "corrected").await;
    assert_eq!(event["id"], pid.as_str());
    assert_eq!(event["container"], "CSQU3054383");
    assert_eq!(event["corrected_from"], "CSQU305488");
    assert_eq!(event["rule"], "operator");
    assert_eq!(event["by"], "kim");
    assert_eq!(event["version"], version + 1);

    // Stored, and out of the queue; the same number again changes nothing.
    let (_, detail) = get(&app, &format!("/api/v1/logs/{pid}"), READ).await;
    assert_eq!(detail["container"], "CSQU3054383");
    assert_eq!(detail["version"], version + 1);
    assert_eq!(detail["corrections"].as_array().unwrap().last(), Some(&c));
    let (_, list) = get(&app, "/api/v1/exceptions", READ).await;
    assert_eq!(list["open"]["total"], 0, "{list}");
    let (s, same) = patch(&app, &pid, OPERATOR, json!({"container": "CSQU3054383"})).await;
    assert_eq!(
        (s, same["status"].as_str()),
        (StatusCode::OK, Some("unchanged"))
    );
    assert_eq!(same["data"]["version"], version + 1);

    let unknown = uuid::Uuid::now_v7().to_string();
    let (s, _) = patch(
        &app,
        &unknown,
        OPERATOR,
        json!({"container": "CSQU3054383"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn only_operator_keys_correct_and_ingest_keys_cannot_read() {
    let app = TestApp::spawn_with(with_keys).await;
    let id = queue(&app, "MSCU12K456", 5, "gate-cam-1").await;
    let (_, body) = post(
        &app,
        json!({"container": "MSCU123456", "captured_at": at(50), "camera_id": "gate-cam-1"}),
    )
    .await;
    let pid = body["data"]["id"].as_str().unwrap().to_string();

    // A read key may look but not correct: 403 in the API's error shape.
    let (s, _) = get(&app, "/api/v1/exceptions", READ).await;
    assert_eq!(s, StatusCode::OK);
    let (s, e) = resolve(&app, &id, READ, "MSCU1234566").await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{e}"
    );
    assert!(
        e["message"].as_str().unwrap().contains("operator key"),
        "{e}"
    );
    let (s, e) = patch(&app, &pid, READ, json!({"container": "MSCU1234566"})).await;
    assert_eq!(
        (s, e["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{e}"
    );

    // An ingest key may only post reads.
    let (s, e) = get(&app, "/api/v1/exceptions", INGEST).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{e}");
    let (s, _) = get(&app, &format!("/api/v1/logs/{pid}"), INGEST).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = resolve(&app, &id, INGEST, "MSCU1234566").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = patch(&app, &pid, INGEST, json!({"container": "MSCU1234566"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // No key, a wrong key, and the operator's name instead of its key.
    for key in [
        None,
        Some("wrong-key-0000000000"),
        Some(&*format!("kim:{OPERATOR}")),
    ] {
        let mut r = app
            .client
            .patch(app.url(&format!("/api/v1/logs/{pid}")))
            .json(&json!({"container": "MSCU1234566"}));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        let (s, _) = call(r).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{key:?}");
    }

    // Nothing changed; then the operator key reads, and corrects.
    let (_, list) = get(&app, "/api/v1/exceptions", OPERATOR).await;
    assert_eq!(list["open"]["unresolved_reads"], 1);
    assert_eq!(list["open"]["unverified_passages"], 1);
    let (_, detail) = get(&app, &format!("/api/v1/logs/{pid}"), OPERATOR).await;
    assert_eq!(detail["version"], 1);
    let (s, _) = patch(&app, &pid, OPERATOR, json!({"container": "MSCU1234566"})).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = resolve(&app, &id, OPERATOR, "MSCU1234566").await;
    assert_eq!(s, StatusCode::OK);
    // An operator key does not ingest.
    let (s, _) = call(
        app.client
            .post(app.url("/api/v1/recognitions"))
            .bearer_auth(OPERATOR)
            .json(&json!({"container": "MSCU1234566"})),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn without_keys_corrections_are_local() {
    let app = TestApp::spawn().await;
    let (s, body) = app
        .post(&json!({"container": "MSCU12K456", "captured_at": at(1)}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{body}");
    let id = body["data"]["id"].as_str().unwrap();
    let (s, done) = call(
        app.client
            .post(app.url(&format!("/api/v1/exceptions/{id}/resolve")))
            .json(&json!({"container": "MSCU1234566"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{done}");
    assert_eq!(done["data"]["corrections"][0]["by"], "local");
    app.stop().await;
}

#[tokio::test]
async fn the_queue_pages_by_keyset_and_filters_like_the_logs() {
    let app = TestApp::spawn_with(with_keys).await;
    // Five queued reads and four unverified passages, interleaved in time
    // on two cameras; one verified passage, which is not an exception.
    let mut expected = Vec::new();
    for i in 0..9u64 {
        let secs = 600 * i;
        let camera = if i % 2 == 0 { "cam-a" } else { "cam-b" };
        if i % 2 == 0 {
            expected.push(queue(&app, &format!("MSCU{i:02}K{i:03}"), secs, camera).await);
        } else {
            let (s, body) = post(
                &app,
                json!({"container": format!("TGHU{:06}", 100_000 + i * 11_111), "captured_at": at(secs), "camera_id": camera}),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{body}");
            expected.push(body["data"]["id"].as_str().unwrap().to_string());
        }
    }
    let (s, _) = post(
        &app,
        json!({"container": "CSQU3054383", "captured_at": at(1000), "camera_id": "cam-a"}),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);

    // Pages of two, newest first, each item exactly once.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/exceptions?limit=2&cursor={c}"),
            None => "/api/v1/exceptions?limit=2".to_string(),
        };
        let (s, page) = get(&app, &path, READ).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        assert_eq!(page["open"]["total"], 9);
        assert_eq!(page["open"]["unresolved_reads"], 5);
        assert_eq!(page["open"]["unverified_passages"], 4);
        for item in page["exceptions"].as_array().unwrap() {
            seen.push(item["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    let mut newest_first = expected.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);

    // Oldest first, one kind, one camera, a time range.
    let ids = |page: &Value| -> Vec<String> {
        page["exceptions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, page) = get(&app, "/api/v1/exceptions?order=asc&limit=3", READ).await;
    assert_eq!(ids(&page), expected[..3]);
    let (_, page) = get(&app, "/api/v1/exceptions?kind=unresolved_read", READ).await;
    assert_eq!(ids(&page).len(), 5);
    assert!(page["exceptions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["kind"] == "unresolved_read"));
    let (_, page) = get(&app, "/api/v1/exceptions?camera=cam-b&order=asc", READ).await;
    assert_eq!(ids(&page), [1, 3, 5, 7].map(|i| expected[i].clone()));
    let from = at(1200);
    let to = at(3000);
    let (_, page) = get(
        &app,
        &format!("/api/v1/exceptions?from={from}&to={to}&order=asc"),
        READ,
    )
    .await;
    assert_eq!(ids(&page), expected[2..6]);
    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 9);

    // Strict parameters: 400 naming the parameter.
    for (q, p) in [
        ("limit=0", "limit"),
        ("kind=all", "kind"),
        ("cursor=zz", "cursor"),
        ("colour=red", "colour"),
        ("from=today", "from"),
    ] {
        let (s, e) = get(&app, &format!("/api/v1/exceptions?{q}"), READ).await;
        assert_eq!(
            (s, e["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(p)),
            "{q}"
        );
    }
    app.stop().await;
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next frame of `kind`, skipping others.
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame arrives in time")
            .expect("the connection stays open")
            .expect("a valid frame");
        if let Message::Text(text) = msg {
            let v: Value = serde_json::from_str(&text).expect("frames are JSON");
            if v["type"] == kind {
                return v;
            }
        }
    }
}
