//! `GET /api/v1/sites`: every site the head office hears from, how far
//! behind its sync is, and whether it has gone quiet.
//!
//! Only the head-office view serves it; a site's own gatelog knows only
//! itself and answers 404.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::query::{self, NoParams};
use crate::{ApiError, AppState};

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
