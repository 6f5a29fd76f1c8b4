//! Bounded resources under hostile or careless use: WebSocket connection
//! caps, paged sightings, and a log that stays quiet about clients that
//! simply leave.

use std::collections::HashSet;
use std::time::Duration;

use gatelog_tests::{read, BinaryApp, TestApp};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A WebSocket handshake for `/ws/logs` on `host`.
fn handshake(host: &str) -> String {
    format!(
        "GET /ws/logs HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Clients that send a handshake and reset the connection before the
/// answer arrives (a tab closed mid-connect, a scanner) are ordinary: the
/// server logs them at debug level, never as errors.
#[tokio::test]
async fn clients_that_leave_mid_handshake_are_not_logged_as_errors() {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let app = BinaryApp::start_logging_to(
        dir.path(),
        &[("RUST_LOG", "warn,gatelog_api=debug")],
        log.into(),
    )
    .await;
    let host = app.base.trim_start_matches("http://").to_string();
    for _ in 0..200 {
        let mut stream = TcpStream::connect(&host).await.unwrap();
        stream.write_all(handshake(&host).as_bytes()).await.unwrap();
        // Closing with a zero linger sends a reset instead of a FIN, as a
        // client that is killed or loses its network does.
        stream.set_zero_linger().unwrap();
        drop(stream);
    }
    // A client that stays still gets its feed: the server is healthy.
    let url = format!("{}/ws/logs", app.base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("the handshake is answered")
    .expect("a WebSocket connects");
    ws.close(None).await.unwrap();
    // Stopping the server waits for every connection, so the log is
    // complete once it has exited.
    let status = app.terminate().await;
    assert!(status.success(), "{status:?}");

    let text = std::fs::read_to_string(&log_path).unwrap();
    let errors: Vec<&str> = text.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "{} error lines, such as {:?}",
        errors.len(),
        errors.first()
    );
    // The resets did reach the server while it answered: they are in the
    // log, at debug level.
    assert!(
        text.lines()
            .any(|l| l.contains("DEBUG") && l.contains("client left before the answer")),
        "no debug line for a client that left:\n{text}"
    );
}

/// The sightings of one passage come in pages: the detail holds the first
/// 100 and a cursor, and the sightings route walks the rest, each sighting
/// exactly once, in capture order.
#[tokio::test]
async fn a_passage_with_many_sightings_is_paged() {
    let app = TestApp::spawn().await;
    // 250 reads of one container, two at each second (so page boundaries
    // fall between reads captured at the same instant), posted in an order
    // that is not the capture order.
    let mut reads: Vec<Value> = (0..250u32)
        .map(|i| {
            let t = chrono::DateTime::from_timestamp(1_714_552_200 + i64::from(i / 2), 0).unwrap();
            read("MSCU1234566", &t.to_rfc3339())
        })
        .collect();
    reads.reverse();
    reads.swap(0, 100);
    let (s, body) = app.post(&Value::Array(reads)).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let (_, page) = app.get("/api/v1/logs").await;
    assert_eq!(page["logs"].as_array().unwrap().len(), 1, "one passage");
    let id = page["logs"][0]["id"].as_str().unwrap().to_string();

    let (s, detail) = app.get(&format!("/api/v1/logs/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(detail["seen_count"], 250);
    let first = detail["sightings"].as_array().unwrap();
    assert_eq!(first.len(), 100, "the detail holds the first page only");
    let mut cursor = detail["sightings_next_cursor"]
        .as_str()
        .expect("a cursor to the rest")
        .to_string();

    let mut seen: Vec<(String, String)> = first.iter().map(key).collect();
    let mut pages = 0;
    loop {
        // An odd page size, so pages end inside pairs of equal times.
        let (s, page) = app
            .get(&format!(
                "/api/v1/logs/{id}/sightings?limit=33&cursor={cursor}"
            ))
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        let sightings = page["sightings"].as_array().unwrap();
        assert!(sightings.len() <= 33);
        seen.extend(sightings.iter().map(key));
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
        assert!(pages < 20, "paging ends");
    }
    assert_eq!(seen.len(), 250, "every sighting once");
    let ids: HashSet<&String> = seen.iter().map(|(_, id)| id).collect();
    assert_eq!(ids.len(), 250, "no sighting twice");
    let times: Vec<i64> = seen
        .iter()
        .map(|(t, _)| {
            chrono::DateTime::parse_from_rfc3339(t)
                .unwrap()
                .timestamp_micros()
        })
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "in capture order");

    // Without a cursor the route starts at the beginning, 100 by default.
    let (_, page) = app.get(&format!("/api/v1/logs/{id}/sightings")).await;
    let again: Vec<(String, String)> = page["sightings"]
        .as_array()
        .unwrap()
        .iter()
        .map(key)
        .collect();
    assert_eq!(again, seen[..100]);
    // A page that reaches the end says so.
    let (_, page) = app
        .get(&format!("/api/v1/logs/{id}/sightings?limit=1000"))
        .await;
    assert_eq!(page["sightings"].as_array().unwrap().len(), 250);
    assert!(page["next_cursor"].is_null());

    // Strict parameters and a clear answer for what is not there.
    for (q, param) in [
        ("limit=1001", "limit"),
        ("cursor=xyz", "cursor"),
        ("order=asc", "order"),
    ] {
        let (s, e) = app.get(&format!("/api/v1/logs/{id}/sightings?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(e["field"], param, "{q}: {e}");
    }
    let (s, e) = app
        .get(&format!("/api/v1/logs/{}/sightings", uuid::Uuid::new_v4()))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{e}");
    let (s, e) = app.get(&format!("/api/v1/logs/{id}?limit=5")).await;
    assert_eq!(
        s,
        StatusCode::BAD_REQUEST,
        "the detail takes no parameters: {e}"
    );
}

/// A passage with few sightings has them all in its detail, and no cursor.
#[tokio::test]
async fn a_short_passage_has_no_sightings_cursor() {
    let app = TestApp::spawn().await;
    let (s, p) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, detail) = app
        .get(&format!(
            "/api/v1/logs/{}",
            p["data"]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(detail["sightings"].as_array().unwrap().len(), 1);
    assert!(detail["sightings_next_cursor"].is_null(), "{detail}");
}

/// A sighting's capture time and id, its position in the order.
fn key(s: &Value) -> (String, String) {
    (
        s["captured_at"].as_str().unwrap().to_string(),
        s["id"].as_str().unwrap().to_string(),
    )
}
