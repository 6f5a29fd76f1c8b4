//! `GET /api/v1/stats?from&to&bucket=hour|day`: counts per time bucket.
//!
//! `from` and `to` are RFC 3339 times; `to` defaults to now and `from` to
//! 24 hours (hourly buckets) or 30 days (daily buckets) before `to`.
//! Buckets are whole UTC hours or days. A range may span at most
//! [`MAX_BUCKETS`] buckets, so one request has a bounded cost.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use gatelog_local_store::Bucket;
use serde::Deserialize;

use crate::openapi::schema;
use crate::query::{self, param};
use crate::{ApiError, AppState};

/// The most buckets one request may ask for: 31 days of hours, or about
/// two years of days.
pub const MAX_BUCKETS: i64 = 744;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Params {
    pub(crate) from: DateTime<Utc>,
    pub(crate) to: DateTime<Utc>,
    pub(crate) bucket: Bucket,
}

/// The parameters as given.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StatsQuery {
    /// The range's start (RFC 3339); by default 24 hours (hourly) or 30
    /// days (daily) before `to`. At most 744 buckets.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<DateTime<Utc>>)]
    from: Option<DateTime<Utc>>,
    /// The range's end (RFC 3339); now by default.
    #[serde(default, deserialize_with = "param")]
    #[param(value_type = Option<DateTime<Utc>>)]
    to: Option<DateTime<Utc>>,
    /// Whole UTC hours (the default) or days.
    #[serde(default, deserialize_with = "param")]
    #[param(schema_with = query::doc::bucket)]
    bucket: Option<Bucket>,
}

pub(crate) fn parse_params(query: &str, now: DateTime<Utc>) -> Result<Params, ApiError> {
    let StatsQuery { from, to, bucket } = query::parse(query)?;
    let bucket = bucket.unwrap_or(Bucket::Hour);
    let to = to.unwrap_or(now);
    let from = from.unwrap_or_else(|| match bucket {
        Bucket::Hour => to - Duration::hours(24),
        Bucket::Day => to - Duration::days(30),
    });
    if from > to {
        return Err(ApiError::bad_param("from", "from must not be after to"));
    }
    let span = (to - from).num_microseconds().unwrap_or(i64::MAX) / bucket.micros();
    if span >= MAX_BUCKETS {
        return Err(ApiError::bad_param(
            "from",
            format!(
                "the range spans more than {MAX_BUCKETS} {} buckets; narrow from and to, or use bucket=day",
                bucket.as_str()
            ),
        ));
    }
    Ok(Params { from, to, bucket })
}

/// `GET /api/v1/stats`.
#[utoipa::path(
    get,
    path = "/api/v1/stats",
    tag = "reports",
    params(StatsQuery),
    responses(
        (status = 200, description = "Counts per bucket, empty buckets included.",
            body = schema::Stats),
        (status = 400, description = "A parameter is unknown, repeated or malformed, `from` is \
            after `to`, or the range spans more than 744 buckets (`bad_parameter`, naming it).",
            body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`); \
            `Retry-After` says when to retry.", body = schema::Error),
    )
)]
pub async fn get(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let p = parse_params(req.query_string(), Utc::now())?;
    let stats = state.reader.stats(p.from, p.to, p.bucket).await?;
    Ok(HttpResponse::Ok().json(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        "2024-05-02T12:34:56Z".parse().unwrap()
    }

    #[test]
    fn bad_values_name_their_parameter() {
        for (q, p) in [
            ("bucket=week", "bucket"),
            ("from=yesterday", "from"),
            ("to=2024-13-01T00:00:00Z", "to"),
            ("from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "from"),
            ("from=2020-01-01T00:00:00Z&bucket=hour", "from"),
            ("bucket=hour&bucket=day", "bucket"),
            ("step=1", "step"),
            // Past year 9999 once in UTC, or rounded up to a whole bucket.
            ("to=9999-12-31T23:59:59-23:59", "to"),
            ("from=9999-12-31T01:00:00Z&to=9999-12-31T02:00:00Z", "from"),
        ] {
            match parse_params(q, now()).unwrap_err() {
                ApiError::BadParameter { param, .. } => assert_eq!(param, p, "{q}"),
                other => panic!("{q}: {other:?}"),
            }
        }
    }

    #[test]
    fn defaults_cover_a_day_of_hours_or_a_month_of_days() {
        let p = parse_params("", now()).unwrap();
        assert_eq!(
            (p.bucket, p.to - p.from),
            (Bucket::Hour, Duration::hours(24))
        );
        let p = parse_params("bucket=day", now()).unwrap();
        assert_eq!((p.bucket, p.to - p.from), (Bucket::Day, Duration::days(30)));
    }
}
