//! What the dashboard reads over HTTP: the page itself, `/api/v1/stats`,
//! and the read-only image route.

use gatelog_tests::{read, TestApp};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let app = TestApp::spawn().await;
    let r = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(r.headers().contains_key("content-security-policy"));
    let html = r.text().await.unwrap();
    assert!(html.contains(r#"data-testid="search""#));
    // The placeholders are filled: sync status exists (its target is
    // `none` here), no image folder is configured.
    assert!(html.contains(r#"<meta name="gatelog-sync" content="on">"#));
    assert!(html.contains(r#"<meta name="gatelog-images" content="off">"#));
    for (path, kind) in [("/app.js", "text/javascript"), ("/style.css", "text/css")] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path}");
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with(kind));
        assert!(r.text().await.unwrap().len() > 1000, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn stats_count_passages_reads_repeats_and_flags_per_bucket() {
    let app = TestApp::spawn().await;
    // 08:xx: two passages, one repeated twice, one flagged read.
    app.post(&read("MSCU1234566", "2024-05-01T08:10:00Z")).await;
    app.post(&read("MSCU1234566", "2024-05-01T08:12:00Z")).await;
    app.post(&read("MSCU1234566", "2024-05-01T08:14:00Z")).await;
    app.post(&read("CSQU3054380", "2024-05-01T08:50:00Z")).await;
    // 10:xx: one passage.
    app.post(&read("CSQU3054383", "2024-05-01T10:00:00Z")).await;

    let (s, body) = app
        .get("/api/v1/stats?from=2024-05-01T08:00:00Z&to=2024-05-01T11:00:00Z&bucket=hour")
        .await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body["bucket"], "hour");
    assert_eq!(body["from"], "2024-05-01T08:00:00Z");
    assert_eq!(body["to"], "2024-05-01T11:00:00Z");
    let buckets = body["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 3);
    assert_eq!(
        buckets[0],
        json!({"start": "2024-05-01T08:00:00Z", "passages": 2, "sightings": 4, "duplicates": 2, "flagged": 1})
    );
    assert_eq!(
        buckets[1],
        json!({"start": "2024-05-01T09:00:00Z", "passages": 0, "sightings": 0, "duplicates": 0, "flagged": 0})
    );
    assert_eq!(buckets[2]["passages"], 1);

    let (s, body) = app
        .get("/api/v1/stats?from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z&bucket=day")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body["buckets"].as_array().unwrap().len(), 1);
    assert_eq!(body["buckets"][0]["passages"], 3);
    assert_eq!(body["buckets"][0]["sightings"], 5);

    for (q, param) in [
        ("bucket=minute", "bucket"),
        ("from=noon", "from"),
        ("to=2024-05-01", "to"),
        ("from=2024-05-02T00:00:00Z&to=2024-05-01T00:00:00Z", "from"),
        ("from=2023-01-01T00:00:00Z&to=2024-05-01T00:00:00Z", "from"),
        ("step=5", "step"),
    ] {
        let (s, body) = app.get(&format!("/api/v1/stats?{q}")).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(body["field"], param, "{q}");
    }
    app.stop().await;
}

#[tokio::test]
async fn images_are_served_from_the_image_folder_only() {
    let root = tempfile::tempdir().unwrap();
    let images = root.path().join("crops");
    std::fs::create_dir_all(images.join("cam1")).unwrap();
    std::fs::write(images.join("cam1/a.png"), b"\x89PNG fake").unwrap();
    std::fs::write(images.join("notes.txt"), b"text").unwrap();
    std::fs::write(root.path().join("secret.png"), b"secret").unwrap();
    let dir = images.clone();
    let app = TestApp::spawn_with(move |c| c.server.image_dir = Some(dir)).await;

    let r = app
        .client
        .get(app.url("/images?ref=cam1%2Fa.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    assert_eq!(&r.bytes().await.unwrap()[..], b"\x89PNG fake");

    let html = app
        .client
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(r#"<meta name="gatelog-images" content="on">"#));

    let secret = root.path().join("secret.png");
    for bad in [
        "../secret.png".to_string(),
        "cam1/../../secret.png".into(),
        "%2E%2E%2Fsecret.png".into(),
        secret.display().to_string(),
        "notes.txt".into(),
        "/etc/passwd".into(),
        "missing.png".into(),
    ] {
        let url = format!("{}?ref={}", app.url("/images"), bad.replace('/', "%2F"));
        let r = app.client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{bad}");
        assert_ne!(&r.bytes().await.unwrap()[..], b"secret", "{bad}");
    }
    let (s, body) = app.get("/images?path=x").await;
    assert_eq!(
        (s, body["field"].as_str()),
        (StatusCode::BAD_REQUEST, Some("ref"))
    );
    app.stop().await;
}
