//! `gatelog serve`: every component, wired and supervised.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use gatelog_api::{build_server, AppState};
use gatelog_local_store::Store;
use gatelog_metrics::{Component, Metrics};
use gatelog_sync::SyncActor;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::feed;
use crate::supervise;

/// Options of `serve` that are not configuration.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Feed a simulated camera stream into the store.
    pub demo: bool,
}

/// The WebSocket caps, within the open-file limit, raised first to its
/// hard maximum: every live connection is a descriptor, and half of them
/// stay in reserve for ingest and everything else.
pub(crate) fn ws_limiter(config: &Config) -> gatelog_api::WsLimiter {
    let open_files = match crate::nofile::raise_to_hard_limit() {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open-file limit; WebSocket connections are capped by configuration only");
            None
        }
    };
    let limits = &config.limits;
    let limiter = gatelog_api::WsLimiter::new(
        limits.ws_connections_per_key,
        limits.ws_connections_total,
        open_files,
    );
    if limiter.total() < limits.ws_connections_total {
        tracing::warn!(
            configured = limits.ws_connections_total,
            in_force = limiter.total(),
            open_files = open_files.unwrap_or_default(),
            "limits.ws_connections_total is more than half the open-file limit allows; raise the limit (LimitNOFILE=, ulimit -Hn) to serve that many"
        );
    }
    limiter
}

/// Refuses a non-loopback bind when no keys are configured.
pub fn check_exposure(config: &Config) -> anyhow::Result<()> {
    let addr = config.bind_addr().map_err(anyhow::Error::msg)?;
    if config.auth.is_open() {
        if !addr.ip().is_loopback() {
            anyhow::bail!(
                "refusing to serve on {addr} without keys: anyone on the network could write and read. \
                 Configure auth.ingest_keys, auth.read_keys and auth.operator_keys \
                 (GATELOG_AUTH__INGEST_KEYS, GATELOG_AUTH__READ_KEYS, GATELOG_AUTH__OPERATOR_KEYS), \
                 or bind a loopback address such as 127.0.0.1:8080"
            );
        }
        tracing::warn!(%addr, "no keys configured: serving on loopback only, without authentication");
    }
    Ok(())
}

/// A built gatelog: store open, listener bound, actors started, HTTP
/// server ready to run. Tests build one on port 0 and read its address.
pub struct Application {
    /// Held while serving, so no second server or restore takes the store.
    lock: gatelog_local_store::lock::StoreLock,
    addr: SocketAddr,
    store: Store,
    server: gatelog_api::Server,
    shutdown: CancellationToken,
    actors: JoinSet<()>,
    /// Closes WebSocket connections at shutdown, before HTTP drains.
    broadcast: gatelog_api::BroadcastHandle,
    /// How long shutdown waits for connections (`server.shutdown_timeout_secs`).
    drain: Duration,
}

impl Application {
    /// Opens the store, binds `server.bind` and starts every actor.
    pub async fn build(mut config: Config, options: ServeOptions) -> anyhow::Result<Self> {
        check_exposure(&config)?;
        let demo_images = if options.demo {
            Some(
                feed::DemoImages::prepare(&mut config)
                    .context("cannot create the demo's image folder")?,
            )
        } else {
            None
        };
        let lock = gatelog_local_store::lock::StoreLock::try_acquire(&config.store.path)?;
        let metrics = Metrics::new();
        let opened = crate::ops::open_store(&config, metrics.clone()).await?;
        let store = opened.store;
        let listener = listen(&config.server.bind)
            .with_context(|| format!("cannot listen on {} (server.bind)", config.server.bind))?;
        let addr = listener.local_addr()?;
        let shutdown = CancellationToken::new();
        let mut actors = JoinSet::new();

        supervise::spawn(
            &mut actors,
            Component::Checkpointer,
            &shutdown,
            &metrics,
            Arc::new(opened.checkpointer),
            |checkpointer, token| async move { checkpointer.run(token).await },
        );
        supervise::spawn(
            &mut actors,
            Component::Writer,
            &shutdown,
            &metrics,
            Arc::new(opened.writer),
            |writer, token| async move { writer.run(token).await },
        );

        let target = config
            .sync_target()
            .map_err(|e| anyhow::anyhow!("bad configuration: {e}"))?;
        let (sync, sync_handle) =
            SyncActor::new(config.sync.clone(), target, store.clone(), metrics.clone());
        supervise::spawn(
            &mut actors,
            Component::Sync,
            &shutdown,
            &metrics,
            Arc::new(sync),
            |sync, token| async move { sync.run(token).await },
        );

        // The live feed for WebSocket clients, with the sync actor's
        // status as its `sync_status` source.
        let (broadcast_actor, broadcast) =
            gatelog_api::broadcaster(&store, metrics.clone(), Some(sync_handle.status()));
        supervise::spawn(
            &mut actors,
            Component::Broadcaster,
            &shutdown,
            &metrics,
            Arc::new(broadcast_actor),
            |actor, token| async move { actor.run(token).await },
        );

        if let Some(images) = demo_images {
            feed::spawn_demo(&mut actors, addr, &config, images, &shutdown, &metrics);
        }
        crate::ops::retention::spawn_daily(&mut actors, &store, &config, &shutdown, &metrics);

        let state = AppState {
            reader: Arc::new(store.clone()),
            local: Some(gatelog_api::Local {
                store: store.clone(),
                sync: sync_handle,
            }),
            metrics: metrics.clone(),
            validation: config.validation.clone(),
            owners: config
                .recognition
                .owner_codes()
                .map_err(anyhow::Error::msg)?
                .map(Arc::new),
            cameras: Arc::new(config.camera_map().map_err(anyhow::Error::msg)?),
            codeco: Arc::new(config.codeco().map_err(anyhow::Error::msg)?),
            body_limit: config.server.body_limit_bytes,
            security: crate::ops::security(&config),
            broadcaster: broadcast.clone(),
            image_dir: config.server.image_dir.clone(),
            ws_limiter: Arc::new(ws_limiter(&config)),
        };
        let server = build_server(listener, state, &config.server)
            .context("cannot start the HTTP server")?;
        tracing::info!(
            bind = %addr,
            store = %config.store.path.display(),
            site = %config.site.id,
            sync = config.sync.target.as_str(),
            "gatelog is serving"
        );
        Ok(Self {
            lock,
            addr,
            store,
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

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Serves until `stop` resolves, then shuts down in order: HTTP first,
    /// draining in-flight requests (they still need the writer), then the
    /// actors (the writer answers whatever is queued), then the store.
    pub async fn run_until(
        self,
        stop: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let Self {
            lock,
            store,
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
        tracing::info!("shutting down: draining HTTP requests");
        // Live connections never finish by themselves; close them first so
        // the graceful stop does not wait out its timeout.
        broadcast.close_clients();
        let _ = tokio::time::timeout(drain, broadcast.clients_closed()).await;
        handle.stop(true).await;
        if http_result.is_none() {
            let _ = http.await;
        }
        tracing::info!("HTTP stopped; stopping components");
        shutdown.cancel();
        while actors.join_next().await.is_some() {}
        store.close().await;
        drop(lock);
        tracing::info!("gatelog stopped");
        match http_result {
            Some(Ok(Err(e))) => Err(e).context("the HTTP server failed"),
            Some(Err(e)) => Err(e).context("the HTTP server panicked"),
            _ => Ok(()),
        }
    }
}

/// Connections the kernel queues before gatelog accepts them. The
/// standard library's 128 is easily overrun when every dashboard
/// reconnects at once after a restart; this is actix-web's default.
const LISTEN_BACKLOG: i32 = 1024;

/// Binds `bind` (an address, or a name that resolves to some) with
/// [`LISTEN_BACKLOG`], trying each resolved address in turn.
pub(crate) fn listen(bind: &str) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let mut last = None;
    for addr in std::net::ToSocketAddrs::to_socket_addrs(bind)? {
        let attempt = (|| {
            let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
            socket.set_reuse_address(true)?;
            socket.bind(&addr.into())?;
            socket.listen(LISTEN_BACKLOG)?;
            Ok(TcpListener::from(socket))
        })();
        match attempt {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the address resolves to nothing",
        )
    }))
}

/// `gatelog serve`: runs until SIGTERM or SIGINT.
pub async fn serve(config: Config, options: ServeOptions) -> anyhow::Result<()> {
    let app = Application::build(config, options).await?;
    app.run_until(async {
        let signal = shutdown_signal().await;
        tracing::info!(signal, "signal received");
    })
    .await
}

/// Resolves on SIGTERM or SIGINT, naming which.
pub(crate) async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler installs");
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = tokio::signal::ctrl_c() => "SIGINT",
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "ctrl-c"
    }
}

/// `gatelog migrate`: applies the local schema and reports the version.
pub async fn migrate_local(config: &Config) -> anyhow::Result<()> {
    let opened = crate::ops::open_store(config, Metrics::new()).await?;
    opened.store.close().await;
    println!(
        "local schema at {} is up to date ({} migrations)",
        config.store.path.display(),
        gatelog_local_store::MIGRATOR.iter().count()
    );
    Ok(())
}
