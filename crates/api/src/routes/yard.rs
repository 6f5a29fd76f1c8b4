//! `GET /api/v1/yard` and `GET /api/v1/yard/stats`: what is in the yard
//! now, and for how long.
//!
//! The yard list takes `owner`, `min_dwell_secs`, `limit` (default 50, at
//! most 1,000) and `cursor`, longest stays first, with a total `count`.
//! The stats take `/api/v1/stats`' `from`, `to` and `bucket`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use gatelog_local_store::{Cursor, YardFilter};
use serde::Deserialize;

use crate::openapi::schema;
use crate::query::{self, param, FromParam, Limit};
use crate::routes::stats::parse_params;
use crate::{ApiError, AppState};

/// The parameters of `GET /api/v1/yard`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct YardQuery {
    /// An owner code with its category letter, such as `MSCU`.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>, pattern = "^[A-Za-z]{4}$")]
    owner: Option<Owner>,
    /// Only containers in the yard at least this many seconds.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<i64>, minimum = 0)]
    min_dwell_secs: Option<Seconds>,
    /// Containers a page, 1 to 1,000 (default 50).
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<Limit<1000>>,
    /// The `next_cursor` of the page before, as it was given.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<String>)]
    cursor: Option<Cursor>,
}

/// An owner code with its category letter, such as `MSCU`.
#[derive(Debug)]
struct Owner(String);

impl FromParam for Owner {
    fn from_param(text: &str) -> Result<Self, String> {
        let v = text.trim().to_ascii_uppercase();
        if v.len() == 4 && v.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(v))
        } else {
            Err("must be an owner code with its category letter, such as MSCU".into())
        }
    }
}

/// A whole number of seconds, 0 or more.
#[derive(Debug)]
struct Seconds(i64);

impl FromParam for Seconds {
    fn from_param(text: &str) -> Result<Self, String> {
        text.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(Self)
            .ok_or_else(|| "must be a whole number of seconds, 0 or more".into())
    }
}

fn parse_filter(q: &str) -> Result<YardFilter, ApiError> {
    let YardQuery {
        owner,
        min_dwell_secs,
        limit,
        cursor,
    } = query::parse(q)?;
    Ok(YardFilter {
        owner: owner.map(|o| o.0),
        min_dwell_secs: min_dwell_secs.map(|s| s.0),
        limit: limit.map_or(50, |l| l.0),
        cursor,
    })
}

/// `GET /api/v1/yard`.
#[utoipa::path(
    get,
    path = "/api/v1/yard",
    tag = "reports",
    params(YardQuery),
    responses(
        (status = 200, description = "The containers in the yard, longest stays first.",
            body = schema::YardPage),
        (status = 400, description = "A parameter is unknown, repeated or malformed \
            (`bad_parameter`, naming it).", body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`); \
            `Retry-After` says when to retry.", body = schema::Error),
    )
)]
pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(req.query_string())?;
    let page = state.store()?.yard(&filter, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /api/v1/yard/stats`.
#[utoipa::path(
    get,
    path = "/api/v1/yard/stats",
    tag = "reports",
    params(crate::routes::stats::StatsQuery),
    responses(
        (status = 200, description = "What is in the yard by owner, dwell times, and gate \
            movements per bucket.", body = schema::YardStats),
        (status = 400, description = "A parameter is unknown, repeated or malformed, `from` is \
            after `to`, or the range spans more than 744 buckets (`bad_parameter`, naming it).",
            body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`); \
            `Retry-After` says when to retry.", body = schema::Error),
    )
)]
pub async fn stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let p = parse_params(req.query_string(), now)?;
    let stats = state
        .store()?
        .yard_stats(p.from, p.to, p.bucket, now)
        .await?;
    Ok(HttpResponse::Ok().json(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_parameter() {
        for (q, p) in [
            ("owner=M5CU", "owner"),
            ("owner=MSC", "owner"),
            ("min_dwell_secs=-1", "min_dwell_secs"),
            ("limit=0", "limit"),
            ("cursor=nope", "cursor"),
            ("limit=5&limit=6", "limit"),
            ("dwell=1", "dwell"),
        ] {
            match parse_filter(q).unwrap_err() {
                ApiError::BadParameter { param, .. } => assert_eq!(param, p, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
        let f = parse_filter("owner=mscu&min_dwell_secs=60&limit=5").unwrap();
        assert_eq!(
            (f.owner.as_deref(), f.min_dwell_secs, f.limit),
            (Some("MSCU"), Some(60), 5)
        );
    }
}
