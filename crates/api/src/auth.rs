//! Who may do what: bearer keys, dashboard sessions, per-key rate limits
//! and the request timeout, applied by one middleware before routing.
//!
//! # Access classes
//! A request is classified by its path alone, before routing, so routes
//! added later are covered without being listed here. Anything not named
//! below is a read: deny by default.
//! - **open**: `/healthz`, `/readyz` and `/metrics`, which probes and
//!   Prometheus call without a key and which carry no container data and
//!   no secret; `/api/v1/openapi.json`, the contract, which describes the
//!   API and carries neither; `/api/v1/session`, which checks the key
//!   itself; and `/login`, the sign-in form.
//! - **ingest**: `/api/v1/recognitions`. Needs an ingest key.
//! - **read**: `GET` and `HEAD` on every other path: the rest of
//!   `/api/…`, `/ws/…`, `/` and the dashboard's assets. Needs a read key
//!   or an operator key.
//! - **correct**: any other method on those paths, such as `PATCH
//!   /api/v1/logs/{id}` and `POST /api/v1/exceptions/{id}/resolve`. Needs
//!   an operator key; a read or ingest key gets 403.
//!
//! # Operator keys and names
//! A correction records who made it (`by`). An operator key configured
//! as `name:key` is named `name` (1 to 32 letters, digits, `_`, `.` or
//! `-`), and the client sends only `key`; a key configured bare is named
//! by a short fingerprint, `operator:` and the first 8 hex digits of its
//! SHA-256, which is stable and says nothing useful about a long random
//! key. With no keys configured at all, corrections are open and `by` is
//! `local`.
//!
//! # Credentials
//! - `Authorization: Bearer <key>`. Keys are held only as SHA-256 digests
//!   and compared in constant time against every configured key.
//! - The `gatelog_session` cookie, for reads and corrections (an
//!   operator key's session), never for ingest. Browsers cannot set
//!   headers on a WebSocket, so the dashboard posts its read key once to
//!   `POST /api/v1/session` and gets an `HttpOnly; SameSite=Strict` cookie
//!   holding a signed session that expires after `auth.session_ttl_secs`.
//!   Page scripts cannot read the cookie, other sites cannot send it, and
//!   a cookie-authenticated request whose `Origin` is neither this host nor
//!   in `server.cors_origins` is refused, which stops cross-site WebSocket
//!   hijacking. The value is signed by the `cookie` crate's signed jar under
//!   a random key made at start-up and never stored, so a restart ends
//!   every session; the server also keeps each live session's nonce, so
//!   signing out ends that session on the server. A sign-in posted from another site's page is
//!   refused with 403 (login CSRF). A cookie never authorizes ingest. A browser that navigates to a page without
//!   a session is redirected to `/login`, a plain form that posts the key
//!   to `/api/v1/session` and needs no script.
//!
//! With no key configured at all, every class is open; `serve` then binds
//! only loopback addresses. With some keys configured, a class whose list
//! is empty is closed to everyone.
//!
//! # Limits
//! The principal (which key, never the key itself) is left in the
//! request's extensions for handlers that count per key, such as the
//! WebSocket caps in [`crate::ws_limit`].
//!
//! Each key (a session counts as its read key) may make `limits.burst`
//! requests at once, refilled at `limits.rate_per_sec`, by `governor`'s
//! keyed GCRA limiter; past that, 429 with `Retry-After`. Open paths, and every request
//! when no keys are configured, are not rate limited.
//!
//! Wrong keys (a bearer key on any path, or at sign-in) are limited per
//! client address (an IPv6 client by its /64), also by governor:
//! `limits.auth_failure_burst` at once, refilled at
//! `limits.auth_failures_per_minute`. An address that has spent them gets
//! 429 with `Retry-After` before any key it sends is checked, so keys
//! cannot be guessed faster than that. Session cookies do not count: they
//! cannot be guessed, and every open dashboard holds a stale one after a
//! restart. Neither does a request that presents no credentials. Every request must
//! reach its response head within `server.request_timeout_secs` or gets
//! 408, which covers clients that send their body slowly.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, HttpRequest, ResponseError};
use cookie::{Cookie, CookieJar};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{HashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;
use governor::{NotUntil, Quota, RateLimiter};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{LimitsConfig, ServerConfig};
use crate::{ApiError, AppState};

/// The name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "gatelog_session";

const INGEST_REQUIRED: &str =
    "a valid ingest key is required: send Authorization: Bearer <ingest key>";
const READ_REQUIRED: &str =
    "a valid read key is required: send Authorization: Bearer <read key>, or sign in through POST /api/v1/session";
const OPERATOR_REQUIRED: &str =
    "a valid operator key is required: send Authorization: Bearer <operator key>, or sign in with one through POST /api/v1/session";
const CORRECT_FORBIDDEN: &str =
    "only an operator key may correct: this key may read (or post reads) but not change them; configure an operator key in auth.operator_keys";
const CROSS_ORIGIN: &str =
    "the session cookie is not accepted from another origin; send Authorization: Bearer <read key>";
const CROSS_ORIGIN_SIGN_IN: &str =
    "sign-in is accepted only from this server's own pages (or an origin in server.cors_origins): \
     the request's Origin or Referer names another site";

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Open,
    Ingest,
    Read,
    /// A change made by hand: an operator's correction.
    Correct,
}

/// Classifies a request by its method and path (as the router will match
/// it). Outside the open and ingest paths, only `GET` and `HEAD` read;
/// every other method changes something and needs an operator.
pub fn classify(method: &Method, path: &str) -> Access {
    match path {
        "/healthz"
        | "/readyz"
        | "/metrics"
        | crate::openapi::PATH
        | "/api/v1/session"
        | "/login" => Access::Open,
        "/api/v1/recognitions" => Access::Ingest,
        p if p.starts_with("/api/v1/recognitions/") => Access::Ingest,
        _ if method == Method::GET || method == Method::HEAD => Access::Read,
        _ => Access::Correct,
    }
}

/// Who a request was authenticated as: a key's kind and position, never
/// the key itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    Ingest(usize),
    Read(usize),
    Operator(usize),
}

/// What [`Security::new`] needs from the configuration.
pub struct SecurityConfig<'a> {
    pub ingest_keys: &'a [SecretString],
    pub read_keys: &'a [SecretString],
    /// Keys that may read and correct, each `name:key` or a bare key.
    pub operator_keys: &'a [SecretString],
    /// How long a dashboard session lasts.
    pub session_ttl: Duration,
    pub limits: &'a LimitsConfig,
    pub server: &'a ServerConfig,
}

/// Keys, sessions and limits, shared by every worker.
pub struct Security {
    /// SHA-256 digests of the ingest keys.
    ingest: Vec<[u8; 32]>,
    /// SHA-256 digests of the read keys.
    read: Vec<[u8; 32]>,
    /// SHA-256 digests of the operator keys (the key part of `name:key`).
    operator: Vec<[u8; 32]>,
    /// Each operator key's name, recorded as `by` on its corrections.
    operator_names: Vec<String>,
    sessions: Sessions,
    /// `None` when rate limiting is off.
    limiter: Option<KeyLimiter>,
    /// Failed authentications per client address; `None` when off.
    failures: Option<FailureLimiter>,
    request_timeout: Duration,
    /// Origins besides this host from which the session cookie is taken.
    cors_origins: Vec<String>,
}

impl std::fmt::Debug for Security {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Security")
            .field("ingest_keys", &self.ingest.len())
            .field("read_keys", &self.read.len())
            .field("operator_keys", &self.operator_names)
            .field("rate_limited", &self.limiter.is_some())
            .finish_non_exhaustive()
    }
}

impl Security {
    pub fn new(c: SecurityConfig<'_>) -> Self {
        let digests = |keys: &[SecretString]| -> Vec<[u8; 32]> {
            keys.iter()
                .map(|k| digest(k.expose_secret().as_bytes()))
                .collect()
        };
        let (operator_names, operator): (Vec<String>, Vec<[u8; 32]>) = c
            .operator_keys
            .iter()
            .map(|k| operator_key(k.expose_secret()))
            .unzip();
        Self {
            ingest: digests(c.ingest_keys),
            read: digests(c.read_keys),
            operator,
            operator_names,
            sessions: Sessions::new(c.session_ttl),
            limiter: key_quota(c.limits.rate_per_sec, c.limits.burst)
                .map(|q| RateLimiter::hashmap_with_clock(q, DefaultClock::default())),
            failures: FailureLimiter::new(
                c.limits.auth_failures_per_minute,
                c.limits.auth_failure_burst,
                DefaultClock::default(),
            ),
            request_timeout: Duration::from_secs(c.server.request_timeout_secs.max(1)),
            cors_origins: c.server.cors_origins.clone(),
        }
    }

    /// No keys and no limits: everything open, as on a loopback bind with
    /// no keys configured.
    pub fn open() -> Self {
        Self::new(SecurityConfig {
            ingest_keys: &[],
            read_keys: &[],
            operator_keys: &[],
            session_ttl: Duration::from_secs(3600),
            limits: &LimitsConfig {
                rate_per_sec: 0.0,
                burst: 1,
                auth_failures_per_minute: 0,
                auth_failure_burst: 1,
                ..LimitsConfig::default()
            },
            server: &ServerConfig::default(),
        })
    }

    /// True when no key is configured at all.
    pub fn is_open(&self) -> bool {
        self.ingest.is_empty() && self.read.is_empty() && self.operator.is_empty()
    }

    /// The name a correction records as `by` for `who`: the operator
    /// key's name, or `local` when no key is configured. Any other key is
    /// refused (403), whatever the middleware let through.
    pub fn corrector(&self, who: Option<Principal>) -> Result<String, ApiError> {
        match who {
            Some(Principal::Operator(i)) => self
                .operator_names
                .get(i)
                .cloned()
                .ok_or(ApiError::Forbidden(CORRECT_FORBIDDEN)),
            None if self.is_open() => Ok(gatelog_core::operator::LOCAL.to_string()),
            _ => Err(ApiError::Forbidden(CORRECT_FORBIDDEN)),
        }
    }

    /// Who `key` is among the read and operator keys, for a sign-in from
    /// `req`. A wrong key counts as a failed authentication of its
    /// address; an address out of allowance gets 429 without its key being
    /// checked.
    pub fn sign_in(&self, req: &HttpRequest, key: &str) -> Result<Principal, ApiError> {
        let ip = peer_ip(req);
        self.failures_allow(ip)?;
        self.reader(&digest(key.as_bytes())).ok_or_else(|| {
            self.record_failure(ip);
            ApiError::Unauthorized(
                "that is not a read key or an operator key; the dashboard needs one of them",
            )
        })
    }

    /// The read or operator key with digest `d`. Both lists are compared
    /// in full, so the time taken does not tell which holds it.
    fn reader(&self, d: &[u8; 32]) -> Option<Principal> {
        let read = find(&self.read, d).map(Principal::Read);
        let operator = find(&self.operator, d).map(Principal::Operator);
        operator.or(read)
    }

    /// Whether a principal from a session still names a configured key.
    fn still_configured(&self, who: Principal) -> bool {
        match who {
            Principal::Read(i) => i < self.read.len(),
            Principal::Operator(i) => i < self.operator.len(),
            Principal::Ingest(_) => false,
        }
    }

    /// 429 when `ip` has spent its allowance of failed authentications.
    fn failures_allow(&self, ip: Option<IpAddr>) -> Result<(), ApiError> {
        match (&self.failures, ip) {
            (Some(f), Some(ip)) => f.check(ip).map_err(|wait| {
                tracing::info!(%ip, "too many failed authentications; refusing for now");
                ApiError::RateLimited {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }),
            _ => Ok(()),
        }
    }

    fn record_failure(&self, ip: Option<IpAddr>) {
        if let (Some(f), Some(ip)) = (&self.failures, ip) {
            // The address had allowance left when its key was checked; if
            // this wrong key was its last, the refusal comes with its next.
            let _ = f.spend(ip);
        }
    }

    /// A new session token for `who` (a read or operator key), and its
    /// lifetime.
    pub fn issue_session(&self, who: Principal) -> (String, Duration) {
        (self.sessions.issue(who, unix_now()), self.sessions.ttl)
    }

    /// Checks a request's credentials for `access`. `Ok(None)` means no
    /// key is configured, so nobody is identified.
    pub fn authenticate(
        &self,
        req: &HttpRequest,
        access: Access,
    ) -> Result<Option<Principal>, ApiError> {
        if access == Access::Open || self.is_open() {
            return Ok(None);
        }
        let denied = ApiError::Unauthorized(match access {
            Access::Ingest => INGEST_REQUIRED,
            Access::Correct => OPERATOR_REQUIRED,
            _ => READ_REQUIRED,
        });
        if let Some(value) = req.headers().get(header::AUTHORIZATION) {
            // A key can be guessed, so wrong keys spend the address's
            // allowance. (A session cookie is signed under a key that
            // never leaves memory; a stale one, as every dashboard holds
            // after a restart, is no guess and spends nothing.)
            let ip = peer_ip(req);
            self.failures_allow(ip)?;
            return match self.check_key(access, value) {
                KeyCheck::Allowed(who) => Ok(Some(who)),
                // A real key that may not correct: that is no guess, and
                // the answer says what is missing.
                KeyCheck::OtherClass if access == Access::Correct => {
                    Err(ApiError::Forbidden(CORRECT_FORBIDDEN))
                }
                KeyCheck::OtherClass | KeyCheck::Unknown => {
                    self.record_failure(ip);
                    Err(denied)
                }
            };
        }
        if matches!(access, Access::Read | Access::Correct) {
            if let Some(token) = session_cookie(req) {
                let who = self
                    .sessions
                    .verify(&token, unix_now())
                    .filter(|who| self.still_configured(*who));
                if let Some(who) = who {
                    if !self.same_or_allowed_origin(req) {
                        return Err(ApiError::Unauthorized(CROSS_ORIGIN));
                    }
                    if access == Access::Correct && !matches!(who, Principal::Operator(_)) {
                        return Err(ApiError::Forbidden(CORRECT_FORBIDDEN));
                    }
                    return Ok(Some(who));
                }
            }
        }
        Err(denied)
    }

    /// What the key an `Authorization: Bearer` header names may do for
    /// `access`.
    fn check_key(&self, access: Access, value: &header::HeaderValue) -> KeyCheck {
        let Some(token) = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim())
        else {
            return KeyCheck::Unknown;
        };
        let d = digest(token.as_bytes());
        // Every list is compared in full, whichever class is asked for.
        let ingest = find(&self.ingest, &d).map(Principal::Ingest);
        let reader = self.reader(&d);
        let allowed = match access {
            Access::Ingest => ingest,
            Access::Correct => reader.filter(|who| matches!(who, Principal::Operator(_))),
            _ => reader,
        };
        match (allowed, ingest.or(reader)) {
            (Some(who), _) => KeyCheck::Allowed(who),
            (None, Some(_)) => KeyCheck::OtherClass,
            (None, None) => KeyCheck::Unknown,
        }
    }

    /// Takes one token from `who`'s bucket, or says how long to wait.
    pub fn admit(&self, who: Principal) -> Result<(), ApiError> {
        match &self.limiter {
            Some(l) => l.check_key(&who).map_err(|not_until| {
                let wait = not_until.wait_time_from(l.clock().now());
                ApiError::RateLimited {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                }
            }),
            None => Ok(()),
        }
    }

    /// A browser sends `Origin` on WebSocket handshakes and on cross-origin
    /// requests; it must name this host or an allowed origin.
    fn same_or_allowed_origin(&self, req: &HttpRequest) -> bool {
        match req.headers().get(header::ORIGIN) {
            None => true,
            Some(origin) => origin
                .to_str()
                .is_ok_and(|origin| self.is_own_or_allowed(req, origin)),
        }
    }

    /// Whether `origin` (`scheme://host[:port]`) is this server, as the
    /// request's `Host` names it, or one of `server.cors_origins`.
    fn is_own_or_allowed(&self, req: &HttpRequest, origin: &str) -> bool {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|v| v.to_str().ok());
        let origin_host = origin.split_once("://").map(|(_, h)| h);
        (origin_host.is_some() && origin_host == host)
            || self.cors_origins.iter().any(|o| o == origin)
    }

    /// Refuses a sign-in posted from another site's page (login CSRF: a
    /// page elsewhere signing the victim's browser in under the attacker's
    /// key). As the OWASP cheat sheet advises, the source is `Origin`, or
    /// `Referer` when a browser leaves `Origin` out; either must be this
    /// server or an allowed origin, and `Origin: null` (a sandboxed or
    /// redirected page) is refused. A request with neither header comes
    /// from no web page (a script, curl) and carries no victim's browser,
    /// so it passes.
    pub fn check_sign_in_source(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let headers = req.headers();
        let source = match (headers.get(header::ORIGIN), headers.get(header::REFERER)) {
            (Some(origin), _) => origin.to_str().ok().map(str::to_string),
            (None, Some(referer)) => referer.to_str().ok().and_then(origin_of),
            (None, None) => return Ok(()),
        };
        match source {
            Some(origin) if self.is_own_or_allowed(req, &origin) => Ok(()),
            _ => {
                tracing::info!("a sign-in from another origin was refused");
                Err(ApiError::Forbidden(CROSS_ORIGIN_SIGN_IN))
            }
        }
    }

    /// Ends the session whose cookie `req` carries, on the server: its
    /// token is refused from now on, even if the browser (or someone who
    /// copied it) presents it again.
    pub fn end_session(&self, req: &HttpRequest) {
        if let Some(token) = session_cookie(req) {
            self.sessions.revoke(&token);
        }
    }
}

/// What a bearer key may do for the access a request needs.
enum KeyCheck {
    Allowed(Principal),
    /// A configured key, of a class that does not give this access.
    OtherClass,
    /// No configured key (or no bearer token at all).
    Unknown,
}

/// The longest name an operator key may carry.
const MAX_OPERATOR_NAME: usize = 32;

/// An operator key as configured: its name and the digest of the key the
/// client sends. `name:key` names it; anything else is a bare key, named
/// by its fingerprint.
fn operator_key(entry: &str) -> (String, [u8; 32]) {
    if let Some((name, key)) = entry.split_once(':') {
        let well_formed = (1..=MAX_OPERATOR_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        if well_formed && !key.is_empty() {
            return (name.to_string(), digest(key.as_bytes()));
        }
    }
    let d = digest(entry.as_bytes());
    let fingerprint: String = d[..4].iter().map(|b| format!("{b:02x}")).collect();
    (format!("operator:{fingerprint}"), d)
}

/// The origin (`scheme://host[:port]`) of an absolute URL such as a
/// `Referer`.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    (!scheme.is_empty() && !authority.is_empty() && !authority.contains('@'))
        .then(|| format!("{scheme}://{authority}"))
}

/// The middleware: authenticate, rate-limit, then run the request under
/// the timeout.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody + 'static>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(deny(
            req,
            ApiError::Internal("the app has no security state".into()),
        ));
    };
    let security = &state.security;
    let access = classify(req.method(), req.match_info().as_str());
    match security.authenticate(req.request(), access) {
        Ok(Some(who)) => {
            if let Err(e) = security.admit(who) {
                return Ok(deny(req, e));
            }
            // Handlers that count per key (the WebSocket caps) read who
            // this is from the request.
            req.extensions_mut().insert(who);
        }
        Ok(None) => {}
        Err(_) if access == Access::Read && is_page_navigation(req.request()) => {
            // A person opening the dashboard: send them to sign in.
            return Ok(req
                .into_response(
                    actix_web::HttpResponse::SeeOther()
                        .insert_header((header::LOCATION, "/login"))
                        .finish(),
                )
                .map_into_right_body());
        }
        Err(e) => return Ok(deny(req, e)),
    }
    // The request cannot be cloned before routing (the router needs it
    // unshared), so a timeout leaves as an error, which actix answers with
    // the error's own response.
    let path = req.path().to_string();
    match tokio::time::timeout(security.request_timeout, next.call(req)).await {
        Ok(res) => res.map(ServiceResponse::map_into_left_body),
        Err(_) => {
            tracing::info!(%path, "request timed out");
            Err(ApiError::Timeout.into())
        }
    }
}

/// A browser loading a page (not the API, not a WebSocket): a GET that
/// accepts HTML, outside `/api/` and `/ws/`.
fn is_page_navigation(req: &HttpRequest) -> bool {
    let path = req.path();
    req.method() == actix_web::http::Method::GET
        && !path.starts_with("/api/")
        && !path.starts_with("/ws/")
        && req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html"))
}

fn deny<B>(req: ServiceRequest, e: ApiError) -> ServiceResponse<EitherBody<B>> {
    req.into_response(e.error_response()).map_into_right_body()
}

fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The position of `d` in `keys`. Every key is compared, in constant
/// time, whichever matches.
fn find(keys: &[[u8; 32]], d: &[u8; 32]) -> Option<usize> {
    let mut found = None;
    for (i, k) in keys.iter().enumerate() {
        if bool::from(k.ct_eq(d)) {
            found = Some(i);
        }
    }
    found
}

/// The session cookie's (still signed) value among the request's `Cookie`
/// headers, parsed by the `cookie` crate. Pairs that do not parse, such as
/// another site's malformed cookie, are skipped rather than refusing the
/// request.
fn session_cookie(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == SESSION_COOKIE)
        .map(|c| c.value().to_string())
}

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Signed, expiring session cookies. The value is
/// `<expires>.<key>.<nonce>`, the key `r<index>` for a read key or
/// `o<index>` for an operator key, signed by the `cookie` crate's signed
/// jar (HMAC-SHA256 over the cookie's name and value) under a key made at
/// start-up and never stored, so a restart ends every session.
///
/// A cookie is honoured only while its nonce is among the live sessions,
/// so signing out ends the session on the server and a copied cookie dies
/// with it. The set is bounded: past [`MAX_SESSIONS`], expired sessions
/// are dropped and then the one that expires soonest, whose dashboard
/// must sign in again. Failing that way is safe, where a bounded list of
/// revoked tokens would, once full, have to forget a sign-out.
struct Sessions {
    /// Random per process, never written anywhere.
    key: cookie::Key,
    ttl: Duration,
    /// Live sessions: nonce → expiry (Unix seconds).
    live: Mutex<HashMap<u128, i64>>,
}

/// Live dashboard sessions kept at most; far more than a gate has screens.
const MAX_SESSIONS: usize = 10_000;

impl Sessions {
    fn new(ttl: Duration) -> Self {
        Self {
            key: cookie::Key::generate(),
            ttl,
            live: Mutex::new(HashMap::new()),
        }
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<u128, i64>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `who`: the signed cookie value.
    fn issue(&self, who: Principal, now: i64) -> String {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let nonce = u128::from_be_bytes(bytes);
        let expires = now + self.ttl.as_secs() as i64;
        {
            let mut live = self.live();
            if live.len() >= MAX_SESSIONS {
                live.retain(|_, &mut e| e > now);
            }
            if live.len() >= MAX_SESSIONS {
                let soonest = live.iter().min_by_key(|(_, &e)| e).map(|(n, _)| *n);
                if let Some(n) = soonest {
                    live.remove(&n);
                }
            }
            live.insert(nonce, expires);
        }
        let key = match who {
            Principal::Operator(i) => format!("o{i}"),
            Principal::Read(i) | Principal::Ingest(i) => format!("r{i}"),
        };
        let mut jar = CookieJar::new();
        jar.signed_mut(&self.key).add(Cookie::new(
            SESSION_COOKIE,
            format!("{expires}.{key}.{nonce:032x}"),
        ));
        jar.get(SESSION_COOKIE)
            .map(|c| c.value().to_string())
            .expect("a cookie just added to the jar is in it")
    }

    /// The read or operator key of a valid, unexpired, live session.
    fn verify(&self, token: &str, now: i64) -> Option<Principal> {
        let (expires, who, nonce) = self.open(token)?;
        let live = self.live().get(&nonce).is_some_and(|&e| e > now);
        (live && expires > now).then_some(who)
    }

    /// Ends the session of `token`, if it is one of ours.
    fn revoke(&self, token: &str) {
        if let Some((_, _, nonce)) = self.open(token) {
            self.live().remove(&nonce);
        }
    }

    /// The expiry, key and nonce of a cookie value whose signature is right.
    fn open(&self, token: &str) -> Option<(i64, Principal, u128)> {
        if token.len() > 256 {
            return None;
        }
        let cookie = CookieJar::new()
            .signed(&self.key)
            .verify(Cookie::new(SESSION_COOKIE, token.to_string()))?;
        let mut parts = cookie.value().split('.');
        let expires: i64 = parts.next()?.parse().ok()?;
        let key = parts.next()?;
        let who = match (key.get(..1)?, key.get(1..)?.parse().ok()?) {
            ("r", i) => Principal::Read(i),
            ("o", i) => Principal::Operator(i),
            _ => return None,
        };
        let nonce = u128::from_str_radix(parts.next()?, 16).ok()?;
        Some((expires, who, nonce))
    }
}

/// The client's address as the socket saw it.
fn peer_ip(req: &HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

/// The per-key limiter. Keys are few (as many as are configured), so
/// governor's own keyed store holds them all and never needs pruning.
type KeyLimiter = RateLimiter<Principal, HashMapStateStore<Principal>, DefaultClock>;

/// The per-key quota: `burst` at once, refilled at `rate_per_sec`. `None`
/// (no limit) when the rate is 0, or so high that one request's share of
/// a second rounds to no time at all.
fn key_quota(rate_per_sec: f64, burst: u32) -> Option<Quota> {
    if !(rate_per_sec > 0.0 && rate_per_sec.is_finite()) {
        return None;
    }
    let burst = NonZeroU32::new(burst.max(1))?;
    Quota::with_period(Duration::from_secs_f64(1.0 / rate_per_sec)).map(|q| q.allow_burst(burst))
}

/// Who a wrong key is counted against: the client's address, an IPv6
/// client by its /64 (one subscriber's network, in which a host picks
/// addresses at will), and an IPv4 client behind an IPv4-mapped IPv6
/// socket address by its IPv4 address.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// Client addresses whose wrong keys are tracked at most. Each costs a few
/// dozen bytes.
const MAX_ADDRESSES: usize = 10_000;

/// Wrong keys per client address: governor's keyed GCRA limiter over
/// [`AddressStore`].
///
/// Governor has no way to ask whether a cell would pass without taking it,
/// and the check before a key is looked at must not spend anything (a
/// right key spends nothing). So the store is keyed by a [`Probe`] whose
/// `look_only` flag makes the store compute governor's decision and keep
/// the state as it was.
struct FailureLimiter<C: Clock = DefaultClock> {
    limiter: RateLimiter<Probe, AddressStore, C, NoOpMiddleware<C::Instant>>,
    /// The same map the limiter updates, for the cap.
    store: AddressStore,
}

impl<C: Clock> FailureLimiter<C> {
    /// `burst` wrong keys at once, refilled at `per_minute`; `None` (off)
    /// when `per_minute` is 0.
    fn new(per_minute: u32, burst: u32, clock: C) -> Option<Self> {
        let quota = Quota::per_minute(NonZeroU32::new(per_minute)?)
            .allow_burst(NonZeroU32::new(burst.max(1))?);
        let store = AddressStore::default();
        Some(Self {
            limiter: RateLimiter::new(quota, store.clone(), clock),
            store,
        })
    }

    /// Whether `ip` may present a key, without spending anything; if not,
    /// how long until it may.
    fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.decide(Probe {
            addr: client_key(ip),
            look_only: true,
        })
    }

    /// Spends one of `ip`'s wrong keys.
    ///
    /// The map is capped at [`MAX_ADDRESSES`]. When it is full and `ip` is
    /// new, governor first drops every address whose allowance has fully
    /// refilled (it says nothing a new entry would not); if that frees
    /// nothing, the address nearest a full allowance is forgotten. Nobody
    /// else's allowance is touched, so a flood from many addresses cannot
    /// reset an address that has spent its own: it would be forgotten only
    /// after every flooding address had spent more than it has.
    fn spend(&self, ip: IpAddr) -> Result<(), Duration> {
        let addr = client_key(ip);
        if self.store.len() >= MAX_ADDRESSES && !self.store.contains(&addr) {
            self.limiter.retain_recent();
            self.store.forget_nearest_refilled(MAX_ADDRESSES);
        }
        self.decide(Probe {
            addr,
            look_only: false,
        })
    }

    fn decide(&self, probe: Probe) -> Result<(), Duration> {
        self.limiter
            .check_key(&probe)
            .map_err(|not_until: NotUntil<C::Instant>| {
                not_until.wait_time_from(self.limiter.clock().now())
            })
    }
}

/// A client address to decide for, and whether the decision may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Probe {
    addr: IpAddr,
    /// Decide without changing the address's state.
    look_only: bool,
}

/// Governor's state per client address (its theoretical arrival time), in
/// a map shared between the limiter and [`FailureLimiter`]'s cap.
#[derive(Debug, Clone, Default)]
struct AddressStore(Arc<Mutex<HashMap<IpAddr, Nanos>>>);

impl AddressStore {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Nanos>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn contains(&self, addr: &IpAddr) -> bool {
        self.map().contains_key(addr)
    }

    /// Makes room for one more address below `cap` by forgetting the one
    /// with the earliest arrival time: the one closest to a full allowance.
    fn forget_nearest_refilled(&self, cap: usize) {
        let mut map = self.map();
        while map.len() >= cap {
            let Some(nearest) = map.iter().min_by_key(|(_, &tat)| tat).map(|(a, _)| *a) else {
                break;
            };
            map.remove(&nearest);
        }
    }
}

impl StateStore for AddressStore {
    type Key = Probe;

    fn measure_and_replace<T, F, E>(&self, key: &Probe, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // One lock around reading, deciding and writing, so two workers
        // cannot both spend the last allowance.
        let mut map = self.map();
        let (decision, next) = f(map.get(&key.addr).copied())?;
        if !key.look_only {
            map.insert(key.addr, next);
        }
        Ok(decision)
    }
}

impl ShrinkableKeyedStateStore<Probe> for AddressStore {
    fn retain_recent(&self, drop_below: Nanos) {
        // As governor's own stores do: an arrival time at or before
        // `drop_below` is indistinguishable from a fresh address.
        self.map().retain(|_, tat| *tat > drop_below);
    }

    fn len(&self) -> usize {
        self.map().len()
    }

    fn is_empty(&self) -> bool {
        self.map().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;
    use governor::clock::FakeRelativeClock;

    fn security() -> Security {
        Security::new(SecurityConfig {
            ingest_keys: &[SecretString::from("ingest-key-1")],
            read_keys: &[
                SecretString::from("read-key-1"),
                SecretString::from("read-key-2"),
            ],
            operator_keys: &[
                SecretString::from("kim:operator-key-1"),
                SecretString::from("operator-key-2"),
            ],
            session_ttl: Duration::from_secs(60),
            limits: &LimitsConfig::default(),
            server: &ServerConfig::default(),
        })
    }

    #[test]
    fn paths_are_classified_deny_by_default() {
        for (method, path, access) in [
            (Method::POST, "/api/v1/logs/x", Access::Correct),
            (Method::PATCH, "/api/v1/logs/x", Access::Correct),
            (
                Method::POST,
                "/api/v1/exceptions/x/resolve",
                Access::Correct,
            ),
            (Method::DELETE, "/", Access::Correct),
            (Method::HEAD, "/api/v1/logs", Access::Read),
            (Method::POST, "/api/v1/recognitions", Access::Ingest),
            (Method::DELETE, "/api/v1/session", Access::Open),
        ] {
            assert_eq!(classify(&method, path), access, "{method} {path}");
        }
        for (path, access) in [
            ("/healthz", Access::Open),
            ("/metrics", Access::Open),
            ("/api/v1/openapi.json", Access::Open),
            ("/api/v1/session", Access::Open),
            ("/login", Access::Open),
            ("/api/v1/recognitions", Access::Ingest),
            ("/api/v1/logs", Access::Read),
            ("/api/v1/logs/export", Access::Read),
            ("/ws/logs", Access::Read),
            ("/", Access::Read),
            ("/assets/app.js", Access::Read),
            ("/healthz/", Access::Read),
            ("//api/v1/recognitions", Access::Read),
        ] {
            assert_eq!(classify(&Method::GET, path), access, "{path}");
        }
    }

    #[test]
    fn keys_open_only_their_own_class() {
        let s = security();
        let bearer = |k: &str| {
            TestRequest::default()
                .insert_header((header::AUTHORIZATION, format!("Bearer {k}")))
                .to_http_request()
        };
        assert_eq!(
            s.authenticate(&bearer("ingest-key-1"), Access::Ingest)
                .unwrap(),
            Some(Principal::Ingest(0))
        );
        assert_eq!(
            s.authenticate(&bearer("read-key-2"), Access::Read).unwrap(),
            Some(Principal::Read(1))
        );
        assert!(s
            .authenticate(&bearer("read-key-1"), Access::Ingest)
            .is_err());
        assert!(s
            .authenticate(&bearer("ingest-key-1"), Access::Read)
            .is_err());
        assert!(s.authenticate(&bearer("read-key-"), Access::Read).is_err());
        let none = TestRequest::default().to_http_request();
        assert!(s.authenticate(&none, Access::Read).is_err());
        assert_eq!(s.authenticate(&none, Access::Open).unwrap(), None);
    }

    #[test]
    fn operators_read_and_correct_and_nobody_else_corrects() {
        let s = security();
        let bearer = |k: &str| {
            TestRequest::default()
                .insert_header((header::AUTHORIZATION, format!("Bearer {k}")))
                .to_http_request()
        };
        // Named as configured; the client sends only the key.
        let kim = s
            .authenticate(&bearer("operator-key-1"), Access::Correct)
            .unwrap();
        assert_eq!(kim, Some(Principal::Operator(0)));
        assert_eq!(s.corrector(kim).unwrap(), "kim");
        assert!(s
            .authenticate(&bearer("kim:operator-key-1"), Access::Correct)
            .is_err());
        // A bare key is named by its fingerprint, stably.
        let bare = s
            .authenticate(&bearer("operator-key-2"), Access::Read)
            .unwrap();
        let name = s.corrector(bare).unwrap();
        assert!(name.starts_with("operator:") && name.len() == 17, "{name}");
        assert_eq!(name, operator_key("operator-key-2").0);
        // Read and ingest keys may not correct: 403, not 401.
        for key in ["read-key-1", "ingest-key-1"] {
            assert!(matches!(
                s.authenticate(&bearer(key), Access::Correct),
                Err(ApiError::Forbidden(_))
            ));
        }
        assert!(matches!(
            s.authenticate(&bearer("nobody"), Access::Correct),
            Err(ApiError::Unauthorized(_))
        ));
        assert!(s.corrector(Some(Principal::Read(0))).is_err());
        assert!(s.corrector(None).is_err(), "keys are configured");
        assert_eq!(Security::open().corrector(None).unwrap(), "local");
        // Operator keys do not ingest.
        assert!(s
            .authenticate(&bearer("operator-key-1"), Access::Ingest)
            .is_err());
        // Names that are not names leave the whole entry a key.
        assert_eq!(operator_key("a b:c").0, operator_key("a b:c").0);
        assert!(operator_key("a b:c").0.starts_with("operator:"));
        assert!(operator_key(":key").0.starts_with("operator:"));
        assert_eq!(operator_key("lee.park-2:k").0, "lee.park-2");
    }

    #[test]
    fn session_tokens_verify_expire_and_resist_tampering() {
        let s = Sessions::new(Duration::from_secs(60));
        let t = s.issue(Principal::Read(1), 1_000);
        assert_eq!(s.verify(&t, 1_000), Some(Principal::Read(1)));
        assert_eq!(s.verify(&t, 1_060), None, "expired");
        let forged = t.replacen("1060.r1.", "9999999999.r1.", 1);
        assert_ne!(forged, t);
        assert_eq!(s.verify(&forged, 1_000), None);
        let promoted = t.replacen(".r1.", ".o1.", 1);
        assert_ne!(promoted, t);
        assert_eq!(
            s.verify(&promoted, 1_000),
            None,
            "a read session is no operator's"
        );
        let o = s.issue(Principal::Operator(0), 1_000);
        assert_eq!(s.verify(&o, 1_000), Some(Principal::Operator(0)));
        let other = Sessions::new(Duration::from_secs(60));
        assert_eq!(other.verify(&t, 1_000), None, "another process's token");
        assert_eq!(s.verify("garbage", 1_000), None);
    }

    #[test]
    fn a_revoked_token_is_refused_and_the_live_set_is_bounded() {
        let s = Sessions::new(Duration::from_secs(60));
        let a = s.issue(Principal::Read(0), 1_000);
        let b = s.issue(Principal::Read(0), 1_000);
        s.revoke(&a);
        assert_eq!(s.verify(&a, 1_000), None, "signed out");
        assert_eq!(
            s.verify(&b, 1_000),
            Some(Principal::Read(0)),
            "another session lives on"
        );
        s.revoke("garbage");

        let first = s.issue(Principal::Read(0), 2_000);
        for i in 0..MAX_SESSIONS {
            s.issue(Principal::Read(0), 2_001 + i as i64);
        }
        assert!(s.live().len() <= MAX_SESSIONS);
        assert_eq!(s.verify(&first, 2_000), None, "the oldest made room");
    }

    #[test]
    fn sign_in_is_refused_from_another_site() {
        let s = security();
        let req = |origin: Option<&str>, referer: Option<&str>| {
            let mut r = TestRequest::default().insert_header((header::HOST, "gate.example:8080"));
            if let Some(o) = origin {
                r = r.insert_header((header::ORIGIN, o));
            }
            if let Some(o) = referer {
                r = r.insert_header((header::REFERER, o));
            }
            r.to_http_request()
        };
        for (origin, referer) in [
            (None, None),
            (Some("http://gate.example:8080"), None),
            (None, Some("http://gate.example:8080/login")),
            (
                Some("http://gate.example:8080"),
                Some("https://evil.example/"),
            ),
        ] {
            assert!(
                s.check_sign_in_source(&req(origin, referer)).is_ok(),
                "{origin:?} {referer:?}"
            );
        }
        for (origin, referer) in [
            (Some("https://evil.example"), None),
            (Some("null"), None),
            (
                Some("https://evil.example"),
                Some("http://gate.example:8080/"),
            ),
            (None, Some("https://evil.example/login")),
            (None, Some("http://gate.example:8080.evil.example/")),
            (None, Some("/login")),
        ] {
            assert!(
                matches!(
                    s.check_sign_in_source(&req(origin, referer)),
                    Err(ApiError::Forbidden(_))
                ),
                "{origin:?} {referer:?}"
            );
        }
    }

    #[test]
    fn cookies_are_refused_from_foreign_origins() {
        let s = security();
        let token = s.issue_session(Principal::Read(0)).0;
        let req = |origin: Option<&str>| {
            let mut r = TestRequest::default()
                .insert_header((header::HOST, "gate.example:8080"))
                .insert_header((
                    header::COOKIE,
                    format!("theme=dark; {SESSION_COOKIE}={token}"),
                ));
            if let Some(o) = origin {
                r = r.insert_header((header::ORIGIN, o));
            }
            r.to_http_request()
        };
        assert!(s.authenticate(&req(None), Access::Read).is_ok());
        assert!(s
            .authenticate(&req(Some("http://gate.example:8080")), Access::Read)
            .is_ok());
        assert!(s
            .authenticate(&req(Some("https://evil.example")), Access::Read)
            .is_err());
        assert!(
            s.authenticate(&req(None), Access::Ingest).is_err(),
            "a cookie never ingests"
        );
    }

    fn limited(per_minute: u32, burst: u32) -> Security {
        Security::new(SecurityConfig {
            ingest_keys: &[],
            read_keys: &[SecretString::from("read-key-1")],
            operator_keys: &[],
            session_ttl: Duration::from_secs(60),
            limits: &LimitsConfig {
                auth_failures_per_minute: per_minute,
                auth_failure_burst: burst,
                ..LimitsConfig::default()
            },
            server: &ServerConfig::default(),
        })
    }

    fn from(ip: &str) -> HttpRequest {
        TestRequest::default()
            .peer_addr(std::net::SocketAddr::new(ip.parse().unwrap(), 40_000))
            .to_http_request()
    }

    #[test]
    fn an_address_flood_cannot_reset_another_addresss_allowance() {
        // One wrong key a minute: nothing refills while the test runs.
        let s = limited(1, 3);
        let victim = from("192.0.2.7");
        for _ in 0..3 {
            assert!(matches!(
                s.sign_in(&victim, "guess"),
                Err(ApiError::Unauthorized(_))
            ));
        }
        assert!(matches!(
            s.sign_in(&victim, "read-key-1"),
            Err(ApiError::RateLimited { .. })
        ));
        // Ten thousand other addresses send one wrong key each, as many as
        // the limiter tracks.
        for n in 0..10_000u32 {
            let ip = IpAddr::from((0x0a00_0000 + n).to_be_bytes());
            let req = TestRequest::default()
                .peer_addr(std::net::SocketAddr::new(ip, 40_000))
                .to_http_request();
            assert!(s.sign_in(&req, "guess").is_err());
        }
        assert!(
            matches!(
                s.sign_in(&victim, "read-key-1"),
                Err(ApiError::RateLimited { .. })
            ),
            "the flood gave the spent address its allowance back"
        );
        // The flood's addresses still have their own allowance left, and a
        // right key from anywhere else still signs in.
        assert!(s.sign_in(&from("10.0.0.1"), "read-key-1").is_ok());
        assert!(s.sign_in(&from("198.51.100.1"), "read-key-1").is_ok());
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let s = limited(1, 2);
        for ip in ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"] {
            assert!(matches!(
                s.sign_in(&from(ip), "guess"),
                Err(ApiError::Unauthorized(_))
            ));
        }
        // Any address in that /64 has spent the allowance, even with the
        // right key; the next /64 has not.
        assert!(matches!(
            s.sign_in(&from("2001:db8:1:2:abcd::9"), "read-key-1"),
            Err(ApiError::RateLimited { .. })
        ));
        assert!(s.sign_in(&from("2001:db8:1:3::1"), "read-key-1").is_ok());
        // An IPv4 client seen through an IPv4-mapped address counts as
        // itself.
        assert_eq!(
            client_key("::ffff:192.0.2.1".parse().unwrap()),
            "192.0.2.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            client_key("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn key_limits_refill_at_the_rate() {
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::<Principal, HashMapStateStore<Principal>, _, _>::hashmap_with_clock(
            key_quota(2.0, 3).unwrap(),
            clock.clone(),
        );
        let who = Principal::Read(0);
        for _ in 0..3 {
            l.check_key(&who).unwrap();
        }
        let wait = l.check_key(&who).unwrap_err().wait_time_from(clock.now());
        assert_eq!(wait, Duration::from_millis(500));
        assert!(
            l.check_key(&Principal::Ingest(0)).is_ok(),
            "limits are per key"
        );
        clock.advance(Duration::from_millis(500));
        l.check_key(&who).unwrap();
        assert!(l.check_key(&who).is_err());
        assert!(key_quota(0.0, 3).is_none(), "0 turns the limit off");
    }

    #[test]
    fn checking_spends_nothing_and_the_address_map_is_capped() {
        let clock = FakeRelativeClock::default();
        let l = FailureLimiter::new(60, 2, clock.clone()).unwrap();
        let ip = |n: u32| IpAddr::from(n.to_be_bytes());
        for _ in 0..10 {
            l.check(ip(1)).unwrap();
        }
        assert!(l.store.is_empty(), "a look stores nothing");
        l.spend(ip(1)).unwrap();
        l.spend(ip(1)).unwrap();
        assert_eq!(l.check(ip(1)).unwrap_err(), Duration::from_secs(1));
        // Fill the map with addresses that each failed once.
        for n in 2..=MAX_ADDRESSES as u32 {
            l.spend(ip(n)).unwrap();
        }
        assert_eq!(l.store.len(), MAX_ADDRESSES);
        // A new address makes room by forgetting one that spent less than
        // address 1, never address 1.
        l.spend(ip(u32::MAX)).unwrap();
        assert_eq!(l.store.len(), MAX_ADDRESSES);
        assert!(l.check(ip(1)).is_err());
        // Ten seconds on, every allowance has refilled; the next new
        // address lets governor drop them all.
        clock.advance(Duration::from_secs(10));
        l.spend(ip(u32::MAX - 1)).unwrap();
        assert_eq!(l.store.len(), 1);
        l.check(ip(1)).unwrap();
    }
}
