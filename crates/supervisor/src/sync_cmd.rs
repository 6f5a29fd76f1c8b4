//! `gatelog sync status`, `gatelog sync retry` and `gatelog migrate
//! --central`.
//!
//! Status and retry work on the local file, beside a running `serve` or
//! without one: SQLite's locks let a second process read, and take the
//! write lock briefly for a retry. A running sync actor picks retried rows
//! up at its next look at the backlog.

use anyhow::Context;
use gatelog_local_store::Store;
use gatelog_metrics::Metrics;
use gatelog_sync::SyncStatus;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ops::progress::Progress;

/// Dead letters put back per commit.
const RETRY_CHUNK: usize = 500;

async fn open(
    config: &Config,
) -> anyhow::Result<(Store, CancellationToken, tokio::task::JoinHandle<()>)> {
    let opened = crate::ops::open_store(config, Metrics::new()).await?;
    let token = CancellationToken::new();
    let writer = opened.writer;
    let stop = token.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = writer.run(stop).await {
            tracing::error!(error = %e, "local store writer failed");
        }
    });
    Ok((opened.store, token, task))
}

pub async fn status(config: &Config, list: u32) -> anyhow::Result<()> {
    let (store, token, task) = open(config).await?;
    let status = SyncStatus::from_store(&store, config.sync_kind()).await?;
    println!("{}", serde_json::to_string_pretty(&status)?);
    if status.dead_letters > 0 && list > 0 {
        println!("\ndead letters (retry with `gatelog sync retry [ID…]`):");
        for d in store.dead_letters(list as usize).await? {
            println!("  {}  {}  {}", d.passage.id, d.passage.container, d.reason);
        }
    }
    token.cancel();
    let _ = task.await;
    store.close().await;
    Ok(())
}

pub async fn retry(config: &Config, ids: Vec<uuid::Uuid>) -> anyhow::Result<()> {
    let (store, token, task) = open(config).await?;
    let ids: Vec<uuid::Uuid> = if ids.is_empty() {
        store
            .dead_letters(usize::MAX)
            .await?
            .into_iter()
            .map(|d| d.passage.id)
            .collect()
    } else {
        ids
    };
    let progress = Progress::new("sync retry", Some(ids.len() as u64), "passages");
    let mut n = 0;
    // In chunks, so a long list shows progress and each commit stays short.
    for chunk in ids.chunks(RETRY_CHUNK) {
        n += gatelog_sync::retry_dead_letters(&store, Some(chunk.to_vec())).await?;
        progress.inc(chunk.len() as u64);
    }
    progress.finish(&format!("{n} dead letters put back in the sync backlog"));
    println!("{n} dead letters put back in the sync backlog");
    token.cancel();
    let _ = task.await;
    store.close().await;
    Ok(())
}

pub async fn migrate_central(config: &Config) -> anyhow::Result<()> {
    let url: &SecretString = config
        .postgres
        .url
        .as_ref()
        .context("migrate --central needs postgres.url (DATABASE_URL)")?;
    // An unpartitioned table from an earlier version is upgraded in place,
    // in batches; that can take a while, so it shows progress.
    let mut bar: Option<Progress> = None;
    let result = gatelog_sync::migrate_central_reporting(
        url,
        gatelog_sync::migrate::UPGRADE_BATCH_ROWS,
        |p| {
            let bar = bar.get_or_insert_with(|| Progress::new("upgrade", Some(p.total), "rows"));
            bar.set_position(p.copied);
        },
    )
    .await;
    if let Some(bar) = bar.take() {
        match &result {
            Ok(()) => bar.finish("container_logs copied into monthly partitions and swapped"),
            Err(_) => bar.abandon(),
        }
    }
    result?;
    println!("central schema applied");
    Ok(())
}
