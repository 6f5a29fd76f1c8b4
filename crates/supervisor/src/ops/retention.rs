//! `gatelog retention [--days N]`, and the daily pass inside `serve`.
//!
//! Both delete, in chunks, passages last seen more than N days ago, with
//! their sightings. With a sync target only passages that are synced (and
//! not dead letters) go; with `sync.target = none` the local store is the
//! system of record and every such passage goes (see [`scope`]).
//! Inside `serve` the chunks go through the writer actor, between group
//! commits; from the command line they use a connection of their own,
//! which SQLite's locking keeps safe next to a running server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use gatelog_local_store::retention::{self, RetentionReport, RetentionScope, CHUNK};
use gatelog_local_store::Store;
use gatelog_metrics::Metrics;
use gatelog_sync::TargetKind;
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
    /// Delete passages last seen more than this many days ago (with a
    /// sync target, only synced ones) [default: retention.local_days].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub days: Option<u32>,
    /// Only count what would be deleted.
    #[arg(long)]
    pub dry_run: bool,
}

fn cutoff(days: u32) -> DateTime<Utc> {
    Utc::now() - chrono::Duration::days(i64::from(days))
}

/// What retention may delete. Without a target nothing is ever confirmed,
/// so "only synced passages" would keep everything forever and fill the
/// disk; the local store is then the only copy by choice, and
/// `retention.local_days` is how long it keeps passages.
pub fn scope(config: &Config) -> RetentionScope {
    match config.sync_kind() {
        TargetKind::None => RetentionScope::Everything,
        TargetKind::Supabase | TargetKind::Postgres => RetentionScope::SyncedOnly,
    }
}

fn describe(r: &RetentionReport, days: u32, scope: RetentionScope) -> String {
    let kept = match scope {
        RetentionScope::SyncedOnly => "unsynced and dead-letter passages are kept",
        RetentionScope::Everything => "sync.target is none, so the sync state does not matter",
    };
    format!(
        "removed {} passages and {} sightings last seen more than {days} days ago; {kept}",
        r.passages, r.sightings
    )
}

/// `gatelog retention`.
pub async fn run(config: &Config, args: &RetentionArgs) -> anyhow::Result<()> {
    super::require_store(config)?;
    let days = args.days.unwrap_or(config.retention.local_days);
    let cutoff = cutoff(days);
    let scope = scope(config);
    let mut conn = retention::connect(&config.store).await?;
    let eligible = retention::count_eligible(&mut conn, cutoff, scope).await?;
    if args.dry_run {
        let which = match scope {
            RetentionScope::SyncedOnly => "synced passages",
            RetentionScope::Everything => "passages (sync.target is none)",
        };
        println!(
            "{eligible} {which} were last seen more than {days} days ago (before {}); nothing deleted",
            cutoff.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        return Ok(());
    }
    let progress = Progress::new("retention", Some(eligible), "passages");
    let mut total = RetentionReport::default();
    loop {
        let r = match retention::purge_chunk_standalone(&mut conn, cutoff, CHUNK, scope).await {
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
    progress.finish(&describe(&total, days, scope));
    println!("{}", describe(&total, days, scope));
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
    let scope = scope(config);
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
                        let r = writer.retain(cutoff, CHUNK, scope).await?;
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
