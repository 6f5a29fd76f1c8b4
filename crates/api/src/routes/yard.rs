//! `GET /api/v1/yard` and `GET /api/v1/yard/stats`: what is in the yard
//! now, and for how long.
//!
//! The yard list takes `owner`, `min_dwell_secs`, `limit` (default 50, at
//! most 1,000) and `cursor`, longest stays first, with a total `count`.
//! The stats take `/api/v1/stats`' `from`, `to` and `bucket`.

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use gatelog_local_store::{Cursor, YardFilter};

use crate::routes::logs::strict_pairs;
use crate::routes::stats::parse_params;
use crate::{ApiError, AppState};

const PARAMS: [&str; 4] = ["owner", "min_dwell_secs", "limit", "cursor"];

fn parse_filter(query: &str) -> Result<YardFilter, ApiError> {
    let mut filter = YardFilter {
        limit: 50,
        ..YardFilter::default()
    };
    for (key, value) in strict_pairs(query, &PARAMS)? {
        match key.as_str() {
            "owner" => {
                let owner = value.trim().to_ascii_uppercase();
                if !(3..=4).contains(&owner.len()) || !owner.bytes().all(|b| b.is_ascii_uppercase())
                {
                    return Err(ApiError::bad_param(
                        "owner",
                        "owner must be an owner code with its category letter, such as MSCU",
                    ));
                }
                filter.owner = Some(owner);
            }
            "min_dwell_secs" => {
                filter.min_dwell_secs = Some(
                    value
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| {
                            ApiError::bad_param(
                                "min_dwell_secs",
                                "min_dwell_secs must be a whole number of seconds, 0 or more",
                            )
                        })?,
                );
            }
            "limit" => {
                filter.limit = value
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=1000).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_param("limit", "limit must be an integer from 1 to 1000")
                    })?;
            }
            _ => {
                filter.cursor = Some(Cursor::decode(&value).ok_or_else(|| {
                    ApiError::bad_param(
                        "cursor",
                        "cursor is not one this server issued; pass next_cursor back as it is",
                    )
                })?);
            }
        }
    }
    Ok(filter)
}

pub async fn list(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(req.query_string())?;
    let page = state.store.yard(&filter, Utc::now()).await?;
    Ok(HttpResponse::Ok().json(page))
}

pub async fn stats(req: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let now = Utc::now();
    let p = parse_params(req.query_string(), now)?;
    let stats = state.store.yard_stats(p.from, p.to, p.bucket, now).await?;
    Ok(HttpResponse::Ok().json(stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_name_their_parameter() {
        for (q, p) in [
            ("owner=M5CU", "owner"),
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
