//! Bounded resources under hostile or careless use: WebSocket connection
//! caps, paged sightings, and a log that stays quiet about clients that
//! simply leave.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;
use gatelog_tests::{read, BinaryApp, TestApp};
use reqwest::StatusCode;
use secrecy::SecretString;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

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
    let app = BinaryApp::start_with(
        dir.path(),
        &[("RUST_LOG", "warn,gatelog_api=debug")],
        |cmd| {
            cmd.stderr(log);
        },
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
    // The resets did reach the server while it answered: the feeds they
    // opened ended as the client's doing, in the log at debug level.
    assert!(
        text.lines()
            .any(|l| l.contains("DEBUG") && l.contains("websocket closed") && l.contains("client")),
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

const INGEST: &str = "ingest-key-51c0a7e2d94b";
const READ_A: &str = "read-key-a-0f3e9b27c81d";
const READ_B: &str = "read-key-b-6d2a48f1e07c";

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The WebSocket URL of the live feed.
fn feed_url(app_base: &str) -> String {
    format!("{}/ws/logs", app_base.replacen("http", "ws", 1))
}

/// Connects to the feed with one extra header (a bearer key or a session
/// cookie) and waits for `initial_data`, so the server holds the
/// connection when this returns.
async fn feed(base: &str, header: (&str, &str)) -> Ws {
    let mut req = feed_url(base).into_client_request().unwrap();
    req.headers_mut().insert(
        tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(header.0.as_bytes()).unwrap(),
        header.1.parse().expect("a header value"),
    );
    let (mut ws, _) = tokio::time::timeout(Duration::from_secs(10), connect_async(req))
        .await
        .expect("the handshake is answered")
        .expect("the feed connects");
    let first = next_text(&mut ws).await;
    assert_eq!(first["type"], "initial_data", "{first}");
    ws
}

/// The next JSON text frame.
async fn next_text(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame arrives")
            .expect("the connection stays open")
            .expect("a valid frame");
        if let Message::Text(t) = msg {
            return serde_json::from_str(&t).expect("frames are JSON");
        }
    }
}

/// The next frame of `kind`, skipping others (such as `sync_status`).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next_text(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

/// Sends a handshake with `header` over a raw socket and reads the answer
/// to the end, for a handshake that is expected to be refused: its status,
/// its head (lower case) and its JSON body.
async fn refusal(base: &str, header: (&str, &str)) -> (u16, String, Value) {
    let host = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.unwrap();
    let request = handshake(host).replacen(
        "\r\n\r\n",
        &format!("\r\n{}: {}\r\n\r\n", header.0, header.1),
        1,
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("a refusal is answered and closed")
        .unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let status = head[9..12].parse().unwrap();
    (
        status,
        head.to_ascii_lowercase(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// Live WebSocket clients, from `/metrics`.
async fn ws_clients(app: &TestApp) -> f64 {
    let text = app.text("/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix("gatelog_ws_clients "))
        .and_then(|v| v.parse().ok())
        .expect("gatelog_ws_clients is exported")
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

/// Per key and in total, the live feed refuses the connection over its cap
/// with a 503 that names the cap; a session counts as the read key that
/// signed in; another key still connects; a slot comes back when its
/// client leaves; and ingest carries on while every slot is taken.
#[tokio::test]
async fn websocket_connections_are_capped_per_key_and_in_total() {
    let app = TestApp::spawn_with(|c| {
        c.auth.ingest_keys = vec![SecretString::from(INGEST)];
        c.auth.read_keys = vec![SecretString::from(READ_A), SecretString::from(READ_B)];
        c.limits.ws_connections_per_key = 2;
        c.limits.ws_connections_total = 3;
    })
    .await;
    let base = app.base.clone();

    // Key A: one connection with the bearer key, one through a session
    // signed in with it. Those are its two.
    let mut a1 = feed(&base, ("authorization", &bearer(READ_A))).await;
    let r = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({ "key": READ_A }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let cookie = r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let _a2 = feed(&base, ("cookie", &cookie)).await;

    for header in [
        ("authorization", bearer(READ_A)),
        ("cookie", cookie.clone()),
    ] {
        let (status, head, body) = refusal(&base, (header.0, &header.1)).await;
        assert_eq!(status, 503, "{head}");
        assert!(head.contains("retry-after:"), "{head}");
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], "too_many_connections");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains("limits.ws_connections_per_key") && message.contains(" 2 "),
            "{message}"
        );
    }

    // Key B still connects: the third connection, the total.
    let _b1 = feed(&base, ("authorization", &bearer(READ_B))).await;
    let (status, _, body) = refusal(&base, ("authorization", &bearer(READ_B))).await;
    assert_eq!(status, 503);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("limits.ws_connections_total"),
        "{body}"
    );
    assert_eq!(ws_clients(&app).await, 3.0, "refusals hold no connection");

    // Ingest is not a WebSocket and is not held back by the caps, and the
    // connected clients get its passage.
    let r = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .bearer_auth(INGEST)
        .json(&read("MSCU1234566", "2024-05-01T08:30:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let frame = next_of(&mut a1, "new_log").await;
    assert_eq!(frame["log"]["container"], "MSCU1234566");

    // A client leaves; once the server has seen it go, its slot is free
    // for the same key.
    a1.close(None).await.unwrap();
    drop(a1);
    let mut waited = 0;
    while ws_clients(&app).await > 2.0 {
        assert!(waited < 500, "the server notices a client that left");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _a3 = feed(&base, ("authorization", &bearer(READ_A))).await;
    let (status, _, _) = refusal(&base, ("authorization", &bearer(READ_A))).await;
    assert_eq!(status, 503, "and the cap holds again");
}

/// With a small open-file limit, idle feeds take at most half of it, and
/// ingest still gets descriptors: the excess is refused with a 503 instead
/// of starving the accept loop.
#[tokio::test]
async fn idle_feeds_leave_descriptors_for_ingest() {
    const OPEN_FILES: u64 = 256;
    let dir = tempfile::tempdir().unwrap();
    let app = BinaryApp::start_with(dir.path(), &[], |cmd| {
        // SAFETY: setrlimit is async-signal-safe, and the closure touches
        // nothing else of the parent between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let lim = libc::rlimit {
                    rlim_cur: OPEN_FILES,
                    rlim_max: OPEN_FILES,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
    .await;
    let base = app.base.clone();
    let mut open = Vec::new();
    let mut refused = 0;
    // More clients than the process has descriptors.
    for _ in 0..OPEN_FILES + 44 {
        let attempt = tokio::time::timeout(Duration::from_secs(10), connect_async(feed_url(&base)))
            .await
            .expect("every handshake is answered, accepted or refused");
        match attempt {
            Ok((ws, _)) => open.push(ws),
            Err(tokio_tungstenite::tungstenite::Error::Http(r)) => {
                assert_eq!(r.status().as_u16(), 503);
                refused += 1;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(open.len() as u64, OPEN_FILES / 2, "half the descriptors");
    assert_eq!(refused, OPEN_FILES + 44 - OPEN_FILES / 2);

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = client
        .post(format!("{base}/api/v1/recognitions"))
        .json(&read("MSCU1234566", "2024-05-01T08:30:00Z"))
        .send()
        .await
        .expect("ingest is accepted while the feeds hold their share");
    assert_eq!(r.status(), StatusCode::CREATED);
    let frame = next_of(&mut open[0], "new_log").await;
    assert_eq!(frame["log"]["container"], "MSCU1234566");
    drop(open);
    assert!(app.terminate().await.success());
}
