//! The crash loop in CI: 20 SIGKILLs of the real binary at random moments
//! while four clients post reads with their own ids, sync replicates to a
//! fresh central database, and a backup and a retention run go on beside
//! the server. The checks after every restart and at the end are in
//! [`gatelog_tests::crash`]; the long mode (1,000 cycles) is
//! `gatelog-reliability crash-loop`.

use gatelog_tests::crash::{crash_loop, CrashLoop};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sigkills_under_load_lose_no_acknowledged_read() {
    if !gatelog_tests::central::postgres_reachable().await {
        return;
    }
    let report = crash_loop(&CrashLoop::default())
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    eprintln!("crash loop: {report:?}");
    assert_eq!(report.cycles, 20);
    assert_eq!(report.losses, 0);
    assert!(report.acks > 0, "reads were acknowledged: {report:?}");
    assert!(
        report.dedup_checks >= 38,
        "dedup was checked after every restart"
    );
    assert_eq!(report.backups, 20);
    assert_eq!(report.retention_runs, 20);
    assert!(report.passages > 0);
}
