//! `gatelog-reliability`: the long runs of RELIABILITY.md, which CI does
//! not run. `crash-loop` kills and restarts the real binary under load
//! (1,000 cycles by default); `soak` runs it for 30 minutes at 200 reads/s
//! with sync through a path that goes down every 5 minutes and 50
//! WebSocket clients. Both need the real PostgreSQL at 127.0.0.1:5432
//! and the `gatelog` binary built beside this one (`cargo build -p
//! gatelog-supervisor -p gatelog-tests --bins`).

use std::time::Duration;

use clap::{Parser, Subcommand};
use gatelog_tests::crash::{crash_loop, CrashLoop};
use gatelog_tests::soak::{soak, Soak};

#[derive(Parser)]
#[command(about = "gatelog's long reliability runs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// SIGKILL and restart the server at random moments under load.
    CrashLoop {
        #[arg(long, default_value_t = 1_000)]
        cycles: u32,
        #[arg(long, default_value_t = 4)]
        clients: u32,
        /// Every how many restarts to check the whole store and the whole
        /// central table (`PRAGMA integrity_check` included); the others
        /// check the reads acknowledged since the last check.
        #[arg(long, default_value_t = 25)]
        full_check_every: u32,
    },
    /// A long run at a steady rate with a flapping path to the centre.
    Soak {
        /// Seconds the run lasts.
        #[arg(long, default_value_t = 1_800)]
        duration_secs: u64,
        #[arg(long, default_value_t = 200)]
        rate: u32,
        #[arg(long, default_value_t = 50)]
        ws_clients: u32,
        /// Seconds between outages of the path to the centre.
        #[arg(long, default_value_t = 300)]
        flap_every_secs: u64,
        /// Seconds each outage lasts.
        #[arg(long, default_value_t = 60)]
        outage_secs: u64,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::CrashLoop {
            cycles,
            clients,
            full_check_every,
        } => {
            let plan = CrashLoop {
                cycles,
                clients,
                full_check_every,
                verbose: true,
                ..CrashLoop::default()
            };
            let r = crash_loop(&plan).await?;
            println!("| cycles | acks | losses | unanswered at the kill | dedup checks | full checks | backups | retention runs | removed by retention | passages | time |");
            println!("|---|---|---|---|---|---|---|---|---|---|---|");
            println!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s |",
                r.cycles,
                r.acks,
                r.losses,
                r.unanswered,
                r.dedup_checks,
                r.full_checks,
                r.backups,
                r.retention_runs,
                r.removed_by_retention,
                r.passages,
                r.elapsed.as_secs_f64()
            );
        }
        Command::Soak {
            duration_secs,
            rate,
            ws_clients,
            flap_every_secs,
            outage_secs,
        } => {
            let plan = Soak {
                duration: Duration::from_secs(duration_secs),
                rate,
                ws_clients,
                flap_every: Duration::from_secs(flap_every_secs),
                outage: Duration::from_secs(outage_secs),
            };
            let r = soak(&plan).await?;
            let plan = &plan;
            println!(
                "reads: {}, errors: {} {:?}",
                r.reads,
                r.errors.values().sum::<u64>(),
                r.errors
            );
            println!(
                "retried with the same id after a connection failure: {} {:?}",
                r.retries.values().sum::<u64>(),
                r.retries
            );
            println!("WebSocket: {} frames, {} drops", r.ws_frames, r.ws_drops);
            println!(
                "RSS: first {} KiB, last {} KiB, slope after 2 min {:.1} KiB/min",
                r.rss_kib.first().map_or(0, |s| s.1),
                r.rss_kib.last().map_or(0, |s| s.1),
                r.rss_slope_kib_per_min(120.0)
            );
            let every_5_min: Vec<String> = r
                .rss_kib
                .iter()
                .filter(|(t, _)| (*t as u64) % 300 < 10)
                .map(|(t, k)| format!("{:.0}s {} KiB", t, k))
                .collect();
            println!("RSS every 5 min: {}", every_5_min.join(", "));
            let third = plan.duration.as_secs_f64() / 3.0;
            println!(
                "RSS slope by thirds (after 2 min): {:.1}, {:.1}, {:.1} KiB/min",
                r.rss_slope_kib_per_min_between(120.0, third),
                r.rss_slope_kib_per_min_between(third, 2.0 * third),
                r.rss_slope_kib_per_min_between(2.0 * third, f64::MAX)
            );
            println!(
                "anonymous memory: first {} KiB, last {} KiB; slope by thirds {:.1}, {:.1}, {:.1} KiB/min",
                r.rss_anon_kib.first().map_or(0, |s| s.1),
                r.rss_anon_kib.last().map_or(0, |s| s.1),
                r.anon_slope_kib_per_min_between(120.0, third),
                r.anon_slope_kib_per_min_between(third, 2.0 * third),
                r.anon_slope_kib_per_min_between(2.0 * third, f64::MAX)
            );
            let p99: Vec<String> = r
                .p99_ms_by_minute
                .iter()
                .map(|p| format!("{p:.1}"))
                .collect();
            println!("p99 ms by minute: {}", p99.join(" "));
            for o in &r.outages {
                println!(
                    "outage at {} s: backlog {} passages, drained in {:.1} s",
                    o.at_secs, o.backlog, o.drain_secs
                );
            }
            println!("passages: {} (central copy exact)", r.passages);
        }
    }
    Ok(())
}
