//! Every acknowledgement follows an fsync of the write-ahead log, seen
//! from outside the process: the real binary runs under
//! `strace -f -ttt -y -e trace=fsync,fdatasync`, one sequential client
//! posts reads and notes on the wall clock when it sent each one and when
//! its 2xx arrived, and the check looks for a sync of the store's `-wal`
//! file inside every such window. The windows do not overlap, so N
//! covered acks also mean at least N syncs of the log.
//!
//! The negative control runs the same check with the server under
//! `eatmydata`, whose preloaded library turns every sync into a no-op
//! before it reaches the kernel. The check must then report the
//! shortfall; that proves it can fail, so its passing means something.

use std::ffi::OsString;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gatelog_tests::{container, require_tool, BinaryApp};
use serde_json::json;

/// Reads posted by the one sequential client.
const ACKS: usize = 40;

/// What the check found.
#[derive(Debug)]
struct FsyncCheck {
    /// 2xx answers the client received.
    acks: usize,
    /// Acks with at least one sync of the write-ahead log between the
    /// moment the request was sent and the moment its answer arrived.
    covered: usize,
    /// Every sync of the write-ahead log that strace saw, in the whole run.
    wal_syncs: usize,
}

impl FsyncCheck {
    /// Acks that no sync of the log preceded: the shortfall.
    fn shortfall(&self) -> usize {
        self.acks - self.covered
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_micros() as i64
}

/// The wall-clock times, in microseconds, of every fsync or fdatasync of
/// a file whose name ends in `-wal`, from strace's `-ttt -y` output. An
/// interrupted call shows its start on an `<unfinished ...>` line, which
/// counts; its `resumed` line carries no call and so does not count twice.
fn wal_sync_times(trace: &str) -> Vec<i64> {
    trace
        .lines()
        .filter(|l| (l.contains("fsync(") || l.contains("fdatasync(")) && l.contains("-wal>"))
        .map(|l| {
            let stamp = l
                .split_whitespace()
                .nth(1)
                .unwrap_or_else(|| panic!("a pid and a time start the line: {l}"));
            let (secs, micros) = stamp
                .split_once('.')
                .unwrap_or_else(|| panic!("a -ttt time: {l}"));
            secs.parse::<i64>().expect("seconds") * 1_000_000
                + micros.parse::<i64>().expect("microseconds")
        })
        .collect()
}

/// The pid of the first child of `pid` (the server started by strace,
/// which `eatmydata` replaces by `exec` under the same pid).
fn first_child(pid: u32) -> u32 {
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("the children of the wrapper are listed");
    children
        .split_whitespace()
        .next()
        .expect("strace has started the server")
        .parse()
        .expect("a pid")
}

/// Runs the check with the server under strace, and under `eatmydata`
/// too when `eat_my_data` says so.
async fn check_acks_against_wal_syncs(dir: &Path, eat_my_data: bool) -> FsyncCheck {
    let trace = dir.join("strace.txt");
    let mut wrapper: Vec<OsString> = ["strace", "-f", "-ttt", "-y", "-e", "trace=fsync,fdatasync"]
        .into_iter()
        .map(OsString::from)
        .collect();
    wrapper.push("-o".into());
    wrapper.push(trace.clone().into_os_string());
    if eat_my_data {
        wrapper.push("eatmydata".into());
    }
    let store = tempfile::tempdir().unwrap();
    let mut app = BinaryApp::start_under(store.path(), &[], &wrapper, |_| {}).await;
    let server = first_child(app.child.id().expect("strace runs"));

    let client = reqwest::Client::new();
    let mut windows = Vec::with_capacity(ACKS);
    for n in 0..ACKS as u64 {
        let body = json!({"container": container(n), "captured_at": "2024-05-01T08:30:00Z"});
        let sent = now_micros();
        let r = client
            .post(format!("{}/api/v1/recognitions", app.base))
            .json(&body)
            .send()
            .await
            .expect("the request is answered");
        let answered = now_micros();
        assert!(r.status().is_success(), "read {n}: {}", r.status());
        windows.push((sent, answered));
    }

    // A clean stop, so strace writes out every line and exits.
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &server.to_string()])
        .status()
        .expect("kill runs");
    assert!(ok.success());
    let status = tokio::time::timeout(Duration::from_secs(60), app.child.wait())
        .await
        .expect("strace exits with the server")
        .expect("exit status");
    assert!(status.success(), "the server under strace exits 0");

    let syncs = wal_sync_times(&std::fs::read_to_string(&trace).expect("strace's output"));
    let covered = windows
        .iter()
        .filter(|(sent, answered)| syncs.iter().any(|t| sent <= t && t <= answered))
        .count();
    FsyncCheck {
        acks: windows.len(),
        covered,
        wal_syncs: syncs.len(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ack_follows_a_wal_fsync_under_strace() {
    if !require_tool("strace", &["-V"], "apt-get install strace") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let check = check_acks_against_wal_syncs(dir.path(), false).await;
    eprintln!("fsync check: {check:?}");
    assert_eq!(check.acks, ACKS);
    assert_eq!(
        check.shortfall(),
        0,
        "every ack must follow a sync of the write-ahead log: {check:?}"
    );
    assert!(check.wal_syncs >= ACKS, "{check:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fsync_check_reports_the_shortfall_under_eatmydata() {
    if !require_tool("strace", &["-V"], "apt-get install strace")
        || !require_tool(
            "sh",
            &["-c", "command -v eatmydata"],
            "apt-get install eatmydata",
        )
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let check = check_acks_against_wal_syncs(dir.path(), true).await;
    eprintln!("fsync check under eatmydata: {check:?}");
    assert_eq!(check.acks, ACKS, "the server still answers");
    assert_eq!(
        check.shortfall(),
        ACKS,
        "with syncs turned into no-ops, no ack may look synced: {check:?}"
    );
    assert_eq!(check.wal_syncs, 0, "{check:?}");
}
