//! HTTP/1.1 framing of every kind of answer, read by a strict client.
//!
//! hyper's client parses each response as the protocol defines it: the
//! status line, the headers, and a body framed by `Content-Length`, by
//! chunked transfer coding, or by the end of the connection. A body that
//! claims one framing and is written in another is an error there, where
//! splitting the text would not notice. So every answer below is read with
//! hyper, and the plain ones share one keep-alive connection, which also
//! shows that each answer ends exactly where its framing says.

use futures_util::StreamExt;
use gatelog_tests::{container, read, TestApp};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Passages in the store: more than one export page (1,000), so the
/// streamed bodies come in several pieces.
const PASSAGES: u64 = 1_200;

/// A strict HTTP/1.1 client connection to `app`, with upgrades allowed.
async fn open(app: &TestApp) -> SendRequest<Empty<Bytes>> {
    let stream = TcpStream::connect(host(app)).await.expect("connects");
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("HTTP/1.1 handshake");
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    sender
}

fn host(app: &TestApp) -> &str {
    app.base.trim_start_matches("http://")
}

fn request(app: &TestApp, method: Method, path: &str, upgrade: bool) -> Request<Empty<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host(app));
    if upgrade {
        builder = builder
            .header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
            .header("sec-websocket-version", "13");
    }
    builder.body(Empty::new()).expect("a valid request")
}

/// Sends `req` and reads the whole body as its framing defines it; any
/// framing error fails the test with the request named.
async fn exchange(
    sender: &mut SendRequest<Empty<Bytes>>,
    req: Request<Empty<Bytes>>,
) -> (Response<()>, Bytes) {
    let what = format!("{} {}", req.method(), req.uri());
    sender.ready().await.expect("the connection is ready");
    let res = sender
        .send_request(req)
        .await
        .unwrap_or_else(|e| panic!("{what}: the response head does not parse: {e:?}"));
    let (head, body) = res.into_parts();
    let body = body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{what}: the body is not framed as announced: {e:?}"))
        .to_bytes();
    (Response::from_parts(head, ()), body)
}

fn content_type(res: &Response<()>) -> &str {
    res.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// Checks a body's content, once it has been read whole.
type BodyCheck = fn(&Bytes);

fn check_json_list(body: &Bytes) {
    let v: Value = serde_json::from_slice(body).expect("one whole JSON document");
    assert_eq!(v["logs"].as_array().expect("logs").len(), 50, "{v}");
}

fn check_csv(body: &Bytes) {
    let text = std::str::from_utf8(body).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("id,site_id,container,"),
        "{}",
        lines[0]
    );
    assert_eq!(
        lines.len() as u64,
        PASSAGES + 1,
        "a header and one row each"
    );
    assert!(text.contains(&container(0)) && text.contains(&container(PASSAGES - 1)));
}

fn check_jsonl(body: &Bytes) {
    let text = std::str::from_utf8(body).expect("UTF-8");
    let mut n = 0;
    for line in text.lines() {
        let passage: Value = serde_json::from_str(line).expect("each line is a passage");
        assert!(passage["container"].is_string(), "{line}");
        n += 1;
    }
    assert_eq!(n, PASSAGES);
}

fn check_error(body: &Bytes, code: &str) {
    let v: Value = serde_json::from_slice(body).expect("the error shape is JSON");
    assert_eq!(v["status"], "error", "{v}");
    assert_eq!(v["code"], code, "{v}");
}

async fn filled_app() -> TestApp {
    let app = TestApp::spawn().await;
    // A minute apart, so no two reads are near misses of each other.
    let start = chrono::DateTime::from_timestamp(1_714_521_600, 0).expect("a valid time");
    let reads: Vec<Value> = (0..PASSAGES)
        .map(|n| {
            let at = start + chrono::Duration::minutes(n as i64);
            read(&container(n), &at.to_rfc3339())
        })
        .collect();
    for chunk in reads.chunks(600) {
        let (s, body) = app.post(&Value::Array(chunk.to_vec())).await;
        assert_eq!(s.as_u16(), 200, "{body}");
    }
    app
}

/// JSON, both streamed exports, a 404 and a 405, one after another on
/// one keep-alive connection: each answer parses, and the next one starts
/// where the previous one ended.
#[tokio::test]
async fn every_kind_of_answer_is_framed_as_it_says() {
    let app = filled_app().await;
    let mut conn = open(&app).await;
    for round in 0..2 {
        let (res, body) =
            exchange(&mut conn, request(&app, Method::GET, "/api/v1/logs", false)).await;
        assert_eq!(res.status(), StatusCode::OK, "round {round}");
        assert!(content_type(&res).starts_with("application/json"));
        check_json_list(&body);

        let path = "/api/v1/logs/export?format=csv";
        let (res, body) = exchange(&mut conn, request(&app, Method::GET, path, false)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(content_type(&res).starts_with("text/csv"));
        check_csv(&body);

        let path = "/api/v1/logs/export?format=jsonl";
        let (res, body) = exchange(&mut conn, request(&app, Method::GET, path, false)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(content_type(&res), "application/x-ndjson");
        check_jsonl(&body);

        let (res, body) = exchange(&mut conn, request(&app, Method::GET, "/nowhere", false)).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        check_error(&body, "not_found");

        let (res, body) = exchange(
            &mut conn,
            request(&app, Method::DELETE, "/api/v1/logs", false),
        )
        .await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        check_error(&body, "method_not_allowed");
    }
    app.stop().await;
}

/// A WebSocket upgrade request to a route that does not upgrade gets that
/// route's ordinary answer, framed correctly: the streamed exports too,
/// whose chunked body was once written unframed.
#[tokio::test]
async fn an_upgrade_request_to_a_plain_route_gets_a_well_framed_answer() {
    let app = filled_app().await;
    let cases: [(&str, StatusCode, BodyCheck); 5] = [
        ("/api/v1/logs/export?format=csv", StatusCode::OK, check_csv),
        (
            "/api/v1/logs/export?format=jsonl",
            StatusCode::OK,
            check_jsonl,
        ),
        ("/api/v1/logs", StatusCode::OK, check_json_list),
        ("/ws/nowhere", StatusCode::NOT_FOUND, |b| {
            check_error(b, "not_found")
        }),
        ("/ws/logs?limit=0", StatusCode::BAD_REQUEST, |b| {
            check_error(b, "bad_parameter")
        }),
    ];
    for (path, status, check) in cases {
        let mut conn = open(&app).await;
        let (res, body) = exchange(&mut conn, request(&app, Method::GET, path, true)).await;
        assert_eq!(res.status(), status, "{path}");
        check(&body);
    }
    app.stop().await;
}

/// The WebSocket handshake itself, read by the same client: a 101 with the
/// right accept key, then frames on the upgraded connection.
#[tokio::test]
async fn the_websocket_handshake_is_a_proper_101() {
    let app = TestApp::spawn().await;
    let (s, _) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s.as_u16(), 201);
    let mut conn = open(&app).await;
    conn.ready().await.unwrap();
    let res = conn
        .send_request(request(&app, Method::GET, "/ws/logs", true))
        .await
        .expect("the handshake's answer parses");
    assert_eq!(res.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(
        res.headers()["sec-websocket-accept"],
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    assert!(res.headers()["upgrade"]
        .to_str()
        .unwrap()
        .eq_ignore_ascii_case("websocket"));
    let upgraded = hyper::upgrade::on(res)
        .await
        .expect("the connection upgrades");
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, None).await;
    let first = loop {
        match ws.next().await.expect("a frame").expect("a valid frame") {
            Message::Text(t) => break serde_json::from_str::<Value>(&t).unwrap(),
            _ => continue,
        }
    };
    assert_eq!(first["type"], "initial_data");
    assert_eq!(first["logs"][0]["container"], "MSCU1234566");
    ws.close(None).await.unwrap();
    app.stop().await;
}
