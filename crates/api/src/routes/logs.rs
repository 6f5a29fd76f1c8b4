//! `GET /api/v1/logs`, `GET /api/v1/logs/{id}` and
//! `GET /api/v1/logs/{id}/sightings`.
//!
//! A passage's sightings are paged like the listing: one passage can hold
//! hundreds of thousands (a container parked in view of a camera), so the
//! detail carries the first [`SIGHTINGS_PAGE`] and `sightings_next_cursor`,
//! and the sightings route gives the pages after it.
//!
//! Query parameters are parsed strictly by [`crate::query`]: an unknown or
//! repeated parameter, or a value of the wrong shape, answers 400 naming
//! the parameter. Values reach SQL only as bound parameters.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use gatelog_local_store::export::ExportFormat;
use gatelog_local_store::{Cursor, LogFilter, Order, SyncFilter};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::openapi::schema;
use crate::query::{
    self, param, Check, Fragment, Id, Limit, NoParams, OwnerFilter, OwnerList, Plate, Serial,
};
use crate::{ApiError, AppState};
use gatelog_core::Direction;

/// The names of the listing's parameters, for tests and documentation;
/// [`LogsQuery`] is what parses them, and a unit test keeps the two equal.
pub const PARAMS: [&str; 15] = [
    "owner",
    "number",
    "container",
    "q",
    "from",
    "to",
    "camera",
    "site",
    "check",
    "sync",
    "direction",
    "truck_plate",
    "limit",
    "cursor",
    "order",
];

/// The parameters of `GET /api/v1/logs`, and of the export, which takes
/// the same filters and `format` instead of `limit` and `cursor`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// An owner code with its category letter (`MSCU`), or three letters
    /// of owner, a prefix of the number. A CODECO export also takes a
    /// comma-separated list (`MSCU,MEDU`).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, pattern = "^[A-Za-z]{3,4}(,[A-Za-z]{3,4}){0,99}$")]
    owner: Option<OwnerList>,
    /// The six-digit serial.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, pattern = "^[0-9]{6}$")]
    number: Option<Serial>,
    /// A prefix of the container number: 1 to 11 letters or digits
    /// (separators `-`, `.`, `/` and spaces are dropped).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9]{1,11}$")]
    container: Option<Fragment<11>>,
    /// Any part of the container number: 1 to 11 letters or digits.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, pattern = "^[A-Za-z0-9]{1,11}$")]
    q: Option<Fragment<11>>,
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
    /// Passages whose check digit passed (`ok`) or was flagged (`bad`).
    #[serde(default, deserialize_with = "param")]
    #[param(schema_with = query::doc::check)]
    check: Option<Check>,
    /// Passages the central database has (`synced`) or not yet (`pending`).
    #[serde(default, deserialize_with = "param")]
    #[param(schema_with = query::doc::sync)]
    sync: Option<SyncFilter>,
    /// Gate-ins or gate-outs.
    #[serde(default, deserialize_with = "param")]
    #[param(schema_with = query::doc::direction)]
    direction: Option<Direction>,
    /// A truck's licence plate, 1 to 32 characters.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, min_length = 1, max_length = 32)]
    truck_plate: Option<Plate>,
    /// Passages a page, 1 to 1,000 (default 50). The export refuses it.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit<1000>>,
    /// The `next_cursor` of the page before, as it was given. The export
    /// refuses it.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
    /// Newest first (`desc`, the default) or oldest first.
    #[serde(default, deserialize_with = "param")]
    #[param(schema_with = query::doc::order)]
    order: Option<Order>,
    /// The export's format, which it requires; the listing refuses it.
    #[serde(default, deserialize_with = "param")]
    #[param(schema_with = query::doc::format)]
    format: Option<ExportFormat>,
    /// Only a CODECO export takes it: the `[[partners]]` name.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, min_length = 1, max_length = 256)]
    partner: Option<Id>,
}

/// What an export is asked for: the format, the filter, and for CODECO
/// the partner and the owners that narrow its own.
#[derive(Debug)]
pub struct ExportRequest {
    pub format: ExportFormat,
    pub filter: LogFilter,
    /// `partner`, CODECO only.
    pub partner: Option<String>,
    /// `owner` as a list, CODECO only (the filter carries a single owner
    /// for the other formats).
    pub owners: Vec<gatelog_core::codeco::OwnerSelector>,
}

impl LogsQuery {
    /// The filter these parameters describe, for a listing page.
    pub fn page_filter(self) -> Result<LogFilter, ApiError> {
        if self.format.is_some() {
            return Err(ApiError::bad_param(
                "format",
                "format applies only to the export, /api/v1/logs/export",
            ));
        }
        if self.partner.is_some() {
            return Err(ApiError::bad_param(
                "partner",
                "partner applies only to a CODECO export, /api/v1/logs/export?format=codeco",
            ));
        }
        self.filter()
    }

    /// The format and the filter for an export, which covers every match
    /// and so takes no `limit` or `cursor`. A CODECO export also takes
    /// `partner` and a list of owners, and runs in gate-time order, so it
    /// takes no `order`.
    pub fn export_filter(mut self) -> Result<ExportRequest, ApiError> {
        for (name, given) in [
            ("limit", self.limit.is_some()),
            ("cursor", self.cursor.is_some()),
        ] {
            if given {
                return Err(ApiError::bad_param(
                    name,
                    format!("{name} does not apply to an export, which covers every match"),
                ));
            }
        }
        let format = self.format.take().ok_or_else(|| {
            ApiError::bad_param("format", "format is required: csv, jsonl or codeco")
        })?;
        if format != ExportFormat::Codeco {
            if self.partner.is_some() {
                return Err(ApiError::bad_param(
                    "partner",
                    "partner applies only to format=codeco",
                ));
            }
            return Ok(ExportRequest {
                format,
                filter: self.filter()?,
                partner: None,
                owners: Vec::new(),
            });
        }
        if self.order.is_some() {
            return Err(ApiError::bad_param(
                "order",
                "order does not apply to a CODECO export, which is always in gate-time order",
            ));
        }
        let owners = self
            .owner
            .take()
            .map(|l| {
                l.0.into_iter()
                    .map(|o| match o {
                        OwnerFilter::Owner(c) => gatelog_core::codeco::OwnerSelector::Code(c),
                        OwnerFilter::Prefix(p) => gatelog_core::codeco::OwnerSelector::Prefix(p),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let partner = self.partner.take().map(|p| p.0);
        Ok(ExportRequest {
            format,
            filter: self.filter()?,
            partner,
            owners,
        })
    }

    /// The filter, whatever route asked.
    fn filter(self) -> Result<LogFilter, ApiError> {
        if let (Some(from), Some(to)) = (self.from, self.to) {
            if from > to {
                return Err(ApiError::bad_param("from", "from must not be after to"));
            }
        }
        let owner = match self.owner.map(|l| l.0) {
            None => None,
            Some(mut list) if list.len() == 1 => list.pop(),
            Some(_) => {
                return Err(ApiError::bad_param(
                    "owner",
                    "owner takes one code here; a list is for format=codeco",
                ))
            }
        };
        let (owner, prefix) = match owner {
            Some(OwnerFilter::Owner(o)) => (Some(o), None),
            Some(OwnerFilter::Prefix(p)) => (None, Some(p)),
            None => (None, None),
        };
        Ok(LogFilter {
            owner,
            number: self.number.map(|n| n.0),
            // Three letters of owner are a prefix of the number; a
            // container prefix, when given too, is the narrower one.
            container: self.container.map(|c| c.0).or(prefix),
            q: self.q.map(|q| q.0),
            from: self.from,
            to: self.to,
            camera: self.camera.map(|c| c.0),
            site: self.site.map(|s| s.0),
            check_ok: self.check.map(|c| c == Check::Ok),
            sync: self.sync,
            direction: self.direction,
            truck_plate: self.truck_plate.map(|p| p.0),
            limit: self.limit.map_or(50, |l| l.0),
            cursor: self.cursor,
            order: self.order.unwrap_or_default(),
        })
    }
}

/// `GET /api/v1/logs`: one page of passages, newest first by default.
#[utoipa::path(
    get,
    path = "/api/v1/logs",
    tag = "passages",
    params(LogsQuery),
    responses(
        (status = 200, description = "One page of passages.", body = schema::LogsPage),
        (status = 400, description = "A parameter is unknown, repeated or malformed \
            (`bad_parameter`, naming it).", body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`); \
            `Retry-After` says when to retry.", body = schema::Error),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(req.query_string())?;
    let page = state.reader.search(&filter).await?;
    Ok(HttpResponse::Ok().json(json!({
        "logs": page.logs,
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    })))
}

/// Sightings in the detail, and in a page of the sightings route unless
/// `limit` says otherwise.
pub const SIGHTINGS_PAGE: u32 = 100;
/// The parameters of `GET /api/v1/logs/{id}/sightings`: at most 1,000
/// sightings a page.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SightingsQuery {
    /// Sightings a page, 1 to 1,000 (default 100).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit<1000>>,
    /// The `next_cursor` (or the detail's `sightings_next_cursor`) as it
    /// was given.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
}

/// `GET /api/v1/logs/{id}`: the passage, its first page of sightings and
/// where the next page starts (`null` when that was all of them).
#[utoipa::path(
    get,
    path = "/api/v1/logs/{id}",
    tag = "passages",
    params(("id" = Uuid, Path, description = "The passage's id."), NoParams),
    responses(
        (status = 200, description = "The passage and its first page of sightings.",
            body = schema::PassageDetail),
        (status = 400, description = "The id is not a UUID, or a parameter was given \
            (`bad_parameter`).", body = schema::Error),
        (status = 404, description = "No passage has this id (`not_found`).", body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`).",
            body = schema::Error),
    )
)]
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The detail takes no parameters; any is a mistake worth naming.
    query::parse::<NoParams>(req.query_string())?;
    let id = passage_id(&path)?;
    let passage = state
        .reader
        .passage(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no passage with id {id}")))?;
    let page = state.reader.sightings(id, None, SIGHTINGS_PAGE).await?;
    Ok(HttpResponse::Ok().json(Detail {
        passage: &passage,
        sightings: &page.sightings,
        sightings_next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

/// A passage with its first page of sightings. Serialised straight to the
/// response, so each sighting's `raw` goes out byte for byte as it was
/// received.
#[derive(serde::Serialize)]
struct Detail<'a> {
    #[serde(flatten)]
    passage: &'a gatelog_core::Passage,
    sightings: &'a [gatelog_core::Sighting],
    sightings_next_cursor: Option<String>,
}

/// One page of sightings, serialised straight to the response like
/// [`Detail`].
#[derive(serde::Serialize)]
struct SightingsPage<'a> {
    sightings: &'a [gatelog_core::Sighting],
    next_cursor: Option<String>,
}

/// `GET /api/v1/logs/{id}/sightings?limit=&cursor=`: one page of a
/// passage's sightings in capture order, `{"sightings":[…],"next_cursor":…}`.
#[utoipa::path(
    get,
    path = "/api/v1/logs/{id}/sightings",
    tag = "passages",
    params(("id" = Uuid, Path, description = "The passage's id."), SightingsQuery),
    responses(
        (status = 200, description = "One page of the passage's sightings, in capture order.",
            body = schema::SightingsPage),
        (status = 400, description = "The id is not a UUID, or a parameter is unknown, \
            repeated or malformed (`bad_parameter`).", body = schema::Error),
        (status = 404, description = "No passage has this id (`not_found`).", body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`).",
            body = schema::Error),
    )
)]
pub async fn sightings(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = parse_sightings_query(req.query_string())?;
    let id = passage_id(&path)?;
    // An unknown passage is a 404, not an empty page that looks like one
    // without sightings.
    if state.reader.passage(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no passage with id {id}")));
    }
    let page = state.reader.sightings(id, cursor, limit).await?;
    Ok(HttpResponse::Ok().json(SightingsPage {
        sightings: &page.sightings,
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

fn passage_id(path: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(path).map_err(|_| ApiError::bad_param("id", "id must be a UUID"))
}

/// `limit` and `cursor` of the sightings route.
fn parse_sightings_query(query: &str) -> Result<(u32, Option<Cursor>), ApiError> {
    let q: SightingsQuery = query::parse(query)?;
    Ok((q.limit.map_or(SIGHTINGS_PAGE, |l| l.0), q.cursor))
}

/// Parses a listing's query string into a filter, strictly.
pub fn parse_filter(query: &str) -> Result<LogFilter, ApiError> {
    query::parse::<LogsQuery>(query)?.page_filter()
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
            ("order=sideways", "order"),
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("owner=M5CU", "owner"),
            ("number=12", "number"),
            ("container=%27%20OR%201%3D1", "container"),
            ("q=abc%25", "q"),
            ("from=yesterday", "from"),
            ("from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "from"),
            ("check=maybe", "check"),
            ("sync=soon", "sync"),
            ("cursor=xyz", "cursor"),
            ("colour=red", "colour"),
            ("limit=1&limit=2", "limit"),
        ] {
            assert_eq!(param_of(q), p, "{q}");
        }
    }

    #[test]
    fn the_sightings_query_is_strict() {
        for (q, p) in [
            ("limit=0", "limit"),
            ("limit=1001", "limit"),
            ("limit=ten", "limit"),
            ("cursor=xyz", "cursor"),
            ("limit=5&limit=6", "limit"),
            ("order=asc", "order"),
        ] {
            match parse_sightings_query(q).unwrap_err() {
                ApiError::BadParameter { param, .. } => assert_eq!(param, p, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        assert_eq!(parse_sightings_query("").unwrap(), (100, None));
        let c = Cursor {
            captured_at: 1_714_552_200_000_000,
            id: Uuid::now_v7(),
        };
        assert_eq!(
            parse_sightings_query(&format!("limit=1000&cursor={}", c.encode())).unwrap(),
            (1000, Some(c))
        );
    }

    #[test]
    fn params_names_every_field_of_the_query() {
        let message = match parse_filter("colour=red").unwrap_err() {
            ApiError::BadParameter { message, .. } => message,
            other => panic!("{other:?}"),
        };
        let mut named: Vec<&str> = message.split('`').skip(1).step_by(2).collect();
        let mut expected = PARAMS.to_vec();
        expected.push("format");
        expected.push("partner");
        named.sort_unstable();
        expected.sort_unstable();
        assert_eq!(named, expected, "{message}");
    }

    #[test]
    fn good_values_parse() {
        let f = parse_filter("owner=mscu&number=123456&order=asc&limit=10&check=bad&sync=pending")
            .unwrap();
        assert_eq!(f.owner.as_deref(), Some("MSCU"));
        assert_eq!(f.number.as_deref(), Some("123456"));
        assert_eq!(
            (f.order, f.limit, f.check_ok),
            (Order::Asc, 10, Some(false))
        );
        assert_eq!(
            parse_filter("owner=msc").unwrap().container.as_deref(),
            Some("MSC")
        );
        assert_eq!(
            parse_filter("container=MSCU 12")
                .unwrap()
                .container
                .as_deref(),
            Some("MSCU12")
        );
    }
}
