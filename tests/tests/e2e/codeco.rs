//! CODECO gate reports end to end: reads go into the real binary over
//! HTTP from cameras with directions, the interchange comes out of
//! `gatelog export --format codeco` and of
//! `GET /api/v1/logs/export?format=codeco`, and an independent EDIFACT
//! parser (pydifact, from PyPI) reads it back. Segment order, the counts
//! in `UNT` and `UNZ`, and every value are checked against the passages,
//! and each partner receives only its own owners' containers.

use std::path::Path;

use gatelog_core::{CheckDigit, OwnerCode, SerialNumber};
use gatelog_tests::{gatelog_bin, missing, BinaryApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Reads an interchange with pydifact and prints what it found as JSON:
/// the header's values, every segment in order, and the messages as
/// pydifact groups them.
const PARSE: &str = r#"
import json, sys, warnings
warnings.simplefilter("ignore")
from pydifact.parser import Parser
from pydifact.segmentcollection import Interchange
text = open(sys.argv[1], "rb").read().decode("iso-8859-1")
i = Interchange.from_str(text)
print(json.dumps({
    "syntax": list(i.syntax_identifier),
    "sender": i.sender,
    "recipient": i.recipient,
    "control_reference": i.control_reference,
    "segments": [[s.tag, s.elements] for s in Parser().parse(text)],
    "messages": [
        {"reference": m.reference_number, "identifier": m.identifier,
         "tags": [s.tag for s in m.segments]}
        for m in i.get_messages()
    ],
}))
"#;

/// Whether pydifact can be imported; under `CI=true` its absence fails
/// the test.
fn pydifact_present() -> bool {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import pydifact"])
        .output()
        .is_ok_and(|o| o.status.success());
    ok || missing("pydifact is not installed (python3 -m pip install pydifact)")
}

/// `bytes` parsed by pydifact.
fn parse(dir: &Path, name: &str, bytes: &[u8]) -> Value {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    let script = dir.join("parse_edifact.py");
    std::fs::write(&script, PARSE).unwrap();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(&file)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pydifact refused {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A valid number for `owner` and `serial`.
fn number(owner: &str, serial: &str) -> String {
    let digit = CheckDigit::compute(
        &OwnerCode::parse(owner).unwrap(),
        &SerialNumber::parse(serial).unwrap(),
    );
    format!("{owner}{serial}{}", digit.value())
}

/// An element's components: pydifact gives a lone component as a string.
fn el(seg: &Value, i: usize) -> Vec<String> {
    match &seg[1][i] {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|c| c.as_str().unwrap().to_string()).collect(),
        Value::Null => Vec::new(),
        other => panic!("element {other}"),
    }
}

fn tag(seg: &Value) -> &str {
    seg[0].as_str().unwrap()
}

/// A plate as UNOC carries it: what ISO 8859-1 lacks becomes `_`.
fn in_unoc(plate: &str) -> String {
    plate
        .chars()
        .map(|c| if (c as u32) > 0xFF { '_' } else { c })
        .collect()
}

/// Checks an interchange against the passages it should report (in gate
/// order), and returns each message's segments for comparison.
fn check(
    parsed: &Value,
    expect: &[&Value],
    sender: &str,
    recipient: &str,
    association: &str,
    bgm: (&str, &str),
) -> Vec<Vec<Value>> {
    assert_eq!(parsed["syntax"], json!(["UNOC", 3]));
    assert_eq!(parsed["sender"], sender);
    assert_eq!(parsed["recipient"], recipient);
    let segs = parsed["segments"].as_array().unwrap();
    assert_eq!(tag(&segs[0]), "UNA");
    assert_eq!(tag(&segs[1]), "UNB");
    let last = segs.last().unwrap();
    assert_eq!(tag(last), "UNZ");
    assert_eq!(el(last, 0), vec![expect.len().to_string()], "UNZ count");
    assert_eq!(
        el(last, 1),
        vec![parsed["control_reference"].as_str().unwrap().to_string()]
    );
    assert_eq!(
        el(&segs[1], 4),
        el(last, 1),
        "UNB and UNZ share a reference"
    );

    // Split the body into messages, UNH to UNT.
    let mut messages: Vec<Vec<Value>> = Vec::new();
    for seg in &segs[2..segs.len() - 1] {
        if tag(seg) == "UNH" {
            messages.push(Vec::new());
        }
        messages
            .last_mut()
            .expect("a segment outside a message")
            .push(seg.clone());
    }
    assert_eq!(messages.len(), expect.len());
    assert_eq!(parsed["messages"].as_array().unwrap().len(), expect.len());
    for (n, (m, p)) in messages.iter().zip(expect).enumerate() {
        let reference = (n + 1).to_string();
        let tags: Vec<&str> = m.iter().map(tag).collect();
        let plate = p["truck_plate"].as_str();
        let mut order = vec!["UNH", "BGM", "DTM", "EQD", "DTM", "LOC"];
        if plate.is_some() {
            order.push("TDT");
        }
        order.extend(["CNT", "UNT"]);
        assert_eq!(tags, order, "message {reference}");
        // pydifact's own grouping agrees, UNH and UNT aside.
        let grouped = &parsed["messages"][n];
        assert_eq!(grouped["reference"], reference.as_str());
        assert_eq!(grouped["tags"].as_array().unwrap().len(), m.len() - 2);
        assert_eq!(
            el(&m[0], 1),
            vec!["CODECO", "D", "95B", "UN", association],
            "UNH"
        );
        assert_eq!(el(&m[0], 0), vec![reference.clone()]);
        let unt = m.last().unwrap();
        assert_eq!(
            el(unt, 0),
            vec![m.len().to_string()],
            "UNT counts UNH to UNT"
        );
        assert_eq!(el(unt, 1), vec![reference.clone()]);

        let code = if p["direction"] == "in" { bgm.0 } else { bgm.1 };
        let doc = p["id"].as_str().unwrap().replace('-', "");
        assert_eq!(el(&m[1], 0), vec![code]);
        assert_eq!(el(&m[1], 1), vec![doc]);
        assert_eq!(el(&m[1], 2), vec!["9"]);
        assert_eq!(el(&m[2], 0)[0], "137");
        assert_eq!(el(&m[3], 0), vec!["CN"]);
        assert_eq!(el(&m[3], 1), vec![p["container"].as_str().unwrap()]);
        let iso = p["iso_type"].as_str().unwrap();
        if gatelog_core::gate::iso_type_valid(iso) {
            assert_eq!(el(&m[3], 2), vec![iso, "102", "5"]);
        } else {
            assert_eq!(m[3][1].as_array().unwrap().len(), 2, "no size-type: {iso}");
        }
        let at = chrono::DateTime::parse_from_rfc3339(p["captured_at"].as_str().unwrap())
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(
            el(&m[4], 0),
            vec![
                "7".to_string(),
                at.format("%Y%m%d%H%M").to_string(),
                "203".into()
            ]
        );
        assert_eq!(el(&m[5], 0), vec!["165"]);
        assert_eq!(el(&m[5], 1), vec!["KRPUS", "139", "6"]);
        if let Some(plate) = plate {
            let tdt = &m[6];
            assert_eq!(el(tdt, 0), vec!["1"]);
            assert_eq!(el(tdt, 2), vec!["3"]);
            assert_eq!(el(tdt, 3), vec!["31"]);
            assert_eq!(el(tdt, 7), vec![in_unoc(plate)]);
        }
        assert_eq!(el(&m[m.len() - 2], 0), vec!["16", "1"]);
    }
    messages
}

/// `gatelog <args>` on the store in `dir`, with `env` and no ambient
/// configuration.
async fn gatelog(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = tokio::process::Command::new(gatelog_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("GATELOG_") || k.starts_with("SUPABASE_") || k == "DATABASE_URL" {
            cmd.env_remove(k);
        }
    }
    cmd.current_dir(dir)
        .env("GATELOG_STORE__PATH", dir.join("gatelog.db"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .args(args)
        .kill_on_drop(true)
        .output()
        .await
        .expect("gatelog runs")
}

#[tokio::test]
async fn codeco_interchanges_parse_and_match_the_passages_per_partner() {
    if !pydifact_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Cameras, partners and the UN/LOCODE all come from the environment,
    // as a deployment overrides them.
    let env = [
        (
            "GATELOG_CAMERAS",
            r#"[{id="gate-in",direction="in",lane="1"},{id="gate-out",direction="out",lane="1"},{id="yard",direction="none"}]"#,
        ),
        (
            "GATELOG_PARTNERS",
            r#"[{name="MSC",owners=["MSCU","MEDU"],sender_id="GATE'3+B",recipient_id="MSC:EDI"},{name="MAERSK",owners=["maeu"],association="ITG14",bgm_in=270,bgm_out=271}]"#,
        ),
        ("GATELOG_SITE__LOCODE", "krpus"),
        ("GATELOG_SITE__ID", "busan-3"),
    ];
    let app = BinaryApp::start(dir.path(), &env).await;
    let client = reqwest::Client::new();
    let mscu = number("MSCU", "123456");
    let medu = number("MEDU", "654321");
    let maeu = number("MAEU", "111111");
    let cmau = number("CMAU", "222222");
    let reads = [
        (
            &mscu,
            "2024-05-01T08:00:00Z",
            "gate-in",
            Some("12가3456"),
            "22G1",
        ),
        (
            &maeu,
            "2024-05-01T08:05:00Z",
            "gate-in",
            Some("O'BRIEN+1"),
            "45G1",
        ),
        (
            &cmau,
            "2024-05-01T08:06:00Z",
            "gate-in",
            Some("ZZ 9"),
            "22G1",
        ),
        (&medu, "2024-05-01T08:10:00Z", "gate-out", None, "XXXX"),
        (&mscu, "2024-05-01T08:20:00Z", "yard", Some("Y1"), "22G1"),
        (
            &mscu,
            "2024-05-01T09:00:00Z",
            "gate-out",
            Some("AB:12?"),
            "22G1",
        ),
        (
            &maeu,
            "2024-05-01T09:30:00Z",
            "gate-out",
            Some("O'BRIEN+1"),
            "45G1",
        ),
    ];
    for (container, at, camera, plate, iso) in reads {
        let mut body = json!({"container": container, "captured_at": at,
                              "camera_id": camera, "iso_type": iso});
        if let Some(plate) = plate {
            body["truck_plate"] = json!(plate);
        }
        let r = client
            .post(format!("{}/api/v1/recognitions", app.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }
    let logs: Value = client
        .get(format!("{}/api/v1/logs?order=asc&limit=100", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let logs = logs["logs"].as_array().unwrap().clone();
    assert_eq!(logs.len(), 7);
    let of = |owners: &[&str]| -> Vec<&Value> {
        logs.iter()
            .filter(|p| p["direction"] != "none")
            .filter(|p| owners.contains(&p["container_owner"].as_str().unwrap()))
            .collect()
    };
    let msc = of(&["MSCU", "MEDU"]);
    let maersk = of(&["MAEU"]);
    assert_eq!((msc.len(), maersk.len()), (3, 2));

    let export = |q: &str| {
        let url = format!("{}/api/v1/logs/export?{q}", app.base);
        let client = client.clone();
        async move {
            let r = client.get(url).send().await.unwrap();
            let status = r.status();
            let ct = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            (status, ct, r.bytes().await.unwrap().to_vec())
        }
    };
    let range = "from=2024-05-01T00:00:00Z&to=2024-05-02T00:00:00Z";
    let (s, ct, body) = export(&format!("format=codeco&partner=MSC&{range}")).await;
    assert_eq!(s, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(
        ct.as_deref(),
        Some("application/edifact; charset=iso-8859-1")
    );
    let http_msc = check(
        &parse(dir.path(), "msc-http.edi", &body),
        &msc,
        "GATE'3+B",
        "MSC:EDI",
        "SMDG20",
        ("34", "36"),
    );
    // The special characters really went out released.
    assert!(body.windows(10).any(|w| w == b"GATE?'3?+B"));
    assert!(body.windows(8).any(|w| w == b"AB?:12??"));

    let (s, _, body) = export("format=codeco&partner=MAERSK").await;
    assert_eq!(s, StatusCode::OK);
    check(
        &parse(dir.path(), "maersk-http.edi", &body),
        &maersk,
        "busan-3",
        "MAERSK",
        "ITG14",
        ("270", "271"),
    );
    assert!(body.windows(11).any(|w| w == b"O?'BRIEN?+1"));

    // Errors name the parameter.
    for (q, field) in [
        ("format=codeco", "partner"),
        ("format=codeco&partner=NOPE", "partner"),
        ("format=codeco&partner=MSC&owner=MAEU", "owner"),
        ("format=csv&partner=MSC", "partner"),
    ] {
        let (s, _, body) = export(q).await;
        let body: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (s, body["field"].as_str()),
            (StatusCode::BAD_REQUEST, Some(field)),
            "{q}: {body}"
        );
    }
    let status = app.terminate().await;
    assert!(status.success());

    // The CLI writes the same messages (only the preparation time and the
    // control reference differ).
    let out_file = dir.path().join("msc-cli.edi");
    let out = gatelog(
        dir.path(),
        &env,
        &[
            "export",
            "--format",
            "codeco",
            "--partner",
            "MSC",
            "--from",
            "2024-05-01T00:00:00Z",
            "--to",
            "2024-05-02T00:00:00Z",
            "--out",
            out_file.to_str().unwrap(),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 movements written"));
    let cli_msc = check(
        &parse(
            dir.path(),
            "msc-cli.edi",
            &std::fs::read(&out_file).unwrap(),
        ),
        &msc,
        "GATE'3+B",
        "MSC:EDI",
        "SMDG20",
        ("34", "36"),
    );
    let without_prepared = |ms: &[Vec<Value>]| -> Vec<Vec<Value>> {
        ms.iter()
            .map(|m| {
                m.iter()
                    .filter(|s| el(s, 0) != ["137"] || tag(s) != "DTM")
                    .cloned()
                    .collect()
            })
            .collect()
    };
    assert_eq!(without_prepared(&cli_msc), without_prepared(&http_msc));

    // Owners and direction narrow the partner's movements.
    let out = gatelog(
        dir.path(),
        &env,
        &[
            "export",
            "--format",
            "codeco",
            "--partner",
            "MSC",
            "--owner",
            "MEDU",
            "--direction",
            "out",
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let medu_out: Vec<&Value> = msc
        .iter()
        .copied()
        .filter(|p| p["container_owner"] == "MEDU" && p["direction"] == "out")
        .collect();
    assert_eq!(medu_out.len(), 1);
    check(
        &parse(dir.path(), "medu-cli.edi", &out.stdout),
        &medu_out,
        "GATE'3+B",
        "MSC:EDI",
        "SMDG20",
        ("34", "36"),
    );
    let out = gatelog(
        dir.path(),
        &env,
        &["export", "--format", "codeco", "--partner", "NOPE"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("(--partner)"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without a UN/LOCODE, a CODECO export is refused with the key to set.
    let out = gatelog(
        dir.path(),
        &env[..2],
        &["export", "--format", "codeco", "--partner", "MSC"],
    )
    .await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("site.locode"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
