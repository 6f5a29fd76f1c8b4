//! The connection layer for upgraded requests (`GET /ws/logs`).
//!
//! actix-http's HTTP/1 dispatcher gives every connection a read buffer and
//! a write buffer of 8 KiB each, fixed by constants, and keeps them for as
//! long as the connection lives. For request–response traffic that is
//! right; for a WebSocket that sits idle on a dashboard for hours it is
//! most of what the connection costs. So the server hands upgrade requests
//! (`Upgrade: websocket`, or `CONNECT`) here instead: the dispatcher and
//! its buffers go away, and the request runs through the same app (auth,
//! CORS, metrics, routing, the actix-ws handler) with a request body read
//! straight from the socket. The response head is encoded with the
//! connection's own HTTP/1 codec; then the dispatcher's task ends, and a
//! small task of its own writes the body (the WebSocket frames that
//! actix-ws produces) to the socket chunk by chunk, with no buffer kept in
//! between. Those tasks are tracked by the [`BroadcastHandle`], so shutdown
//! waits for their close frames.
//!
//! Anything that is not a `101 Switching Protocols` (a refusal, or an
//! upgrade request to a route that does not upgrade) is written as it
//! comes and the connection closed.

use std::future::poll_fn;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_codec::{Encoder, Framed};
use actix_http::body::{BodySize, MessageBody};
use actix_http::error::PayloadError;
use actix_http::h1::{self, Message};
use actix_http::{ConnectionType, Request, Response, StatusCode};
use actix_service::Service;
use actix_web::dev::ServiceResponse;
use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use crate::broadcast::BroadcastHandle;

/// The most one read from the socket takes. Clients of `/ws/logs` only
/// answer pings, so reads are small; this is stack space, not a buffer
/// the connection keeps.
const READ_CHUNK: usize = 1024;

/// The longest one chunk of the response may take to leave. The
/// WebSocket handler gives up on a client sooner (its own send timeout);
/// this bounds the socket write behind it, so a client that stopped
/// reading cannot hold the connection open.
const WRITE_TIMEOUT: Duration = Duration::from_secs(15);

/// Serves one upgrade request on its own connection, through `app`.
pub(crate) async fn serve<S, B>(
    app: Rc<S>,
    live: BroadcastHandle,
    (mut req, framed): (Request, Framed<TcpStream, h1::Codec>),
) -> Result<(), actix_web::Error>
where
    S: Service<Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody + 'static,
{
    let parts = framed.into_parts();
    let mut codec = parts.codec;
    // Bytes the client sent after the request head (it should wait for the
    // 101, but may not) are the start of the body. The dispatcher's buffers
    // are dropped here.
    let early = (!parts.read_buf.is_empty()).then(|| parts.read_buf.freeze());
    drop(parts.write_buf);
    let (read, mut write) = parts.io.into_split();
    *req.payload() = actix_http::Payload::from(
        Box::pin(SocketBody { read, early }) as actix_http::BoxedPayloadStream
    );

    // Boxed, so the app's future (the whole middleware chain) is freed once
    // it has answered, instead of sizing this connection's future for as
    // long as the connection lives.
    let res: Response<B> = match Box::pin(app.call(req)).await {
        Ok(res) => res.into(),
        Err(e) => {
            return answer_and_close(&mut codec, write, e.error_response().into())
                .await
                .or_else(client_left)
        }
    };
    if res.status() != StatusCode::SWITCHING_PROTOCOLS {
        return answer_and_close(&mut codec, write, res)
            .await
            .or_else(client_left);
    }

    let (head, body) = res.into_parts();
    if let Err(e) = write_head(&mut codec, &mut write, head, body.size()).await {
        // The handler's connection task notices on its own: its frames
        // have nowhere to go once the body is dropped here.
        return client_left(e);
    }
    // From here the connection is its own small task: the dispatcher and
    // this future (sized for the app's whole middleware chain) end now.
    actix_web::rt::spawn(live.track(pump(Box::pin(body), write)));
    Ok(())
}

/// Sorts a failed write of the response head. A client that closed or
/// reset its connection before the answer was written (a dashboard tab
/// closed mid-handshake, a probe that connects and leaves) is how
/// connections end, not a fault: it is logged at debug level. Anything
/// else (a write that timed out, an encoding failure) is returned, and the
/// HTTP layer logs it as an error.
fn client_left(e: std::io::Error) -> Result<(), actix_web::Error> {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::BrokenPipe | K::ConnectionReset | K::ConnectionAborted | K::NotConnected => {
            tracing::debug!(error = %e, "client left before the answer was written");
            Ok(())
        }
        _ => Err(e.into()),
    }
}

/// Writes an upgraded response's body, the new protocol's bytes, as they
/// come (the codec's transfer encoding for an upgrade is "until close").
async fn pump<B: MessageBody>(mut body: Pin<Box<B>>, mut write: OwnedWriteHalf) {
    while let Some(chunk) = poll_fn(|cx| body.as_mut().poll_next(cx)).await {
        let Ok(chunk) = chunk else { break };
        match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&chunk)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), write.shutdown()).await;
}

/// Writes a response that does not upgrade and closes the connection.
/// The body is streamed as it comes (an export can be large); one of
/// unknown length ends with the connection.
async fn answer_and_close<B: MessageBody>(
    codec: &mut h1::Codec,
    mut write: OwnedWriteHalf,
    res: Response<B>,
) -> std::io::Result<()> {
    let (mut head, body) = res.into_parts();
    head.head_mut().set_connection_type(ConnectionType::Close);
    write_head(codec, &mut write, head, body.size()).await?;
    pump(Box::pin(body), write).await;
    Ok(())
}

/// Encodes a response head with the connection's codec and writes it.
async fn write_head(
    codec: &mut h1::Codec,
    write: &mut OwnedWriteHalf,
    head: Response<()>,
    size: BodySize,
) -> std::io::Result<()> {
    let mut out = BytesMut::with_capacity(256);
    codec.encode(Message::Item((head, size)), &mut out)?;
    tokio::time::timeout(WRITE_TIMEOUT, write.write_all(&out))
        .await
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
}

/// The request body of an upgraded connection: what the client sends,
/// read from the socket as it arrives.
struct SocketBody {
    read: OwnedReadHalf,
    early: Option<Bytes>,
}

impl Stream for SocketBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(early) = this.early.take() {
            return Poll::Ready(Some(Ok(early)));
        }
        let mut chunk = [0u8; READ_CHUNK];
        let mut buf = ReadBuf::new(&mut chunk);
        match Pin::new(&mut this.read).poll_read(cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => Poll::Ready(None),
            Poll::Ready(Ok(())) => Poll::Ready(Some(Ok(Bytes::copy_from_slice(buf.filled())))),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(PayloadError::Io(e)))),
            Poll::Pending => Poll::Pending,
        }
    }
}
