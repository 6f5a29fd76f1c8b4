//! The mapping between SQLite rows and domain types.
//!
//! Timestamps are stored as microseconds since the Unix epoch and ids as
//! hyphenated UUID text; this module is the only place that converts.

use chrono::{DateTime, Utc};
use gatelog_core::passage::SyncState;
use gatelog_core::{Direction, Flags, Passage, Sighting};
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
     check_digit_ok, flags, camera_id, source_video, cropped_image_ref, confidence, raw";

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
}

impl TryFrom<SightingRow> for Sighting {
    type Error = StoreError;

    fn try_from(r: SightingRow) -> Result<Self, StoreError> {
        // The raw input is kept as received; if it is not JSON (it always is
        // when it came through the API) it is shown as a string.
        let raw = serde_json::value::RawValue::from_string(r.raw.clone()).or_else(|_| {
            serde_json::value::to_raw_value(&r.raw).map_err(|e| StoreError::Corrupt(e.to_string()))
        })?;
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
        })
    }
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
