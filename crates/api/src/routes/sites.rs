//! `GET /api/v1/sites`: every site the head office hears from, how far
//! behind its sync is, and whether it has gone quiet.
//!
//! Only the head-office view serves it; a site's own gatelog knows only
//! itself and answers 404.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::openapi::schema;
use crate::query::{self, NoParams};
use crate::{ApiError, AppState};

#[utoipa::path(
    get,
    path = "/api/v1/sites",
    tag = "reports",
    responses(
        (status = 200, description = "Every site the central database holds, its sync lag, its \
            passages in the last hour and whether it is stale.", body = schema::Sites),
        (status = 400, description = "A parameter was given; this route takes none \
            (`bad_parameter`, naming it).", body = schema::Error),
        (status = 404, description = "A site's own server: only the head-office view \
            (`gatelog central serve`) lists sites (`not_found`).", body = schema::Error),
        (status = 503, description = "The central database is unavailable \
            (`store_unavailable`).", body = schema::Error),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    query::parse::<NoParams>(req.query_string())?;
    let sites = state.reader.sites().await?.ok_or_else(|| {
        ApiError::NotFound(
            "the list of sites is served by the head-office view (gatelog central serve)".into(),
        )
    })?;
    let stale = sites.iter().filter(|s| s.stale).count();
    Ok(HttpResponse::Ok().json(json!({"sites": sites, "stale": stale})))
}
