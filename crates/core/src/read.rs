//! One OCR read, as received and as accepted.
//!
//! [`RawRead`] holds the fields a client sent, still as text. [`Read::parse`]
//! turns it into a [`Read`] or a [`FieldError`] that names the field at
//! fault. Malformed owner codes, serials and timestamps are rejected; a
//! missing or wrong check digit and an unknown category letter are flagged,
//! or rejected when [`ValidationConfig`] says so.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::container::{CheckDigit, CheckStatus, ContainerNumber, OwnerCode, SerialNumber};
use crate::error::{Field, FieldError};
use crate::passage::Flags;

/// The longest text gatelog keeps in a metadata field such as `camera_id`.
pub const MAX_TEXT_LEN: usize = 1024;

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

/// A validated read.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub id: Option<Uuid>,
    pub container: ContainerNumber,
    pub flags: Flags,
    pub captured_at: DateTime<Utc>,
    pub camera_id: Option<String>,
    pub source_video: Option<String>,
    pub cropped_image_ref: Option<String>,
    pub confidence: Option<f64>,
    pub raw: String,
}

impl Read {
    /// Validates a raw read under `config`.
    pub fn parse(raw: RawRead, config: &ValidationConfig) -> Result<Self, FieldError> {
        let id = raw
            .id
            .as_deref()
            .map(|s| {
                Uuid::parse_str(s.trim())
                    .map_err(|_| FieldError::new(Field::Id, "id must be a UUID"))
            })
            .transpose()?;

        let container = parse_container(&raw)?;
        let mut flags = Flags::empty();
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

        let captured_at = match raw.captured_at.as_deref() {
            None => {
                return Err(FieldError::new(
                    Field::CapturedAt,
                    "captured_at is required (RFC 3339, such as 2024-05-01T08:30:00Z)",
                ))
            }
            Some(s) => DateTime::parse_from_rfc3339(s.trim())
                .map_err(|_| {
                    FieldError::new(
                        Field::CapturedAt,
                        "captured_at must be an RFC 3339 timestamp with an offset, such as 2024-05-01T08:30:00Z",
                    )
                })?
                .with_timezone(&Utc),
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

        Ok(Self {
            id,
            container,
            flags,
            captured_at,
            camera_id: text(raw.camera_id, Field::CameraId)?,
            source_video: text(raw.source_video, Field::SourceVideo)?,
            cropped_image_ref: text(raw.cropped_image_ref, Field::CroppedImageRef)?,
            confidence,
            raw: raw.raw,
        })
    }

    /// Microseconds since the Unix epoch, the unit the dedup rule uses.
    pub fn captured_micros(&self) -> i64 {
        self.captured_at.timestamp_micros()
    }
}

fn parse_container(raw: &RawRead) -> Result<ContainerNumber, FieldError> {
    let given_digit = raw
        .check_digit
        .as_ref()
        .map(|d| match d {
            CheckDigitInput::Number(n) if n.fract() == 0.0 && (0.0..=9.0).contains(n) => {
                // In range by the guard above.
                CheckDigit::new(*n as u8)
            }
            CheckDigitInput::Number(n) => Err(FieldError::new(
                Field::CheckDigit,
                format!("check digit must be a single digit 0-9; got {n}"),
            )),
            CheckDigitInput::Text(s) => CheckDigit::parse(s),
        })
        .transpose()?;

    match (&raw.container, &raw.owner, &raw.number) {
        (Some(c), None, None) => {
            let parsed = ContainerNumber::parse(c)?;
            match (parsed.check_digit(), given_digit) {
                (Some(a), Some(b)) if a != b => Err(FieldError::new(
                    Field::CheckDigit,
                    "check_digit disagrees with the check digit inside container",
                )),
                (None, Some(d)) => Ok(ContainerNumber::new(
                    parsed.owner(),
                    parsed.serial(),
                    Some(d),
                )),
                _ => Ok(parsed),
            }
        }
        (None, Some(owner), Some(number)) => {
            let owner = OwnerCode::parse(owner)?;
            let number = number.trim();
            // Some modules append the check digit to the serial.
            let (serial, digit) = if number.len() == 7 && given_digit.is_none() {
                let (s, d) = number.split_at(6);
                (
                    SerialNumber::parse(s)?,
                    Some(CheckDigit::parse(d).map_err(|_| {
                        FieldError::new(Field::Number, "serial number must be exactly six digits")
                    })?),
                )
            } else {
                (SerialNumber::parse(number)?, given_digit)
            };
            Ok(ContainerNumber::new(owner, serial, digit))
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

fn text(value: Option<String>, field: Field) -> Result<Option<String>, FieldError> {
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
            (Box::new(|r| r.owner = Some("M5CU".into())), Field::Owner),
            (
                Box::new(|r| r.number = Some("12a456".into())),
                Field::Number,
            ),
            (Box::new(|r| r.owner = None), Field::Owner),
            (
                Box::new(|r| r.check_digit = Some(CheckDigitInput::Number(12.0))),
                Field::CheckDigit,
            ),
            (
                Box::new(|r| r.check_digit = Some(CheckDigitInput::Text("x".into()))),
                Field::CheckDigit,
            ),
            (Box::new(|r| r.captured_at = None), Field::CapturedAt),
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
