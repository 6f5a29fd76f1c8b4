//! Liveness, readiness and the Prometheus endpoint.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::openapi::schema;
use crate::{ApiError, AppState};

/// How long readiness waits for the writer before it says no.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP.
#[utoipa::path(
    method(get, head),
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Up.", body = schema::StatusOk))
)]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The store can take writes: the writer runs and can take the write lock.
/// On the head-office view, which never writes: the central database
/// answers a query.
#[utoipa::path(
    method(get, head),
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "The store takes writes.", body = schema::Ready),
        (status = 503, description = "The store cannot take writes now (`store_unavailable`).",
            body = schema::Error),
    )
)]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let probe = async {
        match &state.local {
            Some(local) => local.store.writer().probe().await,
            None => state.reader.recent(1).await.map(drop),
        }
    };
    match tokio::time::timeout(PROBE_TIMEOUT, probe).await {
        Ok(Ok(())) => Ok(HttpResponse::Ok().json(json!({"status": "ready"}))),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness probe failed");
            Err(ApiError::Unavailable)
        }
        Err(_) => Err(ApiError::Unavailable),
    }
}

/// The Prometheus metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus' text format, version 0.0.4.",
        content_type = "text/plain", body = String))
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
