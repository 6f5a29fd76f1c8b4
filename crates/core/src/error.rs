//! The validation error, which always names the field at fault.

use std::fmt;

/// The input fields a validation error can point at.
///
/// These names are part of the API: a 422 response carries them in its
/// `field` member, so they match the JSON keys a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    Container,
    Owner,
    Number,
    CheckDigit,
    Category,
    CapturedAt,
    Id,
    CameraId,
    SourceVideo,
    CroppedImageRef,
    Confidence,
    TruckPlate,
    IsoType,
    /// Why an operator corrected a passage.
    Reason,
    Body,
}

impl Field {
    /// The JSON key of this field, as clients spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Container => "container",
            Field::Owner => "owner",
            Field::Number => "number",
            Field::CheckDigit => "check_digit",
            Field::Category => "category",
            Field::CapturedAt => "captured_at",
            Field::Id => "id",
            Field::CameraId => "camera_id",
            Field::SourceVideo => "source_video",
            Field::CroppedImageRef => "cropped_image_ref",
            Field::Confidence => "confidence",
            Field::TruckPlate => "truck_plate",
            Field::IsoType => "iso_type",
            Field::Reason => "reason",
            Field::Body => "body",
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A read that cannot be accepted, with the field that made it so.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// Which input field is wrong; the API reports it as `field`.
    pub field: Field,
    /// A sentence a gate operator can act on, without internal detail.
    pub message: String,
}

impl FieldError {
    pub fn new(field: Field, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}
