//! `GET /api/v1/exceptions` and `POST /api/v1/exceptions/{id}/resolve`:
//! the exceptions queue, and an operator's number for a queued read.
//!
//! The listing holds two kinds of open item, newest first by default:
//! reads kept unresolved (`unresolved_read`: the text as read, camera,
//! time, crop image and raw input) and passages whose number no read has
//! verified (`unverified_passage`: the passage). It pages and filters as
//! `/api/v1/logs` does (`from`, `to`, `camera`, `site`, `limit`, `cursor`,
//! `order`, plus `kind`), strictly: an unknown, repeated or malformed
//! parameter answers 400 naming it. `open` counts every open item, for the
//! dashboard's badge, whatever the filters.
//!
//! Resolving takes `{"container": "CSQU3054383"}`, a whole valid ISO 6346
//! number (422 naming `container` otherwise), and needs an operator key
//! (see [`crate::auth`]). The read becomes a sighting through the writer
//! and folds like any read; its passage records the correction with the
//! key's name. An unknown id is a 404; a read resolved before is a 409 and
//! nothing is written, so a retried request never resolves twice.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use gatelog_core::operator::OperatorNumber;
use gatelog_core::{Passage, QueuedRead};
use gatelog_local_store::{
    Cursor, Exception, ExceptionFilter, ExceptionKind, Order, OutcomeKind, ResolveOutcome,
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::openapi::schema;
use crate::query::{self, param, FromParam, Id, Limit};
use crate::routes::corrections::{body_object, container_field, no_other_fields};
use crate::{ApiError, AppState};

/// One item of the listing, tagged with its kind.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Item<'a> {
    UnresolvedRead(&'a QueuedRead),
    UnverifiedPassage {
        id: Uuid,
        captured_at: DateTime<Utc>,
        /// The passage's number as it stands, in the place of a queued
        /// read's text.
        text: &'a str,
        camera_id: &'a Option<String>,
        cropped_image_ref: &'a Option<String>,
        passage: &'a Passage,
    },
}

impl<'a> From<&'a Exception> for Item<'a> {
    fn from(e: &'a Exception) -> Self {
        match e {
            Exception::UnresolvedRead(r) => Item::UnresolvedRead(r),
            Exception::UnverifiedPassage(p) => Item::UnverifiedPassage {
                id: p.id,
                captured_at: p.captured_at,
                text: &p.container,
                camera_id: &p.camera_id,
                cropped_image_ref: &p.cropped_image_ref,
                passage: p,
            },
        }
    }
}

/// `GET /api/v1/exceptions`.
#[utoipa::path(
    get,
    path = "/api/v1/exceptions",
    tag = "exceptions",
    params(ExceptionQuery),
    responses(
        (status = 200, description = "One page of open items, and how many are open in all.",
            body = schema::ExceptionsPage),
        (status = 400, description = "A parameter is unknown, repeated or malformed \
            (`bad_parameter`, naming it).", body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`); \
            `Retry-After` says when to retry.", body = schema::Error),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(req.query_string())?;
    let page = state.store()?.exceptions(&filter).await?;
    let open = state.store()?.open_exceptions().await?;
    let items: Vec<Item<'_>> = page.items.iter().map(Item::from).collect();
    Ok(HttpResponse::Ok().json(json!({
        "exceptions": items,
        "next_cursor": page.next_cursor.map(|c| c.encode()),
        "open": open,
    })))
}

/// `POST /api/v1/exceptions/{id}/resolve`.
#[utoipa::path(
    post,
    path = "/api/v1/exceptions/{id}/resolve",
    tag = "exceptions",
    params(("id" = Uuid, Path, description = "The queued read's id.")),
    request_body(content = schema::ResolveBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The read became a sighting (`resolved`).",
            body = schema::ResolvedRead),
        (status = 400, description = "The id is not a UUID (`bad_parameter`), the body has \
            another field (`bad_parameter`, naming it) or is not JSON (`malformed_json`).",
            body = schema::Error),
        (status = 404, description = "No queued read has this id (`not_found`).",
            body = schema::Error),
        (status = 409, description = "The read was resolved before (`already_resolved`); \
            nothing is written.", body = schema::Error),
        (status = 413, description = "The body is larger than 4,096 bytes (`body_too_large`).",
            body = schema::Error),
        (status = 422, description = "The body is not an object, or the number is not a valid \
            ISO 6346 number (`validation_failed`, naming `container`).", body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`); \
            `Retry-After` says when to retry.", body = schema::Error),
    )
)]
pub async fn resolve(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = state
        .security
        .corrector(req.extensions().get::<Principal>().copied())?;
    let id = Uuid::parse_str(&path)
        .map_err(|_| ApiError::bad_param("id", "id must be the UUID of a queued read"))?;
    let body = body_object(&body)?;
    no_other_fields(&body, &["container"])?;
    let number = OperatorNumber::parse(&container_field(&body)?, state.owners.as_deref())
        .map_err(ApiError::Validation)?;
    match state.store()?.writer().resolve(id, number, by).await? {
        ResolveOutcome::NotFound => Err(ApiError::NotFound(format!("no queued read with id {id}"))),
        ResolveOutcome::AlreadyResolved(done) => Err(ApiError::AlreadyResolved(format!(
            "this read was resolved already, as {} by {} at {}, into passage {}",
            done.container,
            done.by,
            done.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            done.passage_id
        ))),
        ResolveOutcome::Resolved(o) => Ok(HttpResponse::Ok().json(json!({
            "status": "resolved",
            // Whether the read opened a passage or joined one.
            "outcome": match o.kind {
                OutcomeKind::Created => "created",
                OutcomeKind::Joined | OutcomeKind::Corrected => "joined",
            },
            "sighting_id": o.sighting_id,
            "data": o.passage,
        }))),
    }
}

/// The parameters of `GET /api/v1/exceptions`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ExceptionQuery {
    /// Only this kind of item.
    #[serde(default, deserialize_with = "param")]
    #[param(schema_with = kinds)]
    kind: Option<ExceptionKind>,
    /// Captured at or after this time (RFC 3339).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<DateTime<Utc>>,
    /// Captured at or before this time (RFC 3339); not before `from`.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<DateTime<Utc>>,
    /// A camera id.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, min_length = 1, max_length = 256)]
    camera: Option<Id>,
    /// A site id.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, min_length = 1, max_length = 256)]
    site: Option<Id>,
    /// Items a page, 1 to 1,000 (default 50).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit<1000>>,
    /// The `next_cursor` of the page before, as it was given.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
    /// Newest first (`desc`, the default) or oldest first.
    #[serde(default, deserialize_with = "param")]
    #[param(schema_with = query::doc::order)]
    order: Option<Order>,
}

/// The kinds `kind` takes, as [`ExceptionKind`]'s parser reads them.
const KINDS: [&str; 2] = ["unresolved_read", "unverified_passage"];

fn kinds() -> utoipa::openapi::schema::Object {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(KINDS))
        .build()
}

impl FromParam for ExceptionKind {
    fn from_param(text: &str) -> Result<Self, String> {
        match text {
            "unresolved_read" => Ok(ExceptionKind::UnresolvedRead),
            "unverified_passage" => Ok(ExceptionKind::UnverifiedPassage),
            _ => Err("must be unresolved_read or unverified_passage".into()),
        }
    }
}

/// Parses the listing's query string, strictly (see [`crate::query`]).
fn parse_filter(q: &str) -> Result<ExceptionFilter, ApiError> {
    let p: ExceptionQuery = query::parse(q)?;
    if let (Some(from), Some(to)) = (p.from, p.to) {
        if from > to {
            return Err(ApiError::bad_param("from", "from must not be after to"));
        }
    }
    Ok(ExceptionFilter {
        kind: p.kind,
        from: p.from,
        to: p.to,
        camera: p.camera.map(|c| c.0),
        site: p.site.map(|c| c.0),
        limit: p.limit.map_or(50, |l| l.0),
        cursor: p.cursor,
        order: p.order.unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(q: &str) -> String {
        match parse_filter(q).unwrap_err() {
            ApiError::BadParameter { param, .. } => param,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (q, p) in [
            ("kind=passage", "kind"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("from=yesterday", "from"),
            ("to=10000-01-01T00:00:00Z", "to"),
            ("from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "from"),
            ("cursor=xyz", "cursor"),
            ("order=up", "order"),
            ("camera=", "camera"),
            ("owner=MSCU", "owner"),
            ("limit=1&limit=2", "limit"),
        ] {
            assert_eq!(param_of(q), p, "{q}");
        }
    }

    #[test]
    fn every_documented_kind_parses() {
        for k in KINDS {
            ExceptionKind::from_param(k).unwrap();
        }
    }

    #[test]
    fn good_values_parse() {
        let f = parse_filter("kind=unresolved_read&camera=cam-1&order=asc&limit=5").unwrap();
        assert_eq!(f.kind, Some(ExceptionKind::UnresolvedRead));
        assert_eq!(f.camera.as_deref(), Some("cam-1"));
        assert_eq!((f.order, f.limit), (Order::Asc, 5));
        assert_eq!(parse_filter("").unwrap().limit, 50);
    }
}
