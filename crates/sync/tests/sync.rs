//! The sync actor against the real PostgreSQL at 127.0.0.1:5432, directly
//! and through a real `postrust` (PostgREST-compatible) server, with a TCP
//! proxy in the path that the tests cut, restore and stall.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use gatelog_metrics::SyncBatch;
use gatelog_sync::{PostgresConfig, Sink, SupabaseConfig, SyncConfig, Target};

/// How a scenario reaches the centre.
enum Via {
    Direct,
    Rest,
}

/// The pieces a scenario needs: the database, the optional postrust, and
/// a proxy in front of whichever the actor talks to.
struct Central {
    db: TestDb,
    _postrust: Option<Postrust>,
    proxy: Proxy,
    via: Via,
}

impl Central {
    async fn new(via: Via) -> Option<Self> {
        let db = TestDb::new().await?;
        let (postrust, upstream) = match via {
            Via::Direct => (None, "127.0.0.1:5432".parse().unwrap()),
            Via::Rest => {
                let p = Postrust::start(&db).await?;
                let addr = p.addr;
                (Some(p), addr)
            }
        };
        let proxy = Proxy::start(upstream).await;
        Some(Self {
            db,
            _postrust: postrust,
            proxy,
            via,
        })
    }

    /// The target, through the proxy.
    fn target(&self) -> Target {
        match self.via {
            Via::Direct => Target::Postgres(PostgresConfig::new(self.db.url_via(self.proxy.addr))),
            Via::Rest => Target::Supabase(SupabaseConfig {
                rest_path: String::new(),
                ..SupabaseConfig::new(format!("http://{}", self.proxy.addr), service_key())
            }),
        }
    }
}

async fn assert_central_equals_local(central: &Central, local: &Local) {
    let here = local.ids_and_versions().await;
    let there = central.db.ids_and_versions().await;
    assert_eq!(
        there.len(),
        here.len(),
        "every passage central exactly once"
    );
    assert_eq!(there, here, "same ids, same versions");
}

async fn cut_path_while_ingesting(via: Via) {
    init_log();
    let Some(central) = Central::new(via).await else {
        return;
    };
    let local = Local::open().await;
    local.ingest("ABCU", 0, 300).await;
    let running = Running::start(&local, fast_config(), central.target());

    // Keep ingesting the whole time, in small commits.
    let ingest = {
        let store_local = &local;
        async move {
            for i in 0..40u32 {
                store_local.ingest("ABCU", 1_000 + i * 25, 25).await;
                tokio::time::sleep(Duration::from_millis(40)).await;
            }
        }
    };
    let outage = async {
        // Let some rows arrive, then cut the path mid-stream.
        let db = &central.db;
        wait_for(20, "first rows central", || async { db.count().await > 0 }).await;
        central.proxy.cut();
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let during = central.db.count().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            central.db.count().await,
            during,
            "nothing arrives while cut"
        );
        central.proxy.restore();
    };
    tokio::join!(ingest, outage);

    drained(&local, 30).await;
    assert_central_equals_local(&central, &local).await;
    assert_eq!(local.ids_and_versions().await.len(), 1_300);
    assert!(
        local.metrics.sync_retries_total.get() > 0,
        "the cut was felt"
    );
    let status = running.handle.status().borrow().clone();
    assert_eq!(status.pending, 0);
    assert_eq!(status.dead_letters, 0);
    assert!(status.last_success_at.is_some());
    running.stop().await;
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_target_survives_a_cut_path() {
    cut_path_while_ingesting(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_target_survives_a_cut_path() {
    cut_path_while_ingesting(Via::Rest).await;
}

/// The target commits but the reply is lost, so the client times out and
/// retries. The retry must change nothing centrally: every row keeps the
/// transaction id (`xmin`) of the one commit that wrote it.
async fn commit_then_timeout(via: Via, commit_marker: &[u8]) {
    init_log();
    let Some(central) = Central::new(via).await else {
        return;
    };
    let local = Local::open().await;
    local.ingest("TMOU", 0, 200).await;
    central.proxy.stall_reply_after(commit_marker);
    let config = SyncConfig {
        request_timeout_ms: 700,
        ..fast_config()
    };
    let running = Running::start(&local, config, central.target());
    drained(&local, 30).await;
    assert!(
        central
            .proxy
            .stalled
            .load(std::sync::atomic::Ordering::SeqCst),
        "a reply was swallowed"
    );
    assert!(
        local.metrics.sync_retries_total.get() >= 1,
        "the client timed out and retried"
    );
    assert_central_equals_local(&central, &local).await;
    let xmins: i64 = sqlx::query_scalar("SELECT count(DISTINCT xmin::text) FROM container_logs")
        .fetch_one(&central.db.pool)
        .await
        .unwrap();
    assert_eq!(xmins, 1, "the retry rewrote nothing");
    running.stop().await;
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_commit_then_timeout_changes_nothing() {
    // sqlx commits with a simple query "COMMIT".
    commit_then_timeout(Via::Direct, b"COMMIT\0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_commit_then_timeout_changes_nothing() {
    commit_then_timeout(Via::Rest, b"POST /container_logs").await;
}

/// A central CHECK refuses one row. It becomes a dead letter, every other
/// row arrives, and the actor goes idle instead of spinning.
async fn poison_row(via: Via) {
    init_log();
    let Some(central) = Central::new(via).await else {
        return;
    };
    sqlx::raw_sql(
        "ALTER TABLE container_logs ADD CONSTRAINT no_badu CHECK (container_owner <> 'BADU')",
    )
    .execute(&central.db.pool)
    .await
    .unwrap();
    let local = Local::open().await;
    local.ingest("GOOU", 0, 150).await;
    local.ingest("BADU", 150, 1).await;
    local.ingest("GOOU", 151, 149).await;
    let running = Running::start(&local, fast_config(), central.target());

    let store = local.store.clone();
    wait_for(20, "one dead letter and an empty backlog", || {
        let store = store.clone();
        async move {
            let b = store.sync_backlog().await.unwrap();
            b.pending == 0 && b.dead_letters == 1
        }
    })
    .await;
    assert_eq!(central.db.count().await, 299, "every other row arrived");
    let dead = local.store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].passage.container_owner, "BADU");
    assert!(
        dead[0].reason.contains("23514"),
        "reason: {}",
        dead[0].reason
    );

    // Nothing spins: no retries, and no batch is sent while idle.
    let batches = |r| local.metrics.sync_batches_total.with(r).get();
    let before = (
        batches(SyncBatch::Ok),
        batches(SyncBatch::DeadLetter),
        batches(SyncBatch::Retry),
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        (
            batches(SyncBatch::Ok),
            batches(SyncBatch::DeadLetter),
            batches(SyncBatch::Retry)
        ),
        before
    );
    assert_eq!(before.1, 1);
    assert_eq!(before.2, 0, "a rejection is not retried");
    assert_eq!(local.metrics.sync_dead_letters.get(), 1);
    let status = running.handle.status().borrow().clone();
    assert_eq!(status.dead_letters, 1);

    // Once the centre accepts the row, a retry by command delivers it.
    sqlx::raw_sql("ALTER TABLE container_logs DROP CONSTRAINT no_badu")
        .execute(&central.db.pool)
        .await
        .unwrap();
    assert_eq!(running.handle.retry_dead_letters(None).await.unwrap(), 1);
    drained(&local, 20).await;
    let store = local.store.clone();
    wait_for(10, "no dead letters", || {
        let store = store.clone();
        async move { store.sync_backlog().await.unwrap().dead_letters == 0 }
    })
    .await;
    assert_central_equals_local(&central, &local).await;
    running.stop().await;
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_poison_row_becomes_a_dead_letter() {
    poison_row(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_poison_row_becomes_a_dead_letter() {
    poison_row(Via::Rest).await;
}

/// A passage that changes after it was synced is sent again, and an older
/// state sent late never overwrites the newer one.
async fn changed_passage(via: Via) {
    init_log();
    let Some(central) = Central::new(via).await else {
        return;
    };
    let local = Local::open().await;
    let t0 = at(0);
    local
        .store
        .writer()
        .write(vec![read("CSQU3054383", t0)])
        .await
        .unwrap();
    let running = Running::start(&local, fast_config(), central.target());
    drained(&local, 20).await;
    let old = local.store.recent(1).await.unwrap().remove(0);
    assert_eq!(old.version, 1);

    // A repeat read 60 s later joins the passage: version 2, seen twice.
    local
        .store
        .writer()
        .write(vec![read(
            "CSQU3054383",
            t0 + chrono::Duration::seconds(60),
        )])
        .await
        .unwrap();
    drained(&local, 20).await;
    let (seen, version, last_seen): (i32, i64, i64) = sqlx::query_as(
        "SELECT seen_count, version, (extract(epoch FROM last_seen_at) * 1000000)::int8 \
         FROM container_logs WHERE id = $1::uuid",
    )
    .bind(old.id.to_string())
    .fetch_one(&central.db.pool)
    .await
    .unwrap();
    assert_eq!((seen, version), (2, 2));
    assert_eq!(
        last_seen,
        (t0 + chrono::Duration::seconds(60)).timestamp_micros()
    );
    running.stop().await;

    // A late retry of version 1 (as after a lost reply) arrives now.
    let sink = Sink::new(&central.target(), &fast_config()).unwrap();
    sink.send(std::slice::from_ref(&old)).await.unwrap();
    sink.close().await;
    let (seen, version): (i32, i64) =
        sqlx::query_as("SELECT seen_count, version FROM container_logs WHERE id = $1::uuid")
            .bind(old.id.to_string())
            .fetch_one(&central.db.pool)
            .await
            .unwrap();
    assert_eq!((seen, version), (2, 2), "the older state was ignored");
    assert_eq!(central.db.count().await, 1);
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_changed_passage_newest_wins() {
    changed_passage(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_changed_passage_newest_wins() {
    changed_passage(Via::Rest).await;
}

/// The central migration applies twice without error and sets up the
/// roles, grants and policies.
#[tokio::test]
async fn central_migration_is_idempotent_and_locked_down() {
    let Some(db) = TestDb::new().await else {
        return;
    };
    gatelog_sync::migrate_central(&db.url.clone().into())
        .await
        .expect("second application succeeds");
    let rls: bool =
        sqlx::query_scalar("SELECT relrowsecurity FROM pg_class WHERE relname = 'container_logs'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert!(rls);
    let privs: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT r, has_table_privilege(r, 'public.container_logs', 'SELECT'), \
                has_table_privilege(r, 'public.container_logs', 'INSERT') \
         FROM unnest(ARRAY['anon', 'authenticated', 'service_role']) AS r ORDER BY r",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        privs,
        vec![
            ("anon".into(), false, false),
            ("authenticated".into(), true, false),
            ("service_role".into(), true, true),
        ]
    );
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'container_logs' \
         AND indexname IN ('idx_container_logs_owner_number', 'idx_container_logs_captured_at')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(indexes, 2);
    let deleted: i64 = sqlx::query_scalar("SELECT public.container_logs_retention('30 days')")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(deleted, 0);
}

/// Which site reaches the centre first with the shared id.
#[derive(Clone, Copy)]
enum First {
    A,
    B,
}

/// The central row for `id`: (site_id, container_owner, version).
async fn central_row(db: &TestDb, id: uuid::Uuid) -> (String, String, i64) {
    sqlx::query_as(
        "SELECT site_id, container_owner, version FROM container_logs WHERE id = $1::uuid",
    )
    .bind(id.to_string())
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// Two sites hold a passage with the same id and different content. The
/// first to sync keeps its central row; the second is refused by the
/// centre, keeps its passage locally as a dead letter, and does not count
/// it as synced. Site B's copy carries a higher version, so in one order
/// the old upsert would have overwritten A's row, and in the other it
/// would have skipped A's row silently and marked it synced.
async fn same_id_from_two_sites(via: Via, first: First) {
    init_log();
    let Some(central) = Central::new(via).await else {
        return;
    };
    let a = Local::open_site("site-a").await;
    let b = Local::open_site("site-b").await;
    a.store
        .writer()
        .write(vec![read("AAAU1234565", at(0))])
        .await
        .unwrap();
    let ours = a.store.recent(1).await.unwrap().remove(0);
    let theirs = gatelog_core::Passage {
        site_id: "site-b".into(),
        container: "BBBU7654321".into(),
        container_owner: "BBBU".into(),
        container_number: "765432".into(),
        version: 3,
        ..ours.clone()
    };
    b.store.writer().import(vec![theirs.clone()]).await.unwrap();
    // Ordinary passages beside it still go through.
    b.ingest("OKAU", 10, 5).await;

    let (winner, loser, winner_row, loser_site) = match first {
        First::A => (
            &a,
            &b,
            (ours.site_id.clone(), "AAAU".to_string(), 1),
            "site-b",
        ),
        First::B => (
            &b,
            &a,
            (theirs.site_id.clone(), "BBBU".to_string(), 3),
            "site-a",
        ),
    };
    let running = Running::start(winner, fast_config(), central.target());
    drained(winner, 20).await;
    running.stop().await;
    assert_eq!(central_row(&central.db, ours.id).await, winner_row);

    let running = Running::start(loser, fast_config(), central.target());
    let store = loser.store.clone();
    wait_for(20, "one dead letter and an empty backlog", || {
        let store = store.clone();
        async move {
            let b = store.sync_backlog().await.unwrap();
            b.pending == 0 && b.dead_letters == 1
        }
    })
    .await;
    assert_eq!(
        central_row(&central.db, ours.id).await,
        winner_row,
        "the first site's central row is untouched"
    );
    assert_eq!(central.db.count().await, 6, "the other passages arrived");
    let dead = loser.store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].passage.id, ours.id);
    assert_eq!(dead[0].passage.site_id, loser_site);
    assert!(
        dead[0].reason.contains("23000"),
        "reason: {}",
        dead[0].reason
    );
    let s = status_until(&running.handle, 20, "the dead letter", |s| {
        s.dead_letters == 1
    })
    .await;
    assert_eq!(s.pending, 0);
    let metrics = loser.metrics.clone();
    wait_for(10, "the dead-letter gauge", || {
        let metrics = metrics.clone();
        async move { metrics.sync_dead_letters.get() == 1 }
    })
    .await;
    assert_eq!(
        loser
            .metrics
            .sync_batches_total
            .with(SyncBatch::Retry)
            .get(),
        0,
        "a refusal is not retried"
    );
    running.stop().await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_same_id_from_another_site_is_a_dead_letter() {
    same_id_from_two_sites(Via::Direct, First::A).await;
    same_id_from_two_sites(Via::Direct, First::B).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_same_id_from_another_site_is_a_dead_letter() {
    same_id_from_two_sites(Via::Rest, First::A).await;
    same_id_from_two_sites(Via::Rest, First::B).await;
}

/// The path to the target is refused mid-stream (the target's host is up,
/// its service down). With a request timeout far longer than the test,
/// each attempt must still end at once with a connection-refused error:
/// several attempts end, the status shows the new backlog and the error
/// while the outage lasts, and everything arrives once the path is back.
async fn refused_path(via: Via) {
    init_log();
    let Some(central) = Central::new(via).await else {
        return;
    };
    let local = Local::open().await;
    local.ingest("RFSU", 0, 100).await;
    let config = SyncConfig {
        request_timeout_ms: 3_600_000,
        ..fast_config()
    };
    let running = Running::start(&local, config, central.target());
    drained(&local, 20).await;
    assert_eq!(central.db.count().await, 100);

    central.proxy.refuse();
    local.ingest("RFSU", 100, 50).await;
    let s = status_until(&running.handle, 20, "the backlog and the error", |s| {
        s.pending == 50
            && s.last_error
                .as_deref()
                .is_some_and(|e| e.to_lowercase().contains("connection refused"))
    })
    .await;
    assert!(
        s.last_error
            .as_deref()
            .unwrap()
            .starts_with("cannot reach the sync target"),
        "{:?}",
        s.last_error
    );
    // More than one attempt ended, none of them by the (hour-long) timeout.
    let metrics = local.metrics.clone();
    wait_for(30, "several refused attempts", || {
        let metrics = metrics.clone();
        async move { metrics.sync_retries_total.get() >= 3 }
    })
    .await;
    let s = running.handle.status().borrow().clone();
    assert!(
        !s.last_error.as_deref().unwrap().contains("did not answer"),
        "{:?}",
        s.last_error
    );
    assert_eq!(local.metrics.sync_pending.get(), 50);
    assert_eq!(
        central.db.count().await,
        100,
        "nothing arrives while refused"
    );

    central.proxy.restore();
    running.handle.wake();
    drained(&local, 30).await;
    assert_central_equals_local(&central, &local).await;
    let s = status_until(&running.handle, 20, "a clean status", |s| {
        s.pending == 0 && s.last_error.is_none()
    })
    .await;
    assert!(s.last_success_at.is_some());
    running.stop().await;
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_refused_path_fails_at_once_and_shows_the_outage() {
    refused_path(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_refused_path_fails_at_once_and_shows_the_outage() {
    refused_path(Via::Rest).await;
}

/// The target takes the connection and never answers, and the request
/// timeout is an hour. While that one attempt hangs, the status and the
/// gauges are still recounted from the store on their own timer: new
/// passages show as pending, and the age of the oldest one grows.
async fn status_while_an_attempt_hangs(target: impl FnOnce(SocketAddr) -> Target) {
    init_log();
    let hole = Unanswering::start().await;
    let local = Local::open().await;
    let config = SyncConfig {
        request_timeout_ms: 3_600_000,
        ..fast_config()
    };
    let running = Running::start(&local, config, target(hole.addr));
    local.ingest("HNGU", 0, 10).await;
    let accepted = hole.accepted.clone();
    wait_for(20, "the attempt to connect", || {
        let accepted = accepted.clone();
        async move { accepted.load(std::sync::atomic::Ordering::SeqCst) >= 1 }
    })
    .await;

    local.ingest("HNGU", 10, 15).await;
    status_until(&running.handle, 20, "the new backlog and its age", |s| {
        s.pending == 25 && s.oldest_pending_age_secs >= 2
    })
    .await;
    let metrics = local.metrics.clone();
    wait_for(20, "the gauges", || {
        let metrics = metrics.clone();
        async move { metrics.sync_pending.get() == 25 && metrics.sync_lag_seconds.get() >= 2.0 }
    })
    .await;
    assert_eq!(
        local.metrics.sync_retries_total.get(),
        0,
        "the first attempt is still waiting"
    );
    assert_eq!(
        hole.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one attempt, one connection"
    );
    // Shutdown does not wait out the hung attempt's hour; abandon it.
    running.task.abort();
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_status_is_recounted_while_an_attempt_hangs() {
    status_while_an_attempt_hangs(|addr| {
        Target::Postgres(PostgresConfig::new(format!("postgres://postgres@{addr}/x")))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_status_is_recounted_while_an_attempt_hangs() {
    status_while_an_attempt_hangs(|addr| {
        Target::Supabase(SupabaseConfig {
            rest_path: String::new(),
            ..SupabaseConfig::new(format!("http://{addr}"), service_key())
        })
    })
    .await;
}

/// A passage opened by a misread is corrected by the consensus of later
/// reads; the corrected number and its history reach the centre, and the
/// centre keeps one row.
async fn corrected_passage(via: Via) {
    init_log();
    let Some(central) = Central::new(via).await else {
        return;
    };
    let local = Local::open().await;
    let running = Running::start(&local, fast_config(), central.target());
    // One digit misread: CSQU305438 carries check digit 3; 305488 does not.
    let misread = local
        .store
        .writer()
        .write(vec![read("CSQU3054883", at(0))])
        .await
        .unwrap()
        .remove(0);
    drained(&local, 20).await;
    let id = misread.passage.id;
    let row = |db: &TestDb| {
        let pool = db.pool.clone();
        async move {
            let row: (String, bool, i64, serde_json::Value) = sqlx::query_as(
                "SELECT container_owner || container_number || coalesce(check_digit::text, ''), \
                 check_digit_ok, version, corrections FROM container_logs WHERE id = $1::uuid",
            )
            .bind(id.to_string())
            .fetch_one(&pool)
            .await
            .unwrap();
            row
        }
    };
    let (number, ok, _, corrections) = row(&central.db).await;
    assert_eq!((number.as_str(), ok), ("CSQU3054883", false));
    assert_eq!(corrections, serde_json::json!([]));

    // The true number, read twice: the passage takes it.
    let truth = local
        .store
        .writer()
        .write(vec![
            read("CSQU3054383", at(0) + chrono::Duration::seconds(1)),
            read("CSQU3054383", at(0) + chrono::Duration::seconds(2)),
        ])
        .await
        .unwrap();
    assert_eq!(
        truth[0].passage.id, id,
        "the true read folds into the passage"
    );
    assert!(truth[0].correction.is_some());
    drained(&local, 20).await;
    let (number, ok, version, corrections) = row(&central.db).await;
    assert_eq!((number.as_str(), ok), ("CSQU3054383", true));
    assert_eq!(
        version,
        local.store.passage(id).await.unwrap().unwrap().version
    );
    assert_eq!(corrections[0]["from"], "CSQU3054883");
    assert_eq!(corrections[0]["to"], "CSQU3054383");
    assert_eq!(corrections[0]["rule"], "consensus");
    assert_eq!(central.db.count().await, 1);
    running.stop().await;
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_corrected_passage_reaches_the_centre() {
    corrected_passage(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_corrected_passage_reaches_the_centre() {
    corrected_passage(Via::Rest).await;
}

/// id, direction, lane, truck_plate, iso_type, dwell_secs.
type GateRow = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// A gate-in and a gate-out reach the centre with their direction, lane,
/// truck plate, size-type code and, on the out, the dwell time.
async fn gate_fields(via: Via) {
    init_log();
    let Some(central) = Central::new(via).await else {
        return;
    };
    let local = Local::open().await;
    let at_gate = |secs: i64, direction: gatelog_core::Direction| {
        let mut r = read("MSCU1234566", at(0) + chrono::Duration::seconds(secs));
        r.direction = direction;
        r.lane = Some("2".into());
        r.truck_plate = Some("12가3456".into());
        r.iso_type = Some("45G1".into());
        r
    };
    let w = local.store.writer();
    let gate_in = w
        .write(vec![at_gate(0, gatelog_core::Direction::In)])
        .await
        .unwrap()
        .remove(0);
    let gate_out = w
        .write(vec![at_gate(5_400, gatelog_core::Direction::Out)])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(gate_out.passage.dwell_secs, Some(5_400));
    let running = Running::start(&local, fast_config(), central.target());
    drained(&local, 20).await;
    let rows: Vec<GateRow> = sqlx::query_as(
        "SELECT id::text, direction, lane, truck_plate, iso_type, dwell_secs \
             FROM container_logs ORDER BY captured_at",
    )
    .fetch_all(&central.db.pool)
    .await
    .unwrap();
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        rows,
        vec![
            (
                gate_in.passage.id.to_string(),
                "in".into(),
                some("2"),
                some("12가3456"),
                some("45G1"),
                None
            ),
            (
                gate_out.passage.id.to_string(),
                "out".into(),
                some("2"),
                some("12가3456"),
                some("45G1"),
                Some(5_400)
            ),
        ]
    );
    running.stop().await;
    local.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_gate_fields_reach_the_centre() {
    gate_fields(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_gate_fields_reach_the_centre() {
    gate_fields(Via::Rest).await;
}
