//! `gatelog-bench`: the measurements recorded in BENCHMARKS.md.
//!
//! Benchmarks are tools, not features, so they live in this binary and
//! not in `gatelog`: the production binary carries none of their
//! dependencies (a WebSocket client, raw SQLite access, the open-file
//! limit of thousands of client sockets). The server under test is always
//! the real `gatelog serve`, started as a child process on a loopback port
//! and driven over real HTTP and WebSocket.
//!
//! # Layout
//! - [`server`]: the `gatelog serve` child process, its metrics (names
//!   read from the metrics crate), its memory and CPU time.
//! - [`latency`]: latency percentiles, kept in an HDR histogram.
//! - [`reads`]: the distinct, valid reads every load posts.
//! - [`ingest`]: raw SQLite, durable acks with an in-process load or with
//!   wrk, fsyncs per ack.
//! - [`search`]: search latency over a generated store.
//! - [`ws`]: live feed push latency and memory per idle client.
//! - [`central`]: the head-office view (`gatelog central serve`) over a
//!   generated central table in PostgreSQL.
//! - [`sites`]: many `gatelog serve` syncing into one central database at
//!   once, against a raw upsert of the same rows by as many clients.

mod central;
mod ingest;
mod latency;
mod reads;
mod search;
mod server;
mod sites;
mod ws;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "gatelog-bench",
    version,
    about = "Measures gatelog on this machine; see BENCHMARKS.md."
)]
struct Cli {
    /// The `gatelog` binary to measure. Default: the one beside this
    /// binary (target/release/gatelog after `cargo build --release`).
    #[arg(long, global = true, value_name = "PATH")]
    gatelog: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Raw SQLite, durable acks over HTTP, fsyncs per ack.
    Ingest(ingest::IngestArgs),
    /// Search latency over a generated store.
    Search(search::SearchArgs),
    /// WebSocket push latency and memory per idle client.
    Ws(ws::WsArgs),
    /// The head-office view's read latency over a generated central table.
    Central(central::CentralArgs),
    /// Many sites syncing into one central database at once, against a
    /// raw multi-client upsert.
    Sites(sites::SitesArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatelog-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let gatelog = server::gatelog_binary(cli.gatelog)?;
        match cli.command {
            Command::Ingest(args) => ingest::run(&gatelog, &args).await,
            Command::Search(args) => search::run(&gatelog, &args).await,
            Command::Ws(args) => ws::run(&gatelog, &args).await,
            Command::Central(args) => central::run(&gatelog, &args).await,
            Command::Sites(args) => sites::run(&gatelog, &args).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatelog-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
