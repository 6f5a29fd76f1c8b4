//! Gate operations end to end: cameras with a direction, the truck and
//! the box, and the yard with its dwell times.

use gatelog_core::gate::CameraConfig;
use gatelog_core::Direction;
use gatelog_tests::TestApp;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn cameras() -> Vec<CameraConfig> {
    vec![
        CameraConfig {
            id: "gate-1-in".into(),
            direction: Direction::In,
            lane: Some("1".into()),
        },
        CameraConfig {
            id: "gate-1-out".into(),
            direction: Direction::Out,
            lane: Some("1".into()),
        },
    ]
}

fn at_gate(container: &str, at: &str, camera: &str, plate: &str, iso: &str) -> Value {
    json!({"container": container, "captured_at": at, "camera_id": camera,
           "truck_plate": plate, "iso_type": iso})
}

#[tokio::test]
async fn directions_split_passages_and_the_yard_keeps_dwell() {
    let app = TestApp::spawn_with(|c| c.cameras = cameras()).await;
    // Two boxes on one truck come in.
    let (s, a) = app
        .post(&at_gate(
            "MSCU1234566",
            "2024-05-01T08:00:00Z",
            "gate-1-in",
            "12가3456",
            "22G1",
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(a["data"]["direction"], "in");
    assert_eq!(a["data"]["lane"], "1");
    assert_eq!(a["data"]["truck_plate"], "12가3456");
    assert_eq!(a["data"]["iso_type"], "22G1");
    app.post(&at_gate(
        "CSQU3054383",
        "2024-05-01T08:00:01Z",
        "gate-1-in",
        "12가3456",
        "22g1",
    ))
    .await;
    let (_, pair) = app.get("/api/v1/logs?limit=10").await;
    assert_eq!(pair["logs"].as_array().unwrap().len(), 2);
    assert!(pair["logs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["truck_plate"] == "12가3456"));

    // The first box is turned away: out two minutes later, inside the
    // window, is a movement of its own, with its dwell.
    let (s, out) = app
        .post(&at_gate(
            "MSCU1234566",
            "2024-05-01T08:02:00Z",
            "gate-1-out",
            "12가3456",
            "22G1",
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{out}");
    assert_ne!(out["data"]["id"], a["data"]["id"]);
    assert_eq!(out["data"]["direction"], "out");
    assert_eq!(out["data"]["dwell_secs"], 120);
    // A box that never came in goes out: flagged, not refused.
    let (s, stray) = app
        .post(&at_gate(
            "TGHU7654320",
            "2024-05-01T08:03:00Z",
            "gate-1-out",
            "77마7777",
            "XXXX",
        ))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let flags = stray["data"]["flags"].as_array().unwrap();
    assert!(flags.contains(&json!("out_without_in")), "{flags:?}");
    assert!(flags.contains(&json!("iso_type_invalid")), "{flags:?}");

    let (s, yard) = app.get("/api/v1/yard").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(yard["count"], 1);
    assert_eq!(yard["yard"][0]["container"], "CSQU3054383");
    assert!(yard["yard"][0]["dwell_secs"].as_i64().unwrap() > 0);
    // The owner filter, with and without a match.
    let (_, of_owner) = app.get("/api/v1/yard?owner=CSQU").await;
    assert_eq!(of_owner["count"], 1);
    assert_eq!(of_owner["yard"][0]["container"], "CSQU3054383");
    let (_, none) = app.get("/api/v1/yard?owner=MSCU").await;
    assert_eq!(
        (
            none["count"].as_i64(),
            none["yard"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
    let (s, stats) = app
        .get("/api/v1/yard/stats?from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z&bucket=day")
        .await;
    assert_eq!(s, StatusCode::OK, "{stats}");
    assert_eq!(stats["count"], 1);
    assert_eq!(stats["movements"][0]["gate_ins"], 2);
    assert_eq!(stats["movements"][0]["gate_outs"], 2);
    let (s, err) = app.get("/api/v1/yard?min_dwell_secs=soon").await;
    assert_eq!(
        (s, err["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("min_dwell_secs"))
    );
    app.stop().await;
}

#[tokio::test]
async fn logs_and_export_filter_by_direction_and_truck() {
    let app = TestApp::spawn_with(|c| c.cameras = cameras()).await;
    app.post(&at_gate(
        "MSCU1234566",
        "2024-05-01T08:00:00Z",
        "gate-1-in",
        "12가3456",
        "22G1",
    ))
    .await;
    app.post(&at_gate(
        "CSQU3054383",
        "2024-05-01T08:00:01Z",
        "gate-1-in",
        "12가3456",
        "22G1",
    ))
    .await;
    app.post(&at_gate(
        "TGHU7654320",
        "2024-05-01T08:05:00Z",
        "gate-1-out",
        "99바9999",
        "45G1",
    ))
    .await;
    let count = |v: &Value| v["logs"].as_array().unwrap().len();
    let (_, ins) = app.get("/api/v1/logs?direction=in").await;
    assert_eq!(count(&ins), 2);
    let (_, outs) = app.get("/api/v1/logs?direction=out").await;
    assert_eq!(count(&outs), 1);
    let plate = "/api/v1/logs?truck_plate=%2012%EA%B0%803456";
    let (s, truck) = app.get(plate).await;
    assert_eq!(s, StatusCode::OK, "{truck}");
    assert_eq!(count(&truck), 2, "both boxes on the truck");
    let (s, err) = app.get("/api/v1/logs?direction=sideways").await;
    assert_eq!(
        (s, err["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("direction"))
    );
    let csv = app
        .text("/api/v1/logs/export?format=csv&direction=out")
        .await;
    let mut lines = csv.lines();
    assert!(lines
        .next()
        .unwrap()
        .ends_with("direction,lane,truck_plate,iso_type,dwell_secs"));
    let row = lines.next().unwrap();
    assert!(
        row.contains("TGHU7654320") && row.contains(",out,1,99바9999,45G1,"),
        "{row}"
    );
    assert!(lines.next().is_none());
    app.stop().await;
}
