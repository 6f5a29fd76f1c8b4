//! The central row: how a local passage looks in `container_logs`.

use chrono::{DateTime, Utc};
use gatelog_core::{Correction, Passage};
use serde::Serialize;
use uuid::Uuid;

/// The columns sync writes, in the order both targets send them. The
/// names are plain identifiers, so PostgREST's `columns=` takes them
/// unquoted.
pub(crate) const COLUMNS: [&str; 23] = [
    "id",
    "site_id",
    "captured_at",
    "container_owner",
    "container_number",
    "check_digit",
    "check_digit_ok",
    "flags",
    "source_video",
    "cropped_image_ref",
    "camera_id",
    "confidence",
    "seen_count",
    "last_seen_at",
    "created_at",
    "updated_at",
    "version",
    "corrections",
    "direction",
    "lane",
    "truck_plate",
    "iso_type",
    "dwell_secs",
];

/// One passage as JSON for the REST target. Field names match
/// [`COLUMNS`].
#[derive(Debug, Serialize)]
pub(crate) struct CentralRow<'a> {
    id: Uuid,
    site_id: &'a str,
    captured_at: DateTime<Utc>,
    container_owner: &'a str,
    container_number: &'a str,
    check_digit: Option<i16>,
    check_digit_ok: bool,
    /// The bit set of [`gatelog_core::Flags`].
    flags: i16,
    source_video: Option<&'a str>,
    cropped_image_ref: Option<&'a str>,
    camera_id: Option<&'a str>,
    confidence: Option<f64>,
    seen_count: i64,
    last_seen_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: i64,
    /// The history of the number, oldest first.
    corrections: &'a [Correction],
    direction: &'static str,
    lane: Option<&'a str>,
    truck_plate: Option<&'a str>,
    iso_type: Option<&'a str>,
    dwell_secs: Option<i64>,
}

impl<'a> From<&'a Passage> for CentralRow<'a> {
    fn from(p: &'a Passage) -> Self {
        Self {
            id: p.id,
            site_id: &p.site_id,
            captured_at: p.captured_at,
            container_owner: &p.container_owner,
            container_number: &p.container_number,
            check_digit: p.check_digit.map(i16::from),
            check_digit_ok: p.check_digit_ok,
            flags: p.flags.to_i16(),
            source_video: p.source_video.as_deref(),
            cropped_image_ref: p.cropped_image_ref.as_deref(),
            camera_id: p.camera_id.as_deref(),
            confidence: p.confidence,
            seen_count: p.seen_count,
            last_seen_at: p.last_seen_at,
            created_at: p.created_at,
            updated_at: p.updated_at,
            version: p.version,
            corrections: &p.corrections,
            direction: p.direction.as_str(),
            lane: p.lane.as_deref(),
            truck_plate: p.truck_plate.as_deref(),
            iso_type: p.iso_type.as_deref(),
            dwell_secs: p.dwell_secs,
        }
    }
}
