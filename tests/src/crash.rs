//! The crash loop: the real `gatelog serve` killed with SIGKILL at random
//! moments and restarted, over and over, while several clients post reads
//! with their own ids and keep a ledger of every 2xx, sync replicates to a
//! fresh central database directly, and `gatelog backup` and `gatelog
//! retention` run beside the server.
//!
//! After every restart: the server came up ready (`/readyz`), `PRAGMA
//! integrity_check` is `ok`, every acknowledged read is in the store (by
//! its client id), a repeat of an acknowledged read still joins its passage
//! and a retry of it replays the same answer (dedup carries on), and no
//! central row is ahead of the store. At the end, sync drains and the
//! central copy is exact.
//!
//! The CI test runs 20 cycles (`tests/tests/e2e/crash.rs`); the long mode
//! runs 1,000 from `gatelog-reliability crash-loop`, with the full checks
//! every 25th restart ([`CrashLoop::full_check_every`]).

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use chrono::{SecondsFormat, Utc};
use rand::Rng;
use serde_json::{json, Value};
use sqlx::Connection;

use crate::central::{CentralDb, LocalCopy};
use crate::{container, gatelog_bin, integrity_check, BinaryApp};

/// How a crash loop runs.
#[derive(Debug, Clone)]
pub struct CrashLoop {
    /// Kill-and-restart cycles.
    pub cycles: u32,
    /// Clients posting reads at once, each with its own ids.
    pub clients: u32,
    /// The shortest and longest time the server runs before the kill,
    /// in milliseconds; each cycle draws its own.
    pub run_ms: (u64, u64),
    /// Every how many restarts the checks read the whole store and the
    /// whole central table: 1 (CI) checks everything after every
    /// restart. In between, a restart checks the reads acknowledged
    /// since the last check, readiness and dedup; the last restart
    /// always checks everything. The long mode uses this to keep a
    /// cycle's cost from growing with every read stored before it.
    pub full_check_every: u32,
    /// Print a line per cycle.
    pub verbose: bool,
}

impl Default for CrashLoop {
    fn default() -> Self {
        Self {
            cycles: 20,
            clients: 4,
            run_ms: (300, 1_500),
            full_check_every: 1,
            verbose: false,
        }
    }
}

/// What a crash loop did.
#[derive(Debug, Default, Clone)]
pub struct CrashReport {
    pub cycles: u32,
    /// Reads acknowledged with a 2xx, each checked after every restart.
    pub acks: u64,
    /// Acknowledged reads missing after a restart (the loop stops at the
    /// first, so this is 0 in a report that is returned).
    pub losses: u64,
    /// Requests that got no answer because the server was killed.
    pub unanswered: u64,
    /// Repeats and retries of acknowledged reads checked after restarts.
    pub dedup_checks: u64,
    /// Restarts after which the whole store (`PRAGMA integrity_check`,
    /// every acknowledged read) and the whole central table were checked.
    pub full_checks: u32,
    /// `gatelog backup` runs that completed while the server ran.
    pub backups: u64,
    /// `gatelog retention` runs that completed while the server ran.
    pub retention_runs: u64,
    /// Old passages that retention removed once they were central.
    pub removed_by_retention: u64,
    /// Passages in the store and centrally at the end.
    pub passages: u64,
    pub elapsed: Duration,
}

/// One acknowledged read.
#[derive(Debug, Clone)]
struct Ack {
    container: String,
    captured_at: String,
    /// The passage the answer named.
    passage: String,
}

/// The environment `serve`, `backup` and `retention` run with.
fn env(central: &CentralDb) -> Vec<(&'static str, String)> {
    vec![
        ("GATELOG_SYNC__TARGET", "postgres".into()),
        ("DATABASE_URL", central.url.clone()),
        ("GATELOG_SYNC__BATCH_SIZE", "100".into()),
        ("GATELOG_SYNC__BACKOFF_INITIAL_MS", "50".into()),
        ("GATELOG_SYNC__BACKOFF_MAX_MS", "500".into()),
        ("GATELOG_SYNC__POLL_INTERVAL_MS", "100".into()),
        ("GATELOG_SYNC__STATUS_INTERVAL_MS", "200".into()),
    ]
}

/// Runs `gatelog <args>` beside the server on the store at `db`.
async fn gatelog(db: &Path, env: &[(&str, String)], args: &[&str]) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::new(gatelog_bin());
    cmd.current_dir(db.parent().expect("a folder"))
        .env_remove("GATELOG_BIN")
        .env("GATELOG_STORE__PATH", db)
        .env("RUST_LOG", "warn")
        .args(args)
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().await.context("gatelog runs")?;
    ensure!(
        out.status.success(),
        "gatelog {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Passages last seen before this are old enough for retention (30 days
/// by default); the old reads are 60 days old, the others from now.
fn retention_cutoff() -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::days(30)
}

fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Posts one read; Ok(None) when the server did not answer (it was
/// killed), and an error for any answer but the expected ones.
async fn post(
    client: &reqwest::Client,
    base: &str,
    body: &Value,
) -> anyhow::Result<Option<(u16, Value)>> {
    let r = match client
        .post(format!("{base}/api/v1/recognitions"))
        .json(body)
        .send()
        .await
    {
        Ok(r) => r,
        Err(_) => return Ok(None),
    };
    let status = r.status().as_u16();
    match r.json::<Value>().await {
        Ok(v) => Ok(Some((status, v))),
        // The answer was cut by the kill: not an acknowledgement.
        Err(_) => Ok(None),
    }
}

/// Client ids in the store: every one, or those among `among`.
async fn stored_client_ids(
    db: &Path,
    among: Option<&[&String]>,
) -> anyhow::Result<HashSet<String>> {
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .context("the store opens read-only")?;
    let mut found = HashSet::new();
    match among {
        None => {
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT client_id FROM sightings WHERE client_id IS NOT NULL")
                    .fetch_all(&mut conn)
                    .await?;
            found.extend(ids);
        }
        Some(ids) => {
            for chunk in ids.chunks(500) {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT client_id FROM sightings WHERE client_id IN (",
                );
                let mut sep = q.separated(", ");
                for id in chunk {
                    sep.push_bind(id.as_str());
                }
                q.push(")");
                let rows: Vec<String> = q.build_query_scalar().fetch_all(&mut conn).await?;
                found.extend(rows);
            }
        }
    }
    conn.close().await.ok();
    Ok(found)
}

/// Runs the crash loop; the first broken promise ends it with an error
/// that says which.
pub async fn crash_loop(plan: &CrashLoop) -> anyhow::Result<CrashReport> {
    let started = Instant::now();
    let Some(central) = CentralDb::create().await else {
        bail!("PostgreSQL is unavailable");
    };
    let env = env(&central);
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("gatelog.db");
    let ledger: Arc<Mutex<HashMap<String, Ack>>> = Arc::default();
    let next = Arc::new(AtomicU64::new(0));
    let unanswered = Arc::new(AtomicU64::new(0));
    let mut report = CrashReport::default();
    let http = reqwest::Client::new();
    // Acknowledged reads found in the store by an earlier check.
    let mut verified: HashSet<String> = HashSet::new();

    for cycle in 0..=plan.cycles {
        let restart = Instant::now();
        let app = BinaryApp::start(dir.path(), &env_ref).await;
        let ready_in = restart.elapsed();
        let checks = Instant::now();
        if cycle > 0 {
            let full = cycle % plan.full_check_every.max(1) == 0 || cycle == plan.cycles;
            let check = Check {
                db: &db,
                base: &app.base,
                http: &http,
                central: &central,
                full,
            };
            check
                .after_restart(&ledger, &mut verified, &mut report)
                .await
                .with_context(|| format!("after restart {cycle}"))?;
        }
        let checked_in = checks.elapsed();
        if cycle == plan.cycles {
            finish(&db, &app.base, &http, &central, &mut report).await?;
            let status = app.terminate().await;
            ensure!(status.success(), "the last server exits 0 on SIGTERM");
            break;
        }

        // Load: clients with their own ids, one client of old reads.
        let stop = tokio_util::sync::CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..plan.clients {
            let (base, http, ledger, next, unanswered, stop) = (
                app.base.clone(),
                http.clone(),
                ledger.clone(),
                next.clone(),
                unanswered.clone(),
                stop.clone(),
            );
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let id = uuid::Uuid::new_v4().to_string();
                    // Numbers far apart, so that no two are taken for
                    // misreads of each other.
                    let c = container(n * 7_919 + 1);
                    let at = now_rfc3339();
                    let body =
                        json!({"id": id, "container": c, "captured_at": at, "camera_id": "cam-1"});
                    match post(&http, &base, &body).await? {
                        None => {
                            unanswered.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        Some((s, v)) if s == 200 || s == 201 => {
                            let passage = v["data"]["id"]
                                .as_str()
                                .with_context(|| format!("a passage in {v}"))?
                                .to_string();
                            ledger.lock().unwrap().insert(
                                id,
                                Ack {
                                    container: c,
                                    captured_at: at,
                                    passage,
                                },
                            );
                        }
                        Some((s, v)) => bail!("read {n} answered {s}: {v}"),
                    }
                }
                anyhow::Ok(())
            });
        }
        {
            // Reads 60 days old, which retention removes once central.
            let (base, http, next, stop) =
                (app.base.clone(), http.clone(), next.clone(), stop.clone());
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let at = (Utc::now() - chrono::Duration::days(60))
                        .to_rfc3339_opts(SecondsFormat::Secs, true);
                    let body = json!({"container": container(n * 7_919 + 1), "captured_at": at});
                    match post(&http, &base, &body).await? {
                        None => break,
                        Some((s, _)) if s == 200 || s == 201 => {}
                        Some((s, v)) => bail!("an old read answered {s}: {v}"),
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                anyhow::Ok(())
            });
        }
        // A backup and a retention run beside the server, started at a
        // random moment of the cycle; they may still run at the kill.
        let run_for =
            Duration::from_millis(rand::rng().random_range(plan.run_ms.0..=plan.run_ms.1));
        let side = {
            let (db, env) = (db.clone(), env.clone());
            let delay = run_for.mul_f64(rand::rng().random_range(0.0..0.8));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let backup = db.with_file_name(format!("backup-{cycle}.db"));
                let b = gatelog(&db, &env, &["backup", backup.to_str().unwrap()]).await;
                let _ = std::fs::remove_file(&backup);
                let r = gatelog(&db, &env, &["retention"]).await;
                (b, r)
            })
        };

        tokio::time::sleep(run_for).await;
        // SIGKILL: no shutdown, no final checkpoint, the lock file left.
        let mut child = app.child;
        child.start_kill().context("kill the server")?;
        child.wait().await?;
        stop.cancel();
        while let Some(r) = tasks.join_next().await {
            r??;
        }
        let (b, r) = side.await?;
        b.context("a backup beside a server that is killed")?;
        report.backups += 1;
        r.context("a retention run beside a server that is killed")?;
        report.retention_runs += 1;
        report.cycles = cycle + 1;
        if plan.verbose {
            eprintln!(
                "cycle {}: ready in {} ms, checked in {} ms, ran {} ms, {} acks so far ({:.0} s)",
                cycle + 1,
                ready_in.as_millis(),
                checked_in.as_millis(),
                run_for.as_millis(),
                ledger.lock().unwrap().len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    report.acks = ledger.lock().unwrap().len() as u64;
    report.unanswered = unanswered.load(Ordering::SeqCst);
    report.elapsed = started.elapsed();
    Ok(report)
}

/// What a restart is checked against, and whether the check is full.
struct Check<'a> {
    db: &'a Path,
    base: &'a str,
    http: &'a reqwest::Client,
    central: &'a CentralDb,
    full: bool,
}

impl Check<'_> {
    async fn after_restart(
        &self,
        ledger: &Mutex<HashMap<String, Ack>>,
        verified: &mut HashSet<String>,
        report: &mut CrashReport,
    ) -> anyhow::Result<()> {
        let Check {
            db,
            base,
            http,
            central,
            full,
        } = *self;
        if full {
            let check = integrity_check(db).await;
            ensure!(check == "ok", "PRAGMA integrity_check says {check}");
        }

        let acked: Vec<(String, Ack)> = ledger
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        // A full check looks for every acknowledged read; the others for
        // those acknowledged since the last check.
        let to_check: Vec<&String> = acked
            .iter()
            .map(|(id, _)| id)
            .filter(|id| full || !verified.contains(*id))
            .collect();
        let stored = stored_client_ids(db, (!full).then_some(&to_check[..])).await?;
        let missing: Vec<&String> = to_check
            .iter()
            .copied()
            .filter(|id| !stored.contains(*id))
            .collect();
        if !missing.is_empty() {
            report.losses = missing.len() as u64;
            bail!(
                "{} acknowledged reads are missing, for example {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            );
        }
        verified.extend(to_check.into_iter().cloned());

        // Dedup carries on: a retry of an acknowledged read replays its
        // answer, and a repeat read 10 s later joins the same passage.
        if let Some((id, ack)) = acked.get(rand::rng().random_range(0..acked.len().max(1))) {
            let retry = json!({"id": id, "container": ack.container, "captured_at": ack.captured_at, "camera_id": "cam-1"});
            let (s, v) = post(http, base, &retry)
                .await?
                .context("the retry is answered")?;
            ensure!(
                (s == 200 || s == 201) && v["data"]["id"] == ack.passage.as_str(),
                "a retry of {id} answered {s} {v}, not passage {}",
                ack.passage
            );
            let later = chrono::DateTime::parse_from_rfc3339(&ack.captured_at)?
                + chrono::Duration::seconds(10);
            let repeat = json!({
                "container": ack.container,
                "captured_at": later.to_rfc3339_opts(SecondsFormat::Micros, true),
                "camera_id": "cam-1",
            });
            let (s, v) = post(http, base, &repeat)
                .await?
                .context("the repeat is answered")?;
            ensure!(
                s == 200 && v["status"] == "skipped" && v["data"]["id"] == ack.passage.as_str(),
                "a repeat of {} answered {s} {v}, not a duplicate of passage {}",
                ack.container,
                ack.passage
            );
            report.dedup_checks += 2;
        }
        if !full {
            return Ok(());
        }
        report.full_checks += 1;

        // No central row is ahead of the store, or there without it (but
        // for passages old enough for retention, which removes them once
        // they are central).
        let local: HashMap<String, i64> = LocalCopy::read(db)
            .await
            .ids_and_versions
            .into_iter()
            .collect();
        let old = central.ids_last_seen_before(retention_cutoff()).await;
        for (id, version) in central.ids_and_versions().await {
            match local.get(&id) {
                Some(v) => ensure!(
                    version <= *v,
                    "central {id} is at version {version}, the store at {v}"
                ),
                None => ensure!(old.contains(&id), "central {id} is not in the store"),
            }
        }
        ensure!(
            central.repeated_ids().await.is_empty(),
            "an id is central twice"
        );
        Ok(())
    }
}

/// Lets sync drain, then compares the central copy with the store.
async fn finish(
    db: &Path,
    base: &str,
    http: &reqwest::Client,
    central: &CentralDb,
    report: &mut CrashReport,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let status: Value = http
            .get(format!("{base}/api/v1/sync/status"))
            .send()
            .await?
            .json()
            .await?;
        let local = LocalCopy::read(db).await;
        if local.pending == 0 && status["pending"] == 0 {
            ensure!(
                local.dead_letters == 0,
                "dead letters: {}",
                local.dead_letters
            );
            break;
        }
        ensure!(Instant::now() < deadline, "sync did not drain: {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let local = LocalCopy::read(db).await.ids_and_versions;
    let central_rows = central.ids_and_versions().await;
    ensure!(
        central.repeated_ids().await.is_empty(),
        "an id is central twice"
    );
    let local_set: HashSet<&(String, i64)> = local.iter().collect();
    let local_ids: HashSet<&String> = local.iter().map(|(id, _)| id).collect();
    let old = central.ids_last_seen_before(retention_cutoff()).await;
    let mut removed = 0;
    for row in &central_rows {
        if !local_set.contains(row) {
            ensure!(
                old.contains(&row.0) && !local_ids.contains(&row.0),
                "central {row:?} differs from the store"
            );
            removed += 1;
        }
    }
    ensure!(
        central_rows.len() - removed == local.len(),
        "{} central rows, {} in the store, {removed} removed by retention",
        central_rows.len(),
        local.len()
    );
    report.removed_by_retention = removed as u64;
    report.passages = local.len() as u64;
    Ok(())
}
