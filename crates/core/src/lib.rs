//! The gatelog domain, free of I/O.
//!
//! This crate knows what a container number is, what makes a read valid,
//! and when a read belongs to an existing passage. It knows no SQL, no HTTP
//! and no actors, so every rule here can be tested as a pure function.
//!
//! # Layout
//! - [`codeco`]: CODECO gate reports to shipping lines: partners, the
//!   site's UN/LOCODE and the EDIFACT writer.
//! - [`container`]: ISO 6346 container numbers, parsed into
//!   [`OwnerCode`], [`SerialNumber`] and [`CheckDigit`].
//! - [`read`]: one OCR read as received ([`RawRead`]) and as accepted
//!   ([`Read`]), with the validation policy that flags or rejects it.
//! - [`recognize`]: one read's text as OCR gets it wrong, corrected by
//!   ISO 6346's letter and digit positions and its check digit.
//! - [`gate`]: cameras with a direction and a lane, size-type codes, and
//!   the yard rule (gate-in, gate-out, dwell).
//! - [`passage`]: the records gatelog keeps, [`Passage`] and [`Sighting`].
//! - [`dedup`]: the sliding window over `captured_at`.
//! - [`fold`]: the one pure function that decides which passage each read
//!   joins and what number each passage holds.
//! - [`operator`]: corrections by hand: an operator's number for a queued
//!   read or a passage.
//! - [`error`]: the one error type, which names the offending field.

pub mod codeco;
pub mod container;
pub mod dedup;
pub mod error;
pub mod fold;
pub mod gate;
pub mod operator;
pub mod passage;
pub mod read;
pub mod recognize;

pub use container::{CheckDigit, ContainerNumber, OwnerCode, SerialNumber};
pub use dedup::{DedupConfig, PassageSpan};
pub use error::{Field, FieldError};
pub use passage::{
    Correction, CorrectionRule, Direction, Flags, Passage, QueuedRead, Resolved, Sighting,
};
pub use read::{
    CheckDigitInput, FlagPolicy, ParseContext, Parsed, RawRead, Read, Unresolved, ValidationConfig,
};
