//! The API's one error type and its single JSON shape.
//!
//! ```json
//! {"status":"error","code":"validation_failed","message":"…","field":"owner"}
//! ```
//!
//! `code` is stable and machine-readable; `message` is a sentence for
//! people; `field` names the input at fault when there is one. Internal
//! errors are logged with their detail and answered with a generic message.

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use gatelog_core::FieldError;
use gatelog_local_store::StoreError;
use serde::Serialize;

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECS: &str = "1";
/// Seconds a WebSocket client over a connection cap should wait: slots
/// free as other clients leave, which is slower than a store recovering.
const WS_RETRY_AFTER_SECS: &str = "10";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// A query parameter is missing, unknown or has a bad value.
    #[error("{message}")]
    BadParameter { param: String, message: String },
    /// A WebSocket handshake that lacks or garbles `header`.
    #[error("{message}")]
    BadHandshake {
        header: &'static str,
        message: &'static str,
    },
    /// A read failed validation.
    #[error("{0}")]
    Validation(FieldError),
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// One read's JSON is larger than what a sighting keeps as `raw`.
    #[error("a recognition is larger than the limit of {limit} bytes of JSON kept per read")]
    ReadTooLarge { limit: usize },
    /// The client's `id` was used before for a read with other content.
    #[error("id was already used for a different read (stored as {earlier}); a retry must send the same content, and a new read needs a new id")]
    IdConflict { earlier: uuid::Uuid },
    #[error("{0}")]
    NotFound(String),
    /// A queued read an operator resolved before; the message says when,
    /// by whom and into which passage.
    #[error("{0}")]
    AlreadyResolved(String),
    /// The route exists but not for this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    /// No key, a wrong key, or a key of the wrong kind. The message never
    /// repeats what the client sent.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// Credentials are not the question: the request itself is not
    /// allowed, such as a sign-in posted from another site's page.
    #[error("{0}")]
    Forbidden(&'static str),
    /// The key's token bucket is empty.
    #[error("too many requests; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The client took longer than `server.request_timeout_secs`.
    #[error("the request took too long and was abandoned")]
    Timeout,
    /// The store cannot take writes now.
    #[error("the local store is unavailable; retry shortly")]
    Unavailable,
    /// A WebSocket connection over one of the caps; `limit` is the
    /// configuration key and `scope` who holds the connections.
    #[error(
        "{scope} already holds {max} live WebSocket connections, the most that {limit} allows; \
         close one or retry later"
    )]
    TooManyConnections {
        limit: &'static str,
        max: usize,
        scope: &'static str,
    },
    /// A write to the head-office view, which only reads the central
    /// database; the message names where the write belongs.
    #[error("{0}")]
    ReadOnly(&'static str),
    /// Anything else; the detail goes to the log only.
    #[error("internal error")]
    Internal(String),
}

#[derive(Serialize)]
struct Body<'a> {
    status: &'static str,
    code: &'static str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl ApiError {
    pub fn bad_param(param: &str, message: impl Into<String>) -> Self {
        Self::BadParameter {
            param: param.to_string(),
            message: message.into(),
        }
    }

    /// The stable error code clients can match on.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::MalformedJson(_) => "malformed_json",
            ApiError::BadParameter { .. } => "bad_parameter",
            ApiError::BadHandshake { .. } => "bad_handshake",
            ApiError::Validation(_) => "validation_failed",
            ApiError::TooLarge { .. } => "body_too_large",
            ApiError::ReadTooLarge { .. } => "read_too_large",
            ApiError::IdConflict { .. } => "id_conflict",
            ApiError::NotFound(_) => "not_found",
            ApiError::AlreadyResolved(_) => "already_resolved",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::Unauthorized(_) => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Timeout => "request_timeout",
            ApiError::Unavailable => "store_unavailable",
            ApiError::TooManyConnections { .. } => "too_many_connections",
            ApiError::ReadOnly(_) => "read_only",
            ApiError::Internal(_) => "internal",
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::BadParameter { param, .. } => Some(param),
            ApiError::BadHandshake { header, .. } => Some(header),
            ApiError::Validation(e) => Some(e.field.as_str()),
            ApiError::IdConflict { .. } => Some("id"),
            _ => None,
        }
    }

    fn message(&self) -> String {
        match self {
            ApiError::Validation(e) => e.message.clone(),
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "store unavailable");
            ApiError::Unavailable
        } else {
            ApiError::Internal(e.to_string())
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::MalformedJson(_)
            | ApiError::BadParameter { .. }
            | ApiError::BadHandshake { .. } => StatusCode::BAD_REQUEST,
            ApiError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge { .. } | ApiError::ReadTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::IdConflict { .. } | ApiError::AlreadyResolved(_) => StatusCode::CONFLICT,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) | ApiError::ReadOnly(_) => StatusCode::FORBIDDEN,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Timeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable | ApiError::TooManyConnections { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let ApiError::Internal(detail) = self {
            tracing::error!(error = %detail, "internal error");
        }
        let mut res = HttpResponse::build(self.status_code());
        match self {
            ApiError::Unavailable => {
                res.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS));
            }
            ApiError::TooManyConnections { .. } => {
                res.insert_header((header::RETRY_AFTER, WS_RETRY_AFTER_SECS));
            }
            ApiError::RateLimited { retry_after_secs } => {
                res.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            ApiError::Unauthorized(_) => {
                res.insert_header((header::WWW_AUTHENTICATE, "Bearer realm=\"gatelog\""));
            }
            _ => {}
        }
        res.json(Body {
            status: "error",
            code: self.code(),
            message: self.message(),
            field: self.field(),
        })
    }
}

/// The JSON of one item's error inside a batch result: the same shape as a
/// whole response's error.
pub fn item_error(e: &ApiError) -> serde_json::Value {
    serde_json::to_value(Body {
        status: "error",
        code: e.code(),
        message: e.message(),
        field: e.field(),
    })
    .unwrap_or_default()
}

/// Gives the empty 405 that a route answers for a method it does not
/// take the API's error shape. Used with actix-web's `ErrorHandlers`.
pub fn method_not_allowed<B>(
    res: actix_web::dev::ServiceResponse<B>,
) -> actix_web::Result<actix_web::middleware::ErrorHandlerResponse<B>> {
    // The route's `Allow` header (which methods it takes) is kept.
    let allow = res.headers().get(header::ALLOW).cloned();
    let (req, _) = res.into_parts();
    let error = ApiError::MethodNotAllowed {
        method: req.method().to_string(),
        // The route's pattern, never the raw path, so nothing the client
        // sent is echoed.
        path: req.match_pattern().unwrap_or_else(|| "this route".into()),
    };
    let mut response = error.error_response();
    if let Some(allow) = allow {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    let res = actix_web::dev::ServiceResponse::new(req, response);
    Ok(actix_web::middleware::ErrorHandlerResponse::Response(
        res.map_into_right_body(),
    ))
}
