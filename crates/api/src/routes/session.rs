//! `POST /api/v1/session` and `DELETE /api/v1/session`: the dashboard's
//! sign-in.
//!
//! The dashboard posts its read key once, as `{"key": "…"}` or as
//! `Authorization: Bearer …`, and gets back a `gatelog_session` cookie:
//! `HttpOnly` (page scripts cannot read it), `SameSite=Strict` (other
//! sites cannot send it), `Path=/`, and `Secure` when the request came
//! over HTTPS (directly or as a proxy says). The browser then presents it
//! on REST calls and on the `/ws/logs` handshake, which cannot carry an
//! `Authorization` header. The key itself is never stored in the browser
//! by gatelog. See [`crate::auth`] for the token.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::auth::SESSION_COOKIE;
use crate::{ApiError, AppState};

/// The largest sign-in body read.
const MAX_BODY: usize = 4096;

pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let security = &state.security;
    if security.is_open() {
        return Ok(HttpResponse::Ok().json(json!({"status": "ok", "auth": "off"})));
    }
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge { limit: MAX_BODY });
    }
    let key = match bearer(&req) {
        Some(k) => k,
        None => {
            let v: Value = serde_json::from_slice(&body).map_err(|_| {
                ApiError::MalformedJson("send {\"key\": \"<read key>\"} as JSON".into())
            })?;
            v.get("key")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| ApiError::bad_param("key", "key must be a string"))?
        }
    };
    let index = security.read_key(&key).ok_or(ApiError::Unauthorized(
        "that is not a read key; the dashboard needs a read key",
    ))?;
    let (token, ttl) = security.issue_session(index);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(ttl.as_secs() as i64);
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, cookie(&req, &token, ttl.as_secs())))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "status": "ok",
            "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })))
}

/// Signs out: the browser drops the cookie.
pub async fn delete(req: HttpRequest) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, cookie(&req, "", 0)))
        .json(json!({"status": "ok"}))
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

fn cookie(req: &HttpRequest, value: &str, max_age: u64) -> String {
    let secure = if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    format!(
        "{SESSION_COOKIE}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    )
}
