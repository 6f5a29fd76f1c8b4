//! The records gatelog keeps: passages and their sightings.
//!
//! A [`Passage`] is one container going through the gate: the seed's
//! `container_logs` row. Each accepted read is a [`Sighting`] attached to
//! exactly one passage, and keeps the input as it was received, so that a
//! later correction of a passage's number can be audited against the reads
//! that made it. A read that could not be made into a number is a
//! [`QueuedRead`] until an operator resolves it into a sighting.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// Why a read or passage is marked as suspicious. Stored as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(u16);

impl Flags {
    /// The read carried no check digit.
    pub const CHECK_DIGIT_MISSING: Flags = Flags(1);
    /// The read's check digit differs from the computed one.
    pub const CHECK_DIGIT_MISMATCH: Flags = Flags(2);
    /// The category letter is not U, J or Z.
    pub const CATEGORY_UNKNOWN: Flags = Flags(4);
    /// The camera's time was more than a day ahead of the server's clock,
    /// or before 2000; the receive time was used, and `raw` keeps the
    /// camera's.
    pub const CLOCK_SKEW: Flags = Flags(8);
    /// The read carried no `captured_at`; the receive time was used.
    pub const TIME_ASSUMED: Flags = Flags(16);
    /// The owner code is not on the configured allowlist.
    pub const OWNER_UNKNOWN: Flags = Flags(32);
    /// The ISO 6346 size-type code is not two size and two type characters
    /// as the standard defines them.
    pub const ISO_TYPE_INVALID: Flags = Flags(64);
    /// A gate-out of a container that was not in the yard.
    pub const OUT_WITHOUT_IN: Flags = Flags(128);
    /// A second gate-in without a gate-out between.
    pub const IN_WHILE_IN: Flags = Flags(256);

    const NAMES: [(Flags, &'static str); 9] = [
        (Flags::CHECK_DIGIT_MISSING, "check_digit_missing"),
        (Flags::CHECK_DIGIT_MISMATCH, "check_digit_mismatch"),
        (Flags::CATEGORY_UNKNOWN, "category_unknown"),
        (Flags::CLOCK_SKEW, "clock_skew"),
        (Flags::TIME_ASSUMED, "time_assumed"),
        (Flags::OWNER_UNKNOWN, "owner_unknown"),
        (Flags::ISO_TYPE_INVALID, "iso_type_invalid"),
        (Flags::OUT_WITHOUT_IN, "out_without_in"),
        (Flags::IN_WHILE_IN, "in_while_in"),
    ];

    pub const fn empty() -> Self {
        Flags(0)
    }

    pub fn bits(self) -> u16 {
        self.0
    }

    /// The bits as PostgreSQL's `smallint` holds them; every flag fits.
    pub fn to_i16(self) -> i16 {
        i16::try_from(self.0).unwrap_or(i16::MAX)
    }

    /// Rebuilds flags from stored bits, dropping any this version does not
    /// know.
    pub fn from_bits_truncate(bits: i64) -> Self {
        Flags((bits & 0b1_1111_1111) as u16)
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    pub fn remove(&mut self, other: Flags) {
        self.0 &= !other.0;
    }

    /// The stable names of the set flags, as the API shows them.
    pub fn names(self) -> Vec<&'static str> {
        Self::NAMES
            .iter()
            .filter(|(f, _)| self.contains(*f))
            .map(|(_, n)| *n)
            .collect()
    }
}

impl Serialize for Flags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// Which way a movement goes through the gate, from its camera's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    In,
    Out,
    /// A camera that is not configured with a direction.
    #[default]
    None,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
            Direction::None => "none",
        }
    }

    /// Parses `in`, `out` or `none`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "in" => Some(Direction::In),
            "out" => Some(Direction::Out),
            "none" => Some(Direction::None),
            _ => None,
        }
    }

    /// Whether reads of these directions may be one passage: an in and an
    /// out never are, even inside the window (a truck turned away at the
    /// gate is two movements).
    pub fn compatible(self, other: Direction) -> bool {
        self == other || self == Direction::None || other == Direction::None
    }
}

/// Where a passage stands with the central database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Its latest version has not been confirmed by the target yet.
    Pending,
    /// The target confirmed its latest version.
    Synced,
    /// The target refused it for a reason no retry can fix.
    DeadLetter,
}

/// Why a number was changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CorrectionRule {
    /// A character of the wrong kind for its position (a digit in the owner
    /// code, a letter in the serial) read as its look-alike.
    Lookalike,
    /// The one plausible single substitution that passes the check digit.
    CheckDigit,
    /// The one plausible candidate whose owner code is on the allowlist.
    OwnerCode,
    /// The passage's reads, weighed, agree on another number.
    Consensus,
    /// Set by hand.
    Operator,
}

impl CorrectionRule {
    /// The stable name, as the API and the store spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            CorrectionRule::Lookalike => "lookalike",
            CorrectionRule::CheckDigit => "check_digit",
            CorrectionRule::OwnerCode => "owner_code",
            CorrectionRule::Consensus => "consensus",
            CorrectionRule::Operator => "operator",
        }
    }

    /// The rule with this stable name, as [`CorrectionRule::as_str`]
    /// spells it.
    pub fn parse(name: &str) -> Option<Self> {
        [
            CorrectionRule::Lookalike,
            CorrectionRule::CheckDigit,
            CorrectionRule::OwnerCode,
            CorrectionRule::Consensus,
            CorrectionRule::Operator,
        ]
        .into_iter()
        .find(|r| r.as_str() == name)
    }
}

/// One change of a passage's number, kept in its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Correction {
    /// The number before.
    pub from: String,
    /// The number after.
    pub to: String,
    pub rule: CorrectionRule,
    pub at: DateTime<Utc>,
    /// Who: `gatelog` for automatic rules, the key's name for an operator.
    pub by: String,
    /// Why, in the operator's words, when a correction by hand gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One container's passage through the gate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Passage {
    /// Generated on site (UUID v7, so ids sort by creation); the
    /// idempotency key everywhere, including the central database.
    pub id: Uuid,
    pub site_id: String,
    /// The normalised number, with the check digit when known.
    pub container: String,
    /// Owner code with category letter, such as `MSCU`.
    pub container_owner: String,
    /// The six-digit serial.
    pub container_number: String,
    pub check_digit: Option<u8>,
    /// True only when a check digit is known and matches.
    pub check_digit_ok: bool,
    pub flags: Flags,
    /// The earliest sighting's capture time.
    pub captured_at: DateTime<Utc>,
    /// The latest sighting's capture time.
    pub last_seen_at: DateTime<Utc>,
    /// How many sightings the passage has.
    pub seen_count: i64,
    pub camera_id: Option<String>,
    pub source_video: Option<String>,
    pub cropped_image_ref: Option<String>,
    pub confidence: Option<f64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Increases with every change; sync sends it so the centre never lets
    /// an older state overwrite a newer one.
    pub version: i64,
    pub sync_state: SyncState,
    /// Every change of the number, oldest first.
    pub corrections: Vec<Correction>,
    /// The direction of its camera (the first that has one).
    pub direction: Direction,
    /// The lane of its camera.
    pub lane: Option<String>,
    /// The truck's licence plate, the latest a read carried.
    pub truck_plate: Option<String>,
    /// The ISO 6346 size-type code, such as `22G1`, the latest a read
    /// carried.
    pub iso_type: Option<String>,
    /// On a gate-out: how long the container stayed since its gate-in.
    pub dwell_secs: Option<i64>,
}

/// One accepted read, attached to its passage.
#[derive(Debug, Clone, Serialize)]
pub struct Sighting {
    pub id: Uuid,
    pub passage_id: Uuid,
    pub captured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The input exactly as received: its JSON text, byte for byte.
    pub raw: Box<serde_json::value::RawValue>,
    /// The number this read carried, normalised.
    pub container: String,
    pub source_video: Option<String>,
    pub camera_id: Option<String>,
    pub cropped_image_ref: Option<String>,
    pub confidence: Option<f64>,
    pub check_digit_ok: bool,
    pub flags: Flags,
    /// The read's own text, when it was corrected to `container`: a
    /// look-alike character, the one candidate the check digit allows, or
    /// an operator's number for a read that could not be made into one.
    pub corrected_from: Option<String>,
    /// The rule that corrected the read, beside `corrected_from`.
    pub rule: Option<CorrectionRule>,
}

/// A read kept in the exceptions queue: its text has the shape of a
/// container number but could not be made into one.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedRead {
    pub id: Uuid,
    pub site_id: String,
    /// The text as read, upper case, without separators.
    pub text: String,
    pub captured_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub flags: Flags,
    pub camera_id: Option<String>,
    pub source_video: Option<String>,
    pub cropped_image_ref: Option<String>,
    pub confidence: Option<f64>,
    /// The input exactly as received: its JSON text, byte for byte.
    pub raw: Box<serde_json::value::RawValue>,
    /// Set once an operator resolved it.
    pub resolved: Option<Resolved>,
}

/// How an operator resolved a queued read.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Resolved {
    pub at: DateTime<Utc>,
    /// The name of the operator's key (`local` with no keys configured).
    pub by: String,
    /// The number the operator gave.
    pub container: String,
    /// The passage the read landed in as a sighting.
    pub passage_id: Uuid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_serialise_by_name() {
        let mut f = Flags::empty();
        f.insert(Flags::CHECK_DIGIT_MISSING);
        f.insert(Flags::CATEGORY_UNKNOWN);
        assert_eq!(
            serde_json::to_string(&f).unwrap(),
            r#"["check_digit_missing","category_unknown"]"#
        );
        assert_eq!(Flags::from_bits_truncate(i64::from(f.bits())), f);
        assert_eq!(Flags::from_bits_truncate(0xffff).bits(), 0b1_1111_1111);
    }

    #[test]
    fn rules_parse_their_own_names() {
        for rule in [
            CorrectionRule::Lookalike,
            CorrectionRule::CheckDigit,
            CorrectionRule::OwnerCode,
            CorrectionRule::Consensus,
            CorrectionRule::Operator,
        ] {
            assert_eq!(CorrectionRule::parse(rule.as_str()), Some(rule));
            assert_eq!(
                serde_json::to_value(rule).unwrap(),
                serde_json::Value::from(rule.as_str())
            );
        }
        assert_eq!(CorrectionRule::parse("guess"), None);
    }
}
