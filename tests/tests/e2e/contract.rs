//! The published contract against the real binary.
//!
//! `gatelog serve` runs with an ingest, a read and an operator key and a
//! store holding real passages, sightings, corrections and queued reads.
//! schemathesis (from PyPI) reads `GET /api/v1/openapi.json` from it and
//! sends generated requests to every operation, valid and invalid, under
//! the operator key (the ingest key for posting reads). It checks that no
//! answer is a 5xx, that every status is documented for its operation,
//! that every body and content type matches the document, and that a
//! method a path does not take is a 405 whose `Allow` lists what the
//! document does. Any finding fails the test with schemathesis' report.
//!
//! Under `CI=true` a missing schemathesis fails the test; `.ci/run`
//! installs it.

use std::time::Duration;

use gatelog_tests::{container, require_tool, BinaryApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

const INGEST: &str = "contract-ingest-key-0123456789";
const READ: &str = "contract-read-key-0123456789";
const OPERATOR: &str = "contract-operator-key-0123456789";

/// Requests per operation, each phase.
const EXAMPLES: &str = "25";
/// The longest the whole run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(900);

/// The checks run on every answer.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_schema_conformance,unsupported_method,allow_header_conformance";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_against_the_live_server() {
    if !require_tool("st", &["--version"], "python3 -m pip install schemathesis") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let images = dir.path().join("crops");
    std::fs::create_dir_all(images.join("cam-1")).expect("image folder");
    std::fs::write(images.join("cam-1/plate.png"), PNG).expect("image");
    let images = images.to_string_lossy().into_owned();
    let app = BinaryApp::start(
        dir.path(),
        &[
            ("GATELOG_AUTH__INGEST_KEYS", INGEST),
            ("GATELOG_AUTH__READ_KEYS", READ),
            ("GATELOG_AUTH__OPERATOR_KEYS", OPERATOR),
            // schemathesis sends thousands of requests; the limits are
            // tested elsewhere, and here they would only answer 429.
            ("GATELOG_LIMITS__RATE_PER_SEC", "100000"),
            ("GATELOG_LIMITS__BURST", "100000"),
            ("GATELOG_SERVER__IMAGE_DIR", &images),
        ],
    )
    .await;
    let seeded = seed(&app.base).await;

    // The document is open, and it is the one the code generates.
    let res = reqwest::get(format!("{}/api/v1/openapi.json", app.base))
        .await
        .expect("the document answers");
    assert_eq!(res.status(), StatusCode::OK);
    let served: Value = res.json().await.expect("the document is JSON");
    let built: Value = serde_json::from_str(gatelog_api::openapi::json()).unwrap();
    assert_eq!(served, built);
    assert_eq!(served["openapi"], "3.1.0");

    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, config_file(&seeded)).expect("config file");
    let report = dir.path().join("junit.xml");
    let mut st = tokio::process::Command::new("st");
    st.arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{}/api/v1/openapi.json", app.base))
        .args(["--checks", CHECKS])
        .args(["--max-examples", EXAMPLES])
        .args(["--phases", "examples,coverage,fuzzing"])
        // One worker: Python 3.11's parser is not safe across
        // schemathesis' threads, and two workers gain little on two cores.
        .args(["--workers", "1"])
        .args(["--request-timeout", "10"])
        .args(["--max-redirects", "0"])
        .args(["--seed", "6346"])
        .args(["--report", "junit"])
        .arg("--report-junit-path")
        .arg(&report)
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1")
        .current_dir(dir.path())
        .kill_on_drop(true);
    let out = tokio::time::timeout(RUN_LIMIT, st.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis ran longer than {RUN_LIMIT:?}"))
        .expect("schemathesis starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // A run that tested nothing would pass too: every operation of the
    // document must be in schemathesis' report, but the document's own,
    // which schemathesis leaves out.
    let junit = std::fs::read_to_string(&report).expect("the JUnit report");
    let mut untested = Vec::new();
    for (path, item) in served["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let name = format!("{} {path}", method.to_uppercase());
            if path != "/api/v1/openapi.json" && !junit.contains(&format!("name=\"{name}\"")) {
                untested.push(name);
            }
        }
    }
    assert!(
        untested.is_empty(),
        "schemathesis did not test {untested:?}:\n{stdout}"
    );

    // The server is still whole after the run.
    let res = reqwest::get(format!("{}/healthz", app.base))
        .await
        .expect("healthz answers");
    assert_eq!(res.status(), StatusCode::OK);
    let status = app.terminate().await;
    assert!(status.success(), "gatelog exited with {status}");
}

/// What the seeded store holds, for schemathesis to reach.
struct Seeded {
    passage: String,
    queued: String,
}

/// Passages (new, joined, flagged, corrected), their sightings and a
/// queued read, so that listings answer real items for the schemas to
/// check. They are recent: retention would delete old ones.
async fn seed(base: &str) -> Seeded {
    let client = reqwest::Client::new();
    let ago = |minutes: i64| {
        (chrono::Utc::now() - chrono::Duration::minutes(minutes))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let res = client
        .post(format!("{base}/api/v1/recognitions"))
        .bearer_auth(INGEST)
        .json(&json!([
            {"container": container(1), "captured_at": ago(90), "camera_id": "cam-1",
             "confidence": 0.9, "cropped_image_ref": "cam-1/plate.png", "truck_plate": "KA-01",
             "iso_type": "22G1"},
            {"container": container(1), "captured_at": ago(89), "camera_id": "cam-1"},
            {"owner": "MSCU", "number": 12345, "captured_at": ago(80)},
            {"container": container(2), "captured_at": ago(70), "lane": 3},
            {"container": "MSCU12E456", "captured_at": ago(60), "camera_id": "cam-1"},
            {"container": 5},
        ]))
        .send()
        .await
        .expect("seed posts");
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    let statuses: Vec<&str> = results
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["success", "skipped", "success", "success", "queued", "error"],
        "{body}"
    );
    let passage = results[0]["data"]["id"].as_str().unwrap().to_string();
    let queued = results[4]["data"]["id"].as_str().unwrap().to_string();
    let res = client
        .patch(format!("{base}/api/v1/logs/{passage}"))
        .bearer_auth(OPERATOR)
        .json(&json!({"container": container(7), "reason": "read from the crop"}))
        .send()
        .await
        .expect("correction");
    assert_eq!(res.status(), StatusCode::OK);
    Seeded { passage, queued }
}

/// schemathesis' configuration: the operator key everywhere but where
/// reads are posted, which takes the ingest key; and, half the time, ids
/// and an image that exist, so that answers with real items are checked
/// too and not only the 404s of made-up ones.
fn config_file(seeded: &Seeded) -> String {
    let Seeded { passage, queued } = seeded;
    format!(
        r#"headers = {{ Authorization = "Bearer {OPERATOR}" }}

[dictionaries.passages]
values = ["{passage}"]

[dictionaries.queued]
values = ["{queued}"]

[dictionaries.images]
values = ["cam-1/plate.png"]

[[operations]]
include-path = "/api/v1/recognitions"
headers = {{ Authorization = "Bearer {INGEST}" }}

[[operations]]
include-path-regex = "^/api/v1/logs/\\{{id\\}}"
parameters = {{ "path.id" = {{ dictionary = "passages", probability = 0.5 }} }}

[[operations]]
include-path = "/api/v1/exceptions/{{id}}/resolve"
parameters = {{ "path.id" = {{ dictionary = "queued", probability = 0.5 }} }}

[[operations]]
include-path = "/images"
parameters = {{ "query.ref" = {{ dictionary = "images", probability = 0.5 }} }}
"#
    )
}

/// A 1×1 PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4,
    0x89, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00,
    0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];
