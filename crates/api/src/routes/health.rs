//! Liveness, readiness and the Prometheus endpoint.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::{ApiError, AppState};

/// How long readiness waits for the writer before it says no.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The process is up and serving HTTP.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// The store can take writes: the writer runs and can take the write lock.
/// On the head-office view, which never writes: the central database
/// answers a query.
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

pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}
