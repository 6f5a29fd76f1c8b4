//! `gatelog-bench ws`: the live feed's push latency and memory per client.
//!
//! The server under test is `gatelog serve`, started as a child process on
//! loopback, as `gatelog-bench ingest` does. The benchmark
//! then measures:
//!
//! - memory per 1,000 idle WebSocket clients: the server's RSS before and
//!   after that many clients connect and take their `initial_data`;
//! - push latency with 1, 100 and 1,000 connected clients: one read is
//!   POSTed at a time, and each client notes when the read's `new_log`
//!   frame arrives. Latency is counted from the moment the POST's 2xx ack
//!   reaches the poster (and, for reference, from when the POST was sent).
//!   A frame that arrives before the ack counts as zero.
//!
//! The clients run in this process, on the same cores as the server, so
//! the figures include the cost of receiving 1,000 copies of each frame.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::latency::{ms, Latencies};
use crate::reads;
use crate::server::{Server, ServerOptions};

#[derive(Debug, Clone, Args)]
pub struct WsArgs {
    /// Folder for the server's store. Default: a new temporary folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Connected client counts to measure push latency at.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub clients: Vec<usize>,
    /// Reads posted, one at a time, per client count.
    #[arg(long, default_value_t = 200)]
    pub posts: usize,
    /// Pause between posts, in milliseconds.
    #[arg(long, default_value_t = 20)]
    pub pause_ms: u64,
    /// Idle clients for the memory measurement.
    #[arg(long, default_value_t = 1000)]
    pub idle: usize,
    /// Passages in each idle client's `initial_data` (the `limit` it asks
    /// for), to see how memory follows what a client was sent.
    #[arg(long, default_value_t = 10)]
    pub initial: u32,
}

/// Where a `new_log` frame's container number sits, found without parsing
/// the whole frame, to keep the clients' own CPU use low.
fn container_in(frame: &str) -> Option<&str> {
    if !frame.contains(r#""type":"new_log""#) {
        return None;
    }
    let start = frame.find(r#""container":""#)? + r#""container":""#.len();
    frame.get(start..start + 11)
}

/// Connects `n` clients. Each reads `initial_data`, then reports every
/// `new_log` it gets as (container, arrival time) on `tx`.
async fn connect_clients(
    addr: &str,
    n: usize,
    limit: u32,
    tx: Option<mpsc::UnboundedSender<(String, Instant)>>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::with_capacity(n);
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(n.max(1));
    for i in 0..n {
        let url = format!("ws://{addr}/ws/logs?limit={limit}");
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("client {i} cannot connect"))?;
        let tx = tx.clone();
        let ready = ready_tx.clone();
        tasks.push(tokio::spawn(async move {
            let (_write, mut read) = ws.split();
            let mut first = true;
            while let Some(Ok(msg)) = read.next().await {
                if let Message::Text(text) = msg {
                    if first {
                        first = false;
                        let _ = ready.send(()).await;
                        continue;
                    }
                    if let (Some(tx), Some(c)) = (&tx, container_in(&text)) {
                        let _ = tx.send((c.to_string(), Instant::now()));
                    }
                }
            }
        }));
    }
    for _ in 0..n {
        ready_rx
            .recv()
            .await
            .context("a client closed before its initial data")?;
    }
    Ok(tasks)
}

pub async fn run(gatelog: &Path, args: &WsArgs) -> anyhow::Result<()> {
    // Each client is one socket on each side.
    let nofile = crate::server::raise_open_files();
    let needed = args
        .clients
        .iter()
        .copied()
        .chain([2 * args.idle])
        .max()
        .unwrap_or(0);
    if (nofile as usize) < needed * 2 + 256 {
        bail!(
            "the open-file limit is {nofile}, too low for {needed} clients; raise the hard limit (ulimit -Hn) to at least {}",
            needed * 2 + 256
        );
    }
    let work = crate::server::WorkDir::new(args.dir.as_deref(), "gatelog-bench-ws-")?;
    let dir = work.path().to_path_buf();
    println!(
        "# gatelog-bench ws ({} posts per client count, {} ms apart; open-file limit {nofile})\n",
        args.posts, args.pause_ms
    );
    let server = Server::start(gatelog, &dir.join("gatelog.db"), &ServerOptions::default()).await?;
    let http = reqwest::Client::new();
    let url = format!("http://{}/api/v1/recognitions", server.addr());
    let mut next = 0u64;
    // Ten passages, so every client's initial data is full size.
    for _ in 0..10 {
        post(&http, &url, next).await?;
        next += 1;
    }

    // Memory per idle client. A warm-up round first, so one-time growth
    // (the read connections' page cache, per-thread allocator arenas) is
    // not counted as per-client memory.
    let warm = connect_clients(server.addr(), args.idle.min(200), args.initial, None).await?;
    for t in warm {
        t.abort();
    }
    wait_for_clients(&server, 0.0).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = server.rss_kib();
    let idle = connect_clients(server.addr(), args.idle, args.initial, None).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let first = server.rss_kib();
    let connected = server.metric(&server.names().ws_clients).await?;
    // A second batch shows the marginal cost once the first has settled.
    let more = connect_clients(server.addr(), args.idle, args.initial, None).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = server.rss_kib();
    let per_1000 = |delta: f64| delta / 1024.0 * 1000.0 / args.idle.max(1) as f64;
    println!("| measure | value |\n|---|---|");
    println!(
        "| server RSS before idle clients (after warm-up) | {:.1} MiB |",
        before / 1024.0
    );
    println!(
        "| server RSS with {} idle clients (gatelog_ws_clients = {connected}) | {:.1} MiB |",
        args.idle,
        first / 1024.0
    );
    println!(
        "| server RSS with {} idle clients | {:.1} MiB |",
        2 * args.idle,
        second / 1024.0
    );
    println!(
        "| memory per 1,000 idle clients: the first {} | {:.2} MiB |",
        args.idle,
        per_1000(first - before)
    );
    println!(
        "| memory per 1,000 idle clients: the next {} | {:.2} MiB |",
        args.idle,
        per_1000(second - first)
    );
    for t in idle.into_iter().chain(more) {
        t.abort();
    }
    wait_for_clients(&server, 0.0).await?;

    println!(
        "\n| clients | p50 from ack | p99 from ack | max from ack | p99 from send | frames received |\n|---|---|---|---|---|---|"
    );
    for &n in &args.clients {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let clients = connect_clients(server.addr(), n, 10, Some(tx)).await?;
        let mut sent = std::collections::HashMap::new();
        for _ in 0..args.posts {
            let t0 = Instant::now();
            post(&http, &url, next).await?;
            sent.insert(reads::container(next), (t0, Instant::now()));
            next += 1;
            tokio::time::sleep(Duration::from_millis(args.pause_ms)).await;
        }
        let expected = args.posts * n;
        let mut from_ack = Latencies::new();
        let mut from_send = Latencies::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while (from_ack.count() as usize) < expected {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((c, at))) => {
                    if let Some((t0, ack)) = sent.get(&c) {
                        from_ack.record(at.saturating_duration_since(*ack));
                        from_send.record(at.saturating_duration_since(*t0));
                    }
                }
                _ => break,
            }
        }
        println!(
            "| {n} | {} | {} | {} | {} | {} of {expected} |",
            ms(from_ack.quantile(0.5)),
            ms(from_ack.quantile(0.99)),
            ms(from_ack.max()),
            ms(from_send.quantile(0.99)),
            from_ack.count()
        );
        for c in clients {
            c.abort();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    server.stop().await;
    Ok(())
}

/// Waits until the server counts `n` clients (closed sockets take a
/// moment to notice).
async fn wait_for_clients(server: &Server, n: f64) -> anyhow::Result<()> {
    for _ in 0..100 {
        if server.metric(&server.names().ws_clients).await? == n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "the server still counts {} clients",
        server.metric(&server.names().ws_clients).await?
    )
}

async fn post(http: &reqwest::Client, url: &str, n: u64) -> anyhow::Result<()> {
    let r = http.post(url).json(&reads::body(n)).send().await?;
    if r.status().as_u16() != 201 {
        bail!("POST answered {}", r.status());
    }
    let _ = r.bytes().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_container_of_a_new_log_frame() {
        let frame = r#"{"type":"new_log","log":{"id":"x","site_id":"s","container":"MSCU1234566","container_owner":"MSCU"},"cursor":"c"}"#;
        assert_eq!(container_in(frame), Some("MSCU1234566"));
        assert_eq!(
            container_in(r#"{"type":"duplicate","container":"MSCU1234566"}"#),
            None
        );
    }
}
