//! The gatelog domain, free of I/O.
//!
//! This crate knows what a container number is, what makes a read valid,
//! and when a read belongs to an existing passage. It knows no SQL, no HTTP
//! and no actors, so every rule here can be tested as a pure function.
//!
//! # Layout
//! - [`container`]: ISO 6346 container numbers, parsed into
//!   [`OwnerCode`], [`SerialNumber`] and [`CheckDigit`].
//! - [`read`]: one OCR read as received ([`RawRead`]) and as accepted
//!   ([`Read`]), with the validation policy that flags or rejects it.
//! - [`passage`]: the records gatelog keeps, [`Passage`] and [`Sighting`].
//! - [`dedup`]: the sliding-window rule that folds reads into passages.
//! - [`error`]: the one error type, which names the offending field.

pub mod container;
pub mod dedup;
pub mod error;
pub mod passage;
pub mod read;

pub use container::{CheckDigit, ContainerNumber, OwnerCode, SerialNumber};
pub use dedup::{DedupConfig, PassageSpan};
pub use error::{Field, FieldError};
pub use passage::{Correction, CorrectionRule, Flags, Passage, Sighting};
pub use read::{CheckDigitInput, FlagPolicy, RawRead, Read, ValidationConfig};
