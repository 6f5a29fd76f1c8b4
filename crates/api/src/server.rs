//! The app factory and the HTTP server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::rc::Rc;

use actix_http::{HttpService, KeepAlive};
use actix_service::{map_config, IntoServiceFactory, ServiceFactory};
use actix_web::body::MessageBody;
use actix_web::dev::{AppConfig, Server, Service, ServiceRequest, ServiceResponse};
use actix_web::{web, App};
use futures_util::FutureExt;
use gatelog_core::ValidationConfig;
use gatelog_local_store::Store;
use gatelog_metrics::Metrics;

use crate::broadcast::BroadcastHandle;
use crate::{routes, ServerConfig};

/// What every handler can reach. Cloned into each worker.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Metrics,
    /// How strictly reads are validated (flag or reject).
    pub validation: ValidationConfig,
    /// The owner codes expected at the yard (`recognition.owner_codes_file`).
    pub owners: Option<Arc<gatelog_core::recognize::OwnerCodes>>,
    /// The configured cameras (`[[cameras]]`): each read takes its
    /// camera's direction and lane.
    pub cameras: Arc<gatelog_core::gate::Cameras>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// The sync actor's handle: its status, and retries on request.
    pub sync: gatelog_sync::SyncHandle,
    /// Keys, sessions and rate limits; see [`crate::auth`].
    pub security: Arc<crate::auth::Security>,
    /// The live feed for WebSocket clients, and where failed saves are
    /// announced.
    pub broadcaster: BroadcastHandle,
    /// The folder cropped images are served from (`server.image_dir`).
    pub image_dir: Option<PathBuf>,
    /// The caps on live WebSocket connections; see [`crate::ws_limit`].
    pub ws_limiter: Arc<crate::WsLimiter>,
}

/// The app: state, middleware and routes. Each worker builds two, one
/// behind the HTTP/1 dispatcher and one for upgraded connections
/// ([`crate::upgrade`]); both share the state.
fn app(
    data: web::Data<AppState>,
    cors_origins: &[String],
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody + 'static>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let metrics = data.metrics.clone();
    App::new()
        .app_data(data)
        .app_data(web::QueryConfig::default().error_handler(|_, _| {
            crate::ApiError::bad_param("query", "the query string is not valid").into()
        }))
        .wrap(actix_web::middleware::ErrorHandlers::new().handler(
            actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            crate::error::method_not_allowed,
        ))
        // Auth runs inside CORS, so preflight requests (which carry no
        // key) are answered by CORS, and inside metrics, so 401s and
        // 429s are counted.
        .wrap(actix_web::middleware::from_fn(crate::auth::guard))
        .wrap(crate::cors::middleware(cors_origins))
        .wrap_fn(move |req, srv| {
            let started = Instant::now();
            let method = req.method().clone();
            // The route pattern, never the raw path, keeps label values
            // few. It comes from the app's resource map, so it is known
            // before routing and counted even when the request ends in an
            // error (a 408) rather than a response.
            let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
            let metrics = metrics.clone();
            srv.call(req).map(move |res| {
                let status = match &res {
                    Ok(res) => res.status(),
                    Err(e) => e.as_response_error().status_code(),
                };
                metrics.observe_http(
                    route.as_str(),
                    status.as_u16(),
                    started.elapsed().as_secs_f64(),
                );
                tracing::debug!(%method, %route, status = status.as_u16(), "request");
                res
            })
        })
        .configure(routes::configure)
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(crate::ApiError::NotFound("no such route".into()))
        }))
}

/// Builds the server on a listener that is already bound, so tests can bind
/// port 0 and read the real port. Signals are left to the caller, which
/// stops the server through its handle and so controls shutdown order.
///
/// This is the wiring `actix_web::HttpServer` does, plus an upgrade
/// service: requests that switch protocols leave the HTTP/1 dispatcher
/// (see the `upgrade` module).
pub fn build_server(
    listener: TcpListener,
    state: AppState,
    config: &ServerConfig,
) -> std::io::Result<Server> {
    let data = web::Data::new(state);
    let cors_origins = config.cors_origins.clone();
    let addr = listener.local_addr()?;
    let keep_alive = match config.keep_alive_secs {
        0 => KeepAlive::Disabled,
        s => KeepAlive::Timeout(Duration::from_secs(s)),
    };
    let request_timeout = Duration::from_millis(config.client_request_timeout_ms);
    let disconnect_timeout = Duration::from_millis(config.client_disconnect_timeout_ms);
    let mut builder = actix_server::Server::build()
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout_secs);
    if config.workers > 0 {
        builder = builder.workers(config.workers);
    }
    let shutdown = builder.graceful_shutdown_signal();
    let builder = builder.listen("gatelog-http", listener, move || {
        let shutdown = shutdown.clone();
        let (upgrade_data, upgrade_origins) = (data.clone(), cors_origins.clone());
        let upgrade = actix_service::fn_factory(move || {
            let factory = app(upgrade_data.clone(), &upgrade_origins).into_factory();
            let live = upgrade_data.broadcaster.clone();
            async move {
                let app = Rc::new(factory.new_service(AppConfig::default()).await?);
                Ok::<_, ()>(actix_service::fn_service(move |req| {
                    crate::upgrade::serve(app.clone(), live.clone(), req)
                }))
            }
        });
        HttpService::build()
            // Idle keep-alive connections close as soon as a graceful
            // shutdown begins, as under `HttpServer`.
            .graceful_shutdown_signal(move || {
                let shutdown = shutdown.clone();
                async move { shutdown.notified().await }
            })
            .keep_alive(keep_alive)
            .client_request_timeout(request_timeout)
            .client_disconnect_timeout(disconnect_timeout)
            .local_addr(addr)
            .upgrade(upgrade)
            .finish(map_config(
                app(data.clone(), &cors_origins).into_factory(),
                |_| AppConfig::default(),
            ))
            .tcp()
    })?;
    Ok(builder.run())
}
