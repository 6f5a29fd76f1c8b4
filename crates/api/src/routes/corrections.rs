//! `PATCH /api/v1/logs/{id}`: an operator corrects a passage's number.
//!
//! The body is `{"container": "CSQU3054383", "reason": "…"}`: a whole
//! valid ISO 6346 number (422 naming `container` otherwise) and, if
//! wanted, one line on why (at most 500 bytes; 422 naming `reason`). An
//! unknown field is a 400 naming it. It needs an operator key (see
//! [`crate::auth`]).
//!
//! The change goes through the writer like every write: the passage takes
//! the number, records a correction (`rule: "operator"`, `by`: the key's
//! name, `reason`), has its version bumped so sync sends it, and `/ws/logs`
//! pushes `corrected`. Later reads cannot move a number set by hand. A
//! passage that already holds the number is answered as it is, with
//! `"status": "unchanged"`, and nothing is written.

use actix_web::{web, HttpMessage, HttpRequest, HttpResponse};
use gatelog_core::operator::{parse_reason, OperatorNumber};
use gatelog_core::{Field, FieldError};
use gatelog_local_store::CorrectOutcome;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::auth::Principal;
use crate::openapi::schema;
use crate::{ApiError, AppState};

/// The largest correction body read: a number and one line of reason.
const MAX_BODY: usize = 4096;

/// `PATCH /api/v1/logs/{id}`.
#[utoipa::path(
    patch,
    path = "/api/v1/logs/{id}",
    tag = "passages",
    params(("id" = Uuid, Path, description = "The passage's id.")),
    request_body(content = schema::CorrectionBody, content_type = "application/json"),
    responses(
        (status = 200, description = "The number was corrected (`corrected`), or the passage \
            held it already (`unchanged`).", body = schema::CorrectedOrUnchanged),
        (status = 400, description = "The id is not a UUID (`bad_parameter`), the body has \
            another field (`bad_parameter`, naming it) or is not JSON (`malformed_json`).",
            body = schema::Error),
        (status = 404, description = "No passage has this id (`not_found`).", body = schema::Error),
        (status = 413, description = "The body is larger than 4,096 bytes (`body_too_large`).",
            body = schema::Error),
        (status = 422, description = "The body is not an object, the number is not a valid \
            ISO 6346 number, or the reason is too long (`validation_failed`, naming the field).",
            body = schema::Error),
        (status = 503, description = "The local store is unavailable (`store_unavailable`); \
            `Retry-After` says when to retry.", body = schema::Error),
    )
)]
pub async fn patch(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let by = state
        .security
        .corrector(req.extensions().get::<Principal>().copied())?;
    let id = Uuid::parse_str(&path)
        .map_err(|_| ApiError::bad_param("id", "id must be the UUID of a passage"))?;
    let body = body_object(&body)?;
    no_other_fields(&body, &["container", "reason"])?;
    let number = OperatorNumber::parse(&container_field(&body)?, state.owners.as_deref())
        .map_err(ApiError::Validation)?;
    let reason = match body.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(r)) => Some(r.as_str()),
        Some(_) => {
            return Err(ApiError::Validation(FieldError::new(
                Field::Reason,
                "reason must be a string",
            )))
        }
    };
    let reason = parse_reason(reason).map_err(ApiError::Validation)?;
    match state
        .store()?
        .writer()
        .correct(id, number, by, reason)
        .await?
    {
        CorrectOutcome::NotFound => Err(ApiError::NotFound(format!("no passage with id {id}"))),
        CorrectOutcome::Unchanged(p) => Ok(HttpResponse::Ok().json(json!({
            "status": "unchanged",
            "message": "The passage already holds this number",
            "data": p,
        }))),
        CorrectOutcome::Corrected(o) => Ok(HttpResponse::Ok().json(json!({
            "status": "corrected",
            "correction": o.correction,
            "data": o.passage,
        }))),
    }
}

/// The body of a correction as a JSON object, within [`MAX_BODY`].
pub(crate) fn body_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.len() > MAX_BODY {
        return Err(ApiError::TooLarge { limit: MAX_BODY });
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::Validation(FieldError::new(
            Field::Body,
            "send a JSON object such as {\"container\": \"CSQU3054383\"}",
        ))),
        Err(e) => Err(ApiError::MalformedJson(e.to_string())),
    }
}

/// Refuses any field but `known`, with a 400 naming it: a misspelt
/// `reason` would otherwise be lost without a word.
pub(crate) fn no_other_fields(body: &Map<String, Value>, known: &[&str]) -> Result<(), ApiError> {
    match body.keys().find(|k| !known.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => {
            let k: String = k.chars().take(40).collect();
            Err(ApiError::bad_param(
                &k,
                format!("unknown field {k:?}; known: {}", known.join(", ")),
            ))
        }
    }
}

/// The required `container` string.
pub(crate) fn container_field(body: &Map<String, Value>) -> Result<String, ApiError> {
    match body.get("container") {
        Some(Value::String(s)) => Ok(s.clone()),
        None | Some(Value::Null) => Err(ApiError::Validation(FieldError::new(
            Field::Container,
            "container is required: the whole number with its check digit, such as CSQU3054383",
        ))),
        Some(_) => Err(ApiError::Validation(FieldError::new(
            Field::Container,
            "container must be a string, such as \"CSQU3054383\"",
        ))),
    }
}
