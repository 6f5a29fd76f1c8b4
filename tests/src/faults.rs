//! A fault-injecting TCP proxy, put between gatelog and its central
//! target (PostgreSQL directly, or a PostgREST server) by the network
//! fault tests and the soak.
//!
//! The test sets one [`Fault`] at a time with [`FaultProxy::set`]; every
//! connection, open or new, follows the fault in force when its bytes
//! pass. Resets are real TCP resets (`SO_LINGER` 0), so the client sees
//! "connection reset by peer", as after a middlebox drop, and not a tidy
//! close. [`FaultProxy::injected`] counts what was done, so a test can
//! show that the fault it meant to inject was hit.
//!
//! Layout: [`FaultProxy`] owns the accept loop; each connection is one
//! task with one `select!` over fault changes, both directions and the
//! delivery of delayed chunks.
//!
//! Written by hand: the crates that do this (toxiproxy's Rust port) run
//! as a separate server driven over HTTP, which a test would have to
//! start and stop; a hundred lines of tokio do the five faults here.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// What the proxy does to traffic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Bytes pass untouched.
    None,
    /// Everything the target sends reaches the client this much later, in
    /// order: each round trip takes this much longer.
    Latency(Duration),
    /// When a chunk from the client holds `pattern`, only its first half
    /// is passed on, and both sides are reset: the target sees a request
    /// cut in the middle, and the client a reset.
    ResetMidRequest { pattern: Vec<u8> },
    /// When a chunk from the client holds `pattern`, it passes whole; of
    /// what the target answers after it only `bytes` reach the client
    /// before both sides are reset. With the commit as the pattern, the
    /// target has committed and the client never hears it.
    CutReplyAfter { pattern: Vec<u8>, bytes: usize },
    /// Connections are taken, and whatever either side sends is dropped:
    /// nothing is answered, nothing is refused.
    Blackhole,
    /// Every open connection is reset, and every new one is reset as soon
    /// as it is accepted.
    Down,
}

/// Faults injected so far, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Injected {
    /// Chunks from the target that were delayed.
    pub delayed_chunks: u64,
    /// Requests cut in the middle and reset.
    pub resets_mid_request: u64,
    /// Replies cut short after the request had passed whole.
    pub replies_cut: u64,
    /// Connections that went silent.
    pub blackholed_connections: u64,
    /// Connections reset because the path was down.
    pub down_resets: u64,
}

#[derive(Default)]
struct Counts {
    delayed_chunks: AtomicU64,
    resets_mid_request: AtomicU64,
    replies_cut: AtomicU64,
    blackholed_connections: AtomicU64,
    down_resets: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A TCP proxy on a loopback port in front of `upstream`.
pub struct FaultProxy {
    /// Where clients connect instead of the target.
    pub addr: SocketAddr,
    fault: watch::Sender<Fault>,
    counts: Arc<Counts>,
    accept: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Starts forwarding to `upstream`, with no fault.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy binds");
        let addr = listener.local_addr().expect("a local address");
        let (fault, _) = watch::channel(Fault::None);
        let counts = Arc::new(Counts::default());
        let accept = {
            let fault = fault.clone();
            let counts = counts.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        continue;
                    };
                    let _ = client.set_nodelay(true);
                    let fault = fault.subscribe();
                    let counts = counts.clone();
                    tokio::spawn(connection(client, upstream, fault, counts));
                }
            })
        };
        Self {
            addr,
            fault,
            counts,
            accept,
        }
    }

    /// Puts `fault` in force for every connection, open or new.
    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }

    /// What has been injected so far.
    pub fn injected(&self) -> Injected {
        let c = &self.counts;
        Injected {
            delayed_chunks: c.delayed_chunks.load(Ordering::Relaxed),
            resets_mid_request: c.resets_mid_request.load(Ordering::Relaxed),
            replies_cut: c.replies_cut.load(Ordering::Relaxed),
            blackholed_connections: c.blackholed_connections.load(Ordering::Relaxed),
            down_resets: c.down_resets.load(Ordering::Relaxed),
        }
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // Open connections end by themselves: their fault channel closes.
        self.accept.abort();
    }
}

/// How a relayed connection ended.
enum End {
    /// One side closed, or the proxy went away: close the other.
    Closed,
    /// A fault: reset both sides.
    Reset,
}

/// Closes `stream` with a TCP reset instead of an orderly FIN.
fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut fault: watch::Receiver<Fault>,
    counts: Arc<Counts>,
) {
    let current = fault.borrow_and_update().clone();
    match current {
        Fault::Down => {
            bump(&counts.down_resets);
            reset(client);
            return;
        }
        Fault::Blackhole => {
            bump(&counts.blackholed_connections);
            // Read and drop until the client gives up, or the proxy goes.
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                tokio::select! {
                    r = client.read(&mut buf) => if matches!(r, Ok(0) | Err(_)) { return },
                    c = fault.changed() => if c.is_err() { return },
                }
            }
        }
        _ => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        reset(client);
        return;
    };
    let _ = server.set_nodelay(true);
    match relay(&mut client, &mut server, &mut fault, &counts).await {
        End::Closed => {}
        End::Reset => {
            reset(client);
            reset(server);
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

async fn relay(
    client: &mut TcpStream,
    server: &mut TcpStream,
    fault: &mut watch::Receiver<Fault>,
    counts: &Counts,
) -> End {
    let (mut from_client, mut to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let mut up = vec![0u8; 64 * 1024];
    let mut down = vec![0u8; 64 * 1024];
    // Once silent, a connection stays silent: its packets were lost.
    let mut blackholed = false;
    // Set by `CutReplyAfter`: how much of the answer still passes.
    let mut reply_budget: Option<usize> = None;
    // Chunks from the target waiting for their delivery time, in order.
    let mut delayed: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
    loop {
        let next_due = delayed.front().map(|(t, _)| *t);
        tokio::select! {
            changed = fault.changed() => {
                if changed.is_err() {
                    return End::Closed;
                }
                let now = fault.borrow_and_update().clone();
                match now {
                    Fault::Down => {
                        bump(&counts.down_resets);
                        return End::Reset;
                    }
                    Fault::Blackhole if !blackholed => {
                        blackholed = true;
                        bump(&counts.blackholed_connections);
                    }
                    _ => {}
                }
            }
            r = from_client.read(&mut up) => {
                let n = match r {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(n) => n,
                };
                if blackholed {
                    continue;
                }
                let chunk = &up[..n];
                let now = fault.borrow().clone();
                match now {
                    Fault::ResetMidRequest { pattern } if contains(chunk, &pattern) => {
                        let _ = to_server.write_all(&chunk[..n / 2]).await;
                        bump(&counts.resets_mid_request);
                        return End::Reset;
                    }
                    Fault::CutReplyAfter { pattern, bytes } if contains(chunk, &pattern) => {
                        reply_budget = Some(bytes);
                    }
                    _ => {}
                }
                if to_server.write_all(chunk).await.is_err() {
                    return End::Closed;
                }
            }
            r = from_server.read(&mut down) => {
                let n = match r {
                    Ok(0) | Err(_) => return End::Closed,
                    Ok(n) => n,
                };
                if blackholed {
                    continue;
                }
                let chunk = &down[..n];
                if let Some(budget) = reply_budget {
                    let _ = to_client.write_all(&chunk[..budget.min(n)]).await;
                    bump(&counts.replies_cut);
                    return End::Reset;
                }
                let delay = match &*fault.borrow() {
                    Fault::Latency(d) => Some(*d),
                    _ => None,
                };
                // A chunk never overtakes one still waiting, even once the
                // latency is lifted.
                if delay.is_some() || !delayed.is_empty() {
                    let mut due = Instant::now() + delay.unwrap_or_default();
                    if let Some((last, _)) = delayed.back() {
                        due = due.max(*last);
                    }
                    if delay.is_some() {
                        bump(&counts.delayed_chunks);
                    }
                    delayed.push_back((due, chunk.to_vec()));
                    continue;
                }
                if to_client.write_all(chunk).await.is_err() {
                    return End::Closed;
                }
            }
            _ = tokio::time::sleep_until(next_due.unwrap_or_else(Instant::now)), if next_due.is_some() => {
                let (_, chunk) = delayed.pop_front().expect("a chunk is due");
                if blackholed {
                    continue;
                }
                if to_client.write_all(&chunk).await.is_err() {
                    return End::Closed;
                }
            }
        }
    }
}
