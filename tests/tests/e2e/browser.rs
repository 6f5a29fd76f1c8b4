//! The dashboard in a real browser: headless Chromium driven by
//! playwright-core (`tests/browser/dashboard.mjs`, `exceptions.mjs`,
//! `yard.mjs`, and `signin.mjs` with keys configured) against the real
//! app, and `central.mjs` against the real `gatelog central serve`.
//!
//! Needs `node`, Debian's `chromium` at /usr/bin/chromium (or `CHROMIUM`),
//! and `npm ci` run once in `tests/browser`. Screenshots go to
//! `tests/artifacts/`.

use std::path::{Path, PathBuf};

use chrono::{Duration, Utc};
use gatelog_core::gate::CameraConfig;
use gatelog_core::Direction;
use gatelog_tests::{container, missing, read, require_tool, TestApp};
use reqwest::StatusCode;

/// A small picture of a number plate, served from the image folder.
const PLATE_PNG: &[u8] = include_bytes!("../../browser/plate.png");

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("browser")
}

/// The Chromium to drive, once node, Chromium and playwright-core are
/// there; `None` (after saying so) when one is missing.
fn chromium() -> Option<String> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !require_tool("node", &["--version"], "apt-get install nodejs")
        || !require_tool(&chromium, &["--version"], "apt-get install chromium")
    {
        return None;
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        missing("playwright-core is not installed (run `npm ci` in tests/browser)");
        return None;
    }
    Some(chromium)
}

/// Runs `script` in `tests/browser` with node, asserts that it passed, and
/// returns what it printed.
async fn run_script(chromium: &str, script: &str, args: &[&std::ffi::OsStr]) -> String {
    let out = tokio::process::Command::new("node")
        .arg(script)
        .args(args)
        .current_dir(browser_dir())
        .env("CHROMIUM", chromium)
        .output()
        .await
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the browser checks of {script} failed:\n{stdout}\n{stderr}"
    );
    stdout
}

#[tokio::test]
async fn a_stale_session_sends_the_dashboard_back_to_sign_in() {
    const READ: &str = "read-key-browser-7c1e9a";
    let Some(chromium) = chromium() else { return };
    let app = TestApp::spawn_with(|c| {
        c.auth.ingest_keys = vec![secrecy::SecretString::from("ingest-key-browser-2b4d")];
        c.auth.read_keys = vec![secrecy::SecretString::from(READ)];
    })
    .await;
    let stdout = run_script(&chromium, "signin.mjs", &[app.base.as_ref(), READ.as_ref()]).await;
    assert!(
        stdout.contains("ok - a dashboard whose session ended goes back to the sign-in form"),
        "{stdout}"
    );
    app.stop().await;
}

#[tokio::test]
async fn dashboard_works_in_headless_chromium() {
    let Some(chromium) = chromium() else { return };

    let images = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(images.path().join("cam1")).unwrap();
    std::fs::write(images.path().join("cam1/plate.png"), PLATE_PNG).unwrap();
    let image_dir = images.path().to_path_buf();
    let app = TestApp::spawn_with(|c| c.server.image_dir = Some(image_dir)).await;

    // Passages from the last two hours, so the chart has bars; two with a
    // cropped image under the image folder.
    let start = Utc::now() - Duration::hours(2);
    let mut seeds: Vec<_> = (0..9).map(container).collect();
    seeds.push("MAEU1234567".into());
    for (i, c) in seeds.iter().enumerate() {
        let at = (start + Duration::minutes(10 * i as i64)).to_rfc3339();
        let mut body = read(c, &at);
        body["camera_id"] = format!("gate-cam-{}", i % 3 + 1).into();
        if c.starts_with("CMAU") {
            body["cropped_image_ref"] = "cam1/plate.png".into();
        }
        let (s, _) = app.post(&body).await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
    }

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let stdout = run_script(
        &chromium,
        "dashboard.mjs",
        &[app.base.as_ref(), artifacts.as_os_str()],
    )
    .await;
    println!("{stdout}");
    assert!(stdout.contains("ok - no console errors"), "{stdout}");
    let shot = std::fs::metadata(artifacts.join("dashboard.png")).expect("a screenshot");
    assert!(shot.len() > 10_000, "the screenshot is suspiciously small");
    app.stop().await;
}

#[tokio::test]
async fn an_operator_resolves_a_queued_read_in_chromium() {
    const INGEST: &str = "ingest-key-browser-9e2a41c7";
    const OPERATOR: &str = "operator-key-browser-5d7f3b18";
    let Some(chromium) = chromium() else { return };
    let images = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(images.path().join("cam1")).unwrap();
    std::fs::write(images.path().join("cam1/plate.png"), PLATE_PNG).unwrap();
    let image_dir = images.path().to_path_buf();
    let app = TestApp::spawn_with(|c| {
        c.server.image_dir = Some(image_dir);
        c.auth.ingest_keys = vec![secrecy::SecretString::from(INGEST)];
        c.auth.operator_keys = vec![secrecy::SecretString::from(format!("kim:{OPERATOR}"))];
    })
    .await;

    // A read whose serial holds a letter with no digit look-alike, and no
    // check digit to find it by: queued for an operator.
    let r = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .bearer_auth(INGEST)
        .json(&serde_json::json!({
            "container": "CSQU30K438",
            "captured_at": Utc::now().to_rfc3339(),
            "camera_id": "gate-cam-1",
            "cropped_image_ref": "cam1/plate.png",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let stdout = run_script(
        &chromium,
        "exceptions.mjs",
        &[app.base.as_ref(), OPERATOR.as_ref(), artifacts.as_os_str()],
    )
    .await;
    println!("{stdout}");
    assert!(
        stdout.contains("ok - it appears in the log as a passage, marked corrected"),
        "{stdout}"
    );
    assert!(stdout.contains("ok - no console errors"), "{stdout}");

    // The server agrees: one passage, resolved by kim.
    let list: serde_json::Value = app
        .client
        .get(app.url("/api/v1/logs"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logs = list["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 1, "{list}");
    assert_eq!(logs[0]["container"], "CSQU3054383");
    assert_eq!(logs[0]["corrections"][0]["by"], "kim");
    app.stop().await;
}

#[tokio::test]
async fn the_yard_view_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let lane = Some("1".to_string());
    let app = TestApp::spawn_with(|c| {
        c.cameras = vec![
            CameraConfig {
                id: "gate-1-in".into(),
                direction: Direction::In,
                lane: lane.clone(),
            },
            CameraConfig {
                id: "gate-1-out".into(),
                direction: Direction::Out,
                lane,
            },
        ]
    })
    .await;

    // What yard.mjs expects: two boxes on one truck in 50 h ago, one in
    // 5 h ago, one in 2 h ago and out 30 min ago, one in 10 min ago, and a
    // stray out. Times are relative to now, since dwell runs to now.
    let now = Utc::now();
    let seeds = [
        (
            "MSCU1234566",
            50 * 3600,
            "gate-1-in",
            Some("12가3456"),
            "22G1",
        ),
        (
            "CSQU3054383",
            50 * 3600 - 1,
            "gate-1-in",
            Some("12가3456"),
            "22G1",
        ),
        (
            "TGHU7654320",
            5 * 3600,
            "gate-1-in",
            Some("34나5678"),
            "45G1",
        ),
        (
            "MAEU1234567",
            2 * 3600,
            "gate-1-in",
            Some("56다7890"),
            "45R1",
        ),
        (
            "MAEU1234567",
            30 * 60,
            "gate-1-out",
            Some("78라1234"),
            "45R1",
        ),
        ("MSCU0000007", 10 * 60, "gate-1-in", None, "22G1"),
        (
            "OOLU0000008",
            5 * 60,
            "gate-1-out",
            Some("90마1234"),
            "22G1",
        ),
    ];
    for (c, ago, camera, plate, iso) in seeds {
        let at = (now - Duration::seconds(ago)).to_rfc3339();
        let mut body = read(c, &at);
        body["camera_id"] = camera.into();
        body["iso_type"] = iso.into();
        if let Some(plate) = plate {
            body["truck_plate"] = plate.into();
        }
        let (s, answer) = app.post(&body).await;
        assert_eq!(s, StatusCode::CREATED, "{c} {camera}: {answer}");
    }
    let (_, yard) = app.get("/api/v1/yard").await;
    assert_eq!(yard["count"], 4, "{yard}");

    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let stdout = run_script(
        &chromium,
        "yard.mjs",
        &[app.base.as_ref(), artifacts.as_os_str()],
    )
    .await;
    println!("{stdout}");
    for line in [
        "ok - the yard view counts 4 containers in the yard (4)",
        "ok - the dwell histogram puts the boxes in the right bins (1, 1, 0, 2, 0, 0, 0, 0)",
        "ok - the two boxes on that truck show together",
        "ok - no console errors",
    ] {
        assert!(stdout.contains(line), "missing {line:?}:\n{stdout}");
    }
    // The page's count is the server's: the live gate-in the script posted
    // is the fifth container in the yard.
    let (_, yard) = app.get("/api/v1/yard").await;
    assert_eq!(yard["count"], 5, "{yard}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_office_dashboard_in_chromium_with_its_site_filter() {
    use sqlx::Connection;
    let Some(chromium) = chromium() else { return };
    let Some(db) = gatelog_tests::central::CentralDb::create().await else {
        return;
    };
    // What central.mjs expects: three passages of gate-a, two of gate-b.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    for n in 0..5u64 {
        let site = if n < 3 { "gate-a" } else { "gate-b" };
        crate::central_serve::insert_row(&mut conn, site, &container(n + 1), 60 + n as i64).await;
    }
    conn.close().await.ok();
    let dir = tempfile::tempdir().unwrap();
    let central = crate::central_serve::CentralServe::start(dir.path(), &db.url, &[]).await;
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let out = run_script(
        &chromium,
        "central.mjs",
        &[central.base.as_ref(), artifacts.as_os_str()],
    )
    .await;
    assert!(
        out.contains("ok - the site filter narrows the log to one site"),
        "{out}"
    );
    assert!(artifacts.join("central-site-filter.png").is_file());
}
