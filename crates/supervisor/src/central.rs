//! `gatelog central serve`: the head-office view.
//!
//! The same API handlers and dashboard as a site, over the central
//! database (`postgres.url`, `DATABASE_URL`) through
//! [`gatelog_sync::central::serve::CentralReader`], read-only, plus
//! `GET /api/v1/sites`. It takes the same `[server]`, `[auth]` and
//! `[limits]` configuration as `serve` and refuses a non-loopback bind
//! without keys the same way. Its actors:
//! - the broadcaster, fed by [`CentralFeed`] (the central trigger's
//!   notifications), so `/ws/logs` pushes every site's changes;
//! - the upkeep: partitions made ahead at start and daily
//!   (`central.months_ahead`), and every [`WATCH_EVERY`] the sites' lag
//!   and stale count for `/metrics`.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gatelog_api::{broadcaster_from, build_server, AppState, OutcomeSource};
use gatelog_local_store::PassageReader;
use gatelog_metrics::{Component, Metrics};
use gatelog_sync::central::serve::{self as central, CentralFeed, CentralOptions, CentralReader};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::supervise;

/// How often the sites' lag and stale count are refreshed for `/metrics`.
pub const WATCH_EVERY: Duration = Duration::from_secs(15);
/// How often partitions are made ahead.
const UPKEEP_EVERY: Duration = Duration::from_secs(24 * 3600);

/// A built head-office view: pool open, listener bound, actors started.
pub struct CentralApplication {
    addr: SocketAddr,
    server: gatelog_api::Server,
    shutdown: CancellationToken,
    actors: JoinSet<()>,
    broadcast: gatelog_api::BroadcastHandle,
    drain: Duration,
}

impl CentralApplication {
    /// Connects to the central database, binds `server.bind` and starts
    /// the actors.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        crate::serve::check_exposure(&config)?;
        let url = config.postgres.url.clone().context(
            "gatelog central serve needs the central database's postgres.url (DATABASE_URL)",
        )?;
        let options = CentralOptions {
            url: url.clone(),
            stale_after: Duration::from_secs(config.central.stale_after_secs),
            max_connections: config.central.max_connections,
        };
        let reader = CentralReader::connect(&options)
            .await
            .context("cannot read the central database (postgres.url)")?;
        match central::maintain(&url, config.central.months_ahead).await {
            Ok(n) => tracing::info!(created = n, "central partitions made ahead"),
            // Reading does not depend on it; the daily pass tries again.
            Err(e) => tracing::warn!(error = %e, "cannot make central partitions ahead"),
        }
        let metrics = Metrics::new();
        let listener = crate::serve::listen(&config.server.bind)
            .with_context(|| format!("cannot listen on {} (server.bind)", config.server.bind))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let mut actors = JoinSet::new();

        let feed = Arc::new(CentralFeed::new(reader.clone()));
        let (broadcast_actor, broadcast) = broadcaster_from::<serde_json::Value>(
            OutcomeSource::Channel(feed.sender()),
            metrics.clone(),
            None,
        );
        supervise::spawn(
            &mut actors,
            Component::Broadcaster,
            &shutdown,
            &metrics,
            Arc::new(broadcast_actor),
            |actor, token| async move { actor.run(token).await },
        );
        let restarted = Arc::new(AtomicBool::new(false));
        let handle = broadcast.clone();
        supervise::spawn(
            &mut actors,
            Component::CentralFeed,
            &shutdown,
            &metrics,
            (feed, restarted, handle),
            |(feed, restarted, handle), token| async move {
                // A run after a failure may have missed notifications.
                if restarted.swap(true, Ordering::AcqRel) {
                    handle.resync(
                        "the live feed from the central database restarted; refetch what you show",
                    );
                }
                feed.run(token, |reason| handle.resync(reason)).await
            },
        );
        spawn_upkeep(&mut actors, &reader, &url, &config, &shutdown, &metrics);

        let state = AppState {
            reader: Arc::new(reader),
            local: None,
            metrics: metrics.clone(),
            validation: config.validation.clone(),
            owners: None,
            cameras: Arc::new(gatelog_core::gate::Cameras::default()),
            body_limit: config.server.body_limit_bytes,
            security: crate::ops::security(&config),
            broadcaster: broadcast.clone(),
            // Images stay at the sites.
            image_dir: None,
            ws_limiter: Arc::new(crate::serve::ws_limiter(&config)),
            // A CODECO report is a site's own (its UN/LOCODE, its gate):
            // the head office has no partners, and refuses the format.
            codeco: Arc::new(gatelog_core::codeco::CodecoConfig::default()),
        };
        let server = build_server(listener, state, &config.server)
            .context("cannot start the HTTP server")?;
        tracing::info!(bind = %addr, "gatelog central is serving the head-office view");
        Ok(Self {
            addr,
            server,
            shutdown,
            actors,
            broadcast,
            drain: Duration::from_secs(config.server.shutdown_timeout_secs),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `stop` resolves, then closes live connections, drains
    /// HTTP and stops the actors.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let Self {
            server,
            shutdown,
            mut actors,
            broadcast,
            drain,
            ..
        } = self;
        let handle = server.handle();
        let mut http = tokio::spawn(server);
        let http_result = tokio::select! {
            _ = stop => None,
            r = &mut http => Some(r),
        };
        broadcast.close_clients();
        let _ = tokio::time::timeout(drain, broadcast.clients_closed()).await;
        handle.stop(true).await;
        if http_result.is_none() {
            let _ = http.await;
        }
        shutdown.cancel();
        while actors.join_next().await.is_some() {}
        tracing::info!("gatelog central stopped");
        match http_result {
            Some(Ok(Err(e))) => Err(e).context("the HTTP server failed"),
            Some(Err(e)) => Err(e).context("the HTTP server panicked"),
            _ => Ok(()),
        }
    }
}

/// Partitions made ahead daily, and the sites' lag for `/metrics`.
fn spawn_upkeep(
    actors: &mut JoinSet<()>,
    reader: &CentralReader,
    url: &secrecy::SecretString,
    config: &Config,
    shutdown: &CancellationToken,
    metrics: &Metrics,
) {
    let months_ahead = config.central.months_ahead;
    supervise::spawn(
        actors,
        Component::CentralUpkeep,
        shutdown,
        metrics,
        (reader.clone(), url.clone(), metrics.clone()),
        move |(reader, url, metrics), token| async move {
            let mut watch = tokio::time::interval(WATCH_EVERY);
            let mut upkeep = tokio::time::interval(UPKEEP_EVERY);
            // The first tick is now; `build` made the partitions already.
            upkeep.tick().await;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return Ok::<(), gatelog_local_store::StoreError>(()),
                    _ = watch.tick() => {
                        match reader.sites().await {
                            Ok(Some(sites)) => {
                                metrics.set_central_site_lag(
                                    sites.iter().map(|s| (s.site_id.as_str(), s.lag_secs)),
                                );
                                metrics
                                    .central_stale_sites
                                    .set(sites.iter().filter(|s| s.stale).count() as i64);
                            }
                            Ok(None) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot read the sites' sync state"),
                        }
                    }
                    _ = upkeep.tick() => {
                        match central::maintain(&url, months_ahead).await {
                            Ok(n) => tracing::info!(created = n, "central partitions made ahead"),
                            Err(e) => tracing::warn!(error = %e, "cannot make central partitions ahead"),
                        }
                    }
                }
            }
        },
    );
}

/// `gatelog central serve`: runs until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let app = CentralApplication::build(config).await?;
    app.run_until(async {
        let signal = crate::serve::shutdown_signal().await;
        tracing::info!(signal, "signal received");
    })
    .await
}
