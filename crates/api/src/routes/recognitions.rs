//! `POST /api/v1/recognitions`: one read or a batch of up to 1,000.
//!
//! Each valid read is written through the store's writer, which answers
//! only after the group commit holding it is fsynced. A batch is written as
//! one request, so its reads share a commit; invalid items are answered in
//! place and do not stop the others.
//!
//! Each read's `raw` is its JSON text exactly as received (the whole body,
//! or the item's bytes inside a batch), capped at [`MAX_RAW_LEN`]. A
//! client `id` is an idempotency key: the same id with the same content
//! replays the original answer, with other content it is a 409.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use gatelog_core::read::MAX_RAW_LEN;
use gatelog_core::{ParseContext, Parsed, Read};
use gatelog_local_store::{Outcome, OutcomeKind, Queued, Replay};
use gatelog_metrics::Recognition;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::error::item_error;
use crate::openapi::schema;
use crate::wire::{raw_read, MAX_BATCH};
use crate::{ApiError, AppState};

/// `POST /api/v1/recognitions`.
#[utoipa::path(
    post,
    path = "/api/v1/recognitions",
    tag = "recognitions",
    request_body(content = schema::Recognitions, content_type = "application/json",
        description = "One read, or a batch of up to 1,000. Fields other than these are \
            kept in the read's `raw`."),
    responses(
        (status = 201, description = "The read opened a new passage (`success`).",
            body = schema::Created),
        (status = 200, description = "The read joined a passage (`skipped`), or a batch was \
            answered item by item, in order.", body = schema::JoinedOrBatch),
        (status = 202, description = "The number could not be read; the read is kept for an \
            operator (`queued`).", body = schema::Queued),
        (status = 400, description = "The body is not JSON (`malformed_json`).",
            body = schema::Error),
        (status = 409, description = "The read's `id` was used before for other content \
            (`id_conflict`).", body = schema::Error),
        (status = 413, description = "The body is larger than `server.body_limit_bytes` \
            (`body_too_large`), or one read is larger than a sighting keeps \
            (`read_too_large`).", body = schema::Error),
        (status = 422, description = "The read is not valid (`validation_failed`, naming the \
            field), or a batch holds more than 1,000.", body = schema::Error),
        (status = 503, description = "The local store cannot take writes \
            (`store_unavailable`); retry after `Retry-After`.", body = schema::Error),
    )
)]
pub async fn post(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let limit = state.body_limit;
    // Refuse early when the client announces a body over the limit.
    if let Some(len) = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::TooLarge { limit });
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|_| ApiError::MalformedJson("the request body could not be read".into()))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::TooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    let received_at = Utc::now();
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::MalformedJson("the body is not UTF-8".into()))?
        .trim();
    if text.starts_with('[') {
        let items: Vec<&RawValue> =
            serde_json::from_str(text).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        batch(&state, items, received_at).await
    } else {
        let value: Value =
            serde_json::from_str(text).map_err(|e| ApiError::MalformedJson(e.to_string()))?;
        single(&state, &value, text, received_at).await
    }
}

/// One item, parsed from its value and its text as received.
fn parse(
    state: &AppState,
    value: &Value,
    raw: &str,
    received_at: DateTime<Utc>,
) -> Result<Parsed, ApiError> {
    if raw.len() > MAX_RAW_LEN {
        return Err(ApiError::ReadTooLarge { limit: MAX_RAW_LEN });
    }
    let context = ParseContext {
        validation: &state.validation,
        owners: state.owners.as_deref(),
        cameras: Some(&state.cameras),
        received_at,
    };
    raw_read(value, raw)
        .and_then(|r| Read::interpret(r, &context))
        .map_err(ApiError::Validation)
}

/// What became of one item.
enum Answer {
    Stored(Box<Outcome>),
    Queued(Queued),
    Refused(ApiError),
}

/// Writes the reads and queues the unresolved ones, each group in one
/// commit, and answers every item in order.
async fn store(
    state: &AppState,
    items: Vec<Result<Parsed, ApiError>>,
) -> Result<Vec<Answer>, ApiError> {
    let mut reads = Vec::new();
    let mut unresolved = Vec::new();
    for item in &items {
        match item {
            Ok(Parsed::Read(r)) => reads.push(r.clone()),
            Ok(Parsed::Unresolved(u)) => unresolved.push(u.clone()),
            Err(_) => {}
        }
    }
    let invalid = items.iter().filter(|i| i.is_err()).count();
    count(state, Recognition::Invalid, invalid);
    let flags: Vec<bool> = reads.iter().map(|r| !r.flags.is_empty()).collect();
    let outcomes = write(state, reads).await?;
    let flagged = outcomes
        .iter()
        .zip(flags)
        .filter(|(o, f)| *f && o.replay == Replay::Fresh)
        .count();
    state
        .metrics
        .recognitions_flagged_total
        .inc_by(flagged as u64);
    let queued = state
        .store()?
        .writer()
        .queue(unresolved)
        .await
        .map_err(ApiError::from)?;
    count(
        state,
        Recognition::Queued,
        queued.iter().filter(|q| q.replay == Replay::Fresh).count(),
    );
    let mut outcomes = outcomes.into_iter();
    let mut queued = queued.into_iter();
    items
        .into_iter()
        .map(|item| {
            let missing = || ApiError::Internal("the writer answered too few outcomes".into());
            Ok(match item {
                Ok(Parsed::Read(_)) => {
                    Answer::Stored(Box::new(outcomes.next().ok_or_else(missing)?))
                }
                Ok(Parsed::Unresolved(_)) => Answer::Queued(queued.next().ok_or_else(missing)?),
                Err(e) => Answer::Refused(e),
            })
        })
        .collect()
}

fn count(state: &AppState, result: Recognition, n: usize) {
    if n > 0 {
        state
            .metrics
            .recognitions_total
            .with(result)
            .inc_by(n as u64);
    }
}

async fn single(
    state: &AppState,
    value: &Value,
    raw: &str,
    received_at: DateTime<Utc>,
) -> Result<HttpResponse, ApiError> {
    let item = parse(state, value, raw, received_at);
    let answer = store(state, vec![item])
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("the writer answered no outcome".into()))?;
    match answer {
        Answer::Refused(e) => Err(e),
        Answer::Stored(o) if o.replay == Replay::Conflict => Err(id_conflict(o.passage.id)),
        Answer::Queued(q) if q.replay == Replay::Conflict => Err(id_conflict(q.id)),
        Answer::Stored(o) => {
            let status = match o.kind {
                OutcomeKind::Created => StatusCode::CREATED,
                OutcomeKind::Joined | OutcomeKind::Corrected => StatusCode::OK,
            };
            Ok(HttpResponse::build(status).json(result(&o)))
        }
        Answer::Queued(q) => Ok(HttpResponse::Accepted().json(queued(&q))),
    }
}

async fn batch(
    state: &AppState,
    items: Vec<&RawValue>,
    received_at: DateTime<Utc>,
) -> Result<HttpResponse, ApiError> {
    if items.len() > MAX_BATCH {
        return Err(ApiError::Validation(gatelog_core::FieldError::new(
            gatelog_core::Field::Body,
            format!(
                "a batch holds at most {MAX_BATCH} recognitions; got {}",
                items.len()
            ),
        )));
    }
    let parsed: Vec<Result<Parsed, ApiError>> = items
        .iter()
        .map(|item| {
            let value: Value = serde_json::from_str(item.get())
                .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
            parse(state, &value, item.get(), received_at)
        })
        .collect();
    let results: Vec<Value> = store(state, parsed)
        .await?
        .into_iter()
        .map(|answer| match answer {
            Answer::Refused(e) => item_error(&e),
            Answer::Stored(o) if o.replay == Replay::Conflict => {
                item_error(&id_conflict(o.passage.id))
            }
            Answer::Queued(q) if q.replay == Replay::Conflict => item_error(&id_conflict(q.id)),
            Answer::Stored(o) => result(&o),
            Answer::Queued(q) => queued(&q),
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "results": results })))
}

/// The answer for a read kept for an operator.
fn queued(q: &Queued) -> Value {
    json!({
        "status": "queued",
        "message": "The container number could not be read; the read is kept for an operator",
        "data": {"id": q.id},
    })
}

/// The 409 for a client id stored earlier with other content; `earlier`
/// is where that content went (a passage, or a queued read).
fn id_conflict(earlier: uuid::Uuid) -> ApiError {
    ApiError::IdConflict { earlier }
}

/// Writes through the store; a failure is also announced to live
/// dashboards, since the camera that sent the read may be unattended.
async fn write(state: &AppState, reads: Vec<Read>) -> Result<Vec<Outcome>, ApiError> {
    let n = reads.len();
    state.store()?.writer().write(reads).await.map_err(|e| {
        let err = ApiError::from(e);
        if matches!(err, ApiError::Unavailable) {
            state.broadcaster.publish_error(format!(
                "{n} read(s) could not be saved: the local store is unavailable; the sender was asked to retry"
            ));
        }
        err
    })
}

/// The SPEC's result object for one committed read.
fn result(o: &Outcome) -> Value {
    match o.kind {
        OutcomeKind::Created => json!({"status": "success", "data": o.passage}),
        OutcomeKind::Joined | OutcomeKind::Corrected => json!({
            "status": "skipped",
            "message": "Duplicate record",
            "data": o.passage,
        }),
    }
}
