//! One module per resource.

pub mod corrections;
pub mod dashboard;
pub mod exceptions;
pub mod export;
pub mod health;
pub mod logs;
pub mod recognitions;
pub mod session;
pub mod sites;
pub mod stats;
pub mod sync;
pub mod ws;
pub mod yard;

use actix_web::web;

/// Mounts every route of the API.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/recognitions").route(web::post().to(recognitions::post)))
        .service(web::resource("/api/v1/logs").route(web::get().to(logs::list)))
        .service(web::resource("/api/v1/logs/export").route(web::get().to(export::export)))
        .service(
            web::resource("/api/v1/session")
                .route(web::post().to(session::create))
                .route(web::delete().to(session::delete)),
        )
        .service(web::resource("/login").route(web::get().to(session::login)))
        .service(
            web::resource("/api/v1/logs/{id}")
                .route(web::get().to(logs::get))
                .route(web::patch().to(corrections::patch)),
        )
        .service(web::resource("/api/v1/exceptions").route(web::get().to(exceptions::list)))
        .service(
            web::resource("/api/v1/exceptions/{id}/resolve")
                .route(web::post().to(exceptions::resolve)),
        )
        .service(web::resource("/api/v1/logs/{id}/sightings").route(web::get().to(logs::sightings)))
        .service(web::resource("/api/v1/sites").route(web::get().to(sites::list)))
        .service(web::resource("/api/v1/sync/status").route(web::get().to(sync::status)))
        // Probes may use HEAD as well as GET.
        .service(
            web::resource("/healthz")
                .route(web::get().to(health::healthz))
                .route(web::head().to(health::healthz)),
        )
        .service(
            web::resource("/readyz")
                .route(web::get().to(health::readyz))
                .route(web::head().to(health::readyz)),
        )
        .service(web::resource("/metrics").route(web::get().to(health::metrics)))
        .service(web::resource(crate::openapi::PATH).route(web::get().to(crate::openapi::document)))
        .service(web::resource("/api/v1/stats").route(web::get().to(stats::get)))
        .service(web::resource("/api/v1/yard").route(web::get().to(yard::list)))
        .service(web::resource("/api/v1/yard/stats").route(web::get().to(yard::stats)))
        .service(web::resource("/ws/logs").route(web::get().to(ws::logs)))
        .service(web::resource("/").route(web::get().to(dashboard::index)))
        .service(web::resource("/app.js").route(web::get().to(dashboard::script)))
        .service(web::resource("/style.css").route(web::get().to(dashboard::style)))
        .service(web::resource("/images").route(web::get().to(dashboard::image)));
}
