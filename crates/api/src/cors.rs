//! CORS: off by default, an allowlist when `server.cors_origins` is set.
//!
//! With no origins configured no CORS header is ever sent, so browsers let
//! only pages served by gatelog itself call the API. An allowed origin may
//! send `GET`, `POST`, `PATCH` and `DELETE` with `Authorization` and
//! `Content-Type`; cookies are not offered cross-origin (the session
//! cookie is `SameSite=Strict`), so a cross-origin client authenticates
//! with a bearer key.

use actix_cors::Cors;
use actix_web::http::{header, Method};
use actix_web::middleware::Condition;

/// The CORS middleware for `origins`, disabled when it is empty. Origins
/// are checked at config load (`ServerConfig::check`).
pub fn middleware(origins: &[String]) -> Condition<Cors> {
    let mut cors = Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(3600);
    for o in origins {
        cors = cors.allowed_origin(o);
    }
    Condition::new(!origins.is_empty(), cors)
}
