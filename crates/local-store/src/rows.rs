//! The mapping between SQLite rows and domain types.
//!
//! Timestamps are stored as microseconds since the Unix epoch and ids as
//! hyphenated UUID text; this module is the only place that converts.

use chrono::{DateTime, Utc};
use gatelog_core::passage::SyncState;
use gatelog_core::{
    CorrectionRule, Direction, Flags, Passage, QueuedRead, Resolved, Sighting, Unresolved,
};
use uuid::Uuid;

use crate::StoreError;

macro_rules! passage_write_columns {
    () => {
        "id, site_id, container, container_owner, container_number, check_digit, check_digit_ok, \
         flags, captured_at, last_seen_at, seen_count, camera_id, source_video, cropped_image_ref, \
         confidence, created_at, updated_at, version, corrections, direction, lane, truck_plate, \
         iso_type, dwell_secs"
    };
}

/// The columns the writer sets when it inserts or updates a passage.
pub(crate) const PASSAGE_WRITE_COLUMNS: &str = passage_write_columns!();

/// Every passage column, in the order [`PassageRow`] reads them.
pub(crate) const PASSAGE_COLUMNS: &str = concat!(
    passage_write_columns!(),
    ", synced_version, dead_letter_version"
);

#[derive(sqlx::FromRow)]
pub(crate) struct PassageRow {
    id: String,
    site_id: String,
    container: String,
    container_owner: String,
    container_number: String,
    check_digit: Option<i64>,
    check_digit_ok: i64,
    flags: i64,
    captured_at: i64,
    last_seen_at: i64,
    seen_count: i64,
    camera_id: Option<String>,
    source_video: Option<String>,
    cropped_image_ref: Option<String>,
    confidence: Option<f64>,
    created_at: i64,
    updated_at: i64,
    version: i64,
    corrections: String,
    direction: String,
    lane: Option<String>,
    truck_plate: Option<String>,
    iso_type: Option<String>,
    dwell_secs: Option<i64>,
    synced_version: i64,
    dead_letter_version: Option<i64>,
}

impl TryFrom<PassageRow> for Passage {
    type Error = StoreError;

    fn try_from(r: PassageRow) -> Result<Self, StoreError> {
        let sync_state = if r.synced_version >= r.version {
            SyncState::Synced
        } else if r.dead_letter_version == Some(r.version) {
            SyncState::DeadLetter
        } else {
            SyncState::Pending
        };
        Ok(Passage {
            id: parse_id(&r.id)?,
            site_id: r.site_id,
            container: r.container,
            container_owner: r.container_owner,
            container_number: r.container_number,
            check_digit: r.check_digit.and_then(|d| u8::try_from(d).ok()),
            check_digit_ok: r.check_digit_ok != 0,
            flags: Flags::from_bits_truncate(r.flags),
            captured_at: time(r.captured_at)?,
            last_seen_at: time(r.last_seen_at)?,
            seen_count: r.seen_count,
            camera_id: r.camera_id,
            source_video: r.source_video,
            cropped_image_ref: r.cropped_image_ref,
            confidence: r.confidence,
            created_at: time(r.created_at)?,
            updated_at: time(r.updated_at)?,
            version: r.version,
            sync_state,
            corrections: serde_json::from_str(&r.corrections)
                .map_err(|e| StoreError::Corrupt(format!("passage corrections: {e}")))?,
            direction: Direction::parse(&r.direction).ok_or_else(|| {
                StoreError::Corrupt(format!("passage direction {:?}", r.direction))
            })?,
            lane: r.lane,
            truck_plate: r.truck_plate,
            iso_type: r.iso_type,
            dwell_secs: r.dwell_secs,
        })
    }
}

pub(crate) const SIGHTING_COLUMNS: &str = "id, passage_id, captured_at, received_at, container, \
     check_digit_ok, flags, camera_id, source_video, cropped_image_ref, confidence, raw, \
     corrected_from, rule";

#[derive(sqlx::FromRow)]
pub(crate) struct SightingRow {
    id: String,
    passage_id: String,
    captured_at: i64,
    received_at: i64,
    container: String,
    check_digit_ok: i64,
    flags: i64,
    camera_id: Option<String>,
    source_video: Option<String>,
    cropped_image_ref: Option<String>,
    confidence: Option<f64>,
    raw: String,
    corrected_from: Option<String>,
    rule: Option<String>,
}

impl TryFrom<SightingRow> for Sighting {
    type Error = StoreError;

    fn try_from(r: SightingRow) -> Result<Self, StoreError> {
        let raw = raw_json(r.raw)?;
        Ok(Sighting {
            id: parse_id(&r.id)?,
            passage_id: parse_id(&r.passage_id)?,
            captured_at: time(r.captured_at)?,
            received_at: time(r.received_at)?,
            raw,
            container: r.container,
            source_video: r.source_video,
            camera_id: r.camera_id,
            cropped_image_ref: r.cropped_image_ref,
            confidence: r.confidence,
            check_digit_ok: r.check_digit_ok != 0,
            flags: Flags::from_bits_truncate(r.flags),
            corrected_from: r.corrected_from,
            // A rule this version does not know (written by a newer one)
            // is left out rather than failing the whole read.
            rule: r.rule.as_deref().and_then(CorrectionRule::parse),
        })
    }
}

/// Every column of `unresolved_reads`, in the order [`UnresolvedRow`]
/// reads them.
pub(crate) const UNRESOLVED_COLUMNS: &str = "id, site_id, client_id, content_digest, text, \
     captured_at, received_at, flags, camera_id, source_video, cropped_image_ref, confidence, raw, \
     resolved_at, resolved_by, resolved_container, resolved_passage_id, direction, lane, \
     truck_plate, iso_type";

#[derive(sqlx::FromRow)]
pub(crate) struct UnresolvedRow {
    id: String,
    site_id: String,
    client_id: Option<String>,
    content_digest: String,
    text: String,
    captured_at: i64,
    pub(crate) received_at: i64,
    flags: i64,
    camera_id: Option<String>,
    source_video: Option<String>,
    cropped_image_ref: Option<String>,
    confidence: Option<f64>,
    raw: String,
    resolved_at: Option<i64>,
    resolved_by: Option<String>,
    resolved_container: Option<String>,
    resolved_passage_id: Option<String>,
    direction: String,
    lane: Option<String>,
    truck_plate: Option<String>,
    iso_type: Option<String>,
}

impl UnresolvedRow {
    /// The read as the parser made it, to be resolved into a sighting.
    pub(crate) fn to_unresolved(&self) -> Result<Unresolved, StoreError> {
        Ok(Unresolved {
            id: self.client_id.as_deref().map(parse_id).transpose()?,
            content_digest: self.content_digest.clone(),
            text: self.text.clone(),
            captured_at: time(self.captured_at)?,
            flags: Flags::from_bits_truncate(self.flags),
            camera_id: self.camera_id.clone(),
            source_video: self.source_video.clone(),
            cropped_image_ref: self.cropped_image_ref.clone(),
            confidence: self.confidence,
            direction: Direction::parse(&self.direction).ok_or_else(|| {
                StoreError::Corrupt(format!("queued read direction {:?}", self.direction))
            })?,
            lane: self.lane.clone(),
            truck_plate: self.truck_plate.clone(),
            iso_type: self.iso_type.clone(),
            raw: self.raw.clone(),
        })
    }
}

impl TryFrom<UnresolvedRow> for QueuedRead {
    type Error = StoreError;

    fn try_from(r: UnresolvedRow) -> Result<Self, StoreError> {
        let resolved = match (
            r.resolved_at,
            r.resolved_by,
            r.resolved_container,
            r.resolved_passage_id,
        ) {
            (Some(at), Some(by), Some(container), Some(passage_id)) => Some(Resolved {
                at: time(at)?,
                by,
                container,
                passage_id: parse_id(&passage_id)?,
            }),
            (None, ..) => None,
            _ => {
                return Err(StoreError::Corrupt(format!(
                    "queued read {} is resolved only in part",
                    r.id
                )))
            }
        };
        Ok(QueuedRead {
            id: parse_id(&r.id)?,
            site_id: r.site_id,
            text: r.text,
            captured_at: time(r.captured_at)?,
            received_at: time(r.received_at)?,
            flags: Flags::from_bits_truncate(r.flags),
            camera_id: r.camera_id,
            source_video: r.source_video,
            cropped_image_ref: r.cropped_image_ref,
            confidence: r.confidence,
            raw: raw_json(r.raw)?,
            resolved,
        })
    }
}

/// Stored raw input as JSON text; input that is not JSON (it always is
/// when it came through the API) is shown as a string.
fn raw_json(raw: String) -> Result<Box<serde_json::value::RawValue>, StoreError> {
    serde_json::value::RawValue::from_string(raw.clone()).or_else(|_| {
        serde_json::value::to_raw_value(&raw).map_err(|e| StoreError::Corrupt(e.to_string()))
    })
}

pub(crate) fn parse_id(s: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(s).map_err(|_| StoreError::Corrupt(format!("stored id {s:?} is not a UUID")))
}

pub(crate) fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("stored time {micros} is out of range")))
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// The current time at the precision the store keeps.
pub(crate) fn now() -> DateTime<Utc> {
    let t = Utc::now();
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}
