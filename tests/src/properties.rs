//! The properties that fuzzing checks, one function per input surface,
//! each taking arbitrary bytes. The `cargo fuzz` targets in `fuzz/` call
//! these very functions (the file is included there by path), and
//! `tests/tests/properties.rs` runs them under proptest with a large case
//! count where nightly Rust is missing, so both check the same thing.
//!
//! Each function panics when a property fails; returning means the input
//! was handled: parsed, or refused with an error that names its field.
//! The file depends on nothing but `gatelog-core`, `gatelog-api`,
//! `serde_json` and `serde_urlencoded`, so the fuzz crate can include it.

use chrono::{TimeZone, Utc};
use gatelog_api::routes::logs::parse_filter;
use gatelog_api::wire::raw_read;
use gatelog_core::read::{ParseContext, Parsed};
use gatelog_core::recognize::{compact, interpret, Interpretation};
use gatelog_core::{ContainerNumber, RawRead, Read, ValidationConfig};
use serde_json::value::RawValue;
use serde_json::Value;

/// A container number in its normal form: 10 or 11 ASCII upper-case
/// letters and digits.
fn assert_normal(n: &ContainerNumber, input: &str) {
    let s = n.normalized();
    assert!(
        (10..=11).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{input:?} gave the number {s:?}"
    );
    assert_eq!(
        ContainerNumber::parse(&s).as_ref(),
        Ok(n),
        "{input:?} gave {s:?}, which does not parse back to itself"
    );
}

fn context(validation: &ValidationConfig) -> ParseContext<'_> {
    ParseContext {
        validation,
        owners: None,
        cameras: None,
        received_at: Utc.with_ymd_and_hms(2024, 5, 1, 8, 30, 0).unwrap(),
    }
}

/// Container-number parsing and correction: `ContainerNumber::parse`,
/// `recognize::interpret` and `Read::interpret` on any text. None may
/// panic; every number they produce is in normal form and parses back to
/// itself; a text that parses as it stands is never corrected into
/// another number.
pub fn container_text(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let parsed = ContainerNumber::parse(&text);
    if let Ok(n) = &parsed {
        assert_normal(n, &text);
    }
    if let Some(c) = compact(&text) {
        if let Interpretation::Number { number, correction } = interpret(&c, None) {
            assert_normal(&number, &text);
            // Uncorrected, the number is the text as read, less an
            // unreadable (letter) check digit, which is taken as none.
            if correction.is_none() {
                let n = number.normalized();
                assert!(
                    n == c
                        || (c.len() == 11 && c.starts_with(&n) && number.check_digit().is_none()),
                    "an uncorrected interpretation of {text:?} is {n:?}, not its text"
                );
            }
        }
    }
    let validation = ValidationConfig::default();
    let raw = RawRead {
        container: Some(text.to_string()),
        raw: String::new(),
        ..RawRead::default()
    };
    match Read::interpret(raw, &context(&validation)) {
        Ok(Parsed::Read(read)) => {
            assert_normal(&read.container, &text);
            if let Ok(n) = &parsed {
                if n.check_digit() == Some(n.computed_check_digit()) {
                    assert_eq!(
                        &read.container, n,
                        "{text:?} is a valid number, yet the read became another"
                    );
                }
            }
        }
        Ok(Parsed::Unresolved(u)) => assert!(!u.text.is_empty(), "{text:?}"),
        Err(e) => assert!(!e.message.is_empty(), "an error for {text:?} says nothing"),
    }
}

/// One item of a body, as the route takes it: the value and its text.
fn body_item(value: &Value, raw: &str) {
    let validation = ValidationConfig::default();
    match raw_read(value, raw).and_then(|r| Read::interpret(r, &context(&validation))) {
        // The raw read is always kept, exactly as received.
        Ok(Parsed::Read(read)) => {
            assert_normal(&read.container, raw);
            assert!(!read.content_digest.is_empty());
            assert_eq!(read.raw, raw, "the raw read is kept as received");
        }
        Ok(Parsed::Unresolved(u)) => {
            assert!(!u.text.is_empty());
            assert_eq!(u.raw, raw, "the raw read is kept as received");
        }
        Err(e) => assert!(!e.message.is_empty(), "an error for {raw:?} says nothing"),
    }
}

/// The JSON body of `POST /api/v1/recognitions`, single or batch, taken
/// apart as the route does (a batch into `RawValue` items, each kept as
/// received) and read with `wire::raw_read` and `Read::interpret`. Nothing
/// panics; every item is a read, an unresolved text, or an error with a
/// message.
pub fn read_body(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let text = text.trim();
    if text.starts_with('[') {
        let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(text) else {
            return;
        };
        for item in items {
            // serde_json takes a lone surrogate escape (`"\udd11"`) into a
            // `RawValue` but not into a `Value`; the route answers such an
            // item with its own malformed-JSON error, and so do we.
            if let Ok(value) = serde_json::from_str::<Value>(item.get()) {
                body_item(&value, item.get());
            }
        }
    } else if let Ok(value) = serde_json::from_str::<Value>(text) {
        body_item(&value, text);
    }
}

/// The query string of `GET /api/v1/logs` (filters, limit, order and
/// cursor), through `routes::logs::parse_filter`, as it stands and with
/// the bytes as the cursor. Nothing panics; an accepted filter has a
/// limit from 1 to 1,000.
pub fn query_string(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(f) = parse_filter(&text) {
        assert!(
            (1..=1000).contains(&f.limit),
            "{text:?} gave limit {}",
            f.limit
        );
    }
    let as_cursor =
        serde_urlencoded::to_string([("cursor", text.as_ref())]).expect("any text encodes");
    if let Ok(f) = parse_filter(&as_cursor) {
        assert!((1..=1000).contains(&f.limit));
    }
}
