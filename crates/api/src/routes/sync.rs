//! `GET /api/v1/sync/status`: where replication stands.
//!
//! The snapshot comes from the sync actor, whose strings are already
//! redacted; no key or database URL can appear in it. The route takes no
//! parameters, and like every route it says so when given one.

use actix_web::{web, HttpRequest, HttpResponse};

use crate::openapi::schema;
use crate::query::{self, NoParams};
use crate::{ApiError, AppState};

/// `GET /api/v1/sync/status`.
#[utoipa::path(
    get,
    path = "/api/v1/sync/status",
    tag = "reports",
    params(NoParams),
    responses(
        (status = 200, description = "Where replication stands.", body = schema::SyncStatus),
        (status = 400, description = "A parameter was given; the route takes none \
            (`bad_parameter`).", body = schema::Error),
    )
)]
pub async fn status(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    query::parse::<NoParams>(req.query_string())?;
    let status = state.sync()?.status().borrow().clone();
    Ok(HttpResponse::Ok().json(status))
}
