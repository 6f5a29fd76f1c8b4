//! `gatelog simulate`: the simulated gate ([`crate::feed`]), posted to a
//! running server or written as a labelled file.
//!
//! Live, each read is one `POST /api/v1/recognitions` with the ingest key
//! when its time comes, so this exercises the real path: auth, limits,
//! validation, dedup and the durable write. With `--labelled FILE` the
//! whole stream is written at once as JSON lines, each the body that
//! would be posted plus its `truth`, for `gatelog eval`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use crate::feed::{self, GateConfig};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Write a labelled stream to FILE (JSON Lines, each read with its
    /// `truth`) instead of posting to a server.
    #[arg(long, value_name = "FILE")]
    pub labelled: Option<PathBuf>,
    /// With --labelled: how many true passages (trucks) to generate.
    #[arg(long, default_value_t = 400)]
    pub passages: usize,
    /// With --labelled: when the stream starts (RFC 3339).
    #[arg(long, default_value = "2024-05-01T06:00:00Z")]
    pub start: DateTime<Utc>,
    /// The same seed gives the same stream (with this version of gatelog);
    /// without one, a random seed is used and printed.
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub gate: GateArgs,
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// How long to post: seconds, or a number with s, m or h.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// An ingest key. Prefer the environment variable, which stays out of
    /// the process list and shell history.
    #[arg(long, env = "SIMULATE_INGEST_KEY", hide_env_values = true)]
    pub key: Option<String>,
}

/// The simulated gate's knobs; the defaults are the target stream of
/// issue 9.
#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// Mean truck arrivals per minute, over all cameras (a busy lane
    /// delays the next truck in it).
    #[arg(long, default_value_t = 2.0)]
    pub rate: f64,
    /// Cameras at the gate, one lane each.
    #[arg(long, default_value_t = 3)]
    pub cameras: usize,
    /// The fewest reads of one truck.
    #[arg(long, default_value_t = 3)]
    pub reads_min: usize,
    /// The most reads of one truck.
    #[arg(long, default_value_t = 15)]
    pub reads_max: usize,
    /// Per character with a look-alike (O/0, I/1, S/5, B/8, Z/2, G/6, D→0):
    /// the chance the OCR reads the look-alike.
    #[arg(long, default_value_t = 0.04)]
    pub lookalike_rate: f64,
    /// Per character: the chance the OCR reads any other character.
    #[arg(long, default_value_t = 0.004)]
    pub random_error_rate: f64,
    /// The share of reads that carry the check digit.
    #[arg(long, default_value_t = 0.9)]
    pub check_digit_share: f64,
    /// The share of reads that are unreadable (10–11 letters and digits
    /// that cannot be made a valid number).
    #[arg(long, default_value_t = 0.01)]
    pub unreadable_rate: f64,
    /// The chance that the next truck in a lane carries a container one
    /// serial digit apart (a near twin).
    #[arg(long, default_value_t = 0.05)]
    pub twin_rate: f64,
    /// The chance that a container comes back after the window (a new
    /// passage).
    #[arg(long, default_value_t = 0.05)]
    pub return_rate: f64,
    /// The server's dedup window (dedup.window_secs): returns stay away
    /// longer than this.
    #[arg(long, default_value_t = 300)]
    pub window_secs: u64,
}

impl GateArgs {
    pub fn config(&self) -> anyhow::Result<GateConfig> {
        let config = GateConfig {
            cameras: self.cameras,
            trucks_per_minute: self.rate,
            reads_min: self.reads_min,
            reads_max: self.reads_max,
            lookalike_rate: self.lookalike_rate,
            random_error_rate: self.random_error_rate,
            check_digit_share: self.check_digit_share,
            unreadable_rate: self.unreadable_rate,
            twin_rate: self.twin_rate,
            return_rate: self.return_rate,
            return_after: Duration::from_secs(self.window_secs),
        };
        config.check().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}

/// "90", "90s", "5m", "2h".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration such as 90s, 5m or 1h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("{s:?}: the unit must be s, m or h")),
    };
    if !(secs.is_finite() && secs > 0.0 && secs <= 7.0 * 86_400.0) {
        return Err(format!("{s:?} must be more than 0 and at most 7 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// What the server answered, counted.
#[derive(Default)]
struct Tally {
    created: AtomicU64,
    duplicate: AtomicU64,
    /// Reads the server kept for an operator (`202 queued`).
    queued: AtomicU64,
    invalid: AtomicU64,
    rate_limited: AtomicU64,
    unauthorized: AtomicU64,
    failed: AtomicU64,
    /// Requests sent and not yet answered.
    in_flight: AtomicU64,
}

impl Tally {
    fn sent(&self) -> u64 {
        [
            &self.created,
            &self.duplicate,
            &self.queued,
            &self.invalid,
            &self.rate_limited,
            &self.unauthorized,
            &self.failed,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    fn summary(&self) -> String {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "{} new passages, {} duplicates, {} queued, {} rejected, {} rate-limited, {} unauthorized, {} failed",
            g(&self.created),
            g(&self.duplicate),
            g(&self.queued),
            g(&self.invalid),
            g(&self.rate_limited),
            g(&self.unauthorized),
            g(&self.failed)
        )
    }
}

/// `gatelog simulate`.
pub async fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let config = args.gate.config()?;
    let seed = args.seed.unwrap_or_else(rand::random);
    if let Some(file) = &args.labelled {
        return write_labelled(file, config, seed, args);
    }
    let url = format!("{}/api/v1/recognitions", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let tally = Arc::new(Tally::default());
    let stop = CancellationToken::new();
    let secs = args.duration.as_secs().max(1);
    let progress = Progress::new("simulate", Some(secs), "s");
    let key = args.key.clone();

    let deliver = {
        let tally = tally.clone();
        let stop = stop.clone();
        move |body: serde_json::Map<String, serde_json::Value>, _seen: String| {
            let client = client.clone();
            let url = url.clone();
            let key = key.clone();
            let tally = tally.clone();
            let stop = stop.clone();
            async move {
                // Counted before the check, so the drain below cannot miss it.
                tally.in_flight.fetch_add(1, Ordering::SeqCst);
                if stop.is_cancelled() {
                    tally.in_flight.fetch_sub(1, Ordering::SeqCst);
                    return;
                }
                post(&client, &url, key.as_deref(), &body, &tally, &stop).await;
                tally.in_flight.fetch_sub(1, Ordering::SeqCst);
            }
        }
    };
    let feed = tokio::spawn(feed::run(config, seed, stop.clone(), deliver));
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => break,
        }
        let elapsed = started.elapsed();
        progress.set_position(elapsed.as_secs().min(secs));
        progress.set_message(format!("{} reads sent", tally.sent()));
        if elapsed >= args.duration {
            break;
        }
    }
    stop.cancel();
    let _ = feed.await;
    // Trucks already in view finish the read they are posting, so the
    // summary counts every answer the server gave.
    let drain = Instant::now();
    while tally.in_flight.load(Ordering::SeqCst) > 0 && drain.elapsed() < Duration::from_secs(35) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let summary = format!("{} reads sent: {}", tally.sent(), tally.summary());
    progress.finish(&summary);
    println!("{summary}");
    if tally.unauthorized.load(Ordering::Relaxed) > 0 {
        anyhow::bail!(
            "the server refused the key: pass an ingest key with --key or SIMULATE_INGEST_KEY"
        );
    }
    if tally.sent() > 0 && tally.failed.load(Ordering::Relaxed) == tally.sent() {
        anyhow::bail!("no read reached {}", args.url);
    }
    Ok(())
}

/// Posts one read, honouring one `Retry-After` on 429.
async fn post(
    client: &reqwest::Client,
    url: &str,
    key: Option<&str>,
    body: &serde_json::Map<String, serde_json::Value>,
    tally: &Tally,
    stop: &CancellationToken,
) {
    for attempt in 0..2 {
        let mut req = client.post(url).json(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let counter = match req.send().await {
            Ok(r) => match r.status() {
                StatusCode::CREATED => &tally.created,
                StatusCode::OK => &tally.duplicate,
                StatusCode::ACCEPTED => &tally.queued,
                StatusCode::UNPROCESSABLE_ENTITY => &tally.invalid,
                StatusCode::UNAUTHORIZED => {
                    // Every later read would be refused too.
                    stop.cancel();
                    &tally.unauthorized
                }
                StatusCode::TOO_MANY_REQUESTS if attempt == 0 => {
                    let wait = r
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(1);
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(wait.min(60))) => continue,
                        _ = stop.cancelled() => &tally.rate_limited,
                    }
                }
                StatusCode::TOO_MANY_REQUESTS => &tally.rate_limited,
                _ => &tally.failed,
            },
            Err(_) => &tally.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        return;
    }
}

/// `simulate --labelled FILE`: the whole stream at once.
fn write_labelled(
    file: &std::path::Path,
    config: GateConfig,
    seed: u64,
    args: &SimulateArgs,
) -> anyhow::Result<()> {
    if args.passages == 0 {
        anyhow::bail!("--passages must be at least 1");
    }
    let text = feed::labelled(config, seed, args.passages, args.start);
    std::fs::write(file, &text).with_context(|| format!("cannot write {}", file.display()))?;
    println!(
        "{} reads of {} passages written to {} (seed {seed})",
        text.lines().count(),
        args.passages,
        file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        for bad in ["", "0", "-1s", "5d", "soon", "9999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
