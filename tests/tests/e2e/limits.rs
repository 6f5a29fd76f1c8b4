//! Bounded resources under hostile or careless use: WebSocket connection
//! caps, paged sightings, and a log that stays quiet about clients that
//! simply leave.

use std::time::Duration;

use gatelog_tests::BinaryApp;
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
