//! The properties the fuzz targets check. They live in the tests crate
//! (`tests/src/properties.rs`), where proptest runs them too when nightly
//! Rust is missing; this crate includes that file as it is, so fuzzing
//! and its fallback check one thing.

#[path = "../../tests/src/properties.rs"]
pub mod properties;
