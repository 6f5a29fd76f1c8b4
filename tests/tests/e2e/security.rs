//! Keys, sessions, limits, hostile input and secrets, over real HTTP.

use std::process::Stdio;
use std::time::Duration;

use gatelog_supervisor::config::Config;
use gatelog_tests::{free_port, gatelog_bin, read, TestApp};
use reqwest::{header, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};

const INGEST: &str = "ingest-key-7d0c1b9e5a3f4c2d";
const READ: &str = "read-key-3e8f2a6b9c1d4e7f";

fn with_keys(c: &mut Config) {
    c.auth.ingest_keys = vec![SecretString::from(INGEST)];
    c.auth.read_keys = vec![SecretString::from(READ)];
}

async fn keyed_app() -> TestApp {
    TestApp::spawn_with(with_keys).await
}

async fn status_of(r: reqwest::RequestBuilder) -> StatusCode {
    r.send().await.expect("request is sent").status()
}

#[tokio::test]
async fn keys_are_required_and_each_kind_opens_only_its_own_door() {
    let app = keyed_app().await;
    let post = || {
        app.client
            .post(app.url("/api/v1/recognitions"))
            .json(&read("MSCU1234566", "2024-05-01T08:30:00Z"))
    };

    // No key, a wrong key, a read key, a malformed header: 401 with the
    // one error shape, and nothing stored.
    let r = post().send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r
        .headers()
        .get(header::WWW_AUTHENTICATE)
        .is_some_and(|v| v.to_str().unwrap().starts_with("Bearer")));
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["status"].as_str(), body["code"].as_str()),
        (Some("error"), Some("unauthorized"))
    );
    for auth in [
        format!("Bearer {INGEST}x"),
        format!("Bearer {READ}"),
        "Bearer".to_string(),
        format!("Basic {INGEST}"),
        INGEST.to_string(),
    ] {
        assert_eq!(
            status_of(post().header(header::AUTHORIZATION, &auth)).await,
            StatusCode::UNAUTHORIZED,
            "{auth}"
        );
    }
    assert_eq!(
        status_of(post().bearer_auth(INGEST)).await,
        StatusCode::CREATED
    );
    // The scheme is case-insensitive.
    let r = post()
        .header(header::AUTHORIZATION, format!("bearer {INGEST}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the duplicate is accepted");

    // Reads: a read key, and nothing else.
    let logs = |key: Option<&str>| {
        let r = app.client.get(app.url("/api/v1/logs"));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    };
    assert_eq!(status_of(logs(None)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status_of(logs(Some(INGEST))).await,
        StatusCode::UNAUTHORIZED
    );
    let page: Value = logs(Some(READ)).send().await.unwrap().json().await.unwrap();
    assert_eq!(page["logs"].as_array().unwrap().len(), 1);

    // Routes that do not exist yet in this build, and unknown paths, are
    // reads too: refused before routing, so they leak nothing.
    for path in [
        "/",
        "/index.html",
        "/api/v1/stats",
        "/api/v1/sync/status",
        "/api/v1/logs/export?format=csv",
        "/no/such/thing",
    ] {
        assert_eq!(
            status_of(app.client.get(app.url(path))).await,
            StatusCode::UNAUTHORIZED,
            "{path}"
        );
        assert_ne!(
            status_of(app.client.get(app.url(path)).bearer_auth(READ)).await,
            StatusCode::UNAUTHORIZED,
            "{path} with the read key"
        );
    }
    // Probes and Prometheus need no key.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(
            status_of(app.client.get(app.url(path))).await,
            StatusCode::OK,
            "{path}"
        );
    }
    app.stop().await;
}

/// The handshake a browser sends to open a WebSocket.
fn ws_handshake(app: &TestApp) -> reqwest::RequestBuilder {
    app.client
        .get(app.url("/ws/logs"))
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, "dGhlIHNhbXBsZSBub25jZQ==")
}

#[tokio::test]
async fn websocket_handshake_without_a_key_is_refused() {
    let app = keyed_app().await;
    let r = ws_handshake(&app).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(header::UPGRADE).is_none());
    assert_eq!(
        status_of(ws_handshake(&app).bearer_auth(INGEST)).await,
        StatusCode::UNAUTHORIZED
    );
    // A read key passes the gate (what follows is the route's business).
    assert_ne!(
        status_of(ws_handshake(&app).bearer_auth(READ)).await,
        StatusCode::UNAUTHORIZED
    );
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_signs_in_for_an_httponly_cookie_that_only_reads() {
    let app = keyed_app().await;
    let session = app.url("/api/v1/session");

    for key in [INGEST, "guess", ""] {
        let r = app
            .client
            .post(&session)
            .json(&json!({ "key": key }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{key}");
        assert!(r.headers().get(header::SET_COOKIE).is_none());
    }
    assert_eq!(
        status_of(app.client.post(&session).body("not json")).await,
        StatusCode::BAD_REQUEST
    );

    let r = app
        .client
        .post(&session)
        .json(&json!({ "key": READ }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let set = r
        .headers()
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    assert!(!set.contains(READ), "the cookie does not carry the key");
    let body: Value = r.json().await.unwrap();
    assert!(body["expires_at"].is_string());
    assert!(!body.to_string().contains(READ));
    let cookie = set.split(';').next().unwrap().to_string();

    // The cookie reads, over REST and on the WebSocket handshake...
    let logs = app
        .client
        .get(app.url("/api/v1/logs"))
        .header(header::COOKIE, &cookie);
    assert_eq!(status_of(logs).await, StatusCode::OK);
    let same_origin = format!("http://{}", app.base.trim_start_matches("http://"));
    assert_ne!(
        status_of(
            ws_handshake(&app)
                .header(header::COOKIE, &cookie)
                .header(header::ORIGIN, &same_origin)
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // ...but not from another site's page, and it never ingests.
    assert_eq!(
        status_of(
            ws_handshake(&app)
                .header(header::COOKIE, &cookie)
                .header(header::ORIGIN, "https://evil.example")
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let ingest = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .header(header::COOKIE, &cookie)
        .json(&read("MSCU1234566", "2024-05-01T08:30:00Z"));
    assert_eq!(status_of(ingest).await, StatusCode::UNAUTHORIZED);
    // A forged or altered token is refused.
    let forged = format!("{}x", cookie);
    assert_eq!(
        status_of(
            app.client
                .get(app.url("/api/v1/logs"))
                .header(header::COOKIE, forged)
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    // Signing out clears the cookie.
    let r = app.client.delete(&session).send().await.unwrap();
    assert!(r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    app.stop().await;
}

/// Signs in with the read key over JSON and returns `name=value` of the
/// session cookie.
async fn sign_in_cookie(app: &TestApp) -> String {
    let r = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({ "key": READ }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_session_token_is_refused_after_sign_out() {
    let app = keyed_app().await;
    let first = sign_in_cookie(&app).await;
    let second = sign_in_cookie(&app).await;
    let logs = |cookie: &str| {
        app.client
            .get(app.url("/api/v1/logs"))
            .header(header::COOKIE, cookie)
    };
    assert_eq!(status_of(logs(&first)).await, StatusCode::OK);

    let r = app
        .client
        .delete(app.url("/api/v1/session"))
        .header(header::COOKIE, &first)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // The browser is told to drop the cookie, and a copy of it no longer
    // opens anything: not REST, not the WebSocket.
    assert_eq!(status_of(logs(&first)).await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        status_of(ws_handshake(&app).header(header::COOKIE, &first)).await,
        StatusCode::UNAUTHORIZED
    );
    // Another session of the same key is not affected.
    assert_eq!(status_of(logs(&second)).await, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn a_sign_in_posted_from_another_site_is_403() {
    let app = keyed_app().await;
    let session = app.url("/api/v1/session");
    let own = app.base.clone();
    let form = |origin: Option<&str>, referer: Option<&str>| {
        let mut r = app.client.post(&session).form(&[("key", READ)]);
        if let Some(o) = origin {
            r = r.header(header::ORIGIN, o);
        }
        if let Some(o) = referer {
            r = r.header(header::REFERER, o);
        }
        r
    };
    for (origin, referer) in [
        (Some("https://evil.example"), None),
        (Some("null"), None),
        (None, Some("https://evil.example/gatelog-login.html")),
    ] {
        let r = form(origin, referer).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{origin:?} {referer:?}");
        assert!(r.headers().get(header::SET_COOKIE).is_none());
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["status"], "error");
        assert_eq!(body["code"], "forbidden");
        assert!(
            body["message"].as_str().unwrap().contains("Origin"),
            "{body}"
        );
    }
    // JSON sign-ins are held to the same rule.
    let r = app
        .client
        .post(&session)
        .header(header::ORIGIN, "https://evil.example")
        .json(&json!({ "key": READ }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // This server's own form, and a client that is no web page, sign in.
    let no_redirect = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = no_redirect
        .post(&session)
        .header(header::ORIGIN, &own)
        .form(&[("key", READ)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(r.headers().get(header::SET_COOKIE).is_some());
    let r = no_redirect
        .post(&session)
        .header(header::REFERER, format!("{own}/login"))
        .form(&[("key", READ)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    sign_in_cookie(&app).await;
    app.stop().await;
}

#[tokio::test]
async fn a_3_mib_body_is_413_even_with_a_good_key() {
    let app = keyed_app().await;
    let big = "x".repeat(3 * 1024 * 1024);
    let body = format!("{{\"container\":\"MSCU1234566\",\"pad\":\"{big}\"}}");
    let r = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .bearer_auth(INGEST)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let err: Value = r.json().await.unwrap();
    assert_eq!(err["code"], "body_too_large");
    app.stop().await;
}

#[tokio::test]
async fn a_burst_over_the_limit_is_429_with_retry_after_per_key() {
    let app = TestApp::spawn_with(|c| {
        with_keys(c);
        c.limits.rate_per_sec = 0.5;
        c.limits.burst = 5;
    })
    .await;
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..12 {
        let r = app
            .client
            .get(app.url("/api/v1/logs"))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            retry_after = r
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["code"], "rate_limited");
            statuses.push(StatusCode::TOO_MANY_REQUESTS);
        } else {
            statuses.push(r.status());
        }
    }
    let ok = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let limited = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!((5..=6).contains(&ok), "{statuses:?}");
    assert_eq!(ok + limited, 12, "{statuses:?}");
    assert!(
        retry_after.is_some_and(|s| (1..=2).contains(&s)),
        "{retry_after:?}"
    );
    // Another key has its own bucket; probes have none.
    let r = app
        .client
        .post(app.url("/api/v1/recognitions"))
        .bearer_auth(INGEST)
        .json(&read("MSCU1234566", "2024-05-01T08:30:00Z"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    for _ in 0..10 {
        assert_eq!(
            status_of(app.client.get(app.url("/healthz"))).await,
            StatusCode::OK
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn hostile_filters_answer_400_or_200_never_5xx_and_data_stays_intact() {
    let app = TestApp::spawn().await;
    let items: Vec<Value> = (0..20)
        .map(|i| json!({"owner": "MSCU", "number": format!("{:06}", 100_000 + i), "captured_at": "2024-05-01T08:30:00Z", "camera_id": "cam-1"}))
        .collect();
    let (s, _) = app.post(&Value::Array(items)).await;
    assert_eq!(s, StatusCode::OK);

    let long = "A".repeat(10_000);
    let hostile: Vec<String> = vec![
        "' OR '1'='1".into(),
        "1; DROP TABLE passages; --".into(),
        "MSCU' UNION SELECT sql FROM sqlite_master --".into(),
        "%' OR 1=1 --".into(),
        "\") OR (\"1\"=\"1".into(),
        "*".into(),
        "%".into(),
        "_".into(),
        "\u{0}".into(),
        "\n\r\t".into(),
        "../../../../etc/passwd".into(),
        "<script>alert(1)</script>".into(),
        "{{7*7}}".into(),
        "ＭＳＣＵ１２３".into(),
        "😀".into(),
        "-1".into(),
        "1e309".into(),
        "99999999999999999999999999".into(),
        "2024-13-45T99:99:99Z".into(),
        "0000-00-00T00:00:00Z".into(),
        long.clone(),
        String::new(),
    ];
    let mut params = gatelog_api::routes::logs::PARAMS.to_vec();
    params.push(long.as_str());
    let mut answered = 0;
    for path in ["/api/v1/logs", "/api/v1/logs/export"] {
        for &p in &params {
            for v in &hostile {
                let mut query = vec![(p, v.as_str())];
                if path.ends_with("export") {
                    query.push(("format", "jsonl"));
                }
                let r = app
                    .client
                    .get(app.url(path))
                    .query(&query)
                    .send()
                    .await
                    .unwrap();
                let status = r.status();
                let text = r.text().await.unwrap();
                assert!(
                    status == StatusCode::OK || status == StatusCode::BAD_REQUEST,
                    "{path} {p}={v:?}: {status} {text}"
                );
                let lower = text.to_lowercase();
                if status == StatusCode::BAD_REQUEST {
                    let body: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(body["code"], "bad_parameter", "{text}");
                    for leak in ["sqlite", "select ", "syntax", "sqlx"] {
                        assert!(!lower.contains(leak), "{p}={v:?} leaks {leak}: {text}");
                    }
                }
                answered += 1;
            }
        }
    }
    assert_eq!(answered, 2 * params.len() * hostile.len());

    // A query string far over any sane size is refused, not a crash.
    let huge = format!("/api/v1/logs?q={}", "A".repeat(200_000));
    let r = app.client.get(app.url(&huge)).send().await;
    if let Ok(r) = r {
        assert!(!r.status().is_server_error(), "{}", r.status());
    }

    // The data is intact: every passage, and the file passes its check.
    let (s, page) = app.get("/api/v1/logs?limit=1000").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["logs"].as_array().unwrap().len(), 20);
    let dir = app.stop().await;
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!(
        "sqlite://{}",
        dir.path().join("gatelog.db").display()
    ))
    .await
    .unwrap();
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM passages")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(n, 20);
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_allowlist() {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/logs"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "GET")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
    };
    let app = keyed_app().await;
    let r = app
        .client
        .get(app.url("/api/v1/logs"))
        .bearer_auth(READ)
        .header(header::ORIGIN, "https://ops.example.com")
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    let r = preflight(&app, "https://ops.example.com")
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    app.stop().await;

    let app = TestApp::spawn_with(|c| {
        with_keys(c);
        c.server.cors_origins = vec!["https://ops.example.com".into()];
    })
    .await;
    let r = preflight(&app, "https://ops.example.com")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://ops.example.com"
    );
    let r = preflight(&app, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    app.stop().await;
}

/// Made-up secrets, one of each kind.
const SUPABASE_SECRET: &str = "sb-made-up-secret-9f8e7d6c5b4a";
const INGEST_SECRET: &str = "ingest-made-up-secret-1a2b3c4d5e";
const READ_SECRET: &str = "read-made-up-secret-6f7a8b9c0d1e";
const DB_PASSWORD: &str = "pg-made-up-password-2468ace";

fn secret_env(port: u16, dir: &std::path::Path) -> Vec<(String, String)> {
    vec![
        ("SUPABASE_URL".into(), "https://example.invalid".into()),
        ("SUPABASE_KEY".into(), SUPABASE_SECRET.into()),
        (
            "DATABASE_URL".into(),
            format!("postgres://gatelog:{DB_PASSWORD}@127.0.0.1:1/gatelog"),
        ),
        ("GATELOG_SYNC__TARGET".into(), "supabase".into()),
        (
            "GATELOG_AUTH__INGEST_KEYS".into(),
            format!("{INGEST_SECRET},another-ingest-key-000000"),
        ),
        ("GATELOG_AUTH__READ_KEYS".into(), READ_SECRET.into()),
        ("GATELOG_SERVER__BIND".into(), format!("127.0.0.1:{port}")),
        (
            "GATELOG_STORE__PATH".into(),
            dir.join("gatelog.db").display().to_string(),
        ),
        ("RUST_LOG".into(), "debug".into()),
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for s in [SUPABASE_SECRET, INGEST_SECRET, READ_SECRET, DB_PASSWORD] {
        assert!(!text.contains(s), "{what} leaks {s}:\n{text}");
    }
}

fn gatelog(dir: &std::path::Path, env: &[(String, String)]) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(gatelog_bin());
    cmd.current_dir(dir).kill_on_drop(true);
    for (k, _) in std::env::vars() {
        if k.starts_with("GATELOG_") || k.starts_with("SUPABASE_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

#[tokio::test]
async fn digits_only_keys_from_the_environment_open_the_real_binary() {
    let dir = tempfile::tempdir().unwrap();
    // A key of digits reads as a number to figment; one with a leading
    // zero would lose it.
    let app = gatelog_tests::BinaryApp::start(
        dir.path(),
        &[
            ("GATELOG_AUTH__INGEST_KEYS", "12345"),
            ("GATELOG_AUTH__READ_KEYS", "0123456789"),
        ],
    )
    .await;
    let client = reqwest::Client::new();
    let post = |key: &str| {
        client
            .post(format!("{}/api/v1/recognitions", app.base))
            .bearer_auth(key)
            .json(&read("MSCU1234565", "2024-05-01T08:30:00Z"))
    };
    assert_eq!(status_of(post("12345")).await, StatusCode::CREATED);
    assert_eq!(status_of(post("12346")).await, StatusCode::UNAUTHORIZED);
    let get = |key: &str| {
        client
            .get(format!("{}/api/v1/logs", app.base))
            .bearer_auth(key)
    };
    assert_eq!(status_of(get("0123456789")).await, StatusCode::OK);
    assert_eq!(status_of(get("123456789")).await, StatusCode::UNAUTHORIZED);
    assert!(app.terminate().await.success());
}

#[tokio::test]
async fn made_up_secrets_appear_in_no_response_no_log_line_and_no_config_output() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = secret_env(port, dir.path());
    let child = gatelog(dir.path(), &env)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..300 {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(ready, "gatelog serve did not become ready");

    let mut seen = String::new();
    let record = |r: reqwest::Response| async move {
        let mut text = format!("{} {:?}\n", r.status(), r.headers());
        text.push_str(&r.text().await.unwrap_or_default());
        text
    };
    let post = |key: &str, body: Value| {
        client
            .post(format!("{base}/api/v1/recognitions"))
            .bearer_auth(key)
            .json(&body)
            .send()
    };
    seen += &record(
        post(INGEST_SECRET, read("MSCU1234566", "2024-05-01T08:30:00Z"))
            .await
            .unwrap(),
    )
    .await;
    seen += &record(post(INGEST_SECRET, json!({"owner": 7})).await.unwrap()).await;
    seen += &record(post(READ_SECRET, json!({})).await.unwrap()).await;
    seen += &record(post(SUPABASE_SECRET, json!({})).await.unwrap()).await;
    for path in [
        "/api/v1/logs",
        "/api/v1/logs?owner=%27",
        "/api/v1/logs/export?format=jsonl",
        "/api/v1/sync/status",
        "/api/v1/stats",
        "/",
        "/metrics",
        "/healthz",
    ] {
        for key in [READ_SECRET, SUPABASE_SECRET] {
            let r = client
                .get(format!("{base}{path}"))
                .bearer_auth(key)
                .send()
                .await
                .unwrap();
            seen += &record(r).await;
        }
    }
    let r = client
        .post(format!("{base}/api/v1/session"))
        .json(&json!({ "key": READ_SECRET }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    seen += &record(r).await;
    assert!(
        seen.contains("MSCU1234566"),
        "the requests did reach gatelog"
    );
    assert_no_secret("a response", &seen);

    // Stop it and read everything it logged.
    let pid = child.id().unwrap();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap()
        .success());
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("gatelog exits after SIGTERM")
        .unwrap();
    let logs =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(
        logs.lines().count() > 5 && logs.contains("gatelog is serving"),
        "the logs were captured: {logs}"
    );
    assert_no_secret("the log", &logs);

    // `gatelog config`, and the error of a bad config, print none either.
    let out = gatelog(dir.path(), &env)
        .arg("config")
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[redacted]"), "{text}");
    assert_no_secret("gatelog config", &text);
    assert_no_secret("gatelog config", &String::from_utf8_lossy(&out.stderr));

    let mut bad = env.clone();
    bad.push(("GATELOG_DEDUP__WINDOW_SECS".into(), "five".into()));
    let out = gatelog(dir.path(), &bad)
        .arg("serve")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert_no_secret("a config error", &String::from_utf8_lossy(&out.stderr));
}

/// Sends `head` (and no more) on a raw connection, waits, and returns what
/// the server answered before closing.
async fn stall(base: &str, head: &str, wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(wait).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn slow_clients_are_cut_off_with_408() {
    let app = TestApp::spawn_with(|c| {
        c.server.client_request_timeout_ms = 300;
        c.server.request_timeout_secs = 1;
    })
    .await;
    // A head that never ends.
    let answer = stall(
        &app.base,
        "POST /api/v1/recognitions HTTP/1.1\r\nHost: x\r\n",
        Duration::from_millis(600),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    // A whole head, then a body that stops halfway.
    let answer = stall(
        &app.base,
        "POST /api/v1/recognitions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 200\r\n\r\n{\"container\": \"MSCU",
        Duration::from_millis(1500),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("request_timeout"), "{answer:?}");
    let (_, logs) = app.get("/api/v1/logs").await;
    assert_eq!(logs["logs"].as_array().unwrap().len(), 0);
    // The 408 that left the app is counted like any answer.
    let metrics = app.text("/metrics").await;
    assert!(
        metrics.lines().any(|l| l.starts_with(
            "gatelog_http_requests_total{route=\"/api/v1/recognitions\",status=\"408\"} 1"
        )),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_browser_without_a_session_is_sent_to_a_sign_in_form_that_sets_the_cookie() {
    let app = keyed_app().await;
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = |path: &str| {
        browser
            .get(app.url(path))
            .header(header::ACCEPT, "text/html,application/xhtml+xml")
    };
    let r = page("/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/login");
    // The API and the WebSocket answer 401, never a redirect.
    assert_eq!(
        status_of(page("/api/v1/logs")).await,
        StatusCode::UNAUTHORIZED
    );
    let form = page("/login").send().await.unwrap();
    assert_eq!(form.status(), StatusCode::OK);
    let html = form.text().await.unwrap();
    assert!(html.contains("action=\"/api/v1/session\"") && html.contains("type=\"password\""));

    let sign_in = |key: &str| {
        browser
            .post(app.url("/api/v1/session"))
            .form(&[("key", key)])
            .send()
    };
    let r = sign_in(INGEST).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert!(r.headers().get(header::SET_COOKIE).is_none());
    assert!(r.text().await.unwrap().contains("not a read key"));

    let r = sign_in(READ).await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/");
    let cookie = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let r = page("/")
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap();
    assert!(
        r.status() != StatusCode::SEE_OTHER && r.status() != StatusCode::UNAUTHORIZED,
        "{}",
        r.status()
    );
    app.stop().await;
}

#[tokio::test]
async fn wrong_keys_are_limited_per_address_even_when_the_next_key_is_right() {
    let app = TestApp::spawn_with(|c| {
        with_keys(c);
        c.limits.auth_failures_per_minute = 1;
        c.limits.auth_failure_burst = 3;
    })
    .await;
    let logs = |key: &'static str| {
        app.client
            .get(app.url("/api/v1/logs"))
            .bearer_auth(key)
            .send()
    };
    // No credentials at all is not a failure, however often, and neither
    // is a stale session cookie (every dashboard has one after a restart).
    for _ in 0..5 {
        let r = app
            .client
            .get(app.url("/api/v1/logs"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = app
            .client
            .get(app.url("/api/v1/logs"))
            .header(header::COOKIE, "gatelog_session=1.2.stale")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    assert_eq!(logs(READ).await.unwrap().status(), StatusCode::OK);
    // Three wrong guesses, at the API and at sign-in, spend the allowance.
    assert_eq!(
        logs("guess-1").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        logs("guess-2").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .client
        .post(app.url("/api/v1/session"))
        .json(&json!({"key": "guess-3"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Now even the right key is refused from this address, with a wait,
    // so a guess cannot be told right or wrong.
    for attempt in [
        logs(READ).await.unwrap(),
        app.client
            .post(app.url("/api/v1/session"))
            .json(&json!({"key": READ}))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(attempt.status(), StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = attempt.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&wait), "{wait}");
        let body: Value = attempt.json().await.unwrap();
        assert_eq!(body["code"], "rate_limited");
    }
    // Probes stay open.
    let r = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    app.stop().await;
}

/// A random string from pieces that tend to break parsers.
fn garbage(rng: &mut impl rand::Rng) -> String {
    const PIECES: [&str; 24] = [
        "",
        "MSCU",
        "123456",
        "6",
        "'",
        "\"",
        ";",
        "--",
        "%",
        "%00",
        "%ZZ",
        "\\",
        "/",
        "..",
        "*",
        " ",
        "+",
        "&",
        "=",
        "\u{0}",
        "é",
        "한",
        "2024-05-01T08:30:00Z",
        "-1",
    ];
    let n = rng.random_range(0..6);
    let mut s: String = (0..n)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect();
    if rng.random_bool(0.05) {
        s.push_str(&"9".repeat(rng.random_range(100..5000)));
    }
    s
}

#[tokio::test]
async fn random_queries_and_bodies_never_get_a_5xx() {
    use rand::{Rng, SeedableRng};
    let seed: u64 = rand::random();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let app = TestApp::spawn().await;
    let (s, _) = app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    assert_eq!(s, StatusCode::CREATED);
    // Every filter, the export's and the stats' own parameters, and one
    // nobody knows.
    let keys: Vec<&str> = gatelog_api::routes::logs::PARAMS
        .into_iter()
        .chain(["format", "bucket", "colour"])
        .collect();
    const PATHS: [&str; 6] = [
        "/api/v1/logs",
        "/api/v1/logs/export",
        "/api/v1/stats",
        "/api/v1/sync/status",
        "/api/v1/logs/0190d8f4-0000-7000-8000-000000000000",
        "/api/v1/logs/0190d8f4-0000-7000-8000-000000000000/sightings",
    ];
    for i in 0..300 {
        let pairs: Vec<(String, String)> = (0..rng.random_range(0..4))
            .map(|_| {
                let key = if rng.random_bool(0.9) {
                    keys[rng.random_range(0..keys.len())].to_string()
                } else {
                    garbage(&mut rng)
                };
                (key, garbage(&mut rng))
            })
            .collect();
        let query = serde_urlencoded::to_string(&pairs).unwrap();
        let path = PATHS[i % PATHS.len()];
        let r = app
            .client
            .get(format!("{}{path}?{query}", app.base))
            .send()
            .await
            .unwrap();
        let status = r.status();
        assert!(
            status.is_success() || status.as_u16() == 400 || status.as_u16() == 404,
            "seed {seed}: GET {path}?{query} answered {status}"
        );
        if !status.is_success() {
            let body: Value = r.json().await.unwrap();
            assert_eq!(body["status"], "error", "seed {seed}: {path}?{query}");
        }

        let body = match rng.random_range(0..3) {
            0 => garbage(&mut rng),
            1 => json!({ keys[rng.random_range(0..keys.len())]: garbage(&mut rng),
                         "container": garbage(&mut rng), "captured_at": garbage(&mut rng) })
            .to_string(),
            _ => json!([{ "owner": garbage(&mut rng), "number": garbage(&mut rng),
                          "check_digit": garbage(&mut rng), "captured_at": "2024-05-01T08:31:00Z" }])
            .to_string(),
        };
        let r = app
            .client
            .post(app.url("/api/v1/recognitions"))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(
            matches!(status, 200 | 201 | 400 | 413 | 422),
            "seed {seed}: POST {body:?} answered {status}"
        );
    }
    let (s, page) = app.get("/api/v1/logs?owner=MSCU&number=123456").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(page["logs"][0]["container"], "MSCU1234566");
    app.stop().await;
}
