//! The `gatelog` binary: parses the command line and hands over to
//! [`gatelog_supervisor`].

use std::process::ExitCode;

use clap::Parser;
use gatelog_supervisor::cli::{CentralCommand, Cli, Command, SyncCommand};
use gatelog_supervisor::{config, ops, serve, sync_cmd};

fn main() -> ExitCode {
    // Values in .env reach the environment before the config is read.
    let _ = dotenvy::dotenv();
    let cli = Cli::parse();
    // eval's output is its report; the server it starts inside need not
    // narrate, nor warn that it runs without keys on loopback.
    init_tracing(if matches!(cli.command, Command::Eval(_)) {
        "error"
    } else {
        "info"
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gatelog: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatelog: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    // simulate talks to a server elsewhere; the local config plays no part.
    if let Command::Simulate(args) = &cli.command {
        return ops::simulate::run(args).await;
    }
    let config = config::load(cli.config.as_deref()).map_err(anyhow::Error::msg)?;
    match cli.command {
        Command::Serve { demo } => serve::serve(config, serve::ServeOptions { demo }).await,
        Command::Config => {
            print!("{}", config.to_redacted_toml());
            Ok(())
        }
        Command::Migrate { central: false } => {
            gatelog_supervisor::serve::migrate_local(&config).await
        }
        Command::Migrate { central: true } => sync_cmd::migrate_central(&config).await,
        Command::Central { which } => match which {
            CentralCommand::Serve => gatelog_supervisor::central::serve(config).await,
            CentralCommand::Archive(args) => ops::central::archive(&config, &args).await,
            CentralCommand::RestoreArchive(args) => {
                ops::central::restore_archive(&config, &args).await
            }
        },
        Command::Sync { which } => match which {
            SyncCommand::Status { list } => sync_cmd::status(&config, list).await,
            SyncCommand::Retry { ids } => sync_cmd::retry(&config, ids).await,
        },
        Command::Retention(args) => ops::retention::run(&config, &args).await,
        Command::Backup(args) => ops::backup::backup(&config, &args).await,
        Command::Restore(args) => ops::backup::restore(&config, &args).await,
        Command::Export(args) => ops::export::run(&config, &args).await,
        Command::Eval(args) => ops::eval::run(config, &args).await,
        Command::Simulate(_) => unreachable!("handled above"),
    }
}

/// Logs go to stderr; `RUST_LOG` filters them (default `default`).
fn init_tracing(default: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
