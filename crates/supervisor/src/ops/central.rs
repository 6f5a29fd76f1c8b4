//! `gatelog central archive` and `gatelog central restore-archive`: month
//! partitions of the central `container_logs` written to checked files
//! before they are dropped, and loaded back.
//!
//! The SQL and the file format live in `gatelog_sync::central::archive`;
//! this module parses the arguments, finds `postgres.url`, and shows
//! progress on stderr with a one-line summary per partition.

use std::path::PathBuf;

use anyhow::Context;
use gatelog_sync::central::archive::{self, ArchiveEvent, Month};
use secrecy::SecretString;

use super::progress::Progress;
use crate::config::Config;

#[derive(Debug, clap::Args)]
pub struct ArchiveArgs {
    /// Archive the month partitions before this month (YYYY-MM, in UTC).
    #[arg(long, value_name = "YYYY-MM", value_parser = clap::value_parser!(Month))]
    pub before: Month,
    /// Where the archives and their manifests are written (created if
    /// missing).
    #[arg(long, value_name = "DIR")]
    pub to: PathBuf,
}

#[derive(Debug, clap::Args)]
pub struct RestoreArchiveArgs {
    /// An archive written by `gatelog central archive` (`….jsonl.gz`, its
    /// manifest beside it).
    pub file: PathBuf,
}

fn central_url(config: &Config) -> anyhow::Result<&SecretString> {
    config
        .postgres
        .url
        .as_ref()
        .context("gatelog central needs the central database's postgres.url (DATABASE_URL)")
}

/// Archives, checks and drops every month partition before `--before`.
pub async fn archive(config: &Config, args: &ArchiveArgs) -> anyhow::Result<()> {
    let url = central_url(config)?;
    let mut bar: Option<Progress> = None;
    let archived = archive::archive(url, args.before, &args.to, |event| match event {
        ArchiveEvent::Partition { name, rows } => {
            let p = Progress::new("archive", Some(rows), "rows");
            p.set_message(name.to_string());
            bar = Some(p);
        }
        ArchiveEvent::Rows(n) => {
            if let Some(p) = &bar {
                p.inc(n);
            }
        }
        ArchiveEvent::Archived(a) => {
            if let Some(p) = bar.take() {
                p.finish(&format!(
                    "{} rows of {} written to {}, checked, and the partition dropped",
                    a.rows,
                    a.partition,
                    a.file.display()
                ));
            }
        }
    })
    .await;
    let archived = match archived {
        Ok(a) => a,
        Err(e) => {
            if let Some(p) = bar.take() {
                p.abandon();
            }
            return Err(e.into());
        }
    };
    let rows: u64 = archived.iter().map(|a| a.rows).sum();
    println!(
        "archived {} partition(s) before {}, {rows} rows, into {}",
        archived.len(),
        args.before,
        args.to.display()
    );
    Ok(())
}

/// Checks an archive and loads it back.
pub async fn restore_archive(config: &Config, args: &RestoreArchiveArgs) -> anyhow::Result<()> {
    let url = central_url(config)?;
    let mut bar: Option<Progress> = None;
    let restored = archive::restore_archive(url, &args.file, |event| match event {
        ArchiveEvent::Partition { name, rows } => {
            let p = Progress::new("restore-archive", Some(rows), "rows");
            p.set_message(name.to_string());
            bar = Some(p);
        }
        ArchiveEvent::Rows(n) => {
            if let Some(p) = &bar {
                p.inc(n);
            }
        }
        ArchiveEvent::Archived(_) => {}
    })
    .await;
    match restored {
        Ok(r) => {
            if let Some(p) = bar.take() {
                p.finish(&format!("{} rows of {} loaded", r.rows, r.partition));
            }
            println!(
                "restored {} rows of {} from {}",
                r.rows,
                r.partition,
                args.file.display()
            );
            Ok(())
        }
        Err(e) => {
            if let Some(p) = bar.take() {
                p.abandon();
            }
            Err(e.into())
        }
    }
}
