//! `/metrics` against Prometheus's own checker, and the Grafana dashboard
//! against `/metrics`: every metric a panel queries must exist, and every
//! query must be valid PromQL.
//!
//! Needs `promtool` (Debian package `prometheus`).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use futures_util::StreamExt;
use gatelog_tests::{read, require_tool, TestApp};
use serde_json::Value;

fn repo_file(path: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Runs promtool with `args`, feeding `stdin`; returns (success, output).
fn promtool(args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Every Prometheus query in the Grafana dashboard.
fn grafana_queries() -> Vec<String> {
    let dash: Value = serde_json::from_str(&repo_file("dashboards/grafana/gatelog.json"))
        .expect("the Grafana dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dash["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push(target["expr"].as_str().expect("expr").to_string());
        }
    }
    assert!(queries.len() >= 10, "the dashboard has too few queries");
    queries
}

/// The metric names a query mentions.
fn names_in(query: &str) -> Vec<String> {
    let mut names = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    while let Some(pos) = query[i..].find("gatelog_") {
        let start = i + pos;
        let mut end = start;
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        names.push(query[start..end].to_string());
        i = end;
    }
    names
}

/// The metric names in an exposition, as series (with suffixes such as
/// `_bucket`) and as declared families.
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            names.insert(rest.split(' ').next().unwrap().to_string());
        } else if !line.starts_with('#') && !line.is_empty() {
            let end = line.find(['{', ' ']).unwrap_or(line.len());
            names.insert(line[..end].to_string());
        }
    }
    names
}

/// An app that has seen ingest, a WebSocket client and HTTP requests, so
/// that labelled series exist.
async fn busy_app() -> (TestApp, String) {
    let app = TestApp::spawn().await;
    app.post(&read("MSCU1234566", "2024-05-01T08:30:00Z")).await;
    app.post(&read("MSCU1234566", "2024-05-01T08:31:00Z")).await;
    app.post(&read("MSCU1234560", "2024-05-01T08:40:00Z")).await;
    let url = format!("{}/ws/logs", app.base.replacen("http", "ws", 1));
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    ws.next().await.unwrap().unwrap();
    let text = app.text("/metrics").await;
    drop(ws);
    (app, text)
}

#[tokio::test]
async fn metrics_pass_promtool_and_grafana_queries_only_existing_metrics() {
    if !require_tool("promtool", &["--version"], "apt-get install prometheus") {
        return;
    }
    let (app, text) = busy_app().await;

    let (ok, out) = promtool(&["check", "metrics"], Some(&text));
    assert!(ok, "promtool check metrics failed:\n{out}\n---\n{text}");

    // The counters this work added really count.
    assert!(
        text.contains("gatelog_recognitions_flagged_total 1"),
        "{text}"
    );
    assert!(text.contains("gatelog_ws_clients 1"), "{text}");

    let exposed = exposed(&text);
    let queries = grafana_queries();
    let mut used = BTreeSet::new();
    for q in &queries {
        used.extend(names_in(q));
    }
    // The head-office view's own metrics are exposed by `gatelog central
    // serve`, and checked there (central_serve.rs).
    let missing: Vec<_> = used
        .iter()
        .filter(|n| !n.starts_with("gatelog_central_") && !exposed.contains(*n))
        .collect();
    assert!(
        missing.is_empty(),
        "the Grafana dashboard queries metrics /metrics lacks: {missing:?}"
    );
    // The panels the issue asks for are there.
    for name in [
        "gatelog_recognitions_total",
        "gatelog_recognitions_flagged_total",
        "gatelog_store_commit_seconds_bucket",
        "gatelog_sync_pending",
        "gatelog_sync_lag_seconds",
        "gatelog_sync_retries_total",
        "gatelog_sync_dead_letters",
        "gatelog_ws_clients",
    ] {
        assert!(used.contains(name), "no panel queries {name}");
    }

    // Every query is valid PromQL: promtool parses them as recording rules.
    let mut rules = String::from("groups:\n  - name: grafana\n    rules:\n");
    for (i, q) in queries.iter().enumerate() {
        let q = q.replace("$__rate_interval", "5m");
        rules.push_str(&format!(
            "      - record: gatelog:grafana_query_{i}\n        expr: {}\n",
            serde_json::to_string(&q).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("grafana-rules.yml");
    std::fs::write(&file, &rules).unwrap();
    let (ok, out) = promtool(&["check", "rules", file.to_str().unwrap()], None);
    assert!(ok, "a Grafana query is not valid PromQL:\n{out}\n{rules}");

    // The scrape example is a valid Prometheus config.
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/prometheus.yml");
    let (ok, out) = promtool(&["check", "config", config.to_str().unwrap()], None);
    assert!(ok, "config/prometheus.yml:\n{out}");
    app.stop().await;
}

#[test]
fn names_are_found_in_queries() {
    assert_eq!(
        names_in("sum(rate(gatelog_a_total[5m])) / clamp_min(gatelog_b, 1)"),
        vec!["gatelog_a_total", "gatelog_b"]
    );
}
