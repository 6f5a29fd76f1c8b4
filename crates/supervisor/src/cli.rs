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
    /// Measure gatelog on this machine; see BENCHMARKS.md.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Raw SQLite, durable acks over HTTP, fsyncs per ack.
    Ingest(crate::bench::IngestArgs),
    /// Search latency over a generated store.
    Search(crate::bench::SearchArgs),
    /// WebSocket push latency and memory per idle client.
    Ws(crate::bench_ws::WsArgs),
}
