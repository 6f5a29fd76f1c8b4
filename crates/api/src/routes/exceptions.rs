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
use chrono::{DateTime, Datelike, Utc};
use gatelog_core::operator::OperatorNumber;
use gatelog_core::{Passage, QueuedRead};
use gatelog_local_store::{
    Cursor, Exception, ExceptionFilter, ExceptionKind, Order, OutcomeKind, ResolveOutcome,
};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use crate::auth::Principal;
use crate::routes::corrections::{body_object, container_field, no_other_fields};
use crate::{ApiError, AppState};

/// The parameters `GET /api/v1/exceptions` knows.
const PARAMS: [&str; 8] = [
    "kind", "from", "to", "camera", "site", "limit", "cursor", "order",
];
/// The longest camera or site id accepted in a filter, as for the logs.
const MAX_ID_LEN: usize = 256;

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
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(req.query_string())?;
    let page = state.store.exceptions(&filter).await?;
    let open = state.store.open_exceptions().await?;
    let items: Vec<Item<'_>> = page.items.iter().map(Item::from).collect();
    Ok(HttpResponse::Ok().json(json!({
        "exceptions": items,
        "next_cursor": page.next_cursor.map(|c| c.encode()),
        "open": open,
    })))
}

/// `POST /api/v1/exceptions/{id}/resolve`.
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
    match state.store.writer().resolve(id, number, by).await? {
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

/// Parses the listing's query string, strictly.
fn parse_filter(query: &str) -> Result<ExceptionFilter, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_param("query", "the query string is not valid URL encoding"))?;
    let mut filter = ExceptionFilter {
        limit: 50,
        ..ExceptionFilter::default()
    };
    let mut seen = std::collections::HashSet::new();
    for (key, value) in pairs {
        let Some(&name) = PARAMS.iter().find(|p| **p == key) else {
            let key: String = key.chars().take(40).collect();
            return Err(ApiError::bad_param(
                &key,
                format!("unknown parameter {key:?}; known: {}", PARAMS.join(", ")),
            ));
        };
        if !seen.insert(name) {
            return Err(ApiError::bad_param(
                name,
                format!("{name} is given more than once"),
            ));
        }
        match name {
            "kind" => {
                filter.kind = Some(match value.as_str() {
                    "unresolved_read" => ExceptionKind::UnresolvedRead,
                    "unverified_passage" => ExceptionKind::UnverifiedPassage,
                    _ => {
                        return Err(ApiError::bad_param(
                            name,
                            "kind must be unresolved_read or unverified_passage",
                        ))
                    }
                })
            }
            "from" => filter.from = Some(time(name, &value)?),
            "to" => filter.to = Some(time(name, &value)?),
            "camera" => filter.camera = Some(id(name, value)?),
            "site" => filter.site = Some(id(name, value)?),
            "limit" => {
                filter.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_param(name, "limit must be an integer from 1 to 1000")
                    })?
            }
            "cursor" => {
                filter.cursor = Some(Cursor::decode(&value).ok_or_else(|| {
                    ApiError::bad_param(
                        name,
                        "cursor is not one this server issued; pass next_cursor back as it is",
                    )
                })?)
            }
            _ => {
                filter.order = match value.as_str() {
                    "desc" => Order::Desc,
                    "asc" => Order::Asc,
                    _ => return Err(ApiError::bad_param(name, "order must be desc or asc")),
                }
            }
        }
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(ApiError::bad_param("from", "from must not be after to"));
        }
    }
    Ok(filter)
}

/// An RFC 3339 time in the years 0001 to 9998 (UTC), as the logs take.
fn time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .filter(|t| (1..=9998).contains(&t.year()))
        .ok_or_else(|| {
            ApiError::bad_param(
                name,
                format!("{name} must be an RFC 3339 time, such as 2024-05-01T00:00:00Z"),
            )
        })
}

fn id(name: &str, value: String) -> Result<String, ApiError> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(ApiError::bad_param(
            name,
            format!("{name} must be 1 to {MAX_ID_LEN} printable characters"),
        ));
    }
    Ok(value)
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
    fn good_values_parse() {
        let f = parse_filter("kind=unresolved_read&camera=cam-1&order=asc&limit=5").unwrap();
        assert_eq!(f.kind, Some(ExceptionKind::UnresolvedRead));
        assert_eq!(f.camera.as_deref(), Some("cam-1"));
        assert_eq!((f.order, f.limit), (Order::Asc, 5));
        assert_eq!(parse_filter("").unwrap().limit, 50);
    }
}
