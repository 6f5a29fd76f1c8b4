//! `gatelog eval FILE`: how well the recognition rules do on a labelled
//! stream.
//!
//! The file is what `gatelog simulate --labelled` writes: one read a line,
//! the body a camera would post plus `truth` (`container`, `passage`).
//! Eval starts the real application in process, on loopback port 0 with a
//! store in a temporary folder, and posts the reads over HTTP in file
//! order with `truth` removed, so the rules decide exactly as they would
//! on a server and cannot see the answer. Then it reads each passage's
//! final state over the API and compares it with the truth.
//!
//! Eval only measures: it knows no recognition rule. A read lands in the
//! passage the server's answer names (passages are never merged, and a
//! sighting never moves); a queued or refused read lands nowhere.
//!
//! # Layout
//! - [`parse`]: the file, checked line by line before anything starts.
//! - [`replay`]: the application, the posts and the final state.
//! - [`score`]: the metrics, a pure function of the truth, the answers
//!   and the final passages.
//! - [`run`]: the command, printing one JSON object on stdout and a
//!   summary on stderr.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

use super::progress::Progress;
use crate::config::Config;
use crate::serve::{Application, ServeOptions};

#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// A labelled stream (JSON Lines), as `gatelog simulate --labelled` writes.
    pub file: PathBuf,
    /// Reads per POST: consecutive lines go as one batch, which the server
    /// decides in order. 1 posts each read on its own.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
}

/// One line of the file.
#[derive(Debug, Clone)]
pub struct LabelledRead {
    /// Its line number in the file, from 1.
    pub line: usize,
    /// The body posted: the line without `truth`.
    pub body: String,
    /// The container the truck really carried.
    pub truth_container: String,
    /// The true passage (one truck's visit) it belongs to.
    pub truth_passage: String,
    /// Whether its container text has 10 or 11 letters and digits once
    /// separators are removed: such a read must never be refused.
    pub readable: bool,
}

/// Parses a labelled stream. Blank lines are skipped; any other line that
/// is not a JSON object with a `truth` holding the strings `container` and
/// `passage` is an error naming its line number.
pub fn parse(text: &str) -> Result<Vec<LabelledRead>, String> {
    let mut reads = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| format!("line {n}: not JSON: {e}"))?;
        let Value::Object(mut body) = value else {
            return Err(format!("line {n}: a read must be a JSON object"));
        };
        let truth = body.remove("truth").ok_or_else(|| {
            format!("line {n}: no \"truth\"; eval needs a labelled stream (gatelog simulate --labelled)")
        })?;
        let field = |key: &str| match truth.get(key) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(format!("line {n}: truth.{key} must be a non-empty string")),
        };
        let truth_container = field("container")?;
        let truth_passage = field("passage")?;
        let readable = readable(&body);
        reads.push(LabelledRead {
            line: n,
            body: Value::Object(body).to_string(),
            truth_container,
            truth_passage,
            readable,
        });
    }
    if reads.is_empty() {
        return Err("the file holds no reads".into());
    }
    Ok(reads)
}

/// Whether a body's container text (one string, or owner, number and
/// check digit) is 10 or 11 letters and digits, separators aside.
fn readable(body: &serde_json::Map<String, Value>) -> bool {
    let part = |key: &str| match body.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let text = match body.get("container") {
        Some(Value::String(c)) => format!("{c}{}", part("check_digit")),
        _ => format!("{}{}{}", part("owner"), part("number"), part("check_digit")),
    };
    // The separators `ContainerNumber::parse` ignores.
    let compact: Vec<char> = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '-' | '.' | '/' | '_'))
        .collect();
    (10..=11).contains(&compact.len()) && compact.iter().all(char::is_ascii_alphanumeric)
}

/// What the server did with one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// Stored as a sighting of this passage.
    Passage(Uuid),
    /// Kept for an operator (`202 queued`).
    Queued,
    /// Refused (a 4xx, or an error item in a batch).
    Refused,
}

/// A passage as the API shows it at the end.
#[derive(Debug, Clone)]
pub struct FinalPassage {
    pub container: String,
    pub seen_count: i64,
    /// `(rule, to)` of each correction in its history.
    pub corrections: Vec<(String, String)>,
}

/// What eval prints: the metrics of issue 9 §5 first, then the counts
/// they come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Passages the reads landed in.
    pub passages: u64,
    /// Passages holding reads of two or more true passages ÷ passages.
    pub false_merge_rate: f64,
    /// True passages whose reads landed in two or more passages ÷ true
    /// passages.
    pub false_split_rate: f64,
    /// Passages whose final number is the majority true container of
    /// their reads ÷ passages.
    pub true_number_rate: f64,
    pub reads_queued: u64,
    pub reads_refused: u64,
    /// Automatic corrections (any rule but `operator`) in the passages'
    /// histories.
    pub corrections: u64,
    /// Those whose new number is not the passage's majority true container
    /// (a number without a check digit is right when it is the truth's
    /// owner code and serial).
    pub corrections_wrong: u64,
    /// Refused reads whose text had 10–11 letters and digits: each is a
    /// read lost that the rules should have kept (the target is 0).
    pub reads_refused_readable: u64,
    pub reads: u64,
    pub true_passages: u64,
    /// True passages none of whose reads landed anywhere.
    pub true_passages_unlanded: u64,
    pub merged_passages: u64,
    pub split_true_passages: u64,
    pub passages_on_true_number: u64,
}

/// The metrics, from the truth, where each read landed and the passages'
/// final state. `landings` is parallel to `reads`.
pub fn score(
    reads: &[LabelledRead],
    landings: &[Landing],
    finals: &HashMap<Uuid, FinalPassage>,
) -> Report {
    assert_eq!(reads.len(), landings.len(), "one landing per read");
    // Per passage: its true passages, and its true containers with their
    // count and first read (which breaks ties, so the result is stable).
    let mut labels: BTreeMap<Uuid, HashSet<&str>> = BTreeMap::new();
    let mut containers: HashMap<Uuid, HashMap<&str, (usize, usize)>> = HashMap::new();
    let mut landed_in: HashMap<&str, HashSet<Uuid>> = HashMap::new();
    let mut true_passages: HashSet<&str> = HashSet::new();
    let (mut queued, mut refused, mut refused_readable) = (0, 0, 0);
    for (i, (read, landing)) in reads.iter().zip(landings).enumerate() {
        true_passages.insert(&read.truth_passage);
        match landing {
            Landing::Passage(id) => {
                labels.entry(*id).or_default().insert(&read.truth_passage);
                let e = containers
                    .entry(*id)
                    .or_default()
                    .entry(&read.truth_container)
                    .or_insert((0, i));
                e.0 += 1;
                landed_in
                    .entry(&read.truth_passage)
                    .or_default()
                    .insert(*id);
            }
            Landing::Queued => queued += 1,
            Landing::Refused => {
                refused += 1;
                if read.readable {
                    refused_readable += 1;
                }
            }
        }
    }
    let majority = |id: &Uuid| -> Option<&str> {
        containers.get(id).and_then(|c| {
            c.iter()
                .max_by(|(_, (n1, first1)), (_, (n2, first2))| n1.cmp(n2).then(first2.cmp(first1)))
                .map(|(c, _)| *c)
        })
    };
    let passages = labels.len() as u64;
    let merged = labels.values().filter(|l| l.len() > 1).count() as u64;
    let split = landed_in.values().filter(|p| p.len() > 1).count() as u64;
    let (mut on_true, mut corrections, mut wrong) = (0, 0, 0);
    for id in labels.keys() {
        let truth = majority(id);
        let Some(fin) = finals.get(id) else { continue };
        if truth == Some(fin.container.as_str()) {
            on_true += 1;
        }
        for (rule, to) in &fin.corrections {
            if rule != "operator" {
                corrections += 1;
                // A read without a check digit is corrected to a number
                // without one: right when it is the truth's owner code and
                // serial.
                let right = truth
                    .is_some_and(|t| t == to || (to.len() == 10 && t.starts_with(to.as_str())));
                if !right {
                    wrong += 1;
                }
            }
        }
    }
    let ratio = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    Report {
        passages,
        false_merge_rate: ratio(merged, passages),
        false_split_rate: ratio(split, true_passages.len() as u64),
        true_number_rate: ratio(on_true, passages),
        reads_queued: queued,
        reads_refused: refused,
        corrections,
        corrections_wrong: wrong,
        reads_refused_readable: refused_readable,
        reads: reads.len() as u64,
        true_passages: true_passages.len() as u64,
        true_passages_unlanded: (true_passages.len() - landed_in.len()) as u64,
        merged_passages: merged,
        split_true_passages: split,
        passages_on_true_number: on_true,
    }
}

/// The configuration eval serves with: the recognition and dedup settings
/// of `config`, and everything else private to the run (a store in
/// `dir`, loopback port 0, no keys, no sync, no images).
pub fn config_for(mut config: Config, dir: &Path) -> Config {
    config.store.path = dir.join("gatelog.db");
    config.server.bind = "127.0.0.1:0".into();
    config.server.image_dir = None;
    config.sync.target = gatelog_sync::TargetKind::None;
    config.auth.ingest_keys.clear();
    config.auth.read_keys.clear();
    config.auth.operator_keys.clear();
    // Labelled streams are dated in the past; retention must not eat them.
    config.retention.local_days = 36_500;
    config
}

/// Replays `reads` through the real application built from `config`
/// (see [`config_for`]) and scores the result. The store file stays where
/// `config` put it.
pub async fn replay(
    config: Config,
    reads: &[LabelledRead],
    batch: usize,
) -> anyhow::Result<Report> {
    anyhow::ensure!(batch >= 1, "--batch must be at least 1");
    let app = Application::build(config, ServeOptions::default())
        .await
        .context("cannot start gatelog for the evaluation")?;
    let base = format!("http://{}", app.addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let result = post_and_read(&base, reads, batch).await;
    let _ = stop.send(());
    server
        .await
        .context("the evaluation's server panicked")?
        .context("the evaluation's server did not stop cleanly")?;
    let (landings, finals) = result?;
    Ok(score(reads, &landings, &finals))
}

async fn post_and_read(
    base: &str,
    reads: &[LabelledRead],
    batch: usize,
) -> anyhow::Result<(Vec<Landing>, HashMap<Uuid, FinalPassage>)> {
    let client = reqwest::Client::new();
    let url = format!("{base}/api/v1/recognitions");
    let progress = Progress::new("eval", Some(reads.len() as u64), "reads");
    let mut landings = Vec::with_capacity(reads.len());
    for chunk in reads.chunks(batch) {
        let answers = if batch == 1 {
            vec![post_one(&client, &url, &chunk[0]).await?]
        } else {
            post_batch(&client, &url, chunk).await?
        };
        landings.extend(answers);
        progress.inc(chunk.len() as u64);
    }
    progress.finish(&format!("{} reads posted", reads.len()));
    // Each passage's final state: its number can change after later reads.
    let ids: HashSet<Uuid> = landings
        .iter()
        .filter_map(|l| match l {
            Landing::Passage(id) => Some(*id),
            _ => None,
        })
        .collect();
    let mut finals = HashMap::with_capacity(ids.len());
    for id in ids {
        finals.insert(id, fetch(&client, base, id).await?);
    }
    let landed = landings
        .iter()
        .filter(|l| matches!(l, Landing::Passage(_)))
        .count() as i64;
    let seen: i64 = finals.values().map(|p| p.seen_count).sum();
    if seen != landed {
        // Never expected (sightings do not move); say so rather than
        // print figures that rest on a wrong premise.
        anyhow::bail!(
            "the passages hold {seen} sightings but the answers placed {landed} reads; \
             eval's premise that a read stays where it landed no longer holds"
        );
    }
    Ok((landings, finals))
}

async fn post_one(
    client: &reqwest::Client,
    url: &str,
    read: &LabelledRead,
) -> anyhow::Result<Landing> {
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(read.body.clone())
        .send()
        .await
        .context("cannot reach the evaluation's server")?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    match status.as_u16() {
        200 | 201 => passage_id(&body)
            .map(Landing::Passage)
            .with_context(|| format!("line {}: an answer without a passage id: {body}", read.line)),
        202 => Ok(Landing::Queued),
        400..=499 => Ok(Landing::Refused),
        _ => anyhow::bail!("line {}: the server answered {status}: {body}", read.line),
    }
}

async fn post_batch(
    client: &reqwest::Client,
    url: &str,
    reads: &[LabelledRead],
) -> anyhow::Result<Vec<Landing>> {
    // The items go as their text, so each sighting's raw is the line
    // without its truth.
    let mut body = String::from("[");
    for (i, read) in reads.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&read.body);
    }
    body.push(']');
    let first = reads[0].line;
    let r = client
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .context("cannot reach the evaluation's server")?;
    let status = r.status();
    let answer: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status.as_u16() == 200,
        "the batch from line {first} was answered {status}: {answer}"
    );
    let results = answer["results"]
        .as_array()
        .filter(|r| r.len() == reads.len())
        .with_context(|| format!("the batch from line {first} got no result per read: {answer}"))?;
    results
        .iter()
        .zip(reads)
        .map(|(item, read)| match item["status"].as_str() {
            Some("success" | "skipped") => {
                passage_id(item).map(Landing::Passage).with_context(|| {
                    format!("line {}: an answer without a passage id: {item}", read.line)
                })
            }
            Some("queued") => Ok(Landing::Queued),
            Some("error") => Ok(Landing::Refused),
            _ => anyhow::bail!("line {}: an answer eval does not know: {item}", read.line),
        })
        .collect()
}

fn passage_id(answer: &Value) -> Option<Uuid> {
    answer["data"]["id"].as_str().and_then(|s| s.parse().ok())
}

async fn fetch(client: &reqwest::Client, base: &str, id: Uuid) -> anyhow::Result<FinalPassage> {
    let r = client
        .get(format!("{base}/api/v1/logs/{id}"))
        .send()
        .await
        .context("cannot reach the evaluation's server")?;
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status.is_success(),
        "passage {id}: answered {status}: {body}"
    );
    let container = body["container"]
        .as_str()
        .with_context(|| format!("passage {id} has no container: {body}"))?
        .to_string();
    let seen_count = body["seen_count"]
        .as_i64()
        .with_context(|| format!("passage {id} has no seen_count: {body}"))?;
    let corrections = body["corrections"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    (
                        c["rule"].as_str().unwrap_or_default().to_string(),
                        c["to"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(FinalPassage {
        container,
        seen_count,
        corrections,
    })
}

/// `gatelog eval FILE`.
pub async fn run(config: Config, args: &EvalArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let reads = parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.file.display()))?;
    let dir = tempfile::tempdir().context("cannot create a temporary folder for the store")?;
    let report = replay(config_for(config, dir.path()), &reads, args.batch).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    eprintln!("{}", summary(&report));
    Ok(())
}

/// The human summary, for stderr.
pub fn summary(r: &Report) -> String {
    let pct = |x: f64| format!("{:.1}%", x * 100.0);
    format!(
        "eval: {} reads of {} true passages landed in {} passages\n\
         \x20 false merges {} ({} passages), false splits {} ({} true passages), on the true number {}\n\
         \x20 {} reads queued, {} refused ({} of them with 10-11 letters and digits), {} true passages lost entirely\n\
         \x20 {} automatic corrections, {} of them wrong",
        r.reads,
        r.true_passages,
        r.passages,
        pct(r.false_merge_rate),
        r.merged_passages,
        pct(r.false_split_rate),
        r.split_true_passages,
        pct(r.true_number_rate),
        r.reads_queued,
        r.reads_refused,
        r.reads_refused_readable,
        r.true_passages_unlanded,
        r.corrections,
        r.corrections_wrong,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(body: &str, container: &str, passage: &str) -> String {
        let mut v: Value = serde_json::from_str(body).unwrap();
        v["truth"] = serde_json::json!({"container": container, "passage": passage});
        v.to_string()
    }

    #[test]
    fn a_malformed_line_is_named_by_its_number() {
        let good = line(r#"{"container":"MSCU1234566"}"#, "MSCU1234566", "a");
        for (bad, expect) in [
            ("{not json", "line 3: not JSON"),
            ("[1]", "line 3: a read must be a JSON object"),
            (r#"{"container":"MSCU1234566"}"#, "line 3: no \"truth\""),
            (
                r#"{"container":"X","truth":{"container":"MSCU1234566"}}"#,
                "line 3: truth.passage",
            ),
        ] {
            let text = format!("{good}\n\n{bad}\n");
            let err = parse(&text).unwrap_err();
            assert!(err.starts_with(expect), "{err}");
        }
        assert_eq!(parse("\n").unwrap_err(), "the file holds no reads");
    }

    #[test]
    fn truth_is_removed_from_the_body() {
        let reads = parse(&line(
            r#"{"container":"MSCU1234566","camera_id":"c"}"#,
            "MSCU1234566",
            "a",
        ))
        .unwrap();
        assert!(!reads[0].body.contains("truth"));
        assert!(reads[0].body.contains("camera_id"));
    }

    #[test]
    fn readable_counts_letters_and_digits_in_every_shape() {
        let r = |body: &str| {
            readable(
                serde_json::from_str::<Value>(body)
                    .unwrap()
                    .as_object()
                    .unwrap(),
            )
        };
        assert!(r(r#"{"container":"MSC0 123456 6"}"#));
        assert!(r(r#"{"container":"MSCU123456"}"#));
        assert!(r(r#"{"container":"MSCU123456","check_digit":6}"#));
        assert!(r(r#"{"owner":"M5CU","number":"12345B","check_digit":"S"}"#));
        assert!(!r(r#"{"container":"HELLO"}"#));
        assert!(!r(r#"{"container":"MSCU1234566X"}"#));
        assert!(!r(r#"{"container":"MSCU12345#6"}"#));
    }

    /// Reads of true passages `a` (split over two passages), `b1` and `b2`
    /// (merged into one), `c` (on a wrong number, with one right and one
    /// wrong correction), and a queued and a refused read.
    #[test]
    fn metrics_count_merges_splits_numbers_and_corrections() {
        let read = |truth: &str, passage: &str, readable: bool| LabelledRead {
            line: 0,
            body: String::new(),
            truth_container: truth.into(),
            truth_passage: passage.into(),
            readable,
        };
        let (p1, p2, p3, p4) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let reads = [
            read("MSCU1234566", "a", true),
            read("MSCU1234566", "a", true),
            read("CSQU3054383", "b1", true),
            read("CSQU3054383", "b2", true),
            read("TGHU8765430", "c", true),
            read("TGHU8765430", "c", true),
            read("TGHU8765430", "c", true),
            read("TGHU8765430", "c", false),
        ];
        let landings = [
            Landing::Passage(p1),
            Landing::Passage(p2),
            Landing::Passage(p3),
            Landing::Passage(p3),
            Landing::Passage(p4),
            Landing::Queued,
            Landing::Refused,
            Landing::Refused,
        ];
        let fin = |c: &str, n, corrections: &[(&str, &str)]| FinalPassage {
            container: c.into(),
            seen_count: n,
            corrections: corrections
                .iter()
                .map(|(r, t)| (r.to_string(), t.to_string()))
                .collect(),
        };
        let finals = HashMap::from([
            (p1, fin("MSCU1234566", 1, &[])),
            (p2, fin("MSCU1234566", 1, &[("consensus", "MSCU1234566")])),
            (p3, fin("CSQU3054383", 2, &[("operator", "X")])),
            (p4, fin("TGHU8765439", 1, &[("check_digit", "TGHU8765439")])),
        ]);
        let r = score(&reads, &landings, &finals);
        assert_eq!(r.passages, 4);
        assert_eq!(r.false_merge_rate, 1.0 / 4.0);
        assert_eq!(r.true_passages, 4);
        assert_eq!(r.false_split_rate, 1.0 / 4.0);
        assert_eq!(r.true_number_rate, 3.0 / 4.0);
        assert_eq!(
            (r.reads_queued, r.reads_refused, r.reads_refused_readable),
            (1, 2, 1)
        );
        assert_eq!((r.corrections, r.corrections_wrong), (2, 1));
        assert_eq!(r.true_passages_unlanded, 0);
    }

    #[test]
    fn the_majority_true_container_wins_and_ties_go_to_the_first_read() {
        let id = Uuid::new_v4();
        let read = |truth: &str| LabelledRead {
            line: 0,
            body: String::new(),
            truth_container: truth.into(),
            truth_passage: truth.into(),
            readable: true,
        };
        let reads = [read("B"), read("A"), read("A"), read("B")];
        let landings = [Landing::Passage(id); 4];
        let on = |c: &str| {
            let finals = HashMap::from([(
                id,
                FinalPassage {
                    container: c.into(),
                    seen_count: 4,
                    corrections: vec![],
                },
            )]);
            score(&reads, &landings, &finals).true_number_rate
        };
        assert_eq!(on("B"), 1.0);
        assert_eq!(on("A"), 0.0);
    }
}
