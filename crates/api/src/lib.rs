//! gatelog's HTTP interface, built on actix-web.
//!
//! This is the only crate that knows actix-web. Handlers turn requests into
//! calls on the local store, or for reads on a
//! [`gatelog_local_store::PassageReader`] (a site's store or the central
//! database), and answer in the shapes SPEC §3 fixes. Every
//! error leaves through [`ApiError`], one JSON shape that never carries SQL
//! or other internal text.
//!
//! # Layout
//! - [`config`]: the `server` section (bind address, limits, timeouts,
//!   CORS origins) and the `limits` section (per-key rate limits,
//!   WebSocket connection caps).
//! - [`auth`]: bearer keys, dashboard sessions, rate limits and the
//!   request timeout, as one middleware that classifies paths.
//! - [`cors`]: CORS, off unless origins are configured.
//! - [`error`]: [`ApiError`] and its mapping to HTTP statuses.
//! - [`query`]: strict query strings, one serde struct per route.
//! - [`wire`]: JSON bodies to [`gatelog_core::RawRead`], naming the field
//!   of any type error.
//! - [`routes`]: one module per resource.
//! - [`openapi`]: the OpenAPI 3.1 contract, gathered from the handlers'
//!   attributes and served at `GET /api/v1/openapi.json`.
//! - [`broadcast`]: the broadcaster actor that fans committed writes out
//!   to WebSocket clients without ever waiting for one.
//! - [`ws_limit`]: the caps on live WebSocket connections, per key and in
//!   total, held by the app state.
//! - [`server`]: the app factory and actix-web's `HttpServer` on a bound
//!   listener, so tests can use port 0.

pub mod auth;
pub mod broadcast;
pub mod config;
pub mod cors;
pub mod error;
pub mod openapi;
pub mod query;
pub mod routes;
pub mod server;
pub mod wire;
pub mod ws_limit;

/// The running HTTP server, re-exported so callers need not know actix-web.
pub use actix_web::dev::Server;
pub use broadcast::{
    broadcaster, broadcaster_from, BroadcastActor, BroadcastHandle, OutcomeSource,
};
pub use config::{LimitsConfig, ServerConfig};
pub use error::ApiError;
pub use server::{build_server, AppState, Local};
pub use ws_limit::WsLimiter;
