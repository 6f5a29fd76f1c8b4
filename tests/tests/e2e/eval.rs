//! `gatelog simulate --labelled` and `gatelog eval`, run as a user runs
//! them, and the demo feed's crop images.
//!
//! The crafted stream's answers hold under any sane recognition rules: a
//! split across the dedup window, a merge of two labels on one number
//! inside it, a passage labelled with another valid number, text that
//! cannot be a number, and text that no correction can make valid (refused
//! today, queued once the exceptions queue exists).

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatelog_supervisor::config::Config;
use gatelog_supervisor::ops::eval;
use gatelog_supervisor::serve::{Application, ServeOptions};
use gatelog_tests::{container, gatelog_bin, test_config};
use serde_json::{json, Value};

/// One line of a labelled stream.
fn line(text: &str, at: &str, truth: &str, passage: &str) -> String {
    json!({
        "container": text,
        "captured_at": at,
        "camera_id": "cam-1",
        "truth": {"container": truth, "passage": passage},
    })
    .to_string()
}

/// The crafted stream (dedup window 300 s): true passage `a` read at 08:00
/// and again at 08:20 (split in two), `b1` and `b2` one minute apart on
/// the same number (merged), `c` read as one valid number but labelled
/// with another, `d` unreadable as a number at all and `e` with eleven
/// letters and digits that cannot be made valid.
fn crafted() -> String {
    let (a, b, c, w) = (container(0), container(6), container(12), container(18));
    [
        line(&a, "2024-05-01T08:00:00Z", &a, "a"),
        line(&a, "2024-05-01T08:00:03Z", &a, "a"),
        line(&b, "2024-05-01T08:01:00Z", &b, "b1"),
        line(&b, "2024-05-01T08:02:00Z", &b, "b2"),
        line(&c, "2024-05-01T08:03:00Z", &w, "c"),
        line("HELLO", "2024-05-01T08:04:00Z", &container(24), "d"),
        line("M3C7X2K4Q61", "2024-05-01T08:05:00Z", &container(30), "e"),
        line(&a, "2024-05-01T08:20:00Z", &a, "a"),
    ]
    .join("\n")
        + "\n"
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

/// `gatelog <args>` in `dir`, with no configuration from the environment.
async fn gatelog(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(gatelog_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GATELOG_") || k.starts_with("SUPABASE_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir).args(args).output().await.unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn eval_measures_a_crafted_stream_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "crafted.jsonl", &crafted());
    let file = file.to_str().unwrap();
    let mut reports = Vec::new();
    for batch in ["100", "1"] {
        let out = gatelog(dir.path(), &["eval", file, "--batch", batch]).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}): {}", text(&out.stdout)));
        assert!(
            text(&out.stderr).contains("false merges"),
            "{}",
            text(&out.stderr)
        );
        reports.push(report);
    }
    let r = &reports[0];
    assert_eq!(r["passages"], 4, "{r}");
    assert_eq!(r["false_merge_rate"], json!(1.0 / 4.0), "{r}");
    assert_eq!(r["true_passages"], 6, "{r}");
    assert_eq!(r["false_split_rate"], json!(1.0 / 6.0), "{r}");
    assert_eq!(r["true_number_rate"], json!(3.0 / 4.0), "{r}");
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
    // `e` is refused today and queued once the exceptions queue exists;
    // either way it is counted once, and `HELLO` is always refused.
    assert_eq!(n("reads_queued") + n("reads_refused"), 2, "{r}");
    assert_eq!(n("reads_queued") + n("reads_refused_readable"), 1, "{r}");
    assert_eq!(n("corrections"), 0, "{r}");
    assert_eq!(n("corrections_wrong"), 0, "{r}");
    assert_eq!(n("true_passages_unlanded"), 2, "{r}");
    // One read per POST is decided as a batch is.
    assert_eq!(reports[0], reports[1]);
}

#[tokio::test]
async fn the_truth_never_reaches_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let reads = eval::parse(&crafted()).unwrap();
    let config = eval::config_for(Config::default(), dir.path());
    let report = eval::replay(config, &reads, 100).await.unwrap();
    assert_eq!(report.passages, 4);

    use sqlx::Connection;
    let db = dir.path().join("gatelog.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
        .await
        .unwrap();
    let mut raws: Vec<String> = sqlx::query_scalar("SELECT raw FROM sightings")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    raws.sort();
    // Every stored read is its line without `truth`, byte for byte.
    let mut sent: Vec<String> = reads
        .iter()
        .filter(|r| !r.body.contains("HELLO") && !r.body.contains("M3C7"))
        .map(|r| r.body.clone())
        .collect();
    sent.sort();
    assert_eq!(raws.len(), 6);
    assert_eq!(raws, sent);
    assert!(raws.iter().all(|raw| !raw.contains("truth")));
}

#[tokio::test]
async fn a_malformed_line_stops_eval_with_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let good = line(&container(0), "2024-05-01T08:00:00Z", &container(0), "a");
    let file = write(
        dir.path(),
        "bad.jsonl",
        &format!("{good}\n{{\"container\": \n{good}\n"),
    );
    let out = gatelog(dir.path(), &["eval", file.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(err.contains("bad.jsonl: line 2: not JSON"), "{err}");

    let unlabelled = write(
        dir.path(),
        "plain.jsonl",
        &format!("{good}\n{}\n", json!({"container": container(0)})),
    );
    let out = gatelog(dir.path(), &["eval", unlabelled.to_str().unwrap()]).await;
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("line 2: no \"truth\""),
        "{}",
        text(&out.stderr)
    );
}

/// The command that made the committed fixture, as README.md gives it.
const FIXTURE_ARGS: [&str; 5] = ["--seed", "9", "--passages", "60", "--labelled"];

#[tokio::test]
async fn simulate_with_a_seed_is_deterministic_and_made_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let mut made = Vec::new();
    for name in ["one.jsonl", "two.jsonl"] {
        let mut args = vec!["simulate"];
        args.extend(FIXTURE_ARGS);
        args.push(name);
        let out = gatelog(dir.path(), &args).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("(seed 9)"),
            "{}",
            text(&out.stdout)
        );
        made.push(std::fs::read_to_string(dir.path().join(name)).unwrap());
    }
    assert_eq!(made[0], made[1]);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/labelled-small.jsonl");
    let committed = std::fs::read_to_string(&fixture).unwrap();
    assert!(
        committed == made[0],
        "{} is not what `gatelog simulate --seed 9 --passages 60 --labelled FILE` writes; \
         regenerate it and re-measure BENCHMARKS.md",
        fixture.display()
    );

    let out = gatelog(
        dir.path(),
        &[
            "simulate",
            "--seed",
            "10",
            "--passages",
            "60",
            "--labelled",
            "other.jsonl",
        ],
    )
    .await;
    assert!(out.status.success());
    assert_ne!(
        std::fs::read_to_string(dir.path().join("other.jsonl")).unwrap(),
        made[0]
    );

    // The fixture evaluates: every line is a read of one of its 60 trucks.
    let out = gatelog(dir.path(), &["eval", fixture.to_str().unwrap()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["true_passages"], 60, "{r}");
    assert_eq!(
        r["reads"].as_u64().unwrap() as usize,
        committed.lines().count(),
        "{r}"
    );
}

#[tokio::test]
async fn the_demo_shows_a_crop_image_for_each_read_without_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    assert!(config.server.image_dir.is_none());
    let app = Application::build(config, ServeOptions { demo: true })
        .await
        .unwrap();
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    // The first truck arrives at once; wait for its first stored read.
    let mut sighting = None;
    for _ in 0..600 {
        let page: Value = client
            .get(format!("{base}/api/v1/logs"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(id) = page["logs"][0]["id"].as_str() {
            let detail: Value = client
                .get(format!("{base}/api/v1/logs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            sighting = Some(detail["sightings"][0].clone());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sighting = sighting.expect("the demo stored a read");
    let reference = sighting["cropped_image_ref"].as_str().expect("a crop ref");
    assert!(
        dir.path().join("demo-images").join(reference).is_file(),
        "{reference}"
    );
    let r = client
        .get(format!("{base}/images"))
        .query(&[("ref", reference)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .contains("sandbox"));
    let svg = r.text().await.unwrap();
    // The crop shows what the camera read, as the raw read has it.
    let raw = &sighting["raw"];
    let seen = match raw["container"].as_str() {
        Some(c) => c.replace(' ', ""),
        None => raw["owner"].as_str().unwrap().to_string() + raw["number"].as_str().unwrap(),
    };
    assert!(
        svg.starts_with("<svg") && svg.contains(&seen),
        "{seen} in {svg}"
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
