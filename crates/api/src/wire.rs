//! JSON bodies to domain input.
//!
//! Reads are taken from a [`serde_json::Value`] by hand rather than through
//! a derived struct, so that a wrong type names its field ("confidence must
//! be a number") instead of a line and column. Unknown fields are ignored;
//! they stay in the raw input kept with the sighting.

use gatelog_core::read::CheckDigitInput;
use gatelog_core::{Field, FieldError, RawRead};
use serde_json::{Map, Value};

/// The most items one POST may carry.
pub const MAX_BATCH: usize = 1000;

/// Converts one JSON item to a raw read; `raw` is the item's text exactly
/// as it was received, which the sighting keeps.
pub fn raw_read(value: &Value, raw: &str) -> Result<RawRead, FieldError> {
    let Value::Object(map) = value else {
        return Err(FieldError::new(
            Field::Body,
            "each recognition must be a JSON object",
        ));
    };
    Ok(RawRead {
        id: string(map, "id", Field::Id)?,
        container: string(map, "container", Field::Container)?,
        owner: string(map, "owner", Field::Owner)?.or(string(
            map,
            "container_owner",
            Field::Owner,
        )?),
        number: serial(map)?,
        check_digit: check_digit(map)?,
        captured_at: string(map, "captured_at", Field::CapturedAt)?,
        camera_id: string(map, "camera_id", Field::CameraId)?,
        source_video: string(map, "source_video", Field::SourceVideo)?,
        cropped_image_ref: string(map, "cropped_image_ref", Field::CroppedImageRef)?,
        truck_plate: string(map, "truck_plate", Field::TruckPlate)?,
        iso_type: string(map, "iso_type", Field::IsoType)?,
        confidence: match map.get("confidence") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_f64(),
            Some(_) => {
                return Err(FieldError::new(
                    Field::Confidence,
                    "confidence must be a number from 0 to 1",
                ))
            }
        },
        raw: raw.to_string(),
    })
}

fn string(map: &Map<String, Value>, key: &str, field: Field) -> Result<Option<String>, FieldError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(FieldError::new(field, format!("{key} must be a string"))),
    }
}

/// The serial may come as a string or, from some modules, as an integer,
/// which loses leading zeros; those are restored.
fn serial(map: &Map<String, Value>) -> Result<Option<String>, FieldError> {
    let key = if map.contains_key("number") {
        "number"
    } else {
        "container_number"
    };
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(v) if v <= 999_999 => Ok(Some(format!("{v:06}"))),
            _ => Err(FieldError::new(
                Field::Number,
                "number must be six digits, as a string such as \"012345\"",
            )),
        },
        Some(_) => Err(FieldError::new(
            Field::Number,
            "number must be a string of six digits",
        )),
    }
}

fn check_digit(map: &Map<String, Value>) -> Result<Option<CheckDigitInput>, FieldError> {
    match map.get("check_digit") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(CheckDigitInput::Text(s.clone()))),
        Some(Value::Number(n)) => Ok(Some(CheckDigitInput::Number(
            n.as_f64().unwrap_or(f64::NAN),
        ))),
        Some(_) => Err(FieldError::new(
            Field::CheckDigit,
            "check_digit must be a digit, as a number or a one-character string",
        )),
    }
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
    fn raw_input_is_kept_verbatim() {
        let text = r#"{ "lane": 3,  "container" : "MSCU1234566" }"#;
        let body: Value = serde_json::from_str(text).unwrap();
        assert_eq!(raw_read(&body, text).unwrap().raw, text);
    }
}
