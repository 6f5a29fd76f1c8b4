//! The app factory and the HTTP server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{
    RequestHead, ResponseHead, Server, Service, ServiceFactory, ServiceRequest, ServiceResponse,
};
use actix_web::http::{header, ConnectionType, KeepAlive, Method, StatusCode};
use actix_web::{web, App, HttpServer};
use futures_util::FutureExt;
use gatelog_core::ValidationConfig;
use gatelog_local_store::{PassageReader, Scope, Store};
use gatelog_metrics::Metrics;

use crate::broadcast::BroadcastHandle;
use crate::{routes, ServerConfig};

/// What every handler can reach. Cloned into each worker.
///
/// The read routes (listing, detail, sightings, stats, export, the live
/// feed's `initial_data`) go through [`AppState::reader`] only, so the same
/// handlers serve a site from its store and the head office from the
/// central database. Everything that writes, and what only a site keeps
/// (its exceptions queue, its yard, its sync), needs [`AppState::local`].
#[derive(Clone)]
pub struct AppState {
    /// The read side: this site's store, or the central database.
    pub reader: Arc<dyn PassageReader>,
    /// This site's store and sync; `None` on the head-office view, which
    /// only reads.
    pub local: Option<Local>,
    pub metrics: Metrics,
    /// How strictly reads are validated (flag or reject).
    pub validation: ValidationConfig,
    /// The owner codes expected at the yard (`recognition.owner_codes_file`).
    pub owners: Option<Arc<gatelog_core::recognize::OwnerCodes>>,
    /// The configured cameras (`[[cameras]]`): each read takes its
    /// camera's direction and lane.
    pub cameras: Arc<gatelog_core::gate::Cameras>,
    /// The CODECO partners (`[[partners]]`) and the site's UN/LOCODE
    /// (`site.locode`), for `format=codeco` exports.
    pub codeco: Arc<gatelog_core::codeco::CodecoConfig>,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
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

/// What only a site has: its store, which takes writes, and its sync.
#[derive(Clone)]
pub struct Local {
    pub store: Store,
    /// The sync actor's handle: its status, and retries on request.
    pub sync: gatelog_sync::SyncHandle,
}

/// Said by every write to the head-office view.
const READ_ONLY: &str = "the head-office view only reads the central database; \
     send recognitions, corrections and resolutions to the site's own gatelog";
/// Said of what only a site keeps.
const SITE_ONLY: &str = "this resource is kept by each site's own gatelog, \
     not by the head-office view";

impl AppState {
    /// Whether this is the head-office view, reading the central database.
    pub fn is_central(&self) -> bool {
        self.reader.scope() == Scope::Central
    }

    /// The site's store, for writes and site-only reads; on the
    /// head-office view a 404 that says where the resource lives.
    pub fn store(&self) -> Result<&Store, crate::ApiError> {
        self.local
            .as_ref()
            .map(|l| &l.store)
            .ok_or(crate::ApiError::NotFound(SITE_ONLY.into()))
    }

    /// The site's sync handle; on the head-office view a 404 like
    /// [`Self::store`].
    pub fn sync(&self) -> Result<&gatelog_sync::SyncHandle, crate::ApiError> {
        self.local
            .as_ref()
            .map(|l| &l.sync)
            .ok_or(crate::ApiError::NotFound(SITE_ONLY.into()))
    }
}

/// Refuses every write to the head-office view with 403 `read_only`,
/// whatever the route, before any handler runs. Signing in and out of the
/// dashboard are not writes of data and pass.
async fn refuse_writes_on_central(
    req: ServiceRequest,
    next: actix_web::middleware::Next<impl MessageBody + 'static>,
) -> Result<
    ServiceResponse<actix_web::body::EitherBody<impl MessageBody + 'static>>,
    actix_web::Error,
> {
    let central = req
        .app_data::<web::Data<AppState>>()
        .is_some_and(|s| s.is_central());
    let reads = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if central && !reads && req.path() != "/api/v1/session" {
        let res = actix_web::ResponseError::error_response(&crate::ApiError::ReadOnly(READ_ONLY));
        return Ok(req.into_response(res).map_into_right_body());
    }
    next.call(req)
        .await
        .map(ServiceResponse::map_into_left_body)
}

/// The app: state, middleware and routes. Each worker builds one; they
/// share the state.
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
        // Writes to the head-office view are refused once the caller is
        // known: a key that may not write at all still gets auth's answer.
        .wrap(actix_web::middleware::from_fn(refuse_writes_on_central))
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
        .wrap_fn(|req, srv| {
            let upgrade = asks_to_upgrade(req.head());
            srv.call(req).map(move |res| {
                res.map(|mut res| {
                    if upgrade && res.status() != StatusCode::SWITCHING_PROTOCOLS {
                        end_with_the_connection(res.response_mut().head_mut());
                    }
                    res
                })
            })
        })
        .configure(routes::configure)
        .default_service(web::to(|| async {
            Err::<actix_web::HttpResponse, _>(crate::ApiError::NotFound("no such route".into()))
        }))
}

/// Whether actix-http reads this request's body "until the connection
/// closes": a request with an `Upgrade` header (its decoder does so for
/// `Upgrade: websocket`) or a `CONNECT`. The connection cannot carry
/// another request after it either way.
fn asks_to_upgrade(head: &RequestHead) -> bool {
    head.headers().contains_key(header::UPGRADE) || head.method == Method::CONNECT
}

/// Makes an answer that does not upgrade end with its connection.
///
/// When the request asked to upgrade, actix-http 3 writes a streamed body
/// raw (its encoder marks the connection as a stream) while the head still
/// announces `transfer-encoding: chunked`: a malformed answer that a
/// strict client refuses. actix-web#1611 fixed this for `Upgrade: h2c`
/// only. Without chunking and with `Connection: close`, the head announces
/// what is written: a body that ends when the connection does (RFC 9112,
/// section 6.3), which every HTTP/1.1 client reads.
fn end_with_the_connection(head: &mut ResponseHead) {
    head.no_chunking(true);
    head.set_connection_type(ConnectionType::Close);
}

/// Builds the server on a listener that is already bound, so tests can bind
/// port 0 and read the real port. Signals are left to the caller, which
/// stops the server through its handle and so controls shutdown order.
///
/// This is actix-web's own `HttpServer`, as its examples serve WebSockets:
/// one app per worker, and every request (an upgrade too) goes through the
/// HTTP/1 dispatcher.
pub fn build_server(
    listener: TcpListener,
    state: AppState,
    config: &ServerConfig,
) -> std::io::Result<Server> {
    let data = web::Data::new(state);
    let cors_origins = config.cors_origins.clone();
    let keep_alive = match config.keep_alive_secs {
        0 => KeepAlive::Disabled,
        s => KeepAlive::Timeout(Duration::from_secs(s)),
    };
    let mut server = HttpServer::new(move || app(data.clone(), &cors_origins))
        .disable_signals()
        .shutdown_timeout(config.shutdown_timeout_secs)
        .keep_alive(keep_alive)
        .client_request_timeout(Duration::from_millis(config.client_request_timeout_ms))
        .client_disconnect_timeout(Duration::from_millis(config.client_disconnect_timeout_ms));
    if config.workers > 0 {
        server = server.workers(config.workers);
    }
    Ok(server.listen(listener)?.run())
}
