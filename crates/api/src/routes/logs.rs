//! `GET /api/v1/logs`, `GET /api/v1/logs/{id}` and
//! `GET /api/v1/logs/{id}/sightings`.
//!
//! A passage's sightings are paged like the listing: one passage can hold
//! hundreds of thousands (a container parked in view of a camera), so the
//! detail carries the first [`SIGHTINGS_PAGE`] and `sightings_next_cursor`,
//! and the sightings route gives the pages after it.
//!
//! Query parameters are parsed strictly: an unknown or repeated parameter,
//! or a value of the wrong shape, answers 400 naming the parameter. Values
//! reach SQL only as bound parameters.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Datelike, Utc};
use gatelog_local_store::{Cursor, LogFilter, Order, SyncFilter};
use serde_json::json;
use uuid::Uuid;

use crate::{ApiError, AppState};

/// The parameters `GET /api/v1/logs` knows (and the export, which takes
/// the same filters and `format`).
pub const PARAMS: [&str; 13] = [
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
    "limit",
    "cursor",
    "order",
];
/// The longest camera or site id accepted in a filter.
const MAX_ID_LEN: usize = 256;

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(req.query_string())?;
    let page = state.store.search(&filter).await?;
    Ok(HttpResponse::Ok().json(json!({
        "logs": page.logs,
        "next_cursor": page.next_cursor.map(|c| c.encode()),
    })))
}

/// Sightings in the detail, and in a page of the sightings route unless
/// `limit` says otherwise.
pub const SIGHTINGS_PAGE: u32 = 100;
/// The most sightings one page of the sightings route may hold.
const MAX_SIGHTINGS_PAGE: u32 = 1000;
/// The parameters of `GET /api/v1/logs/{id}/sightings`.
const SIGHTINGS_PARAMS: [&str; 2] = ["limit", "cursor"];

/// `GET /api/v1/logs/{id}`: the passage, its first page of sightings and
/// where the next page starts (`null` when that was all of them).
pub async fn get(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    // The detail takes no parameters; any is a mistake worth naming.
    strict_pairs(req.query_string(), &[])?;
    let id = passage_id(&path)?;
    let passage = state
        .store
        .passage(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no passage with id {id}")))?;
    let page = state.store.sightings(id, None, SIGHTINGS_PAGE).await?;
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
pub async fn sightings(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (limit, cursor) = parse_sightings_query(req.query_string())?;
    let id = passage_id(&path)?;
    // An unknown passage is a 404, not an empty page that looks like one
    // without sightings.
    if state.store.passage(id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no passage with id {id}")));
    }
    let page = state.store.sightings(id, cursor, limit).await?;
    Ok(HttpResponse::Ok().json(SightingsPage {
        sightings: &page.sightings,
        next_cursor: page.next_cursor.map(|c| c.encode()),
    }))
}

fn passage_id(path: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(path).map_err(|_| ApiError::bad_param("id", "id must be a UUID"))
}

/// The query's pairs, refusing any parameter not in `known` and any given
/// twice, with a 400 that names it.
pub(crate) fn strict_pairs(query: &str, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_param("query", "the query string is not valid URL encoding"))?;
    let mut seen = std::collections::HashSet::new();
    for (key, _) in &pairs {
        if !known.contains(&key.as_str()) {
            let known = if known.is_empty() {
                "this route takes no parameters".to_string()
            } else {
                format!("known: {}", known.join(", "))
            };
            return Err(ApiError::bad_param(
                &truncate(key),
                format!("unknown parameter {:?}; {known}", truncate(key)),
            ));
        }
        if !seen.insert(key.clone()) {
            return Err(ApiError::bad_param(
                key,
                format!("{key} is given more than once"),
            ));
        }
    }
    Ok(pairs)
}

/// `limit` and `cursor` of the sightings route.
fn parse_sightings_query(query: &str) -> Result<(u32, Option<Cursor>), ApiError> {
    let mut limit = SIGHTINGS_PAGE;
    let mut cursor = None;
    for (key, value) in strict_pairs(query, &SIGHTINGS_PARAMS)? {
        if key == "limit" {
            limit = value
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=MAX_SIGHTINGS_PAGE).contains(n))
                .ok_or_else(|| {
                    ApiError::bad_param("limit", "limit must be an integer from 1 to 1000")
                })?;
        } else {
            cursor = Some(Cursor::decode(&value).ok_or_else(|| {
                ApiError::bad_param(
                    "cursor",
                    "cursor is not one this server issued; pass sightings_next_cursor or next_cursor back as it is",
                )
            })?);
        }
    }
    Ok((limit, cursor))
}

/// Parses a query string into a filter, strictly.
pub fn parse_filter(query: &str) -> Result<LogFilter, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::bad_param("query", "the query string is not valid URL encoding"))?;
    let mut filter = LogFilter {
        limit: 50,
        ..LogFilter::default()
    };
    let mut seen = std::collections::HashSet::new();
    for (key, value) in pairs {
        let Some(&name) = PARAMS.iter().find(|p| **p == key) else {
            return Err(ApiError::bad_param(
                &truncate(&key),
                format!(
                    "unknown parameter {:?}; known: {}",
                    truncate(&key),
                    PARAMS.join(", ")
                ),
            ));
        };
        if !seen.insert(name) {
            return Err(ApiError::bad_param(
                name,
                format!("{name} is given more than once"),
            ));
        }
        match name {
            "owner" => {
                let v = alnum(name, &value, 4)?;
                if !v.chars().all(|c| c.is_ascii_alphabetic()) || v.len() < 3 {
                    return Err(ApiError::bad_param(
                        name,
                        "owner must be 3 or 4 letters, such as MSCU",
                    ));
                }
                // Three letters name the owner without the category letter.
                if v.len() == 3 {
                    filter.container = Some(v);
                } else {
                    filter.owner = Some(v);
                }
            }
            "number" => {
                let v = alnum(name, &value, 6)?;
                if v.len() != 6 || !v.chars().all(|c| c.is_ascii_digit()) {
                    return Err(ApiError::bad_param(name, "number must be six digits"));
                }
                filter.number = Some(v);
            }
            "container" => filter.container = Some(alnum(name, &value, 11)?),
            "q" => filter.q = Some(alnum(name, &value, 11)?),
            "from" => filter.from = Some(time(name, &value)?),
            "to" => filter.to = Some(time(name, &value)?),
            "camera" => filter.camera = Some(id(name, value)?),
            "site" => filter.site = Some(id(name, value)?),
            "check" => {
                filter.check_ok = Some(match value.as_str() {
                    "ok" => true,
                    "bad" => false,
                    _ => return Err(ApiError::bad_param(name, "check must be ok or bad")),
                })
            }
            "sync" => {
                filter.sync = Some(match value.as_str() {
                    "pending" => SyncFilter::Pending,
                    "synced" => SyncFilter::Synced,
                    _ => return Err(ApiError::bad_param(name, "sync must be pending or synced")),
                })
            }
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
            "order" => {
                filter.order = match value.as_str() {
                    "desc" => Order::Desc,
                    "asc" => Order::Asc,
                    _ => return Err(ApiError::bad_param(name, "order must be desc or asc")),
                }
            }
            _ => unreachable!("every known parameter is handled"),
        }
    }
    if let (Some(from), Some(to)) = (filter.from, filter.to) {
        if from > to {
            return Err(ApiError::bad_param("from", "from must not be after to"));
        }
    }
    Ok(filter)
}

/// Upper-cases a number fragment and drops separators; only A-Z and 0-9
/// may remain.
fn alnum(name: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '/'))
        .collect::<String>()
        .to_ascii_uppercase();
    if v.is_empty() || v.len() > max || !v.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_param(
            name,
            format!("{name} must be 1 to {max} letters or digits"),
        ));
    }
    Ok(v)
}

/// Parses an RFC 3339 query parameter, naming it when it is not one.
///
/// The time must fall in the years 0001 to 9998 once in UTC: an offset can
/// carry `9999-12-31T23:59:59-23:59` past year 9999, and a range rounded up
/// to a whole bucket must still be a time RFC 3339 can write.
pub(crate) fn time(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let t = DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            ApiError::bad_param(
                name,
                format!("{name} must be an RFC 3339 time, such as 2024-05-01T00:00:00Z"),
            )
        })?;
    if !(1..=9998).contains(&t.year()) {
        return Err(ApiError::bad_param(
            name,
            format!("{name} must fall in the years 0001 to 9998 (UTC)"),
        ));
    }
    Ok(t)
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

fn truncate(s: &str) -> String {
    s.chars().take(40).collect()
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
        assert!(strict_pairs("", &[]).is_ok());
        assert!(strict_pairs("x=1", &[]).is_err());
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
