//! The soak: the real `gatelog serve` for a long time at a steady rate of
//! reads, with sync to a fresh central database through a
//! [`FaultProxy`] that takes the path down at regular intervals, and
//! WebSocket clients on the live feed. It reports the RSS slope, errors,
//! the p99 latency minute by minute, and the backlog after each outage
//! with the time it took to drain; at the end the central copy must be
//! exact. Not run in CI: `gatelog-reliability soak`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::{SecondsFormat, Utc};
use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::central::{CentralDb, LocalCopy};
use crate::faults::{Fault, FaultProxy};
use crate::{container, BinaryApp};

/// How a soak runs.
#[derive(Debug, Clone)]
pub struct Soak {
    pub duration: Duration,
    /// Reads posted per second, one request each.
    pub rate: u32,
    /// WebSocket clients on `/ws/logs` for the whole run.
    pub ws_clients: u32,
    /// The path to the centre goes down once every this long…
    pub flap_every: Duration,
    /// …for this long.
    pub outage: Duration,
}

/// One outage of the path to the centre.
#[derive(Debug, Clone)]
pub struct Outage {
    /// Seconds into the run when the path went down.
    pub at_secs: u64,
    /// Passages pending when the path came back.
    pub backlog: i64,
    /// Seconds from the path coming back to nothing pending.
    pub drain_secs: f64,
}

/// What a soak measured.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    pub reads: u64,
    /// Reads that got no 2xx, by what happened instead.
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Reads sent a second time, with the same `id`, after the first
    /// attempt failed at the connection, by the first attempt's failure.
    pub retries: std::collections::BTreeMap<String, u64>,
    /// WebSocket clients that lost their connection.
    pub ws_drops: u64,
    /// Frames the WebSocket clients received in all.
    pub ws_frames: u64,
    /// p99 of the read latency, in milliseconds, for each minute.
    pub p99_ms_by_minute: Vec<f64>,
    /// RSS samples: (seconds into the run, KiB).
    pub rss_kib: Vec<(f64, u64)>,
    /// The anonymous part of each RSS sample (the heap; the rest is the
    /// binary's own pages, mapped in as code first runs).
    pub rss_anon_kib: Vec<(f64, u64)>,
    pub outages: Vec<Outage>,
    /// Passages in the store and centrally at the end.
    pub passages: usize,
}

impl SoakReport {
    /// The least-squares slope of RSS over time, in KiB per minute, over
    /// the samples after `warmup_secs`.
    pub fn rss_slope_kib_per_min(&self, warmup_secs: f64) -> f64 {
        self.rss_slope_kib_per_min_between(warmup_secs, f64::MAX)
    }

    /// The slope as [`SoakReport::rss_slope_kib_per_min`] gives it, over
    /// the samples from `from_secs` to `to_secs`.
    pub fn rss_slope_kib_per_min_between(&self, from_secs: f64, to_secs: f64) -> f64 {
        slope_kib_per_min(&self.rss_kib, from_secs, to_secs)
    }

    /// The same slope of the anonymous memory alone.
    pub fn anon_slope_kib_per_min_between(&self, from_secs: f64, to_secs: f64) -> f64 {
        slope_kib_per_min(&self.rss_anon_kib, from_secs, to_secs)
    }
}

/// The least-squares slope of `samples` (seconds, KiB) from `from_secs` to
/// `to_secs`, in KiB per minute.
fn slope_kib_per_min(samples: &[(f64, u64)], from_secs: f64, to_secs: f64) -> f64 {
    let pts: Vec<(f64, f64)> = samples
        .iter()
        .filter(|(t, _)| *t >= from_secs && *t < to_secs)
        .map(|(t, k)| (*t / 60.0, *k as f64))
        .collect();
    let n = pts.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

fn p99(mut ms: Vec<f64>) -> f64 {
    if ms.is_empty() {
        return 0.0;
    }
    ms.sort_by(f64::total_cmp);
    ms[((ms.len() as f64 * 0.99).ceil() as usize).min(ms.len()) - 1]
}

/// A `/proc/PID/status` figure in KiB, such as `VmRSS` or `RssAnon`.
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.strip_prefix(field).is_some_and(|r| r.starts_with(':')))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

async fn pending(http: &reqwest::Client, base: &str) -> anyhow::Result<i64> {
    let s: Value = http
        .get(format!("{base}/api/v1/sync/status"))
        .send()
        .await?
        .json()
        .await?;
    s["pending"].as_i64().context("pending in the status")
}

/// An error with every cause under it, so a failed request says whether
/// the connection was refused, reset, timed out, or closed by the server
/// just as the client reused it.
fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs the soak.
pub async fn soak(plan: &Soak) -> anyhow::Result<SoakReport> {
    let Some(central) = CentralDb::create().await else {
        bail!("PostgreSQL is unavailable");
    };
    let proxy = FaultProxy::start("127.0.0.1:5432".parse()?).await;
    let url = central.url_via(proxy.addr);
    let dir = tempfile::tempdir()?;
    let app = BinaryApp::start(
        dir.path(),
        &[
            ("GATELOG_SYNC__TARGET", "postgres"),
            ("DATABASE_URL", url.as_str()),
            ("GATELOG_SYNC__REQUEST_TIMEOUT_MS", "3000"),
            ("GATELOG_SYNC__BACKOFF_MAX_MS", "5000"),
        ],
    )
    .await;
    let pid = app.child.id().context("the server runs")?;
    let base = app.base.clone();
    // A client as README.md advises: idle connections are dropped before
    // the server's keep-alive (5 s) closes them, and a read that fails at
    // the connection is sent again with its `id`, which makes a read that
    // did arrive a replay, never a second read.
    let http = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(4))
        .build()?;
    let started = Instant::now();
    let end = started + plan.duration;

    // WebSocket clients, each counting frames until the end.
    let ws_frames = Arc::new(AtomicU64::new(0));
    let ws_drops = Arc::new(AtomicU64::new(0));
    let mut ws_tasks = Vec::new();
    for _ in 0..plan.ws_clients {
        let url = format!("{}/ws/logs", base.replacen("http", "ws", 1));
        let (frames, drops) = (ws_frames.clone(), ws_drops.clone());
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .context("a WebSocket client connects")?;
        ws_tasks.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::from_std(end);
            loop {
                tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(_)) => { frames.fetch_add(1, Ordering::Relaxed); }
                        _ => { drops.fetch_add(1, Ordering::Relaxed); return; }
                    },
                    _ = tokio::time::sleep_until(deadline) => return,
                }
            }
        }));
    }

    // Reads at a steady rate; a third are repeats of a recent truck.
    let latencies: Arc<Mutex<Vec<Vec<f64>>>> = Arc::default();
    let errors: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let retries: Arc<Mutex<std::collections::BTreeMap<String, u64>>> = Arc::default();
    let reads = Arc::new(AtomicU64::new(0));
    let load = {
        let (base, http, latencies, errors, retries, reads) = (
            base.clone(),
            http.clone(),
            latencies.clone(),
            errors.clone(),
            retries.clone(),
            reads.clone(),
        );
        let rate = plan.rate;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut n: u64 = 0;
            // Trucks get numbers as they first appear; every third read is
            // a repeat of the truck that appeared ten trucks ago.
            let mut trucks: u64 = 0;
            let mut inflight = tokio::task::JoinSet::new();
            while Instant::now() < end {
                tick.tick().await;
                n += 1;
                let truck = if n.is_multiple_of(3) && trucks > 10 {
                    trucks - 10
                } else {
                    trucks += 1;
                    trucks
                };
                let body = json!({
                    "id": uuid::Uuid::new_v4(),
                    "container": container(truck * 7_919 + 1),
                    "captured_at": Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true),
                    "camera_id": "cam-1",
                });
                let (base, http, latencies, errors, retries, reads) = (
                    base.clone(),
                    http.clone(),
                    latencies.clone(),
                    errors.clone(),
                    retries.clone(),
                    reads.clone(),
                );
                inflight.spawn(async move {
                    let t = Instant::now();
                    let url = format!("{base}/api/v1/recognitions");
                    let mut outcome = http.post(&url).json(&body).send().await;
                    if let Err(e) = &outcome {
                        *retries.lock().unwrap().entry(cause_chain(e)).or_insert(0) += 1;
                        outcome = http.post(&url).json(&body).send().await;
                    }
                    let ms = t.elapsed().as_secs_f64() * 1000.0;
                    reads.fetch_add(1, Ordering::Relaxed);
                    let error = match outcome {
                        Ok(r) if r.status().is_success() => None,
                        Ok(r) => Some(format!("HTTP {}", r.status())),
                        Err(e) => Some(format!("request failed: {}", cause_chain(&e))),
                    };
                    if let Some(e) = error {
                        *errors.lock().unwrap().entry(e).or_insert(0) += 1;
                    }
                    let minute = (t - started).as_secs() as usize / 60;
                    let mut l = latencies.lock().unwrap();
                    if l.len() <= minute {
                        l.resize(minute + 1, Vec::new());
                    }
                    l[minute].push(ms);
                });
                while inflight.try_join_next().is_some() {}
            }
            while inflight.join_next().await.is_some() {}
        })
    };

    // RSS every 10 s, and the path down once every `flap_every`.
    let mut report = SoakReport::default();
    let mut next_flap = started + plan.flap_every;
    let mut next_rss = started;
    while Instant::now() < end {
        if Instant::now() >= next_rss {
            let at = started.elapsed().as_secs_f64();
            report.rss_kib.push((at, status_kib(pid, "VmRSS")));
            report.rss_anon_kib.push((at, status_kib(pid, "RssAnon")));
            next_rss += Duration::from_secs(10);
        }
        if Instant::now() >= next_flap && Instant::now() + plan.outage < end {
            let at_secs = started.elapsed().as_secs();
            proxy.set(Fault::Down);
            tokio::time::sleep(plan.outage).await;
            let backlog = pending(&http, &base).await?;
            proxy.set(Fault::None);
            let back = Instant::now();
            // Drained once the store has nothing pending; new reads keep
            // coming, so a few may be in flight: "drained" means the
            // backlog fell below one second of reads.
            loop {
                let p = LocalCopy::read(&dir.path().join("gatelog.db"))
                    .await
                    .pending;
                if p <= i64::from(plan.rate) {
                    break;
                }
                ensure!(
                    back.elapsed() < plan.flap_every,
                    "the backlog did not drain before the next outage"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            report.outages.push(Outage {
                at_secs,
                backlog,
                drain_secs: back.elapsed().as_secs_f64(),
            });
            eprintln!("soak: {:?}", report.outages.last().unwrap());
            next_flap += plan.flap_every;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    load.await?;
    for t in ws_tasks {
        t.await?;
    }
    let at = started.elapsed().as_secs_f64();
    report.rss_kib.push((at, status_kib(pid, "VmRSS")));
    report.rss_anon_kib.push((at, status_kib(pid, "RssAnon")));

    // The end: everything drains and the central copy is exact.
    let db = dir.path().join("gatelog.db");
    let drain_deadline = Instant::now() + Duration::from_secs(300);
    while LocalCopy::read(&db).await.pending > 0 || pending(&http, &base).await? > 0 {
        ensure!(
            Instant::now() < drain_deadline,
            "sync did not drain at the end"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let local = LocalCopy::read(&db).await;
    ensure!(
        local.dead_letters == 0,
        "{} dead letters",
        local.dead_letters
    );
    ensure!(
        central.repeated_ids().await.is_empty(),
        "an id is central twice"
    );
    ensure!(
        central.ids_and_versions().await == local.ids_and_versions,
        "the central copy differs from the store"
    );
    report.passages = local.ids_and_versions.len();
    report.reads = reads.load(Ordering::Relaxed);
    report.errors = errors.lock().unwrap().clone();
    report.retries = retries.lock().unwrap().clone();
    report.ws_frames = ws_frames.load(Ordering::Relaxed);
    report.ws_drops = ws_drops.load(Ordering::Relaxed);
    report.p99_ms_by_minute = latencies.lock().unwrap().iter().cloned().map(p99).collect();
    let status = app.terminate().await;
    ensure!(status.success(), "the server exits 0 on SIGTERM");
    Ok(report)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cause_chain_names_every_cause() {
        let inner = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let outer = std::io::Error::other(Chained("connection closed", inner));
        assert_eq!(
            super::cause_chain(&outer),
            "connection closed: reset by peer"
        );
    }

    #[derive(Debug)]
    struct Chained(&'static str, std::io::Error);
    impl std::fmt::Display for Chained {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Chained {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.1)
        }
    }
}
