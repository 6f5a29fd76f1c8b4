//! `gatelog retention [--days N]`, and the daily pass inside `serve`.
//!
//! Both delete, in chunks, passages that are synced (and not dead
//! letters) and were last seen more than N days ago, with their sightings.
//! Inside `serve` the chunks go through the writer actor, between group
//! commits; from the command line they use a connection of their own,
//! which SQLite's locking keeps safe next to a running server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gatelog_local_store::retention::{self, RetentionReport, CHUNK};
use gatelog_local_store::Store;
use gatelog_metrics::Metrics;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use crate::config::Config;
use crate::supervise::supervise;

/// The first pass waits this long after start-up, so it never slows a
/// restart; later passes come every [`EVERY`].
const FIRST_PASS_AFTER: Duration = Duration::from_secs(60);
const EVERY: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, clap::Args)]
pub struct RetentionArgs {
    /// Delete synced passages last seen more than this many days ago
    /// [default: retention.local_days].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: Option<u32>,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

fn cutoff(days: u32) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(i64::from(days))
}

fn describe(r: &RetentionReport, days: u32) -> String {
    format!(
        "removed {} passages and {} sightings last seen more than {days} days ago; \
         unsynced and dead-letter passages are kept",
        r.passages, r.sightings
    )
}

/// `gatelog retention`.
pub async fn run(config: &Config, args: &RetentionArgs) -> anyhow::Result<()> {
    super::require_store(config)?;
    let days = args.days.unwrap_or(config.retention.local_days);
    let cutoff = cutoff(days);
    let mut conn = retention::connect(&config.store).await?;
    let eligible = retention::count_eligible(&mut conn, cutoff).await?;
    if args.dry_run {
        println!(
            "{eligible} synced passages were last seen more than {days} days ago (before {}); nothing deleted",
            cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        return Ok(());
    }
    let progress = Progress::new("retention", Some(eligible), "passages");
    let mut total = RetentionReport::default();
    loop {
        let r = match retention::purge_chunk_standalone(&mut conn, cutoff, CHUNK).await {
            Ok(r) => r,
            Err(e) => {
                progress.abandon();
                return Err(anyhow::Error::new(e).context(format!(
                    "retention stopped after {} passages",
                    total.passages
                )));
            }
        };
        if r.passages == 0 {
            break;
        }
        total.add(r);
        progress.set_position(total.passages);
    }
    progress.finish(&describe(&total, days));
    println!("{}", describe(&total, days));
    Ok(())
}

/// Starts the daily retention pass as a supervised actor of `serve`.
pub fn spawn_daily(
    actors: &mut JoinSet<()>,
    store: &Store,
    config: &Config,
    shutdown: &CancellationToken,
    metrics: &Metrics,
) {
    let writer = store.writer().clone();
    let days = config.retention.local_days;
    let token = shutdown.clone();
    actors.spawn(supervise(
        "retention",
        shutdown.clone(),
        metrics.clone(),
        move || {
            let writer = writer.clone();
            let token = token.clone();
            async move {
                let mut wait = FIRST_PASS_AFTER;
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = token.cancelled() => return Ok::<(), gatelog_local_store::StoreError>(()),
                    }
                    wait = EVERY;
                    let cutoff = cutoff(days);
                    let mut total = RetentionReport::default();
                    loop {
                        if token.is_cancelled() {
                            return Ok(());
                        }
                        let r = writer.retain(cutoff, CHUNK).await?;
                        if r.passages == 0 {
                            break;
                        }
                        total.add(r);
                    }
                    tracing::info!(
                        passages = total.passages,
                        sightings = total.sightings,
                        days,
                        "retention pass done"
                    );
                }
            }
        },
    ));
}
