//! `gatelog simulate`: a realistic camera feed posted to a running server.
//!
//! The traffic is the demo feed's ([`crate::feed`]): trucks arrive at
//! random, each read 3 to 15 times, with OCR confusions and missing check
//! digits at the given rates. Each read is one `POST /api/v1/recognitions`
//! with the ingest key, so this exercises the real path: auth, limits,
//! validation, dedup and the durable write.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use crate::feed::{self, FeedConfig};

#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Mean truck arrivals per minute, over all cameras.
    #[arg(long, default_value_t = 12.0)]
    pub rate: f64,
    /// How long to run: seconds, or a number with s, m or h.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Cameras at the gate.
    #[arg(long, default_value_t = 3)]
    pub cameras: usize,
    /// Probability that one read has a confused character (O/0, I/1, S/5,
    /// B/8, Z/2).
    #[arg(long, default_value_t = 0.05)]
    pub ocr_error_rate: f64,
    /// Probability that one read lacks its check digit.
    #[arg(long, default_value_t = 0.03)]
    pub missing_check_digit_rate: f64,
    /// An ingest key. Prefer the environment variable, which stays out of
    /// the process list and shell history.
    #[arg(long, env = "SIMULATE_INGEST_KEY", hide_env_values = true)]
    pub key: Option<String>,
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
            "{} new passages, {} duplicates, {} rejected, {} rate-limited, {} unauthorized, {} failed",
            g(&self.created),
            g(&self.duplicate),
            g(&self.invalid),
            g(&self.rate_limited),
            g(&self.unauthorized),
            g(&self.failed)
        )
    }
}

/// `gatelog simulate`.
pub async fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    if !(args.rate > 0.0 && args.rate.is_finite()) {
        anyhow::bail!("--rate must be more than 0 trucks a minute");
    }
    for (name, p) in [
        ("--ocr-error-rate", args.ocr_error_rate),
        ("--missing-check-digit-rate", args.missing_check_digit_rate),
    ] {
        if !(0.0..=1.0).contains(&p) {
            anyhow::bail!("{name} must be from 0 to 1");
        }
    }
    if args.cameras == 0 {
        anyhow::bail!("--cameras must be at least 1");
    }
    let url = format!("{}/api/v1/recognitions", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("cannot build the HTTP client")?;
    let config = FeedConfig {
        cameras: args.cameras,
        trucks_per_minute: args.rate,
        ocr_error_rate: args.ocr_error_rate,
        missing_check_digit_rate: args.missing_check_digit_rate,
    };
    let tally = Arc::new(Tally::default());
    let stop = CancellationToken::new();
    let secs = args.duration.as_secs().max(1);
    let progress = Progress::new("simulate", Some(secs), "s");
    let key = args.key.clone();

    let deliver = {
        let tally = tally.clone();
        let stop = stop.clone();
        move |body: serde_json::Value| {
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
    let feed = tokio::spawn(feed::run(config, stop.clone(), deliver));
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
    body: &serde_json::Value,
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
