//! One OCR read, as received and as accepted.
//!
//! [`RawRead`] holds the fields a client sent, still as text. [`Read::parse`]
//! turns it into a [`Read`] or a [`FieldError`] that names the field at
//! fault. Malformed owner codes, serials and timestamps are rejected; a
//! missing or wrong check digit and an unknown category letter are flagged,
//! or rejected when [`ValidationConfig`] says so.
//!
//! A camera whose clock is wrong still saw a real truck, so a read is never
//! refused for its time: a missing `captured_at`, one more than a day ahead
//! of the server's clock, or one before 2000 is replaced by the time the
//! server received the read and flagged (`time_assumed`, `clock_skew`); the
//! camera's own time stays in `raw`.

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::container::{CheckDigit, CheckStatus, ContainerNumber, OwnerCode};
use crate::error::{Field, FieldError};
use crate::gate::Cameras;
use crate::passage::{Direction, Flags};
use crate::recognize::{self, Interpretation, OwnerCodes, ReadCorrection};

/// The longest text gatelog keeps in a metadata field such as `camera_id`.
pub const MAX_TEXT_LEN: usize = 1024;

/// The largest read, in bytes of JSON as received, that gatelog stores as a
/// sighting's `raw`. Unknown fields are kept there, so without a cap a
/// client could grow the store as fast as it may post.
pub const MAX_RAW_LEN: usize = 4096;

/// How far ahead of the server's clock a camera's time may be before it
/// is distrusted. Cameras and servers drift by seconds, not by a day.
const MAX_CLOCK_LEAD: Duration = Duration::days(1);

/// A check digit as OCR modules send it: a number or a one-character string.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckDigitInput {
    Number(f64),
    Text(String),
}

/// The fields of one read as received, before validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRead {
    /// The client's own id (a UUID), which makes a retried POST idempotent.
    pub id: Option<String>,
    /// The whole number in one string, such as `"CSQU 305438 3"`.
    pub container: Option<String>,
    /// The owner code with category letter, such as `"MSCU"`.
    pub owner: Option<String>,
    /// The six-digit serial.
    pub number: Option<String>,
    pub check_digit: Option<CheckDigitInput>,
    /// When the camera captured the frame, RFC 3339.
    pub captured_at: Option<String>,
    pub camera_id: Option<String>,
    pub source_video: Option<String>,
    pub cropped_image_ref: Option<String>,
    /// The OCR module's confidence, 0 to 1.
    pub confidence: Option<f64>,
    /// The truck's licence plate, from a plate camera in the same lane.
    pub truck_plate: Option<String>,
    /// The ISO 6346 size-type code, such as `22G1`.
    pub iso_type: Option<String>,
    /// The input exactly as received, kept with the sighting so that no
    /// read is ever lost and a later correction can be audited.
    pub raw: String,
}

/// What to do with a suspicious but well-formed read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlagPolicy {
    /// Accept the read and mark it.
    #[default]
    Flag,
    /// Refuse the read with a 422.
    Reject,
}

/// How strictly reads are validated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ValidationConfig {
    /// A read with no check digit.
    pub missing_check_digit: FlagPolicy,
    /// A read whose check digit does not match the computed one.
    pub wrong_check_digit: FlagPolicy,
    /// A read whose category letter is not U, J or Z.
    pub unknown_category: FlagPolicy,
}

/// What the server needs to parse a read.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext<'a> {
    pub validation: &'a ValidationConfig,
    /// The owner codes expected at the yard, when the operator gave some.
    pub owners: Option<&'a OwnerCodes>,
    /// The configured cameras: a read takes its camera's direction and
    /// lane.
    pub cameras: Option<&'a Cameras>,
    /// When the read arrived: the time used when the camera's own is
    /// missing or not to be trusted.
    pub received_at: DateTime<Utc>,
}

/// A parsed read: a number, or text kept for an operator.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Read(Read),
    Unresolved(Unresolved),
}

/// A read whose text has the shape of a container number (10 or 11
/// letters and digits) but cannot be made into one. It is stored, never
/// refused, and waits for an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Unresolved {
    pub id: Option<Uuid>,
    pub content_digest: String,
    /// The text as read, upper case, without separators.
    pub text: String,
    pub captured_at: DateTime<Utc>,
    pub flags: Flags,
    pub camera_id: Option<String>,
    pub source_video: Option<String>,
    pub cropped_image_ref: Option<String>,
    pub confidence: Option<f64>,
    /// The direction and lane of its camera, its plate and size-type code,
    /// kept for the sighting an operator makes of it.
    pub direction: Direction,
    pub lane: Option<String>,
    pub truck_plate: Option<String>,
    pub iso_type: Option<String>,
    pub raw: String,
}

/// The longest licence plate kept.
pub const MAX_PLATE_LEN: usize = 32;

/// A validated read.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    /// The client's idempotency key for this read, scoped to this site. It
    /// is never used as a sighting's or a passage's id.
    pub id: Option<Uuid>,
    /// A digest of what the client sent (the container, its own time and
    /// the metadata), so that a reused `id` with other content is told
    /// apart from a retry.
    pub content_digest: String,
    pub container: ContainerNumber,
    /// How the read's own text was corrected to `container`, if it was.
    pub correction: Option<ReadCorrection>,
    pub flags: Flags,
    pub captured_at: DateTime<Utc>,
    pub camera_id: Option<String>,
    pub source_video: Option<String>,
    pub cropped_image_ref: Option<String>,
    pub confidence: Option<f64>,
    /// The direction of the read's camera.
    pub direction: Direction,
    /// The lane of the read's camera.
    pub lane: Option<String>,
    pub truck_plate: Option<String>,
    /// Upper case; flagged `iso_type_invalid` when malformed.
    pub iso_type: Option<String>,
    pub raw: String,
}

impl Read {
    /// Validates a raw read under `config`, received now.
    pub fn parse(raw: RawRead, config: &ValidationConfig) -> Result<Self, FieldError> {
        Self::parse_at(raw, config, Utc::now())
    }

    /// Validates a raw read under `config`, received at `received_at` (the
    /// time used when the camera's own is missing or not to be trusted).
    /// A read that [`Read::interpret`] would keep as unresolved is an error
    /// here.
    pub fn parse_at(
        raw: RawRead,
        config: &ValidationConfig,
        received_at: DateTime<Utc>,
    ) -> Result<Self, FieldError> {
        let context = ParseContext {
            validation: config,
            owners: None,
            cameras: None,
            received_at,
        };
        match Self::interpret(raw, &context)? {
            Parsed::Read(read) => Ok(read),
            Parsed::Unresolved(u) => Err(FieldError::new(
                Field::Container,
                format!("{:?} cannot be read as a container number", u.text),
            )),
        }
    }

    /// Parses a raw read as the server does: a read whose text has the
    /// shape of a container number but cannot be made into one is
    /// [`Parsed::Unresolved`], kept for an operator rather than refused.
    pub fn interpret(raw: RawRead, context: &ParseContext<'_>) -> Result<Parsed, FieldError> {
        let config = context.validation;
        let id = raw
            .id
            .as_deref()
            .map(|s| {
                Uuid::parse_str(s.trim())
                    .map_err(|_| FieldError::new(Field::Id, "id must be a UUID"))
            })
            .transpose()?;
        let text = container_text(&raw)?;

        let mut flags = Flags::empty();
        let camera_time = raw
            .captured_at
            .as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s.trim())
                    .map(|t| stored_precision(t.with_timezone(&Utc)))
                    .map_err(|_| {
                        FieldError::new(
                            Field::CapturedAt,
                            "captured_at must be an RFC 3339 timestamp with an offset, such as 2024-05-01T08:30:00Z",
                        )
                    })
            })
            .transpose()?;
        let received_at = stored_precision(context.received_at);
        let captured_at = match camera_time {
            None => {
                flags.insert(Flags::TIME_ASSUMED);
                received_at
            }
            Some(t) if t > received_at + MAX_CLOCK_LEAD || t < earliest_trusted() => {
                flags.insert(Flags::CLOCK_SKEW);
                received_at
            }
            Some(t) => t,
        };
        let confidence = match raw.confidence {
            Some(c) if !(0.0..=1.0).contains(&c) || c.is_nan() => {
                return Err(FieldError::new(
                    Field::Confidence,
                    "confidence must be a number from 0 to 1",
                ))
            }
            other => other,
        };
        let camera_id = text_field(raw.camera_id, Field::CameraId)?;
        let source_video = text_field(raw.source_video, Field::SourceVideo)?;
        let cropped_image_ref = text_field(raw.cropped_image_ref, Field::CroppedImageRef)?;
        let truck_plate =
            text_field(raw.truck_plate, Field::TruckPlate)?.map(|p| p.trim().to_uppercase());
        if truck_plate
            .as_ref()
            .is_some_and(|p| p.chars().count() > MAX_PLATE_LEN)
        {
            return Err(FieldError::new(
                Field::TruckPlate,
                format!("truck_plate must be at most {MAX_PLATE_LEN} characters"),
            ));
        }
        let iso_type = text_field(raw.iso_type, Field::IsoType)?.map(|t| {
            t.trim()
                .to_ascii_uppercase()
                .chars()
                .take(16)
                .collect::<String>()
        });
        if iso_type
            .as_deref()
            .is_some_and(|t| !crate::gate::iso_type_valid(t))
        {
            flags.insert(Flags::ISO_TYPE_INVALID);
        }
        let (direction, lane) = context
            .cameras
            .map(|c| c.place(camera_id.as_deref()))
            .unwrap_or_default();
        let content_digest = digest(&[
            &text,
            &camera_time
                .map(|t| t.timestamp_micros().to_string())
                .unwrap_or_default(),
            camera_id.as_deref().unwrap_or_default(),
            source_video.as_deref().unwrap_or_default(),
            cropped_image_ref.as_deref().unwrap_or_default(),
            &confidence.map(|c| c.to_string()).unwrap_or_default(),
            truck_plate.as_deref().unwrap_or_default(),
            iso_type.as_deref().unwrap_or_default(),
        ]);

        let (container, correction) = match recognize::interpret(&text, context.owners) {
            Interpretation::Number { number, correction } => (number, correction),
            Interpretation::Unresolved => {
                return Ok(Parsed::Unresolved(Unresolved {
                    id,
                    content_digest,
                    text,
                    captured_at,
                    flags,
                    camera_id,
                    source_video,
                    cropped_image_ref,
                    confidence,
                    direction,
                    lane,
                    truck_plate,
                    iso_type,
                    raw: raw.raw,
                }))
            }
        };
        match container.check_status() {
            CheckStatus::Valid => {}
            CheckStatus::Missing => {
                if config.missing_check_digit == FlagPolicy::Reject {
                    return Err(FieldError::new(
                        Field::CheckDigit,
                        "check digit is required by this server's configuration",
                    ));
                }
                flags.insert(Flags::CHECK_DIGIT_MISSING);
            }
            CheckStatus::Mismatch => {
                if config.wrong_check_digit == FlagPolicy::Reject {
                    return Err(FieldError::new(
                        Field::CheckDigit,
                        format!(
                            "check digit {} does not match {} computed for {}{}",
                            container
                                .check_digit()
                                .map(|d| d.value())
                                .unwrap_or_default(),
                            container.computed_check_digit(),
                            container.owner(),
                            container.serial()
                        ),
                    ));
                }
                flags.insert(Flags::CHECK_DIGIT_MISMATCH);
            }
        }
        if !container.owner().category_known() {
            if config.unknown_category == FlagPolicy::Reject {
                return Err(FieldError::new(
                    Field::Category,
                    format!(
                        "category letter {:?} is not U, J or Z",
                        container.owner().category()
                    ),
                ));
            }
            flags.insert(Flags::CATEGORY_UNKNOWN);
        }
        if context
            .owners
            .is_some_and(|o| !o.is_empty() && !o.contains(&container.owner()))
        {
            flags.insert(Flags::OWNER_UNKNOWN);
        }
        Ok(Parsed::Read(Self {
            id,
            content_digest,
            container,
            correction,
            flags,
            captured_at,
            camera_id,
            source_video,
            cropped_image_ref,
            confidence,
            direction,
            lane,
            truck_plate,
            iso_type,
            raw: raw.raw,
        }))
    }

    /// Microseconds since the Unix epoch, the unit the dedup rule uses.
    pub fn captured_micros(&self) -> i64 {
        self.captured_at.timestamp_micros()
    }
}

/// The read's container as one compact text (see [`recognize::compact`]),
/// from `container` or from `owner` and `number`, with a separate
/// `check_digit` appended. Text that cannot have the shape of a container
/// number is an error naming its field.
fn container_text(raw: &RawRead) -> Result<String, FieldError> {
    let given_digit = raw
        .check_digit
        .as_ref()
        .map(|d| match d {
            CheckDigitInput::Number(n) if n.fract() == 0.0 && (0.0..=9.0).contains(n) => {
                // In range by the guard above.
                Ok((b'0' + *n as u8) as char)
            }
            CheckDigitInput::Number(n) => Err(FieldError::new(
                Field::CheckDigit,
                format!("check digit must be a single digit 0-9; got {n}"),
            )),
            // A letter may be a digit's look-alike; recognition decides.
            CheckDigitInput::Text(s) => match s.trim().as_bytes() {
                [c] if c.is_ascii_alphanumeric() => Ok(c.to_ascii_uppercase() as char),
                _ => CheckDigit::parse(s).map(|d| (b'0' + d.value()) as char),
            },
        })
        .transpose()?;

    match (&raw.container, &raw.owner, &raw.number) {
        (Some(c), None, None) => {
            let Some(mut text) = recognize::compact(c) else {
                // Not the shape of a number: the parser names the problem.
                return Err(ContainerNumber::parse(c).err().unwrap_or_else(|| {
                    FieldError::new(Field::Container, "container is not a container number")
                }));
            };
            match (text.len(), given_digit) {
                (10, Some(d)) => text.push(d),
                (11, Some(d)) if text.ends_with(d) => {}
                (11, Some(_)) => {
                    return Err(FieldError::new(
                        Field::CheckDigit,
                        "check_digit disagrees with the check digit inside container",
                    ))
                }
                _ => {}
            }
            Ok(text)
        }
        (None, Some(owner), Some(number)) => {
            let owner = owner.trim();
            if owner.len() != 4 || !owner.bytes().all(|b| b.is_ascii_alphanumeric()) {
                return Err(OwnerCode::parse(owner).err().unwrap_or_else(|| {
                    FieldError::new(Field::Owner, "owner must be four letters")
                }));
            }
            let number = number.trim();
            let serial_shaped = match (number.len(), given_digit) {
                (6, _) | (7, None) => number.bytes().all(|b| b.is_ascii_alphanumeric()),
                _ => false,
            };
            if !serial_shaped {
                return Err(FieldError::new(
                    Field::Number,
                    format!(
                        "serial number must be exactly six digits; got {:?}",
                        number.chars().take(32).collect::<String>()
                    ),
                ));
            }
            let mut text = format!("{owner}{number}").to_ascii_uppercase();
            if let Some(d) = given_digit {
                text.push(d);
            }
            Ok(text)
        }
        (None, None, Some(_)) => Err(FieldError::new(
            Field::Owner,
            "owner is required with number (or send the whole number as container)",
        )),
        (None, Some(_), None) => Err(FieldError::new(
            Field::Number,
            "number is required with owner (or send the whole number as container)",
        )),
        (None, None, None) => Err(FieldError::new(
            Field::Container,
            "a container number is required: send container, or owner and number",
        )),
        (Some(_), _, _) => Err(FieldError::new(
            Field::Container,
            "send either container or owner and number, not both",
        )),
    }
}

/// The earliest camera time that is believed: no gate camera feeding
/// gatelog recorded before 2000, and such times come from reset clocks.
fn earliest_trusted() -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2000, 1, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or_default()
}

/// A time as the store keeps it: whole microseconds, and a leap second
/// (`23:59:60`) held at the last microsecond of its minute, so that the
/// answer to a read shows exactly what was stored, on the same day.
fn stored_precision(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    let micros = if nanos >= 1_000_000_000 {
        999_999
    } else {
        nanos / 1_000
    };
    t.with_nanosecond(micros * 1_000).unwrap_or(t)
}

/// A hex SHA-256 of the parts, each length-prefixed so that no two lists
/// of parts share a digest.
fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn text_field(value: Option<String>, field: Field) -> Result<Option<String>, FieldError> {
    match value {
        Some(s) if s.len() > MAX_TEXT_LEN => Err(FieldError::new(
            field,
            format!("{field} must be at most {MAX_TEXT_LEN} bytes"),
        )),
        Some(s) if s.trim().is_empty() => Ok(None),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> RawRead {
        RawRead {
            owner: Some("mscu".into()),
            number: Some("123456".into()),
            check_digit: Some(CheckDigitInput::Number(6.0)),
            captured_at: Some("2024-05-01T08:30:00+09:00".into()),
            raw: "{}".into(),
            ..RawRead::default()
        }
    }

    fn parse(r: RawRead) -> Result<Read, FieldError> {
        Read::parse(r, &ValidationConfig::default())
    }

    #[test]
    fn split_fields_are_normalised() {
        let read = parse(raw()).unwrap();
        assert_eq!(read.container.normalized(), "MSCU1234566");
        assert!(read.flags.is_empty());
        assert_eq!(read.captured_at.to_rfc3339(), "2024-04-30T23:30:00+00:00");
    }

    #[test]
    fn check_digit_as_text_or_appended_to_number() {
        let mut r = raw();
        r.check_digit = Some(CheckDigitInput::Text("6".into()));
        assert!(parse(r).unwrap().flags.is_empty());
        let mut r = raw();
        r.check_digit = None;
        r.number = Some("1234566".into());
        assert!(parse(r).unwrap().flags.is_empty());
    }

    #[test]
    fn suspicious_reads_are_flagged_by_default() {
        let mut r = raw();
        r.check_digit = Some(CheckDigitInput::Number(0.0));
        assert_eq!(parse(r).unwrap().flags, Flags::CHECK_DIGIT_MISMATCH);
        let mut r = raw();
        r.check_digit = None;
        assert_eq!(parse(r).unwrap().flags, Flags::CHECK_DIGIT_MISSING);
        let mut r = raw();
        r.owner = Some("MSCX".into());
        assert!(parse(r).unwrap().flags.contains(Flags::CATEGORY_UNKNOWN));
    }

    #[test]
    fn policies_can_reject_instead() {
        let strict = ValidationConfig {
            missing_check_digit: FlagPolicy::Reject,
            wrong_check_digit: FlagPolicy::Reject,
            unknown_category: FlagPolicy::Reject,
        };
        let mut r = raw();
        r.check_digit = None;
        assert_eq!(
            Read::parse(r, &strict).unwrap_err().field,
            Field::CheckDigit
        );
        let mut r = raw();
        r.check_digit = Some(CheckDigitInput::Number(1.0));
        assert_eq!(
            Read::parse(r, &strict).unwrap_err().field,
            Field::CheckDigit
        );
        let category_only = ValidationConfig {
            unknown_category: FlagPolicy::Reject,
            ..ValidationConfig::default()
        };
        let mut r = raw();
        r.owner = Some("MSCX".into());
        assert_eq!(
            Read::parse(r, &category_only).unwrap_err().field,
            Field::Category
        );
    }

    #[test]
    fn errors_name_the_field() {
        type Mutation = Box<dyn Fn(&mut RawRead)>;
        let cases: Vec<(Mutation, Field)> = vec![
            (Box::new(|r| r.owner = Some("M5C".into())), Field::Owner),
            (Box::new(|r| r.owner = Some("M-CU".into())), Field::Owner),
            (Box::new(|r| r.number = Some("12345".into())), Field::Number),
            (
                Box::new(|r| r.number = Some("12a4%6".into())),
                Field::Number,
            ),
            (Box::new(|r| r.owner = None), Field::Owner),
            (
                Box::new(|r| r.check_digit = Some(CheckDigitInput::Number(12.0))),
                Field::CheckDigit,
            ),
            (
                Box::new(|r| r.check_digit = Some(CheckDigitInput::Text("xy".into()))),
                Field::CheckDigit,
            ),
            (
                Box::new(|r| r.captured_at = Some("yesterday".into())),
                Field::CapturedAt,
            ),
            (Box::new(|r| r.id = Some("not-a-uuid".into())), Field::Id),
            (Box::new(|r| r.confidence = Some(1.5)), Field::Confidence),
            (
                Box::new(|r| r.camera_id = Some("x".repeat(MAX_TEXT_LEN + 1))),
                Field::CameraId,
            ),
            (
                Box::new(|r| r.container = Some("MSCU1234566".into())),
                Field::Container,
            ),
        ];
        for (i, (mutate, field)) in cases.into_iter().enumerate() {
            let mut r = raw();
            mutate(&mut r);
            assert_eq!(parse(r).unwrap_err().field, field, "case {i}");
        }
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn untrusted_camera_times_take_the_receive_time() {
        let now = at("2026-11-30T12:00:00Z");
        for (given, flag) in [
            (None, Flags::TIME_ASSUMED),
            (Some("9999-12-31T23:59:59Z"), Flags::CLOCK_SKEW),
            (Some("0001-01-01T00:00:00Z"), Flags::CLOCK_SKEW),
            (Some("1999-12-31T23:59:59Z"), Flags::CLOCK_SKEW),
            (Some("2026-12-01T12:00:01Z"), Flags::CLOCK_SKEW),
        ] {
            let mut r = raw();
            r.captured_at = given.map(str::to_string);
            r.raw = format!("{given:?}");
            let read = Read::parse_at(r, &ValidationConfig::default(), now).unwrap();
            assert_eq!(read.captured_at, now, "{given:?}");
            assert!(read.flags.contains(flag), "{given:?}");
            assert_eq!(
                read.raw,
                format!("{given:?}"),
                "the camera's time stays in raw"
            );
        }
        // Up to a day ahead, and anything since 2000, is the camera's own.
        for given in ["2026-12-01T12:00:00Z", "2000-01-01T00:00:00Z"] {
            let mut r = raw();
            r.captured_at = Some(given.into());
            let read = Read::parse_at(r, &ValidationConfig::default(), now).unwrap();
            assert_eq!(read.captured_at, at(given));
            assert!(read.flags.is_empty());
        }
    }

    #[test]
    fn times_are_kept_as_stored() {
        let mut r = raw();
        r.captured_at = Some("2016-12-31T23:59:60.5Z".into());
        let leap = parse(r).unwrap().captured_at;
        assert_eq!(leap.to_rfc3339(), "2016-12-31T23:59:59.999999+00:00");
        let mut r = raw();
        r.captured_at = Some("2024-05-01T08:30:00.123456789Z".into());
        let t = parse(r).unwrap().captured_at;
        assert_eq!(
            DateTime::from_timestamp_micros(t.timestamp_micros()),
            Some(t)
        );
    }

    #[test]
    fn the_digest_tells_content_apart() {
        let a = parse(raw()).unwrap();
        let mut same = raw();
        same.owner = Some("MSCU".into());
        same.raw = "other spelling".into();
        assert_eq!(parse(same).unwrap().content_digest, a.content_digest);
        let mut other = raw();
        other.number = Some("123457".into());
        assert_ne!(parse(other).unwrap().content_digest, a.content_digest);
        let mut later = raw();
        later.captured_at = Some("2024-05-01T08:30:01+09:00".into());
        assert_ne!(parse(later).unwrap().content_digest, a.content_digest);
        // A read without its own time is the same content on a retry,
        // though the receive time differs.
        let mut untimed = raw();
        untimed.captured_at = None;
        let first = Read::parse_at(
            untimed.clone(),
            &ValidationConfig::default(),
            at("2026-01-01T00:00:00Z"),
        );
        let retry = Read::parse_at(
            untimed,
            &ValidationConfig::default(),
            at("2026-01-01T00:00:05Z"),
        );
        assert_eq!(first.unwrap().content_digest, retry.unwrap().content_digest);
    }

    #[test]
    fn misreads_are_corrected_and_unreadable_text_is_kept_for_an_operator() {
        let context = ParseContext {
            validation: &ValidationConfig::default(),
            owners: None,
            cameras: None,
            received_at: at("2026-11-30T12:00:00Z"),
        };
        // A digit in the owner code: once a 422, now its look-alike.
        let mut r = raw();
        r.owner = Some("M5CU".into());
        let Parsed::Read(read) = Read::interpret(r, &context).unwrap() else {
            panic!("a look-alike is corrected");
        };
        assert_eq!(read.container.normalized(), "MSCU1234566");
        assert_eq!(read.correction.unwrap().from, "M5CU1234566");
        // Ten letters and digits that cannot be a number: unresolved, with
        // everything else of the read kept.
        let r = RawRead {
            container: Some("M7CU 12K456".into()),
            camera_id: Some("gate-1".into()),
            raw: "as sent".into(),
            ..RawRead::default()
        };
        let Parsed::Unresolved(u) = Read::interpret(r, &context).unwrap() else {
            panic!("unreadable text is kept");
        };
        assert_eq!((u.text.as_str(), u.raw.as_str()), ("M7CU12K456", "as sent"));
        assert_eq!(u.camera_id.as_deref(), Some("gate-1"));
        // Text that is not the shape of a number is still refused.
        let r = RawRead {
            container: Some("HELLO".into()),
            ..RawRead::default()
        };
        assert_eq!(
            Read::interpret(r, &context).unwrap_err().field,
            Field::Container
        );
    }

    #[test]
    fn owners_off_the_allowlist_are_flagged() {
        let owners = OwnerCodes::parse("MAEU\n").unwrap();
        let context = ParseContext {
            validation: &ValidationConfig::default(),
            owners: Some(&owners),
            cameras: None,
            received_at: at("2026-11-30T12:00:00Z"),
        };
        let Parsed::Read(read) = Read::interpret(raw(), &context).unwrap() else {
            panic!("a valid read");
        };
        assert!(read.flags.contains(Flags::OWNER_UNKNOWN));
    }

    #[test]
    fn container_string_with_separate_check_digit() {
        let r = RawRead {
            container: Some("CSQU 305438".into()),
            check_digit: Some(CheckDigitInput::Text("3".into())),
            captured_at: Some("2024-05-01T08:30:00Z".into()),
            ..RawRead::default()
        };
        assert_eq!(parse(r).unwrap().container.normalized(), "CSQU3054383");
        let r = RawRead {
            container: Some("CSQU3054383".into()),
            check_digit: Some(CheckDigitInput::Text("4".into())),
            captured_at: Some("2024-05-01T08:30:00Z".into()),
            ..RawRead::default()
        };
        assert_eq!(parse(r).unwrap_err().field, Field::CheckDigit);
    }
}
