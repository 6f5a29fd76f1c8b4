//! The published contract: an OpenAPI 3.1 document generated from the
//! code, served at `GET /api/v1/openapi.json`.
//!
//! Nothing here is written by hand twice. Each handler carries a
//! `#[utoipa::path]` attribute beside it (its method, path, parameters,
//! body and answers), each strict query struct derives `IntoParams`, and the
//! read body of [`crate::wire`] derives `ToSchema`. This module gathers
//! them into [`ApiDoc`] and adds what follows from the rest of the code:
//! - the security of each operation and the answers of the auth middleware
//!   (401, 403, 429), from [`crate::auth::classify`], the function that
//!   classifies requests;
//! - the 408 and 500 that any request can end in;
//! - the flag names, from [`gatelog_core::passage::Flags`];
//! - the one error shape, [`schema::Error`], whose `code` lists every code
//!   [`ApiError::code`] answers (a unit test keeps them equal).
//!
//! The response shapes of the stores' types are mirrored in [`schema`]
//! with `additionalProperties: false` and every property required, so a
//! field added to a passage without the document breaks the contract test
//! (`tests/tests/e2e/contract.rs`, schemathesis against the real binary)
//! instead of passing unseen.
//!
//! Two tests keep the document whole: every route the app registers, with
//! every method it takes, is an operation of the document, and every
//! operation is a registered route.
//!
//! The document is open like `/healthz`: it describes the API, which is
//! public in this repository, and carries no container data and no secret.
//! A client can read it before it has a key.

use std::sync::LazyLock;

use actix_web::http::Method;
use actix_web::{HttpRequest, HttpResponse};
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::Required;
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};

use crate::auth::{classify, Access, SESSION_COOKIE};
use crate::query::{self, NoParams};
use crate::routes::{
    corrections, dashboard, exceptions, export, health, logs, recognitions, session, sites, stats,
    sync, ws, yard,
};
use crate::ApiError;

/// The document's own path.
pub const PATH: &str = "/api/v1/openapi.json";

/// The whole contract: every operation and the schemas they name.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "gatelog",
        description = "The HTTP interface of gatelog, an on-site server that records the \
            container numbers gate cameras read. Every error is one JSON shape, `Error`; \
            its `code` is stable and machine-readable. A method a route does not take is \
            answered 405 `method_not_allowed` with an `Allow` header; a path no route \
            has is answered 404 `not_found`. With no key configured at all, every \
            operation is open and none answers 401, 403 or 429."
    ),
    paths(
        recognitions::post,
        logs::list,
        logs::get,
        logs::sightings,
        export::export,
        corrections::patch,
        exceptions::list,
        exceptions::resolve,
        session::create,
        session::delete,
        session::login,
        sync::status,
        stats::get,
        yard::list,
        yard::stats,
        sites::list,
        health::healthz,
        health::readyz,
        health::metrics,
        ws::logs,
        dashboard::index,
        dashboard::script,
        dashboard::style,
        dashboard::image,
        document,
    ),
    components(schemas(
        schema::Error,
        schema::ErrorCode,
        schema::Passage,
        schema::Sighting,
        schema::Correction,
        schema::CorrectionRule,
        schema::QueuedRead,
        schema::Resolved,
        schema::SyncState,
        schema::Direction,
    )),
    modifiers(&Contract),
    tags(
        (name = "recognitions", description = "Reads posted by cameras and OCR modules."),
        (name = "passages", description = "Passages through the gate, their sightings and corrections."),
        (name = "exceptions", description = "Reads and passages waiting for an operator."),
        (name = "reports", description = "Counts, the yard and sync."),
        (name = "session", description = "The dashboard's sign-in."),
        (name = "live", description = "The live feed over WebSocket."),
        (name = "operations", description = "Probes, metrics and this document."),
        (name = "dashboard", description = "The web dashboard, built into the binary."),
    )
)]
pub struct ApiDoc;

/// The document as served, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
});

/// `GET /api/v1/openapi.json`: this contract.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "operations",
    params(NoParams),
    responses(
        (status = 200, description = "The OpenAPI 3.1 document of this server.",
            content_type = "application/json", body = serde_json::Value),
        (status = 400, description = "A query parameter was given; the document takes none.",
            body = schema::Error),
    )
)]
pub async fn document(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    query::parse::<NoParams>(req.query_string())?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(DOCUMENT.as_str()))
}

/// The document, for tests and tools that want it without a server.
pub fn json() -> &'static str {
    DOCUMENT.as_str()
}

/// Adds what follows from code outside the handlers' attributes; see the
/// module's documentation.
struct Contract;

/// The security schemes, by key kind.
const INGEST_KEY: &str = "ingest_key";
const READ_KEY: &str = "read_key";
const OPERATOR_KEY: &str = "operator_key";
const SESSION: &str = "session";

impl Modify for Contract {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        for (name, description) in [
            (
                INGEST_KEY,
                "An ingest key (`auth.ingest_keys`), for posting reads.",
            ),
            (READ_KEY, "A read key (`auth.read_keys`)."),
            (
                OPERATOR_KEY,
                "An operator key (`auth.operator_keys`): it reads, and it corrects.",
            ),
        ] {
            components.add_security_scheme(
                name,
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(description))
                        .build(),
                ),
            );
        }
        components.add_security_scheme(
            SESSION,
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "The dashboard's session, from `POST /api/v1/session`. It reads, and \
                 corrects when signed in with an operator key; it never posts reads.",
            ))),
        );
        schema::add_built(components);
        split_logs_params(doc);
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, op) in operations(item) {
                let access = classify(&method, path);
                secure(op, access);
                // A browser opening a page without a session is sent to
                // sign in (see `auth::guard`).
                if access == Access::Read && !path.starts_with("/api/") && !path.starts_with("/ws/")
                {
                    op.responses.responses.insert(
                        "303".into(),
                        RefOr::T(
                            ResponseBuilder::new()
                                .description(
                                    "A browser (`Accept: text/html`) without a session is sent \
                                     to `/login`.",
                                )
                                .build(),
                        ),
                    );
                }
                if !op.responses.responses.contains_key("408") {
                    add_error(
                        op,
                        "408",
                        "The request took longer than `server.request_timeout_secs`.",
                    );
                }
                add_error(
                    op,
                    "500",
                    "An internal error; the detail is logged, never answered.",
                );
            }
        }
    }
}

/// The listing and the export share one query struct: the listing
/// refuses `format`, and the export requires it and refuses `limit` and
/// `cursor`.
fn split_logs_params(doc: &mut Document) {
    fn params<'a>(
        doc: &'a mut Document,
        path: &str,
    ) -> Option<&'a mut Vec<utoipa::openapi::path::Parameter>> {
        doc.paths
            .paths
            .get_mut(path)
            .and_then(|item| item.get.as_mut())
            .and_then(|op| op.parameters.as_mut())
    }
    if let Some(list) = params(doc, "/api/v1/logs") {
        list.retain(|p| p.name != "format");
    }
    if let Some(export) = params(doc, "/api/v1/logs/export") {
        export.retain(|p| p.name != "limit" && p.name != "cursor");
        for p in export.iter_mut().filter(|p| p.name == "format") {
            p.required = Required::True;
        }
    }
}

/// Each operation of a path with its method.
fn operations(item: &mut PathItem) -> Vec<(Method, &mut Operation)> {
    [
        (Method::GET, item.get.as_mut()),
        (Method::HEAD, item.head.as_mut()),
        (Method::POST, item.post.as_mut()),
        (Method::PUT, item.put.as_mut()),
        (Method::PATCH, item.patch.as_mut()),
        (Method::DELETE, item.delete.as_mut()),
        (Method::OPTIONS, item.options.as_mut()),
        (Method::TRACE, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}

/// The security and the middleware's answers for an access class.
fn secure(op: &mut Operation, access: Access) {
    let schemes: &[&str] = match access {
        Access::Open => return,
        Access::Ingest => &[INGEST_KEY],
        Access::Read => &[READ_KEY, OPERATOR_KEY, SESSION],
        Access::Correct => &[OPERATOR_KEY, SESSION],
    };
    op.security = Some(
        schemes
            .iter()
            .map(|s| SecurityRequirement::new(*s, Vec::<String>::new()))
            .collect(),
    );
    add_error(
        op,
        "401",
        "No key, a wrong key or a key of another kind (`unauthorized`), with \
         `WWW-Authenticate: Bearer`; or a session cookie sent from another origin.",
    );
    add_error(
        op,
        "429",
        "The key's rate limit (`limits.burst`, `limits.rate_per_sec`) is spent, or this \
         address sent too many wrong keys (`rate_limited`); `Retry-After` says when to retry.",
    );
    if access == Access::Correct {
        add_error(
            op,
            "403",
            "The key or session may read but not correct (`forbidden`).",
        );
    }
}

/// Adds an answer in the error shape unless the operation has one for
/// this status.
fn add_error(op: &mut Operation, status: &str, description: &str) {
    if op.responses.responses.contains_key(status) {
        return;
    }
    op.responses.responses.insert(
        status.to_string(),
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("Error"))),
                )
                .build(),
        ),
    );
}

/// A JSON object schema that allows no other properties.
fn closed(builder: ObjectBuilder) -> ObjectBuilder {
    builder.additional_properties(Some(AdditionalProperties::FreeForm(false)))
}

/// The response shapes. The stores' types are mirrored here, field for
/// field; `add_built` makes every property required (the server always
/// writes them, `null` when empty) and refuses others, so the contract
/// test notices a field added on one side only.
pub mod schema {
    #![allow(dead_code)]

    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::{Components, RefOr};
    use utoipa::ToSchema;
    use uuid::Uuid;

    use super::*;

    /// The one error shape of every answer that is not a success.
    #[derive(ToSchema)]
    pub struct Error {
        pub status: ErrorStatus,
        pub code: ErrorCode,
        /// A sentence for people.
        pub message: String,
        /// The input at fault (a parameter, a body field or a header), when
        /// there is one.
        pub field: Option<String>,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum ErrorStatus {
        Error,
    }

    /// The stable, machine-readable error code.
    #[derive(ToSchema, serde::Serialize, Clone, Copy)]
    #[serde(rename_all = "snake_case")]
    pub enum ErrorCode {
        MalformedJson,
        BadParameter,
        BadHandshake,
        ValidationFailed,
        BodyTooLarge,
        ReadTooLarge,
        IdConflict,
        NotFound,
        AlreadyResolved,
        MethodNotAllowed,
        Unauthorized,
        Forbidden,
        RateLimited,
        RequestTimeout,
        StoreUnavailable,
        TooManyConnections,
        ReadOnly,
        Internal,
    }

    impl ErrorCode {
        /// Every code, for the test that keeps this list equal to
        /// [`ApiError::code`]'s.
        pub const ALL: [ErrorCode; 18] = [
            Self::MalformedJson,
            Self::BadParameter,
            Self::BadHandshake,
            Self::ValidationFailed,
            Self::BodyTooLarge,
            Self::ReadTooLarge,
            Self::IdConflict,
            Self::NotFound,
            Self::AlreadyResolved,
            Self::MethodNotAllowed,
            Self::Unauthorized,
            Self::Forbidden,
            Self::RateLimited,
            Self::RequestTimeout,
            Self::StoreUnavailable,
            Self::TooManyConnections,
            Self::ReadOnly,
            Self::Internal,
        ];
    }

    /// One container's passage through the gate.
    #[derive(ToSchema)]
    pub struct Passage {
        pub id: Uuid,
        pub site_id: String,
        /// The normalised number, with the check digit when known.
        pub container: String,
        /// Owner code with category letter, such as `MSCU`.
        pub container_owner: String,
        /// The six-digit serial.
        pub container_number: String,
        #[schema(minimum = 0, maximum = 9)]
        pub check_digit: Option<u8>,
        pub check_digit_ok: bool,
        #[schema(schema_with = flags)]
        pub flags: Vec<String>,
        pub captured_at: DateTime<Utc>,
        pub last_seen_at: DateTime<Utc>,
        #[schema(minimum = 1)]
        pub seen_count: i64,
        pub camera_id: Option<String>,
        pub source_video: Option<String>,
        pub cropped_image_ref: Option<String>,
        pub confidence: Option<f64>,
        pub created_at: DateTime<Utc>,
        pub updated_at: DateTime<Utc>,
        pub version: i64,
        pub sync_state: SyncState,
        /// Every change of the number, oldest first.
        pub corrections: Vec<Correction>,
        pub direction: Direction,
        pub lane: Option<String>,
        pub truck_plate: Option<String>,
        pub iso_type: Option<String>,
        /// On a gate-out: how long the container stayed since its gate-in.
        pub dwell_secs: Option<i64>,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum SyncState {
        Pending,
        Synced,
        DeadLetter,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum Direction {
        In,
        Out,
        None,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum CorrectionRule {
        Lookalike,
        CheckDigit,
        OwnerCode,
        Consensus,
        Operator,
    }

    /// One change of a passage's number.
    #[derive(ToSchema)]
    pub struct Correction {
        pub from: String,
        pub to: String,
        pub rule: CorrectionRule,
        pub at: DateTime<Utc>,
        /// `gatelog` for automatic rules, the key's name for an operator.
        pub by: String,
        /// Why, when an operator gave a reason.
        pub reason: Option<String>,
    }

    /// One accepted read of a passage.
    #[derive(ToSchema)]
    pub struct Sighting {
        pub id: Uuid,
        pub passage_id: Uuid,
        pub captured_at: DateTime<Utc>,
        pub received_at: DateTime<Utc>,
        /// The read exactly as received.
        #[schema(value_type = Object)]
        pub raw: serde_json::Value,
        pub container: String,
        pub source_video: Option<String>,
        pub camera_id: Option<String>,
        pub cropped_image_ref: Option<String>,
        pub confidence: Option<f64>,
        pub check_digit_ok: bool,
        #[schema(schema_with = flags)]
        pub flags: Vec<String>,
        pub corrected_from: Option<String>,
        pub rule: Option<CorrectionRule>,
    }

    /// A read kept for an operator.
    #[derive(ToSchema)]
    pub struct QueuedRead {
        pub id: Uuid,
        pub site_id: String,
        /// The text as read, upper case, without separators.
        pub text: String,
        pub captured_at: DateTime<Utc>,
        pub received_at: DateTime<Utc>,
        #[schema(schema_with = flags)]
        pub flags: Vec<String>,
        pub camera_id: Option<String>,
        pub source_video: Option<String>,
        pub cropped_image_ref: Option<String>,
        pub confidence: Option<f64>,
        /// The read exactly as received.
        #[schema(value_type = Object)]
        pub raw: serde_json::Value,
        pub resolved: Option<Resolved>,
    }

    /// How an operator resolved a queued read.
    #[derive(ToSchema)]
    pub struct Resolved {
        pub at: DateTime<Utc>,
        pub by: String,
        pub container: String,
        pub passage_id: Uuid,
    }

    /// `GET /api/v1/logs`.
    #[derive(ToSchema)]
    pub struct LogsPage {
        pub logs: Vec<Passage>,
        /// Pass back as `cursor` for the next page; `null` on the last.
        pub next_cursor: Option<String>,
    }

    /// `GET /api/v1/logs/{id}/sightings`.
    #[derive(ToSchema)]
    pub struct SightingsPage {
        pub sightings: Vec<Sighting>,
        pub next_cursor: Option<String>,
    }

    /// `GET /api/v1/exceptions`.
    #[derive(ToSchema)]
    pub struct ExceptionsPage {
        #[schema(schema_with = exception_items)]
        pub exceptions: Vec<()>,
        pub next_cursor: Option<String>,
        /// Every open item, whatever the filters.
        pub open: OpenCounts,
    }

    /// How many items are open, by kind and in all.
    #[derive(ToSchema)]
    pub struct OpenCounts {
        pub unresolved_reads: i64,
        pub unverified_passages: i64,
        pub total: i64,
    }

    /// A passage whose number no read has verified, in the queue.
    #[derive(ToSchema)]
    pub struct UnverifiedPassage {
        pub kind: UnverifiedKind,
        pub id: Uuid,
        pub captured_at: DateTime<Utc>,
        /// The passage's number as it stands.
        pub text: String,
        pub camera_id: Option<String>,
        pub cropped_image_ref: Option<String>,
        pub passage: Passage,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum UnverifiedKind {
        UnverifiedPassage,
    }

    /// A read stored: a new passage (`success`, 201).
    #[derive(ToSchema)]
    pub struct Created {
        pub status: CreatedStatus,
        pub data: Passage,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum CreatedStatus {
        Success,
    }

    /// A read that joined a passage (`skipped`, 200).
    #[derive(ToSchema)]
    pub struct Skipped {
        pub status: SkippedStatus,
        pub message: String,
        pub data: Passage,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum SkippedStatus {
        Skipped,
    }

    /// A read kept for an operator (`queued`, 202).
    #[derive(ToSchema)]
    pub struct Queued {
        pub status: QueuedStatus,
        pub message: String,
        pub data: QueuedId,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum QueuedStatus {
        Queued,
    }

    #[derive(ToSchema)]
    pub struct QueuedId {
        pub id: Uuid,
    }

    /// A batch's answer: one result per item, in order, each a success,
    /// a join, a queued read or an error.
    #[derive(ToSchema)]
    pub struct BatchResults {
        #[schema(schema_with = batch_items)]
        pub results: Vec<()>,
    }

    /// A correction that changed the number.
    #[derive(ToSchema)]
    pub struct Corrected {
        pub status: CorrectedStatus,
        pub correction: Correction,
        pub data: Passage,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum CorrectedStatus {
        Corrected,
    }

    /// A correction to the number the passage holds already.
    #[derive(ToSchema)]
    pub struct Unchanged {
        pub status: UnchangedStatus,
        pub message: String,
        pub data: Passage,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum UnchangedStatus {
        Unchanged,
    }

    /// A queued read resolved into a sighting.
    #[derive(ToSchema)]
    pub struct ResolvedRead {
        pub status: ResolvedStatus,
        /// Whether the read opened a passage or joined one.
        pub outcome: ResolveOutcome,
        pub sighting_id: Uuid,
        pub data: Passage,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum ResolvedStatus {
        Resolved,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum ResolveOutcome {
        Created,
        Joined,
    }

    /// A session began.
    #[derive(ToSchema)]
    pub struct SignedIn {
        pub status: OkStatus,
        pub expires_at: DateTime<Utc>,
        pub role: Role,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum Role {
        Read,
        Operator,
    }

    /// No key is configured, so no session is needed.
    #[derive(ToSchema)]
    pub struct AuthOff {
        pub status: OkStatus,
        pub auth: AuthOffValue,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum AuthOffValue {
        Off,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum OkStatus {
        Ok,
    }

    /// `{"status": "ok"}`.
    #[derive(ToSchema)]
    pub struct StatusOk {
        pub status: OkStatus,
    }

    /// `{"status": "ready"}`.
    #[derive(ToSchema)]
    pub struct Ready {
        pub status: ReadyStatus,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum ReadyStatus {
        Ready,
    }

    /// Where replication stands; every string is redacted.
    #[derive(ToSchema)]
    pub struct SyncStatus {
        pub target: SyncTarget,
        pub pending: i64,
        pub oldest_pending_age_secs: i64,
        pub last_success_at: Option<DateTime<Utc>>,
        pub last_error: Option<String>,
        pub last_error_at: Option<DateTime<Utc>>,
        pub dead_letters: i64,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum SyncTarget {
        None,
        Supabase,
        Postgres,
    }

    #[derive(ToSchema)]
    #[schema(rename_all = "snake_case")]
    pub enum BucketWidth {
        Hour,
        Day,
    }

    /// Counts per bucket, empty buckets included.
    #[derive(ToSchema)]
    pub struct Stats {
        /// `from` rounded down to a whole bucket.
        pub from: DateTime<Utc>,
        /// `to` rounded up to a whole bucket.
        pub to: DateTime<Utc>,
        pub bucket: BucketWidth,
        pub buckets: Vec<BucketCounts>,
    }

    #[derive(ToSchema)]
    pub struct BucketCounts {
        pub start: DateTime<Utc>,
        pub passages: i64,
        pub sightings: i64,
        pub duplicates: i64,
        pub flagged: i64,
    }

    /// `GET /api/v1/sites` (the head-office view).
    #[derive(ToSchema)]
    pub struct Sites {
        pub sites: Vec<SiteStatus>,
        /// How many sites are stale.
        pub stale: i64,
    }

    #[derive(ToSchema)]
    pub struct SiteStatus {
        pub site_id: String,
        /// The latest `updated_at` this site synced.
        pub last_change: DateTime<Utc>,
        /// Passages captured in the hour before the answer.
        pub passages_last_hour: i64,
        /// Seconds from `last_change` to the answer.
        pub lag_secs: f64,
        /// Nothing synced for longer than `central.stale_after_secs` while
        /// another site kept syncing.
        pub stale: bool,
    }

    /// `GET /api/v1/yard`: longest stays first.
    #[derive(ToSchema)]
    pub struct YardPage {
        pub yard: Vec<YardItem>,
        /// Every container that matches the filters.
        pub count: i64,
        pub next_cursor: Option<String>,
    }

    #[derive(ToSchema)]
    pub struct YardItem {
        pub container: String,
        pub gate_in_at: DateTime<Utc>,
        pub dwell_secs: i64,
        pub passage_id: Uuid,
        pub truck_plate: Option<String>,
        pub iso_type: Option<String>,
        pub lane: Option<String>,
    }

    /// `GET /api/v1/yard/stats`.
    #[derive(ToSchema)]
    pub struct YardStats {
        pub count: i64,
        pub per_owner: BTreeMap<String, i64>,
        pub dwell: Dwell,
        pub dwell_per_owner: BTreeMap<String, Dwell>,
        pub bucket: BucketWidth,
        pub movements: Vec<Movements>,
    }

    /// Dwell times in seconds.
    #[derive(ToSchema)]
    pub struct Dwell {
        pub p50: i64,
        pub p90: i64,
        pub max: i64,
    }

    #[derive(ToSchema)]
    pub struct Movements {
        pub start: DateTime<Utc>,
        pub gate_ins: i64,
        pub gate_outs: i64,
    }

    /// Declares a schema that `add_built` makes from others, so a path
    /// can name it; the placeholder is replaced before the document is
    /// served.
    macro_rules! built {
        ($name:ident, $doc:literal) => {
            #[doc = $doc]
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    ObjectBuilder::new().into()
                }
            }

            impl ToSchema for $name {
                fn name() -> std::borrow::Cow<'static, str> {
                    stringify!($name).into()
                }
            }
        };
    }

    built!(PassageDetail, "A passage with its first page of sightings.");
    built!(UnresolvedRead, "A queued read in the exceptions queue.");

    /// Answers that are one of several shapes.
    macro_rules! one_of {
        ($name:ident, $doc:literal, $($item:literal),+) => {
            #[doc = $doc]
            pub struct $name;

            impl utoipa::PartialSchema for $name {
                fn schema() -> RefOr<Schema> {
                    OneOfBuilder::new()
                        $(.item(Ref::from_schema_name($item)))+
                        .into()
                }
            }

            impl ToSchema for $name {
                fn name() -> std::borrow::Cow<'static, str> {
                    stringify!($name).into()
                }
            }
        };
    }

    one_of!(
        JoinedOrBatch,
        "One read that joined a passage, or a batch's results.",
        "Skipped",
        "BatchResults"
    );
    one_of!(
        CorrectedOrUnchanged,
        "A correction made, or one the passage held already.",
        "Corrected",
        "Unchanged"
    );
    one_of!(
        SignInAnswer,
        "A session began, or no key is configured.",
        "SignedIn",
        "AuthOff"
    );

    /// The body of `POST /api/v1/recognitions`: one read, or a batch of
    /// 1 to 1,000 reads.
    pub struct Recognitions;

    impl utoipa::PartialSchema for Recognitions {
        fn schema() -> RefOr<Schema> {
            OneOfBuilder::new()
                .item(Ref::from_schema_name("Recognition"))
                .item(
                    ArrayBuilder::new()
                        .items(Ref::from_schema_name("Recognition"))
                        .max_items(Some(crate::wire::MAX_BATCH)),
                )
                .into()
        }
    }

    impl ToSchema for Recognitions {
        fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
            schemas.push((
                "Recognition".into(),
                <crate::wire::WireRead as utoipa::PartialSchema>::schema(),
            ));
            <crate::wire::WireRead as ToSchema>::schemas(schemas);
        }
    }

    /// The body of `PATCH /api/v1/logs/{id}`.
    #[derive(ToSchema)]
    pub struct CorrectionBody {
        /// The whole number with its check digit, such as `CSQU3054383`.
        #[schema(example = "CSQU3054383")]
        pub container: String,
        /// One line on why, at most 500 bytes.
        pub reason: Option<String>,
    }

    /// The body of `POST /api/v1/exceptions/{id}/resolve`.
    #[derive(ToSchema)]
    pub struct ResolveBody {
        /// The whole number with its check digit, such as `CSQU3054383`.
        #[schema(example = "CSQU3054383")]
        pub container: String,
    }

    /// The body of `POST /api/v1/session`, as JSON or as the sign-in
    /// form; an `Authorization: Bearer` header may carry the key instead.
    #[derive(ToSchema)]
    pub struct SignIn {
        /// A read key or an operator key.
        pub key: String,
    }

    /// The flag names, from the core's own list.
    fn flags() -> ArrayBuilder {
        let names = gatelog_core::passage::Flags::from_bits_truncate(i64::MAX).names();
        ArrayBuilder::new().items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(names)),
        )
    }

    fn exception_items() -> ArrayBuilder {
        ArrayBuilder::new().items(
            OneOfBuilder::new()
                .item(Ref::from_schema_name("UnresolvedRead"))
                .item(Ref::from_schema_name("UnverifiedPassage")),
        )
    }

    fn batch_items() -> ArrayBuilder {
        ArrayBuilder::new().items(
            OneOfBuilder::new()
                .item(Ref::from_schema_name("Created"))
                .item(Ref::from_schema_name("Skipped"))
                .item(Ref::from_schema_name("Queued"))
                .item(Ref::from_schema_name("Error")),
        )
    }

    /// The schemas whose properties are all written: every property is
    /// required and no other is allowed. (`Error.field` and
    /// `Correction.reason` are left out when empty.)
    const WHOLE: &[&str] = &[
        "Passage",
        "Sighting",
        "QueuedRead",
        "Resolved",
        "LogsPage",
        "SightingsPage",
        "PassageDetail",
        "ExceptionsPage",
        "OpenCounts",
        "UnresolvedRead",
        "UnverifiedPassage",
        "Created",
        "Skipped",
        "Queued",
        "QueuedId",
        "BatchResults",
        "Corrected",
        "Unchanged",
        "ResolvedRead",
        "SignedIn",
        "AuthOff",
        "StatusOk",
        "Ready",
        "SyncStatus",
        "Stats",
        "BucketCounts",
        "YardPage",
        "YardItem",
        "YardStats",
        "Dwell",
        "Movements",
    ];

    /// Adds the schemas made from others (a passage with its sightings, a
    /// queued read tagged with its kind), then closes the whole ones.
    pub(super) fn add_built(components: &mut Components) {
        let mut found = Vec::new();
        macro_rules! collect {
            ($($t:ty),+ $(,)?) => {
                $(
                    found.push((
                        <$t as ToSchema>::name().into_owned(),
                        <$t as utoipa::PartialSchema>::schema(),
                    ));
                    <$t as ToSchema>::schemas(&mut found);
                )+
            };
        }
        collect!(
            Error,
            Correction,
            CorrectionBody,
            ResolveBody,
            SignIn,
            LogsPage,
            SightingsPage,
            ExceptionsPage,
            UnverifiedPassage,
            Created,
            Skipped,
            Queued,
            QueuedId,
            BatchResults,
            Corrected,
            Unchanged,
            ResolvedRead,
            SignedIn,
            AuthOff,
            StatusOk,
            Ready,
            SyncStatus,
            Stats,
            BucketCounts,
            YardPage,
            YardItem,
            YardStats,
            Dwell,
            Movements,
        );
        let schemas = &mut components.schemas;
        for (name, schema) in found {
            schemas.entry(name).or_insert(schema);
        }
        // The detail is a passage with its first page of sightings.
        if let Some(RefOr::T(Schema::Object(passage))) = schemas.get("Passage").cloned() {
            let mut detail = passage;
            detail.description = Some(
                "A passage with its first page of sightings; `sightings_next_cursor` is \
                 where the sightings route goes on (`null` when that was all)."
                    .into(),
            );
            detail.properties.insert(
                "sightings".into(),
                ArrayBuilder::new()
                    .items(Ref::from_schema_name("Sighting"))
                    .into(),
            );
            detail.properties.insert(
                "sightings_next_cursor".into(),
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .into(),
            );
            schemas.insert("PassageDetail".into(), RefOr::T(Schema::Object(detail)));
        }
        // A queued read in the exceptions queue carries its kind.
        if let Some(RefOr::T(Schema::Object(read))) = schemas.get("QueuedRead").cloned() {
            let mut item = read;
            item.description = Some("A read kept for an operator, in the queue.".into());
            item.properties.insert(
                "kind".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["unresolved_read"]))
                    .into(),
            );
            schemas.insert("UnresolvedRead".into(), RefOr::T(Schema::Object(item)));
        }
        for name in WHOLE {
            if let Some(RefOr::T(Schema::Object(o))) = schemas.get_mut(*name) {
                o.required = o.properties.keys().cloned().collect();
                o.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
        for name in ["Error", "CorrectionBody", "ResolveBody"] {
            if let Some(RefOr::T(Schema::Object(o))) = schemas.get_mut(name) {
                *o = closed(ObjectBuilder::from(o.clone())).build();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use actix_web::http::header;
    use actix_web::test as actix_test;
    use actix_web::{web, App};

    use super::*;

    /// The (method, path) pairs of the document.
    fn documented() -> BTreeSet<(String, String)> {
        let mut doc = ApiDoc::openapi();
        let mut out = BTreeSet::new();
        for (path, item) in doc.paths.paths.iter_mut() {
            for (method, _) in operations(item) {
                out.insert((method.to_string(), path.clone()));
            }
        }
        out
    }

    /// The path patterns the app registers, read from actix-web's own
    /// resource map (its `Debug` form is the only way to list it).
    fn patterns(map: &str) -> BTreeSet<String> {
        map.split("patterns: Single(\"")
            .skip(1)
            .filter_map(|rest| rest.split_once("\")").map(|(p, _)| p.to_string()))
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// The (method, path) pairs the app registers: each pattern from the
    /// resource map, with the methods its 405 answer allows. The app is
    /// built from [`crate::routes::configure`] alone, without state, so no
    /// handler runs.
    async fn registered() -> BTreeSet<(String, String)> {
        let app = actix_test::init_service(
            App::new()
                .configure(crate::routes::configure)
                .default_service(web::to(|req: HttpRequest| async move {
                    HttpResponse::NotFound().body(format!("{:?}", req.resource_map()))
                })),
        )
        .await;
        let req = actix_test::TestRequest::get()
            .uri("/no/such/route")
            .to_request();
        let res = actix_test::call_service(&app, req).await;
        let body = actix_test::read_body(res).await;
        let map = String::from_utf8(body.to_vec()).unwrap();
        let mut out = BTreeSet::new();
        for pattern in patterns(&map) {
            let uri = pattern.replace("{id}", "00000000-0000-0000-0000-000000000000");
            let probe = Method::from_bytes(b"PROBE").unwrap();
            let req = actix_test::TestRequest::default()
                .method(probe)
                .uri(&uri)
                .to_request();
            let res = actix_test::call_service(&app, req).await;
            assert_eq!(res.status(), 405, "{pattern} took an unknown method");
            let allow = res
                .headers()
                .get(header::ALLOW)
                .unwrap_or_else(|| panic!("{pattern}: 405 without Allow"))
                .to_str()
                .unwrap()
                .to_string();
            for method in allow.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                out.insert((method.to_string(), pattern.clone()));
            }
        }
        out
    }

    #[actix_web::test]
    async fn every_registered_route_is_documented_and_nothing_else() {
        let registered = registered().await;
        // The listing must be real: it holds routes known to exist.
        for known in [
            ("POST", "/api/v1/recognitions"),
            ("PATCH", "/api/v1/logs/{id}"),
            ("HEAD", "/healthz"),
            ("GET", "/ws/logs"),
            ("GET", PATH),
        ] {
            assert!(
                registered.contains(&(known.0.to_string(), known.1.to_string())),
                "{known:?} not found in {registered:?}"
            );
        }
        let documented = documented();
        let missing: Vec<_> = registered.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&registered).collect();
        assert!(
            missing.is_empty(),
            "routes without documentation: {missing:?}"
        );
        assert!(extra.is_empty(), "documented but not routes: {extra:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_error_code() {
        let doc: serde_json::Value = serde_json::from_str(json()).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let codes: BTreeSet<String> = doc["components"]["schemas"]["ErrorCode"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let answered: BTreeSet<String> =
            every_error().iter().map(|e| e.code().to_string()).collect();
        assert_eq!(codes, answered);
        let listed: BTreeSet<String> = schema::ErrorCode::ALL
            .iter()
            .map(|c| {
                serde_json::to_value(c)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(listed, answered);
        // Every reference resolves.
        let text = json();
        for name in text.split("\"#/components/schemas/").skip(1) {
            let name = name.split('"').next().unwrap();
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{name} is referenced but not defined"
            );
        }
    }

    /// One of each error; the match makes a new variant a compile error
    /// here until it is listed.
    fn every_error() -> Vec<ApiError> {
        let all = vec![
            ApiError::MalformedJson(String::new()),
            ApiError::bad_param("p", "m"),
            ApiError::BadHandshake {
                header: "upgrade",
                message: "m",
            },
            ApiError::Validation(gatelog_core::FieldError::new(
                gatelog_core::Field::Body,
                "m",
            )),
            ApiError::TooLarge { limit: 1 },
            ApiError::ReadTooLarge { limit: 1 },
            ApiError::IdConflict {
                earlier: uuid::Uuid::nil(),
            },
            ApiError::NotFound(String::new()),
            ApiError::AlreadyResolved(String::new()),
            ApiError::MethodNotAllowed {
                method: String::new(),
                path: String::new(),
            },
            ApiError::Unauthorized(""),
            ApiError::Forbidden(""),
            ApiError::RateLimited {
                retry_after_secs: 1,
            },
            ApiError::Timeout,
            ApiError::Unavailable,
            ApiError::TooManyConnections {
                limit: "l",
                max: 1,
                scope: "s",
            },
            ApiError::ReadOnly(""),
            ApiError::Internal(String::new()),
        ];
        for e in &all {
            match e {
                ApiError::MalformedJson(_)
                | ApiError::BadParameter { .. }
                | ApiError::BadHandshake { .. }
                | ApiError::Validation(_)
                | ApiError::TooLarge { .. }
                | ApiError::ReadTooLarge { .. }
                | ApiError::IdConflict { .. }
                | ApiError::NotFound(_)
                | ApiError::AlreadyResolved(_)
                | ApiError::MethodNotAllowed { .. }
                | ApiError::Unauthorized(_)
                | ApiError::Forbidden(_)
                | ApiError::RateLimited { .. }
                | ApiError::Timeout
                | ApiError::Unavailable
                | ApiError::TooManyConnections { .. }
                | ApiError::ReadOnly(_)
                | ApiError::Internal(_) => {}
            }
        }
        all
    }
}
