//! `GET /api/v1/sync/status`: where replication stands.
//!
//! The snapshot comes from the sync actor, whose strings are already
//! redacted; no key or database URL can appear in it.

use actix_web::{web, HttpResponse};

use crate::AppState;

pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    let status = state.sync.status().borrow().clone();
    HttpResponse::Ok().json(status)
}
