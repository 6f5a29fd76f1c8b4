//! The fuzzing properties of [`gatelog_tests::properties`] under
//! proptest, so that they run in every `cargo test`, and with a large case
//! count from `.ci/run` where nightly Rust (and so `cargo fuzz`) is
//! missing. `GATELOG_PROPTEST_CASES` sets the count (default 2,000 per
//! property). Inputs are arbitrary bytes mixed with text shaped like each
//! surface, so that the properties are reached past the first check.

use gatelog_tests::properties;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("GATELOG_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

fn container_like() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        "[A-Za-z0-9 ./-]{0,16}".prop_map(String::into_bytes),
        "[A-Z0-9]{3}[UJZ0O][ -]?[0-9OISBGZ]{6}[ -]?[0-9A-Z]?".prop_map(String::into_bytes),
    ]
}

fn json_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_string()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| serde_json::json!(n).to_string()),
        "[A-Za-z0-9 :.+-]{0,24}".prop_map(|s| serde_json::json!(s).to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("true".to_string()),
    ]
}

fn json_object() -> impl Strategy<Value = String> {
    let field = prop_oneof![
        Just("id"),
        Just("container"),
        Just("owner"),
        Just("container_owner"),
        Just("number"),
        Just("container_number"),
        Just("check_digit"),
        Just("captured_at"),
        Just("camera_id"),
        Just("confidence"),
        Just("source_video"),
        Just("cropped_image_ref"),
        Just("other"),
    ];
    proptest::collection::vec((field, json_value()), 0..8).prop_map(|fields| {
        let body: Vec<String> = fields
            .into_iter()
            .map(|(k, v)| format!("{k:?}:{v}"))
            .collect();
        format!("{{{}}}", body.join(","))
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        json_object().prop_map(String::into_bytes),
        proptest::collection::vec(json_object(), 0..6).prop_map(|items| format!(
            "[{}]",
            items.join(",")
        )
        .into_bytes()),
    ]
}

fn query() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("owner"),
        Just("number"),
        Just("container"),
        Just("q"),
        Just("from"),
        Just("to"),
        Just("camera"),
        Just("site"),
        Just("check"),
        Just("sync"),
        Just("limit"),
        Just("cursor"),
        Just("order"),
        Just("zzz"),
    ];
    prop_oneof![
        any::<Vec<u8>>(),
        proptest::collection::vec((key, "[A-Za-z0-9%:+=._~-]{0,30}"), 0..5).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&")
                .into_bytes()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn container_text_properties_hold(data in container_like()) {
        properties::container_text(&data);
    }

    #[test]
    fn read_body_properties_hold(data in body()) {
        properties::read_body(&data);
    }

    #[test]
    fn query_string_properties_hold(data in query()) {
        properties::query_string(&data);
    }
}

/// Inputs that fuzzing found to break an earlier statement of the
/// properties (the code was right; the properties were too strict). They
/// are also seeds of the fuzz corpus.
#[test]
fn inputs_found_by_fuzzing_hold() {
    // An unreadable (letter) check digit is dropped, not corrected.
    properties::container_text(b"CSQU305438Q");
    // A lone surrogate escape in a batch item: a RawValue, not a Value.
    properties::read_body(br#"[{"container":"CSQW)"},{"51o2dr\udd111111321132rtainer":"CSQU "}]"#);
}
