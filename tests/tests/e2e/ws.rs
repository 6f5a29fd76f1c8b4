//! The live feed, `GET /ws/logs`, over a real WebSocket.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use gatelog_tests::{container, read, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single expected frame may take.
const FRAME_WAIT: Duration = Duration::from_secs(10);

async fn connect(app: &TestApp, query: &str) -> Ws {
    let url = format!("{}/ws/logs{query}", app.base.replacen("http", "ws", 1));
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    ws
}

/// The next JSON frame, skipping control frames.
async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(FRAME_WAIT, ws.next())
            .await
            .expect("a frame arrives in time")
            .expect("the connection stays open")
            .expect("a valid frame");
        match msg {
            Message::Text(text) => return serde_json::from_str(&text).expect("frames are JSON"),
            Message::Close(c) => panic!("closed by the server: {c:?}"),
            _ => continue,
        }
    }
}

/// The next frame of `kind`, skipping others (such as `sync_status`).
async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let v = next_json(ws).await;
        if v["type"] == kind {
            return v;
        }
    }
}

fn at(minute: u64) -> String {
    format!("2024-05-01T{:02}:{:02}:00Z", 8 + minute / 60, minute % 60)
}

#[tokio::test]
async fn initial_data_holds_the_ten_most_recent_passages() {
    let app = TestApp::spawn().await;
    for n in 0..12 {
        let (s, _) = app.post(&read(&container(n), &at(n))).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let mut ws = connect(&app, "").await;
    let first = next_json(&mut ws).await;
    assert_eq!(first["type"], "initial_data");
    let logs = first["logs"].as_array().expect("logs is an array");
    assert_eq!(logs.len(), 10);
    // Newest first: the last read posted leads.
    assert_eq!(logs[0]["container"], container(11));
    assert_eq!(logs[9]["container"], container(2));

    let mut ws = connect(&app, "?limit=3").await;
    let first = next_json(&mut ws).await;
    assert_eq!(first["logs"].as_array().unwrap().len(), 3);

    // Bad parameters are refused before the upgrade, naming the parameter.
    for (q, param) in [
        ("?limit=101", "limit"),
        ("?since=soon", "since"),
        ("?x=1", "x"),
    ] {
        let (s, body) = app.get(&format!("/ws/logs{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(body["field"], param, "{q}");
    }
    app.stop().await;
}

#[tokio::test]
async fn new_log_and_duplicate_arrive_after_a_post() {
    let app = TestApp::spawn().await;
    let mut ws = connect(&app, "").await;
    let first = next_json(&mut ws).await;
    assert_eq!(first["logs"], json!([]));

    let (s, posted) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    let new = next_of(&mut ws, "new_log").await;
    assert_eq!(new["log"]["id"], posted["data"]["id"]);
    assert_eq!(new["log"]["container"], "MSCU1234566");
    assert_eq!(new["log"]["seen_count"], 1);
    assert!(new["cursor"].is_string());

    let (s, _) = app.post(&read("MSCU1234566", "2024-05-01T08:31:30Z")).await;
    assert_eq!(s, StatusCode::OK);
    let dup = next_of(&mut ws, "duplicate").await;
    assert_eq!(dup["id"], posted["data"]["id"]);
    assert_eq!(dup["seen_count"], 2);
    assert_eq!(dup["last_seen_at"], "2024-05-01T08:31:30Z");

    let metrics = app.text("/metrics").await;
    assert!(metrics.contains("gatelog_ws_clients 1"), "{metrics}");
    drop(ws);
    app.stop().await;
}

#[tokio::test]
async fn resume_with_since_returns_what_was_missed() {
    let app = TestApp::spawn().await;
    let mut ws = connect(&app, "").await;
    next_of(&mut ws, "initial_data").await;
    for n in 0..3 {
        app.post(&read(&container(n), &at(n))).await;
    }
    let mut cursor = String::new();
    for _ in 0..3 {
        cursor = next_of(&mut ws, "new_log").await["cursor"]
            .as_str()
            .unwrap()
            .to_string();
    }
    drop(ws);

    // Missed while disconnected.
    let mut missed = HashSet::new();
    for n in 3..8 {
        let (s, body) = app.post(&read(&container(n), &at(n))).await;
        assert_eq!(s, StatusCode::CREATED);
        missed.insert(body["data"]["id"].as_str().unwrap().to_string());
    }

    let mut ws = connect(&app, &format!("?since={cursor}")).await;
    let resumed = next_of(&mut ws, "initial_data").await;
    let got: HashSet<String> = resumed["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(got, missed);
    assert_eq!(resumed["complete"], true);

    // And it keeps going live after the resume.
    app.post(&read(&container(8), &at(8))).await;
    let new = next_of(&mut ws, "new_log").await;
    assert_eq!(new["log"]["container"], container(8));

    // A time works as well as a cursor: everything captured from then on.
    let mut ws = connect(&app, &format!("?since={}", at(6))).await;
    let resumed = next_of(&mut ws, "initial_data").await;
    let containers: Vec<&str> = resumed["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["container"].as_str().unwrap())
        .collect();
    assert_eq!(
        containers,
        [container(8), container(7), container(6)]
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    );
    app.stop().await;
}

/// A client that never reads sits on a socket with a tiny receive buffer,
/// so its frames back up on the server at once.
async fn stuck_client(app: &TestApp) -> Ws {
    let addr: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let url = format!("ws://{addr}/ws/logs");
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .expect("websocket connects");
    ws
}

/// An object-storage URL of about 1,000 bytes, like a presigned S3 link.
fn presigned(kind: &str, n: u64) -> String {
    let url = format!(
        "https://media.example.com/site-1/{kind}/{n:08}.bin?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature="
    );
    let pad = 1000 - url.len();
    format!("{url}{}", "a".repeat(pad))
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing in\n{text}"))
}

#[tokio::test]
async fn a_client_that_never_reads_stalls_neither_ingest_nor_other_clients() {
    const READS: u64 = 4000;
    const BATCH: u64 = 100;
    let app = TestApp::spawn().await;
    let mut stuck = stuck_client(&app).await;
    let mut reader = connect(&app, "").await;
    next_of(&mut reader, "initial_data").await;

    // The reading client counts every new passage while ingest runs.
    let collector = tokio::spawn(async move {
        let mut ids = HashSet::new();
        while (ids.len() as u64) < READS {
            let v = next_json(&mut reader).await;
            assert_ne!(v["type"], "resync", "the reading client fell behind");
            if v["type"] == "new_log" {
                ids.insert(v["log"]["id"].as_str().unwrap().to_string());
            }
        }
        ids
    });

    let started = Instant::now();
    let mut posts = tokio::task::JoinSet::new();
    for b in 0..READS / BATCH {
        let client = app.client.clone();
        let url = app.url("/api/v1/recognitions");
        posts.spawn(async move {
            let body: Vec<Value> = (b * BATCH..(b + 1) * BATCH)
                .map(|n| {
                    let mut r = read(&container(n), &at(n % 600));
                    // Cameras that store media in object storage send
                    // presigned URLs about this long. They make frames
                    // large enough that the stuck client's backlog
                    // outgrows the kernel's socket buffers during the test.
                    r["source_video"] = json!(presigned("video", n));
                    r["cropped_image_ref"] = json!(presigned("crop", n));
                    r
                })
                .collect();
            let r = client.post(url).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            let body: Value = r.json().await.unwrap();
            assert!(body["results"]
                .as_array()
                .unwrap()
                .iter()
                .all(|r| r["status"] == "success"));
        });
        // Four batches in flight at a time, like a few busy cameras.
        if posts.len() >= 4 {
            posts.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = posts.join_next().await {
        r.unwrap();
    }
    let ingest = started.elapsed();
    // Not a speed test (that is `gatelog-bench ws`): a blocked ingest
    // would wait for the stuck client forever, so any finite bound shows
    // it did not; this one is generous for a loaded CI machine.
    assert!(ingest < Duration::from_secs(60), "ingest took {ingest:?}");

    let ids = tokio::time::timeout(Duration::from_secs(60), collector)
        .await
        .expect("the reading client gets every passage in time")
        .unwrap();
    assert_eq!(ids.len() as u64, READS);

    // The stuck client was skipped ahead (it will get a resync notice) or
    // dropped as stalled: either way the slow path ran.
    let text = app.text("/metrics").await;
    let skipped = metric(&text, "gatelog_ws_skipped_frames_total");
    let stalled = metric(&text, "gatelog_ws_disconnects_total{reason=\"stalled\"}");
    assert!(
        skipped > 0.0 || stalled > 0.0,
        "the stuck client was neither skipped nor dropped"
    );
    // Once it reads again, it learns that it was skipped ahead and where
    // to resume from.
    if skipped > 0.0 {
        let notice = tokio::time::timeout(Duration::from_secs(30), next_of(&mut stuck, "resync"))
            .await
            .expect("the resync notice arrives");
        assert!(notice["missed"].as_u64().unwrap() > 0, "{notice}");
        assert!(notice["cursor"].is_string(), "{notice}");
    }
    drop(stuck);
    app.stop().await;
}

/// The broadcaster on its own: sync status from a watch channel reaches
/// joined clients (and clients that join later), and a published error
/// reaches every client.
#[tokio::test]
async fn broadcaster_forwards_sync_status_and_errors() {
    use gatelog_api::broadcaster;
    use gatelog_local_store::{Store, StoreConfig};

    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        path: dir.path().join("g.db"),
        ..StoreConfig::default()
    };
    let metrics = gatelog_metrics::Metrics::new();
    let opened = Store::open(
        &config,
        &gatelog_core::DedupConfig::default(),
        "site-1",
        metrics.clone(),
    )
    .await
    .unwrap();
    let (status_tx, status_rx) = tokio::sync::watch::channel(json!({"target": "none"}));
    let (actor, handle) = broadcaster(&opened.store, metrics, Some(status_rx));
    assert!(handle.has_sync_status());
    let stop = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn({
        let stop = stop.clone();
        async move { actor.run(stop).await }
    });

    let mut early = handle.join().await.unwrap();
    let first: Value = serde_json::from_str(&early.sync_status.take().unwrap().text).unwrap();
    assert_eq!(first, json!({"type": "sync_status", "target": "none"}));

    status_tx
        .send(json!({"target": "supabase", "pending": 4, "dead_letters": 1}))
        .unwrap();
    let frame = tokio::time::timeout(FRAME_WAIT, early.frames.recv())
        .await
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(&frame.text).unwrap();
    assert_eq!(
        v,
        json!({"type": "sync_status", "target": "supabase", "pending": 4, "dead_letters": 1})
    );
    // A client joining now starts from the latest status.
    let late = handle.join().await.unwrap();
    let v: Value = serde_json::from_str(&late.sync_status.as_ref().unwrap().text).unwrap();
    assert_eq!(v["pending"], 4);

    handle.publish_error("disk full");
    for mut sub in [early, late] {
        let frame = tokio::time::timeout(FRAME_WAIT, sub.frames.recv())
            .await
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&frame.text).unwrap();
        assert_eq!(v, json!({"type": "error", "message": "disk full"}));
    }
    stop.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn shutdown_closes_live_connections_with_going_away() {
    let app = TestApp::spawn().await;
    let mut ws = connect(&app, "").await;
    next_of(&mut ws, "initial_data").await;
    // Open connections would otherwise hold HTTP's graceful stop for its
    // whole 30 s timeout.
    tokio::time::timeout(Duration::from_secs(10), app.stop())
        .await
        .expect("shutdown does not wait for live clients");
    let close = loop {
        match tokio::time::timeout(FRAME_WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(frame))) => break frame,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    let close = close.expect("a close code");
    assert_eq!(u16::from(close.code), 1001);
    assert_eq!(close.reason.as_str(), "server shutting down");
}

/// Reads an HTTP response head (up to the blank line) byte by byte, so
/// nothing after it is consumed.
async fn read_head(stream: &mut TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let b = tokio::time::timeout(FRAME_WAIT, stream.read_u8())
            .await
            .expect("the response head arrives in time")
            .expect("the connection stays open for the head");
        head.push(b);
    }
    String::from_utf8(head).expect("the head is text")
}

fn handshake(app: &TestApp, path: &str) -> String {
    let host = app.base.trim_start_matches("http://");
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

#[tokio::test]
async fn a_frame_sent_with_the_handshake_is_not_lost() {
    use tokio::io::AsyncWriteExt;
    use tokio_tungstenite::tungstenite::protocol::Role;
    let app = TestApp::spawn().await;
    let host = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.unwrap();
    // The handshake and, in the same write, a masked ping with payload
    // "hi" (RFC 6455 §5.2: FIN + ping, mask bit + length 2, key, data).
    let key = [1u8, 2, 3, 4];
    let mut bytes = handshake(&app, "/ws/logs").into_bytes();
    bytes.extend_from_slice(&[0x89, 0x82]);
    bytes.extend_from_slice(&key);
    bytes.extend(b"hi".iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
    stream.write_all(&bytes).await.unwrap();

    let head = read_head(&mut stream).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
        "{head}"
    );
    let mut ws = WebSocketStream::from_raw_socket(stream, Role::Client, None).await;
    let mut saw_initial = false;
    loop {
        let msg = tokio::time::timeout(FRAME_WAIT, ws.next())
            .await
            .expect("the pong arrives in time")
            .expect("the connection stays open")
            .expect("a valid frame");
        match msg {
            Message::Pong(p) => {
                assert_eq!(&p[..], b"hi");
                break;
            }
            Message::Text(t) => saw_initial |= t.contains("\"initial_data\""),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    assert!(saw_initial, "initial_data came first");
    app.stop().await;
}

/// What the server answers to `request` (a raw upgrade request), read
/// until it closes the connection.
async fn answer_to_upgrade(app: &TestApp, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(FRAME_WAIT, stream.read_to_string(&mut response))
        .await
        .expect("the server answers and closes in time")
        .unwrap();
    response
}

#[tokio::test]
async fn an_oversized_client_frame_ends_that_connection_only() {
    use futures_util::SinkExt;
    let app = TestApp::spawn().await;
    let mut big = connect(&app, "").await;
    next_of(&mut big, "initial_data").await;
    big.send(Message::text("x".repeat(64 * 1024)))
        .await
        .unwrap();
    // The server closes it: a close frame, then the end of the stream.
    let ended = tokio::time::timeout(FRAME_WAIT, async {
        loop {
            match big.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => continue,
            }
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the connection with the oversized frame ended"
    );

    // Others are unaffected.
    let mut other = connect(&app, "").await;
    next_of(&mut other, "initial_data").await;
    let (s, _) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    let frame = next_of(&mut other, "new_log").await;
    assert_eq!(frame["log"]["container"], "MSCU1234566");
    app.stop().await;
}

#[tokio::test]
async fn a_bad_handshake_is_a_400_that_names_the_header() {
    let app = TestApp::spawn().await;
    let body_of = |response: &str| -> Value {
        serde_json::from_str(response.split_once("\r\n\r\n").unwrap().1).unwrap()
    };
    for (drop, header) in [
        ("Sec-WebSocket-Key", "Sec-WebSocket-Key"),
        ("Sec-WebSocket-Version", "Sec-WebSocket-Version"),
    ] {
        let request: String = handshake(&app, "/ws/logs")
            .split_inclusive("\r\n")
            .filter(|line| !line.starts_with(drop))
            .collect();
        let response = answer_to_upgrade(&app, &request).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{response}");
        let body = body_of(&response);
        assert_eq!(body["code"], "bad_handshake", "{body}");
        assert_eq!(body["field"], header, "{body}");
    }
    let request = handshake(&app, "/ws/logs").replace("Version: 13", "Version: 8");
    let body = body_of(&answer_to_upgrade(&app, &request).await);
    assert_eq!(body["field"], "Sec-WebSocket-Version", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_corrected_number_is_pushed_as_corrected() {
    let app = TestApp::spawn().await;
    let mut ws = connect(&app, "").await;
    next_of(&mut ws, "initial_data").await;
    // A misread opens the passage; the true number, read twice, corrects it.
    let (_, first) = app.post(&read("CSQU3054883", "2024-05-01T08:30:00Z")).await;
    let id = first["data"]["id"].clone();
    let (_, truth) = app
        .post(&json!([
            read("CSQU3054383", "2024-05-01T08:30:01Z"),
            read("CSQU3054383", "2024-05-01T08:30:02Z"),
        ]))
        .await;
    assert_eq!(truth["results"][0]["data"]["id"], id);
    let pushed = next_of(&mut ws, "corrected").await;
    assert_eq!(pushed["id"], id);
    assert_eq!(pushed["container"], "CSQU3054383");
    assert_eq!(pushed["corrected_from"], "CSQU3054883");
    assert_eq!(pushed["rule"], "consensus");
    let (_, detail) = app
        .get(&format!("/api/v1/logs/{}", id.as_str().unwrap()))
        .await;
    assert_eq!(detail["container"], "CSQU3054383");
    assert_eq!(detail["corrections"][0]["rule"], "consensus");
    app.stop().await;
}
