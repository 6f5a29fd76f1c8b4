//! The command line.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gatelog",
    version,
    about = "Records container numbers read at a gate, durably, and replicates them."
)]
pub struct Cli {
    /// A TOML config file, layered over config/default.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API, the WebSocket feed and the dashboard.
    Serve {
        /// Also feed a simulated camera stream, to see the dashboard move.
        #[arg(long)]
        demo: bool,
    },
    /// Print the effective configuration, secrets redacted.
    Config,
    /// Apply the local schema (serve does this on start).
    Migrate {
        /// Apply the central schema to postgres.url instead.
        #[arg(long)]
        central: bool,
    },
    /// The central database (postgres.url): serve the head-office view,
    /// archive old month partitions, load archives back.
    Central {
        #[command(subcommand)]
        which: CentralCommand,
    },
    /// Show or retry replication to the central database.
    Sync {
        #[command(subcommand)]
        which: SyncCommand,
    },
    /// Delete synced passages (and their sightings) older than N days.
    Retention(crate::ops::retention::RetentionArgs),
    /// Write a consistent copy of the store while gatelog serves.
    Backup(crate::ops::backup::BackupArgs),
    /// Replace the store with a checked backup (gatelog must be stopped).
    Restore(crate::ops::backup::RestoreArgs),
    /// Write passages as CSV or JSON Lines, or movements as a CODECO
    /// interchange for a partner, with the API's filters.
    Export(Box<crate::ops::export::ExportArgs>),
    /// Post a realistic simulated camera feed to a running server, or
    /// write one with the truth beside each read (--labelled FILE).
    Simulate(crate::ops::simulate::SimulateArgs),
    /// Replay a labelled stream through gatelog's rules in a temporary
    /// store and print how well they did, as one JSON object.
    Eval(crate::ops::eval::EvalArgs),
}

#[derive(Debug, Subcommand)]
pub enum CentralCommand {
    /// Serve the head-office view: the dashboard, the read API and the
    /// live feed across every site, from the central database
    /// (postgres.url), read-only; plus /api/v1/sites.
    Serve,
    /// Write each month partition before --before to a compressed JSON
    /// Lines file with a manifest, read it back to check it, and only then
    /// drop the partition.
    Archive(crate::ops::central::ArchiveArgs),
    /// Check an archive and load it back (safe to repeat).
    RestoreArchive(crate::ops::central::RestoreArchiveArgs),
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Target, backlog, lag and dead letters, read from the local store.
    Status {
        /// Also list up to this many dead letters with their reasons.
        #[arg(long, default_value_t = 20)]
        list: u32,
    },
    /// Put dead letters back in the backlog (all, or the given ids).
    Retry {
        /// Passage ids; all dead letters when none is given.
        ids: Vec<uuid::Uuid>,
    },
}
