//! `GET /ws/logs`: the live feed of passages over WebSocket.
//!
//! Each connection is one task with one `select!` over the client's frames,
//! its queue from the broadcaster, a heartbeat and the shutdown signal
//! (the actorless model of actix-ws). The order of work on connect is what
//! makes resuming exact: join the broadcaster first, so the queue collects
//! every commit from then on; then read `initial_data` from the store; then
//! forward the queue, skipping `new_log` frames already in `initial_data`.
//!
//! A connection holds a slot under the caps of [`crate::ws_limit`] from
//! before the upgrade until its task ends; over a cap, the handshake gets
//! a 503 naming it.
//!
//! Query parameters, parsed strictly by [`crate::query`] (400 naming the
//! parameter):
//! - `limit`: passages in `initial_data`, 1 to 100 (default 10);
//! - `since`: a cursor from a `new_log` or `initial_data` frame, or an
//!   RFC 3339 time. `initial_data` then holds every passage captured after
//!   it (newest first, up to 1,000; `complete` says whether that was all).
//!
//! A client whose queue overflowed gets `{"type":"resync",…}` once its
//! queue has drained, naming how many frames it missed and the cursor to
//! resume from. A client that does not take a frame within
//! [`SEND_TIMEOUT`] is disconnected, and so is one that does not answer
//! pings for [`CLIENT_TIMEOUT`].

use std::collections::HashSet;
use std::time::{Duration, Instant};

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Session};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use gatelog_core::Passage;
use gatelog_local_store::{Cursor, LogFilter, Order};
use gatelog_metrics::{Disconnect, Label, Metrics};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::broadcast::{FrameKind, Subscription};
use crate::openapi::schema;
use crate::query::{self, param, FromParam, Limit};
use crate::ws_limit::WsSlot;
use crate::{ApiError, AppState};

/// How often the server pings.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);
/// A client silent for this long (no pong, no frame) is closed.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(25);
/// The longest one frame may take to leave; a client that does not read
/// for this long is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest frame a client may send. Clients only answer pings, so this
/// is small.
pub const MAX_CLIENT_FRAME: usize = 4 * 1024;
/// Passages in `initial_data` by default, and at most.
const DEFAULT_LIMIT: u32 = 10;
const MAX_LIMIT: u32 = 100;
/// Passages a resume returns at most; beyond that the client pages
/// through `GET /api/v1/logs`.
const MAX_RESUME: u32 = 1000;

/// What the client asked for on connect.
#[derive(Debug, Clone, PartialEq)]
struct Params {
    limit: u32,
    since: Option<Cursor>,
}

/// The parameters as given.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct WsQuery {
    /// Passages in `initial_data`, 1 to 100 (default 10).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100)]
    limit: Option<Limit<MAX_LIMIT>>,
    /// A cursor from a `new_log` or `initial_data` frame, or an RFC 3339
    /// time: `initial_data` then holds every passage captured after it, up
    /// to 1,000.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>)]
    since: Option<Since>,
}

fn parse_params(query: &str) -> Result<Params, ApiError> {
    let q: WsQuery = query::parse(query)?;
    Ok(Params {
        limit: q.limit.map_or(DEFAULT_LIMIT, |l| l.0),
        since: q.since.map(|s| s.0),
    })
}

/// A cursor as issued, or a time: every passage captured at or after it.
#[derive(Debug)]
struct Since(Cursor);

impl FromParam for Since {
    fn from_param(text: &str) -> Result<Self, String> {
        if let Some(c) = Cursor::decode(text) {
            return Ok(Self(c));
        }
        DateTime::parse_from_rfc3339(text)
            .map(|t| {
                Self(Cursor {
                    // The nil id sorts before every real one, so passages
                    // captured exactly at `t` are included.
                    captured_at: t.with_timezone(&Utc).timestamp_micros(),
                    id: Uuid::nil(),
                })
            })
            .map_err(|_| "must be a cursor from this feed or an RFC 3339 time".into())
    }
}

/// `GET /ws/logs`: the WebSocket handshake.
#[utoipa::path(
    get,
    path = "/ws/logs",
    tag = "live",
    params(WsQuery),
    responses(
        (status = 101, description = "Switched to WebSocket: `initial_data`, then `new_log`, \
            `corrected`, `resolved`, `sync_status`, `error` and `resync` frames as JSON text."),
        (status = 400, description = "Not a WebSocket handshake (`bad_handshake`, naming the \
            header), or a parameter is unknown, repeated or malformed (`bad_parameter`).",
            body = schema::Error),
        (status = 503, description = "Over a cap on live connections (`too_many_connections`, \
            naming it; `Retry-After`), or the store is unavailable (`store_unavailable`).",
            body = schema::Error),
    )
)]
pub async fn logs(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let params = parse_params(req.query_string())?;
    // The slot is taken before the upgrade, so the excess gets a 503 that
    // names the cap, and it moves into the connection's task, which frees
    // it when it ends, however it ends.
    let key = req.extensions().get::<Principal>().copied();
    let slot = state.ws_limiter.acquire(key)?;
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(handshake_error)?;
    let sub = state
        .broadcaster
        .join()
        .await
        .map_err(|_| ApiError::Unavailable)?;
    let stream = stream
        .max_frame_size(MAX_CLIENT_FRAME)
        .aggregate_continuations()
        .max_continuation_size(MAX_CLIENT_FRAME);
    // The connection is !Send (it holds the request payload), so it runs on
    // this worker's thread. The broadcaster counts it as live until it
    // ends, so shutdown can wait for its close frame to be queued.
    let live = state.broadcaster.clone();
    actix_web::rt::spawn(live.track(connection(
        state.into_inner(),
        params,
        sub,
        session,
        stream,
        slot,
    )));
    Ok(response)
}

/// A refused handshake in the API's error shape, naming the header.
fn handshake_error(e: actix_web::Error) -> actix_web::Error {
    use actix_http::ws::HandshakeError as H;
    let (header, message) = match e.as_error::<H>() {
        Some(H::GetMethodRequired) => ("method", "a WebSocket handshake is a GET"),
        Some(H::NoWebsocketUpgrade) => ("Upgrade", "send Upgrade: websocket"),
        Some(H::NoConnectionUpgrade) => ("Connection", "send Connection: Upgrade"),
        Some(H::NoVersionHeader) => ("Sec-WebSocket-Version", "send Sec-WebSocket-Version: 13"),
        Some(H::UnsupportedVersion) => (
            "Sec-WebSocket-Version",
            "only WebSocket version 13 is supported",
        ),
        Some(H::BadWebsocketKey) => (
            "Sec-WebSocket-Key",
            "Sec-WebSocket-Key is missing or not a 16-byte base64 value",
        ),
        None => return e,
    };
    ApiError::BadHandshake { header, message }.into()
}

/// Keeps `gatelog_ws_clients` right however the task ends.
struct ClientGauge(Metrics);

impl ClientGauge {
    fn new(metrics: &Metrics) -> Self {
        metrics.ws_clients.inc();
        Self(metrics.clone())
    }
}

impl Drop for ClientGauge {
    fn drop(&mut self) {
        self.0.ws_clients.dec();
    }
}

/// Sends one text frame, or reports the client as stalled.
async fn send(
    session: &mut Session,
    text: impl Into<bytestring::ByteString>,
) -> Result<(), Disconnect> {
    match tokio::time::timeout(SEND_TIMEOUT, session.text(text)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_closed)) => Err(Disconnect::Client),
        Err(_elapsed) => Err(Disconnect::Stalled),
    }
}

async fn connection(
    state: std::sync::Arc<AppState>,
    params: Params,
    mut sub: Subscription,
    mut session: Session,
    mut stream: actix_ws::AggregatedMessageStream,
    _slot: WsSlot,
) {
    let _gauge = ClientGauge::new(&state.metrics);
    let end = run(&state, params, &mut sub, &mut session, &mut stream).await;
    let reason = match end {
        Disconnect::Client => None,
        Disconnect::Stalled => Some(CloseReason {
            code: CloseCode::Policy,
            description: Some("client too slow: frames were not read".into()),
        }),
        Disconnect::Heartbeat => Some(CloseReason {
            code: CloseCode::Policy,
            description: Some("no answer to ping".into()),
        }),
        Disconnect::Shutdown => Some(CloseReason {
            code: CloseCode::Away,
            description: Some("server shutting down".into()),
        }),
    };
    state.metrics.ws_disconnects_total.with(end).inc();
    tracing::debug!(reason = end.as_str(), "websocket closed");
    // A stalled client cannot take a close frame either; give up quickly.
    let _ = tokio::time::timeout(Duration::from_secs(1), session.close(reason)).await;
}

async fn run(
    state: &AppState,
    params: Params,
    sub: &mut Subscription,
    session: &mut Session,
    stream: &mut actix_ws::AggregatedMessageStream,
) -> Disconnect {
    // 1. What the client has not seen yet, read after joining. Boxed, and
    // every temporary dropped before the live loop, so an idle connection
    // keeps none of it: the store query's future, the passages, the text.
    let greeting = match Box::pin(initial(state, &params)).await {
        Ok((logs, complete)) => Greeting::new(&logs, &params, complete),
        Err(e) => {
            tracing::warn!(error = %e, "initial data unavailable");
            let _ = send(
                session,
                json!({"type": "error", "message": "the local store is unavailable; reconnect shortly"})
                    .to_string(),
            )
            .await;
            return Disconnect::Shutdown;
        }
    };
    let Greeting {
        text,
        sent,
        mut position,
    } = greeting;
    if let Err(end) = send(session, text).await {
        return end;
    }
    if let Some(status) = sub.sync_status.take() {
        if let Err(end) = send(session, status.text.clone()).await {
            return end;
        }
    }

    // 2. The live loop.
    let mut heartbeat = tokio::time::interval(HEARTBEAT_INTERVAL);
    heartbeat.tick().await;
    let mut last_heard = Instant::now();
    loop {
        tokio::select! {
            frame = sub.frames.recv() => {
                let Some(frame) = frame else { return Disconnect::Shutdown };
                if frame.kind == FrameKind::NewLog {
                    if let Some(p) = frame.position {
                        if sent.contains(&p.id) {
                            continue;
                        }
                        if position.is_none_or(|q| (p.captured_at, p.id) > (q.captured_at, q.id)) {
                            position = Some(p);
                        }
                    }
                }
                if let Err(end) = send(session, frame.text.clone()).await {
                    return end;
                }
                if sub.frames.is_empty() {
                    let missed = sub.take_skipped();
                    if missed > 0 {
                        let notice = json!({
                            "type": "resync",
                            "missed": missed,
                            "reason": "this client fell behind and frames were skipped; \
                                       refetch GET /api/v1/logs or reconnect with ?since=<cursor>",
                            "cursor": position.map(|c| c.encode()),
                        });
                        if let Err(end) = send(session, notice.to_string()).await {
                            return end;
                        }
                    }
                }
            }
            msg = stream.next() => {
                last_heard = Instant::now();
                match msg {
                    Some(Ok(actix_ws::AggregatedMessage::Ping(bytes))) => {
                        if session.pong(&bytes).await.is_err() {
                            return Disconnect::Client;
                        }
                    }
                    Some(Ok(actix_ws::AggregatedMessage::Close(_))) | None => return Disconnect::Client,
                    // Pongs prove liveness; text and binary are ignored.
                    Some(Ok(_)) => {}
                    // Oversized or malformed frames end the connection.
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "websocket protocol error");
                        return Disconnect::Client;
                    }
                }
            }
            _ = heartbeat.tick() => {
                if last_heard.elapsed() > CLIENT_TIMEOUT {
                    return Disconnect::Heartbeat;
                }
                match tokio::time::timeout(SEND_TIMEOUT, session.ping(b"")).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Disconnect::Client,
                    Err(_) => return Disconnect::Stalled,
                }
            }
            _ = state.broadcaster.closing() => return Disconnect::Shutdown,
        }
    }
}

/// The `initial_data` frame, and what the live loop needs to know of it.
struct Greeting {
    text: String,
    /// Passages already sent, whose `new_log` must not repeat them.
    sent: HashSet<Uuid>,
    /// The newest passage sent, where a lagging client may resume.
    position: Option<Cursor>,
}

#[derive(serde::Serialize)]
struct InitialData<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    logs: &'a [Passage],
    cursor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    complete: Option<bool>,
}

impl Greeting {
    fn new(logs: &[Passage], params: &Params, complete: bool) -> Self {
        let position = logs.first().map(|p| Cursor {
            captured_at: p.captured_at.timestamp_micros(),
            id: p.id,
        });
        let frame = InitialData {
            kind: "initial_data",
            logs,
            cursor: position.or(params.since).map(|c| c.encode()),
            complete: params.since.map(|_| complete),
        };
        Self {
            // Serialising plain data cannot fail.
            text: serde_json::to_string(&frame).unwrap_or_default(),
            sent: logs.iter().map(|p| p.id).collect(),
            position,
        }
    }
}

/// The passages for `initial_data` and whether they are all there are.
async fn initial(
    state: &AppState,
    params: &Params,
) -> Result<(Vec<Passage>, bool), gatelog_local_store::StoreError> {
    let Some(since) = params.since else {
        return Ok((state.reader.recent(params.limit).await?, true));
    };
    let from = DateTime::from_timestamp_micros(since.captured_at).unwrap_or_default();
    let page = state
        .reader
        .search(&LogFilter {
            from: Some(from),
            order: Order::Desc,
            limit: MAX_RESUME,
            ..LogFilter::default()
        })
        .await?;
    let complete = page.next_cursor.is_none();
    let logs = page
        .logs
        .into_iter()
        .filter(|p| (p.captured_at.timestamp_micros(), p.id) > (since.captured_at, since.id))
        .collect();
    Ok((logs, complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(q: &str) -> String {
        match parse_params(q).unwrap_err() {
            ApiError::BadParameter { param, .. } => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn params_are_strict() {
        for (q, p) in [
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("limit=x", "limit"),
            ("since=yesterday", "since"),
            ("limit=1&limit=2", "limit"),
            ("colour=red", "colour"),
        ] {
            assert_eq!(param_of(q), p, "{q}");
        }
        assert_eq!(parse_params("").unwrap().limit, 10);
        assert_eq!(parse_params("limit=100").unwrap().limit, 100);
        let c = Cursor {
            captured_at: 1_714_552_200_000_000,
            id: Uuid::now_v7(),
        };
        assert_eq!(
            parse_params(&format!("since={}", c.encode()))
                .unwrap()
                .since,
            Some(c)
        );
        let t = parse_params("since=2024-05-01T08:30:00Z")
            .unwrap()
            .since
            .unwrap();
        assert_eq!((t.captured_at, t.id), (1_714_552_200_000_000, Uuid::nil()));
    }
}
