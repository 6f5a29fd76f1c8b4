//! `POST /api/v1/session` and `DELETE /api/v1/session`: the dashboard's
//! sign-in.
//!
//! The dashboard posts its read key (or an operator key) once, as `{"key": "…"}` or as
//! `Authorization: Bearer …`, and gets back a `gatelog_session` cookie:
//! `HttpOnly` (page scripts cannot read it), `SameSite=Strict` (other
//! sites cannot send it), `Path=/`, and `Secure` when the request came
//! over HTTPS (directly or as a proxy says). The browser then presents it
//! on REST calls and on the `/ws/logs` handshake, which cannot carry an
//! `Authorization` header. The key itself is never stored in the browser
//! by gatelog. The cookie is built by the `cookie` crate and its value is
//! signed by its signed jar; see [`crate::auth`] for what it holds.
//!
//! A sign-in posted from another site's page (its `Origin`, or `Referer`
//! when `Origin` is absent, names another origin) is refused with 403
//! before the key is looked at, so no page elsewhere can sign a visitor's
//! browser in under a key of its choosing. Signing out ends the session
//! on the server as well as dropping the cookie.
//!
//! `GET /login` serves a plain sign-in form that posts form-encoded to the
//! same endpoint and is redirected to `/` with the cookie; browsers that
//! open a page without a session are sent there.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use cookie::{Cookie, SameSite};
use serde_json::{json, Value};

use crate::auth::{Principal, SESSION_COOKIE};
use crate::openapi::schema;
use crate::{ApiError, AppState};

/// The largest sign-in body read.
const MAX_BODY: usize = 4096;

/// `POST /api/v1/session`: sign in.
#[utoipa::path(
    post,
    path = "/api/v1/session",
    tag = "session",
    request_body(description = "The key as JSON, or from the sign-in form; or none, with \
        the key in `Authorization: Bearer`.", content(
        (schema::SignIn = "application/json"),
        (schema::SignIn = "application/x-www-form-urlencoded")
    )),
    responses(
        (status = 200, description = "Signed in: the `gatelog_session` cookie is set. With no \
            key configured, nothing needs signing in (`auth: off`).",
            body = schema::SignInAnswer),
        (status = 303, description = "The sign-in form was posted: to `/`, with the cookie \
            when the key was right."),
        (status = 400, description = "The JSON has no string `key` (`bad_parameter`) or is \
            not JSON (`malformed_json`).", body = schema::Error),
        (status = 401, description = "Not a read key or an operator key (`unauthorized`); \
            the form gets its page again, with the reason.", content(
            (schema::Error = "application/json"),
            (String = "text/html")
        )),
        (status = 403, description = "Posted from another site's page: its `Origin` or \
            `Referer` names another origin (`forbidden`).", body = schema::Error),
        (status = 413, description = "The body is larger than 4,096 bytes (`body_too_large`).",
            body = schema::Error),
        (status = 429, description = "This address sent too many wrong keys \
            (`rate_limited`); `Retry-After` says when to retry.", content(
            (schema::Error = "application/json"),
            (String = "text/html")
        )),
    )
)]
pub async fn create(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let security = &state.security;
    security.check_sign_in_source(&req)?;
    // The sign-in form posts form-encoded and wants a page back; scripts
    // post JSON and want JSON.
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if security.is_open() {
        return Ok(if form {
            see_other("/")
        } else {
            HttpResponse::Ok().json(json!({"status": "ok", "auth": "off"}))
        });
    }
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge { limit: MAX_BODY });
    }
    let key = match bearer(&req) {
        Some(k) => k,
        None if form => serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "key"))
            .map(|(_, v)| v)
            .unwrap_or_default(),
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
    let who = match security.sign_in(&req, &key) {
        Ok(who) => who,
        Err(ApiError::Unauthorized(_)) if form => {
            return Ok(HttpResponse::Unauthorized()
                .content_type("text/html; charset=utf-8")
                .body(login_page(Some(
                    "That is not a read key or an operator key.",
                ))));
        }
        Err(ApiError::RateLimited { retry_after_secs }) if form => {
            return Ok(HttpResponse::TooManyRequests()
                .content_type("text/html; charset=utf-8")
                .insert_header((header::RETRY_AFTER, retry_after_secs.to_string()))
                .body(login_page(Some(&format!(
                    "Too many wrong keys from this address. Try again in {retry_after_secs} s."
                )))));
        }
        Err(e) => return Err(e),
    };
    let (token, ttl) = security.issue_session(who);
    let set_cookie = cookie(&req, Some((token, ttl)));
    if form {
        let mut res = see_other("/");
        res.headers_mut().insert(
            header::SET_COOKIE,
            header::HeaderValue::from_str(&set_cookie)
                .map_err(|_| ApiError::Internal("the session cookie is not a header".into()))?,
        );
        return Ok(res);
    }
    let expires = chrono::Utc::now() + chrono::Duration::seconds(ttl.as_secs() as i64);
    Ok(HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, set_cookie))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "status": "ok",
            "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            // Whether this session may correct (an operator key's).
            "role": match who {
                Principal::Operator(_) => "operator",
                _ => "read",
            },
        })))
}

/// `GET /login`: the sign-in form, for browsers sent here without a
/// session.
#[utoipa::path(
    get,
    path = "/login",
    tag = "session",
    responses((status = 200, description = "The sign-in form: no script, nothing loaded \
        from elsewhere.", content_type = "text/html", body = String))
)]
pub async fn login() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(login_page(None))
}

fn see_other(location: &'static str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

/// A page with no script and no outside resource.
fn login_page(error: Option<&str>) -> String {
    let error = error
        .map(|e| format!("<p role=\"alert\" style=\"color:#b00020\">{e}</p>"))
        .unwrap_or_default();
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>gatelog: sign in</title><link rel="icon" href="data:,"></head>
<body style="font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem">
<h1>gatelog</h1>
<p>Enter a read key to open the dashboard, or an operator key to correct numbers too.</p>{error}
<form method="post" action="/api/v1/session">
<label for="key">Read or operator key</label><br>
<input id="key" name="key" type="password" autocomplete="current-password" required autofocus style="width:100%">
<p><button type="submit">Sign in</button></p>
</form></body></html>
"#
    )
}

/// Signs out: the session ends on the server, and the browser drops the
/// cookie.
#[utoipa::path(
    delete,
    path = "/api/v1/session",
    tag = "session",
    responses((status = 200, description = "Signed out; the cookie is removed.",
        body = schema::StatusOk))
)]
pub async fn delete(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    state.security.end_session(&req);
    HttpResponse::Ok()
        .insert_header((header::SET_COOKIE, cookie(&req, None)))
        .json(json!({"status": "ok"}))
}

fn bearer(req: &HttpRequest) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The `Set-Cookie` value for the session cookie, built by the `cookie`
/// crate: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Max-Age` of the
/// session's lifetime, and `Secure` when the request came over HTTPS
/// (directly or as a proxy says). `None` builds the removal: an empty
/// value, `Max-Age=0` and an expiry in the past.
fn cookie(req: &HttpRequest, session: Option<(String, Duration)>) -> String {
    let secure = req.connection_info().scheme() == "https";
    let builder = match session {
        Some((value, ttl)) => Cookie::build((SESSION_COOKIE, value)).max_age(
            cookie::time::Duration::seconds(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        ),
        None => Cookie::build(SESSION_COOKIE).removal(),
    };
    builder
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build()
        .to_string()
}
