//! `gatelog retention [--days N]`, and the daily pass inside `serve`.
//!
//! Both delete, in chunks, passages last seen more than N days ago, with
//! their sightings. With a sync target only passages that are synced (and
//! not dead letters) go; with `sync.target = none` the local store is the
//! system of record and every such passage goes (see [`scope`]).
//! Both go through the writer actor, chunk by chunk, each chunk its own
//! transaction: inside `serve` between group commits; from the command
//! line the command opens the store with a writer actor of its own, as
//! `serve` does. Next to a running server that is a second process's
//! writer, and SQLite's locking serialises the two: each chunk takes the
//! write lock briefly, and the server's writer waits up to
//! `store.busy_timeout_ms` for it.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use gatelog_local_store::retention::{RetentionReport, RetentionScope, CHUNK};
use gatelog_local_store::{Store, WriterHandle};
use gatelog_metrics::{Component, Metrics};
use gatelog_sync::TargetKind;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::progress::Progress;
use crate::config::Config;
use crate::supervise;

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

/// `gatelog retention`. The store is opened with its writer actor, as
/// `serve` opens it, and every chunk goes through the writer.
pub async fn run(config: &Config, args: &RetentionArgs) -> anyhow::Result<()> {
    super::require_store(config)?;
    let days = args.days.unwrap_or(config.retention.local_days);
    let cutoff = cutoff(days);
    let scope = scope(config);
    let opened = super::open_store(config, Metrics::new()).await?;
    let store = opened.store;
    let eligible = store.retention_eligible(cutoff, scope).await?;
    if args.dry_run {
        store.close().await;
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
    let stop = CancellationToken::new();
    let writer = tokio::spawn({
        let (writer, stop) = (opened.writer, stop.clone());
        async move { writer.run(stop).await }
    });
    let progress = Progress::new("retention", Some(eligible), "passages");
    let mut done = 0;
    let purged = purge(
        store.writer(),
        cutoff,
        scope,
        &CancellationToken::new(),
        |total| {
            done = total.passages;
            progress.set_position(total.passages);
        },
    )
    .await;
    // The writer answers what is queued, then closes its connection.
    stop.cancel();
    let stopped = writer.await;
    store.close().await;
    let total = match purged {
        Ok(total) => total.unwrap_or_default(),
        Err(e) => {
            progress.abandon();
            return Err(
                anyhow::Error::new(e).context(format!("retention stopped after {done} passages"))
            );
        }
    };
    stopped
        .context("the writer panicked")?
        .context("the writer failed")?;
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
    let days = config.retention.local_days;
    let scope = scope(config);
    supervise::spawn(
        actors,
        Component::Retention,
        shutdown,
        metrics,
        store.writer().clone(),
        move |writer, token| async move {
            let mut wait = FIRST_PASS_AFTER;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = token.cancelled() => return Ok::<(), gatelog_local_store::StoreError>(()),
                }
                wait = EVERY;
                let Some(total) = purge(&writer, cutoff(days), scope, &token, |_| {}).await? else {
                    return Ok(());
                };
                tracing::info!(
                    passages = total.passages,
                    sightings = total.sightings,
                    days,
                    "retention pass done"
                );
            }
        },
    );
}

/// Deletes, chunk by chunk through the writer, every passage in `scope`
/// last seen before `cutoff`, calling `progress` with the running total
/// after each chunk. `None` when `stop` fired before the end.
async fn purge(
    writer: &WriterHandle,
    cutoff: DateTime<Utc>,
    scope: RetentionScope,
    stop: &CancellationToken,
    mut progress: impl FnMut(&RetentionReport),
) -> Result<Option<RetentionReport>, gatelog_local_store::StoreError> {
    let mut total = RetentionReport::default();
    loop {
        if stop.is_cancelled() {
            return Ok(None);
        }
        let r = writer.retain(cutoff, CHUNK, scope).await?;
        if r.passages == 0 {
            return Ok(Some(total));
        }
        total.add(r);
        progress(&total);
    }
}
