//! `gatelog backup FILE` and `gatelog restore FILE`.
//!
//! Backup is online: run it while `serve` runs. It refuses a FILE that is
//! (or resolves to) the store, its WAL, its shared-memory index or its lock
//! file, before anything is written. Restore needs the server stopped, checks the file before anything is replaced, and keeps the
//! replaced store beside the new one. The work itself is in
//! [`gatelog_local_store::backup`].

use std::path::PathBuf;
use std::time::Duration;

use gatelog_local_store::backup;

use super::progress::Progress;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the copy.
    pub file: PathBuf,
    /// Replace FILE if it exists (atomically: it is whole at all times).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    /// A file written by `gatelog backup`.
    pub file: PathBuf,
}

const MIB: f64 = 1024.0 * 1024.0;

/// `gatelog backup`.
pub async fn backup(config: &Config, args: &BackupArgs) -> anyhow::Result<()> {
    super::require_store(config)?;
    let total = backup::store_bytes(&config.store);
    let progress = Progress::new("backup", Some(total), "bytes");
    progress.set_message(format!("to {}", args.file.display()));
    // VACUUM INTO is one statement; the size of the growing copy shows how
    // far it has got.
    let partial = backup::partial_path(&args.file);
    let poll = {
        let progress = progress.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if let Ok(m) = std::fs::metadata(&partial) {
                    progress.set_position(m.len().min(total));
                }
            }
        })
    };
    let result = backup::backup(&config.store, &args.file, args.force).await;
    poll.abort();
    match result {
        Ok(v) => {
            progress.set_position(total);
            let summary = format!(
                "wrote {} ({:.1} MiB): {} passages, {} sightings, integrity ok",
                args.file.display(),
                v.bytes as f64 / MIB,
                v.passages,
                v.sightings
            );
            progress.finish(&summary);
            println!("{summary}");
            Ok(())
        }
        Err(e) => {
            progress.abandon();
            let context = match e {
                gatelog_local_store::StoreError::Refused(_) => {
                    "backup refused; nothing was written"
                }
                _ => "backup failed; FILE was not written",
            };
            Err(anyhow::Error::new(e).context(context))
        }
    }
}

/// `gatelog restore`.
pub async fn restore(config: &Config, args: &RestoreArgs) -> anyhow::Result<()> {
    let progress = Progress::new("restore", None, "");
    progress.set_message(format!(
        "checking {} and installing it as {}",
        args.file.display(),
        config.store.path.display()
    ));
    match backup::restore(&config.store, &args.file).await {
        Ok(r) => {
            let kept = match &r.previous {
                Some(p) => format!("; the previous store is kept as {}", p.display()),
                None => String::new(),
            };
            let summary = format!(
                "restored {} passages and {} sightings into {}{kept}",
                r.verified.passages,
                r.verified.sightings,
                config.store.path.display()
            );
            progress.finish(&summary);
            println!("{summary}");
            Ok(())
        }
        Err(e) => {
            progress.abandon();
            let context = match e {
                gatelog_local_store::StoreError::Refused(_) => {
                    "restore refused; the store was not changed"
                }
                _ => "restore failed",
            };
            Err(anyhow::Error::new(e).context(context))
        }
    }
}
