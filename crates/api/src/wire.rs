//! JSON bodies to domain input.
//!
//! A read is deserialised into `WireRead`, a serde struct shaped like the
//! body, through `serde_path_to_error`, so that a wrong type names its
//! field ("confidence must be a number from 0 to 1") instead of a line and
//! column. Unknown fields are accepted and ignored here; they stay in the
//! raw input kept with the sighting.

use gatelog_core::read::CheckDigitInput;
use gatelog_core::{Field, FieldError, RawRead};
use serde::Deserialize;
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::ToSchema;

/// The most items one POST may carry.
pub const MAX_BATCH: usize = 1000;

/// One read as the body spells it. Each value is optional here; which
/// combinations make a read is the domain's decision
/// ([`gatelog_core::Read::interpret`]).
///
/// It is also the published schema of one read (`Recognition` in
/// [`crate::openapi`]); other fields are allowed and kept in `raw`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct WireRead {
    /// The client's id for the read, an idempotency key: the same id with
    /// the same content replays the first answer.
    id: Option<String>,
    /// The whole number, such as `MSCU1234566`; or `owner` and `number`.
    #[schema(example = "MSCU1234566")]
    container: Option<String>,
    /// `owner`, or the seed's `container_owner`; `owner` wins when both
    /// are given.
    owner: Option<String>,
    container_owner: Option<String>,
    /// `number`, or the seed's `container_number`, likewise.
    #[schema(schema_with = serial)]
    number: Option<WireSerial>,
    #[schema(schema_with = serial)]
    container_number: Option<WireSerial>,
    /// A digit, as a number or a one-character string.
    #[schema(schema_with = check_digit)]
    check_digit: Option<WireCheckDigit>,
    /// When the camera saw it (RFC 3339); the receive time when absent.
    captured_at: Option<String>,
    camera_id: Option<String>,
    source_video: Option<String>,
    cropped_image_ref: Option<String>,
    /// From 0 to 1.
    confidence: Option<f64>,
    truck_plate: Option<String>,
    /// The ISO 6346 size-type code, such as `22G1`.
    iso_type: Option<String>,
}

/// A serial as a string, or as an integer (leading zeros restored).
fn serial() -> Schema {
    one_of_or_null([Type::String, Type::Integer])
}

/// A check digit as a number or a string.
fn check_digit() -> Schema {
    one_of_or_null([Type::String, Type::Number])
}

fn one_of_or_null(types: [Type; 2]) -> Schema {
    let mut any = OneOfBuilder::new();
    for t in types.into_iter().chain([Type::Null]) {
        any = any.item(ObjectBuilder::new().schema_type(t));
    }
    any.build().into()
}

/// The serial, as a string or, from some modules, as an integer, which
/// loses leading zeros; those are restored.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireSerial {
    Text(String),
    Number(serde_json::Number),
}

/// OCR modules send the check digit as a number or as a string.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireCheckDigit {
    Text(String),
    Number(f64),
}

/// The field a body key fills and what its value must be, for errors.
fn expectation(key: &str) -> (Field, &'static str) {
    match key {
        "id" => (Field::Id, "a string"),
        "container" => (Field::Container, "a string"),
        "owner" | "container_owner" => (Field::Owner, "a string"),
        "number" | "container_number" => (Field::Number, "a string of six digits"),
        "check_digit" => (
            Field::CheckDigit,
            "a digit, as a number or a one-character string",
        ),
        "captured_at" => (Field::CapturedAt, "a string"),
        "camera_id" => (Field::CameraId, "a string"),
        "source_video" => (Field::SourceVideo, "a string"),
        "truck_plate" => (Field::TruckPlate, "a string"),
        "iso_type" => (Field::IsoType, "a string"),
        "cropped_image_ref" => (Field::CroppedImageRef, "a string"),
        "confidence" => (Field::Confidence, "a number from 0 to 1"),
        _ => (Field::Body, "valid"),
    }
}

/// Converts one JSON item to a raw read; `raw` is the item's text exactly
/// as it was received, which the sighting keeps.
pub fn raw_read(value: &Value, raw: &str) -> Result<RawRead, FieldError> {
    if !value.is_object() {
        return Err(FieldError::new(
            Field::Body,
            "each recognition must be a JSON object",
        ));
    }
    let wire: WireRead =
        serde_path_to_error::deserialize(value).map_err(|e| match e.path().iter().next() {
            Some(serde_path_to_error::Segment::Map { key }) => {
                let (field, expected) = expectation(key);
                FieldError::new(field, format!("{key} must be {expected}"))
            }
            _ => FieldError::new(
                Field::Body,
                format!("the recognition is not valid: {}", e.inner()),
            ),
        })?;
    let number = match wire.number.or(wire.container_number) {
        None => None,
        Some(WireSerial::Text(s)) => Some(s),
        Some(WireSerial::Number(n)) => match n.as_u64() {
            Some(v) if v <= 999_999 => Some(format!("{v:06}")),
            _ => {
                return Err(FieldError::new(
                    Field::Number,
                    "number must be six digits, as a string such as \"012345\"",
                ))
            }
        },
    };
    Ok(RawRead {
        id: wire.id,
        container: wire.container,
        owner: wire.owner.or(wire.container_owner),
        number,
        check_digit: wire.check_digit.map(|c| match c {
            WireCheckDigit::Text(s) => CheckDigitInput::Text(s),
            WireCheckDigit::Number(n) => CheckDigitInput::Number(n),
        }),
        captured_at: wire.captured_at,
        camera_id: wire.camera_id,
        source_video: wire.source_video,
        cropped_image_ref: wire.cropped_image_ref,
        confidence: wire.confidence,
        truck_plate: wire.truck_plate,
        iso_type: wire.iso_type,
        raw: raw.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_errors_name_their_field() {
        for (body, field) in [
            (json!({"owner": 5}), Field::Owner),
            (json!({"container": ["x"]}), Field::Container),
            (json!({"number": true}), Field::Number),
            (json!({"number": 1234567}), Field::Number),
            (json!({"check_digit": {}}), Field::CheckDigit),
            (json!({"captured_at": 12}), Field::CapturedAt),
            (json!({"confidence": "high"}), Field::Confidence),
            (json!("MSCU1234566"), Field::Body),
        ] {
            assert_eq!(
                raw_read(&body, &body.to_string()).unwrap_err().field,
                field,
                "{body}"
            );
        }
    }

    #[test]
    fn integer_serials_keep_leading_zeros() {
        let body = json!({"owner": "MSCU", "number": 12345});
        let r = raw_read(&body, &body.to_string()).unwrap();
        assert_eq!(r.number.as_deref(), Some("012345"));
    }

    #[test]
    fn the_seeds_names_and_both_check_digit_forms_are_read() {
        let body = json!({
            "container_owner": "MSCU", "container_number": 12345,
            "check_digit": "6", "lane": 3, "extra": {"any": ["thing"]},
        });
        let r = raw_read(&body, &body.to_string()).unwrap();
        assert_eq!(r.owner.as_deref(), Some("MSCU"));
        assert_eq!(r.number.as_deref(), Some("012345"));
        assert_eq!(r.check_digit, Some(CheckDigitInput::Text("6".into())));
        let body = json!({"owner": "MSCU", "container_owner": "CSQU", "check_digit": 6});
        let r = raw_read(&body, &body.to_string()).unwrap();
        assert_eq!(r.owner.as_deref(), Some("MSCU"));
        assert_eq!(r.check_digit, Some(CheckDigitInput::Number(6.0)));
        let body = json!({"container_owner": 5});
        let e = raw_read(&body, &body.to_string()).unwrap_err();
        assert_eq!(
            (e.field, e.message.as_str()),
            (Field::Owner, "container_owner must be a string")
        );
        let body = json!({"confidence": "high"});
        let e = raw_read(&body, &body.to_string()).unwrap_err();
        assert_eq!(e.message, "confidence must be a number from 0 to 1");
    }

    #[test]
    fn raw_input_is_kept_verbatim() {
        let text = r#"{ "lane": 3,  "container" : "MSCU1234566" }"#;
        let body: Value = serde_json::from_str(text).unwrap();
        assert_eq!(raw_read(&body, text).unwrap().raw, text);
    }
}
