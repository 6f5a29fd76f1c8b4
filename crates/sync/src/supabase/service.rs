//! Sends batches over HTTP and classifies the answers.

use gatelog_core::Passage;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use reqwest::StatusCode;
use secrecy::ExposeSecret;

use super::SupabaseConfig;
use crate::error::Redactor;
use crate::row::CentralRow;
use crate::{SyncConfig, SyncError};

/// How much of an error body is read. PostgREST's error objects are a few
/// hundred bytes; a body beyond this is not read further (the connection
/// is dropped instead), so a target cannot make sync hold megabytes.
const ERROR_BODY_READ_LIMIT: usize = 64 * 1024;

pub(crate) struct SupabaseService {
    /// Carries the timeouts and the key headers (marked sensitive, so they
    /// never show in `Debug` output).
    client: reqwest::Client,
    endpoint: String,
    timeout_ms: u64,
    /// Applied to every error text before it leaves this module.
    redactor: Redactor,
}

impl SupabaseService {
    pub(crate) fn new(config: &SupabaseConfig, sync: &SyncConfig) -> Result<Self, SyncError> {
        config.validate()?;
        let key = config.key.expose_secret();
        let mut apikey = HeaderValue::from_str(key).map_err(|_| {
            SyncError::Config("supabase.key has characters a header cannot carry".into())
        })?;
        apikey.set_sensitive(true);
        let mut bearer = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|_| {
            SyncError::Config("supabase.key has characters a header cannot carry".into())
        })?;
        bearer.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert("apikey", apikey);
        headers.insert(AUTHORIZATION, bearer);
        headers.insert(
            "Prefer",
            HeaderValue::from_static("resolution=merge-duplicates,return=minimal"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(sync.request_timeout())
            .connect_timeout(sync.request_timeout())
            .pool_idle_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| SyncError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            endpoint: config.endpoint(),
            timeout_ms: sync.request_timeout_ms,
            redactor: crate::Target::Supabase(config.clone()).redactor(),
        })
    }

    /// Upserts `rows`; Ok only when the server confirmed them with a 2xx.
    pub(crate) async fn send(&self, rows: &[Passage]) -> Result<(), SyncError> {
        let body: Vec<CentralRow<'_>> = rows.iter().map(CentralRow::from).collect();
        let body = serde_json::to_vec(&body).map_err(|e| SyncError::Rejected(e.to_string()))?;
        let response = self
            .client
            .post(&self.endpoint)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = match read_prefix(response, ERROR_BODY_READ_LIMIT).await {
            Ok(b) => b,
            Err(e) => return Err(self.transport(e)),
        };
        Err(classify(
            status,
            &String::from_utf8_lossy(&body),
            &self.redactor,
        ))
    }

    fn transport(&self, e: reqwest::Error) -> SyncError {
        if e.is_timeout() {
            SyncError::Timeout(self.timeout_ms)
        } else {
            // Without the URL: it is known from config, and errors shown to
            // operators should not depend on what it contains.
            SyncError::Unreachable(self.redactor.clean(&error_chain(&e.without_url())))
        }
    }
}

/// The first `limit` bytes of a response body (all of it when shorter).
async fn read_prefix(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while body.len() < limit {
        match response.chunk().await? {
            Some(chunk) => {
                let room = limit - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            None => break,
        }
    }
    Ok(body)
}

/// The error and its sources, which is where reqwest keeps the useful part
/// ("connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Classifies a non-2xx answer.
///
/// - 408, 429 and 5xx are transient.
/// - 401, 403, 404, 405, 406 and 415, and any PostgREST `PGRST…` code,
///   concern the request as a whole (key, table, columns): misconfigured.
/// - A PostgreSQL error outside the data (22) and constraint (23) classes,
///   such as 42P10 (no unique key matches `on_conflict`, as when a site
///   that upserts on `(id, captured_at)` meets a central table not yet
///   partitioned) or 42501 (a privilege), concerns the request as a
///   whole: misconfigured, as the direct target classifies it. Splitting
///   the batch would only dead-letter every row.
/// - Any other 4xx (a PostgreSQL data or constraint error, 409, 413) is
///   about the rows: rejected, so the batch is split.
///
/// The text is redacted and cut to [`crate::error::ERROR_TEXT_LIMIT`]
/// here, JSON `message` included, before any caller can store, log or
/// publish it.
pub(crate) fn classify(status: StatusCode, body: &str, redactor: &Redactor) -> SyncError {
    let json = serde_json::from_str::<serde_json::Value>(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|v| v.get(name))
            .and_then(|c| c.as_str())
    };
    let code = field("code").map(|c| redactor.clean(c));
    let message = field("message").unwrap_or(body);
    let text = match &code {
        Some(c) => format!("HTTP {} ({c}): {message}", status.as_u16()),
        None => format!("HTTP {}: {message}", status.as_u16()),
    };
    let text = redactor.clean(&text);
    let n = status.as_u16();
    if n == 408 || n == 429 || status.is_server_error() {
        return SyncError::Unavailable(text);
    }
    let about_request = |c: &str| {
        c.starts_with("PGRST")
            || (c.len() == 5 && c.is_ascii() && !c.starts_with("22") && !c.starts_with("23"))
    };
    if matches!(n, 401 | 403 | 404 | 405 | 406 | 415) || code.as_deref().is_some_and(about_request)
    {
        return SyncError::Refused(text);
    }
    if status.is_client_error() {
        return SyncError::Rejected(text);
    }
    // 1xx/3xx: nothing PostgREST sends for this request; try again later.
    SyncError::Unavailable(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorClass;

    #[test]
    fn answers_are_classified() {
        let c = |s: u16, b: &str| {
            classify(StatusCode::from_u16(s).unwrap(), b, &Redactor::default()).class()
        };
        assert_eq!(c(503, ""), ErrorClass::Transient);
        assert_eq!(c(429, ""), ErrorClass::Transient);
        assert_eq!(
            c(401, r#"{"code":"PGRST301","message":"JWT"}"#),
            ErrorClass::Misconfigured
        );
        assert_eq!(
            c(400, r#"{"code":"PGRST204","message":"column"}"#),
            ErrorClass::Misconfigured
        );
        assert_eq!(
            c(400, r#"{"code":"23514","message":"check"}"#),
            ErrorClass::Rejected
        );
        assert_eq!(c(409, r#"{"code":"23505"}"#), ErrorClass::Rejected);
        assert_eq!(
            c(400, r#"{"code":"22007","message":"bad timestamp"}"#),
            ErrorClass::Rejected
        );
        assert_eq!(
            c(400, r#"{"code":"42P10","message":"no unique constraint"}"#),
            ErrorClass::Misconfigured
        );
    }

    #[test]
    fn a_huge_json_message_is_cut_and_redacted() {
        let redactor = Redactor::new(["the-service-key".to_string()]);
        let body = serde_json::json!({
            "code": "PGRST301",
            "message": format!("bad key the-service-key {}", "x".repeat(1 << 20)),
        })
        .to_string();
        let e = classify(StatusCode::UNAUTHORIZED, &body, &redactor);
        let text = e.to_string();
        assert_eq!(e.class(), ErrorClass::Misconfigured);
        assert!(text.len() < 600, "{} bytes", text.len());
        assert!(text.contains("HTTP 401 (PGRST301): bad key [redacted] xxx"));
        assert!(!text.contains("the-service-key"));
    }
}
