//! The store against a real SQLite file: group commit, dedup, idempotency
//! and restarts.

use std::collections::HashMap;

use chrono::{DateTime, TimeZone, Utc};
use gatelog_core::dedup::{DedupIndex, Observation};
use gatelog_core::{DedupConfig, Direction, Flags, RawRead, Read, ValidationConfig};
use gatelog_local_store::{
    Cursor, LogFilter, Order, OutcomeKind, Replay, Store, StoreConfig, YardFilter,
};
use gatelog_metrics::Metrics;
use proptest::prelude::*;
use tokio_util::sync::CancellationToken;

struct Running {
    store: Store,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn open(path: &std::path::Path) -> Self {
        let config = StoreConfig {
            path: path.to_path_buf(),
            ..StoreConfig::default()
        };
        let opened = Store::open(&config, &DedupConfig::default(), "site-1", Metrics::new())
            .await
            .expect("store opens");
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let writer = opened.writer;
        let task = tokio::spawn(async move { writer.run(token).await.expect("writer runs") });
        Self {
            store: opened.store,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.task.await.unwrap();
        self.store.close().await;
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_714_552_200 + secs, 0).unwrap()
}

fn read(container: &str, t: DateTime<Utc>) -> Read {
    Read::parse(
        RawRead {
            container: Some(container.into()),
            captured_at: Some(t.to_rfc3339()),
            raw: format!(r#"{{"container":"{container}"}}"#),
            ..RawRead::default()
        },
        &ValidationConfig::default(),
    )
    .unwrap()
}

#[tokio::test]
async fn concurrent_identical_reads_make_one_passage() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::open(&dir.path().join("g.db")).await;
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let w = r.store.writer().clone();
        tasks.push(tokio::spawn(async move {
            w.write(vec![read("MSCU1234566", at(0))]).await.unwrap()
        }));
    }
    let mut created = 0;
    let mut seen = Vec::new();
    for t in tasks {
        let o = t.await.unwrap().remove(0);
        if o.kind == OutcomeKind::Created {
            created += 1;
        }
        seen.push(o.passage.seen_count);
    }
    assert_eq!(created, 1);
    seen.sort_unstable();
    assert_eq!(
        seen,
        (1..=24).collect::<Vec<_>>(),
        "each ack shows the passage after its own read"
    );
    let id = r.store.recent(1).await.unwrap()[0].id;
    let p = r.store.passage(id).await.unwrap().unwrap();
    let page = r.store.sightings(id, None, 1000).await.unwrap();
    assert_eq!(p.seen_count, 24);
    assert_eq!(page.sightings.len(), 24);
    r.stop().await;
}

#[tokio::test]
async fn dedup_survives_restart_and_client_ids_replay() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let r = Running::open(&path).await;
    let mut first = read("CSQU3054383", at(0));
    let id = uuid::Uuid::new_v4();
    first.id = Some(id);
    let o = r
        .store
        .writer()
        .write(vec![first.clone()])
        .await
        .unwrap()
        .remove(0);
    // The client id is an idempotency key, never the passage's or the
    // sighting's id: another site may send the same one.
    assert_eq!(o.kind, OutcomeKind::Created);
    assert_ne!(o.passage.id, id);
    assert_ne!(o.sighting_id, id);
    r.stop().await;

    let r = Running::open(&path).await;
    // The same client id again: the original outcome, nothing written.
    let again = r.store.writer().write(vec![first]).await.unwrap().remove(0);
    assert_eq!(again.replay, Replay::Same);
    assert_eq!(again.passage.id, o.passage.id);
    assert_eq!(
        (again.kind, again.passage.seen_count),
        (OutcomeKind::Created, 1)
    );
    // A new read four minutes later is still the same passage.
    let dup = r
        .store
        .writer()
        .write(vec![read("CSQU 305438 3", at(240))])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        (dup.kind, dup.passage.id, dup.passage.seen_count),
        (OutcomeKind::Joined, o.passage.id, 2)
    );
    assert_eq!(r.store.count().await.unwrap(), 1);
    r.stop().await;
}

#[tokio::test]
async fn a_reused_client_id_with_other_content_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::open(&dir.path().join("g.db")).await;
    let id = uuid::Uuid::new_v4();
    let mut first = read("CSQU3054383", at(0));
    first.id = Some(id);
    let o = r.store.writer().write(vec![first]).await.unwrap().remove(0);
    assert_eq!(o.replay, Replay::Fresh);

    // The same id on another container, alone and inside a batch whose
    // other read is fresh: refused, and the fresh read still commits.
    let mut other = read("MSCU1234566", at(10));
    other.id = Some(id);
    let clash = r
        .store
        .writer()
        .write(vec![other.clone()])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(clash.replay, Replay::Conflict);
    assert_eq!(clash.passage.id, o.passage.id);
    assert_eq!(clash.passage.container, "CSQU3054383");
    let mixed = r
        .store
        .writer()
        .write(vec![other, read("TGHU7654320", at(20))])
        .await
        .unwrap();
    assert_eq!(mixed[0].replay, Replay::Conflict);
    assert_eq!(mixed[1].replay, Replay::Fresh);

    // Two reads with one new id in one batch: the second is a conflict.
    let fresh_id = uuid::Uuid::new_v4();
    let mut a = read("TCLU1111110", at(30));
    a.id = Some(fresh_id);
    let mut b = read("TCLU2222220", at(30));
    b.id = Some(fresh_id);
    let pair = r.store.writer().write(vec![a.clone(), b, a]).await.unwrap();
    assert_eq!(
        pair.iter().map(|o| o.replay).collect::<Vec<_>>(),
        [Replay::Fresh, Replay::Conflict, Replay::Same]
    );

    // Nothing of the conflicting reads was stored.
    assert_eq!(r.store.count().await.unwrap(), 3);
    let p = r.store.passage(o.passage.id).await.unwrap().unwrap();
    let page = r.store.sightings(o.passage.id, None, 10).await.unwrap();
    assert_eq!((p.seen_count, page.sightings.len()), (1, 1));
    r.stop().await;
}

#[tokio::test]
async fn keyset_pages_cover_every_passage_once() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::open(&dir.path().join("g.db")).await;
    // 120 passages, some sharing a captured_at so the id breaks ties.
    let reads: Vec<Read> = (0..120)
        .map(|i| read(&format!("MSCU{:06}", 100_000 + i), at(i / 3)))
        .collect();
    r.store.writer().write(reads).await.unwrap();
    for order in [Order::Desc, Order::Asc] {
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = r
                .store
                .search(&LogFilter {
                    limit: 7,
                    cursor,
                    order,
                    ..LogFilter::default()
                })
                .await
                .unwrap();
            seen.extend(page.logs.iter().map(|p| p.id));
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let unique: std::collections::HashSet<_> = seen.iter().collect();
        assert_eq!((seen.len(), unique.len()), (120, 120), "{order:?}");
    }
    r.stop().await;
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, .. ProptestConfig::default() })]

    /// The store, fed random reads in random batches, makes the same
    /// passages as the core's dedup index fed the same reads one by one.
    #[test]
    fn store_agrees_with_the_dedup_rule(
        reads in prop::collection::vec((0usize..3, 0i64..2_400), 1..60),
        batch in 1usize..8,
    ) {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let r = Running::open(&dir.path().join("g.db")).await;
            let names = ["MSCU1234566", "CSQU3054383", "TGHU0000001"];
            let mut model: DedupIndex<usize, usize> = DedupIndex::new(&DedupConfig::default());
            let mut next = 0;
            let mut expected = Vec::new();
            for &(k, s) in &reads {
                let p = match model.observe(k, at(s).timestamp_micros(), || { next += 1; next }) {
                    Observation::Created(p) | Observation::Joined(p) => p,
                };
                expected.push(p);
            }
            let mut got = Vec::new();
            for chunk in reads.chunks(batch) {
                let batch: Vec<Read> = chunk.iter().map(|&(k, s)| read(names[k], at(s))).collect();
                got.extend(r.store.writer().write(batch).await.unwrap().into_iter().map(|o| o.passage.id));
            }
            // Same partition of reads into passages, whatever the ids.
            let mut map: HashMap<usize, uuid::Uuid> = HashMap::new();
            for (e, g) in expected.iter().zip(&got) {
                assert_eq!(*map.entry(*e).or_insert(*g), *g);
            }
            assert_eq!(r.store.count().await.unwrap() as usize, next);
            r.stop().await;
        });
    }
}

#[tokio::test]
async fn a_commit_survives_a_reopen_without_clean_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let r = Running::open(&path).await;
    r.store
        .writer()
        .write(vec![read("MSCU1234566", at(0))])
        .await
        .unwrap();
    // Abandon the writer without draining or closing the file.
    r.task.abort();
    drop(r.store);
    let r = Running::open(&path).await;
    assert_eq!(r.store.count().await.unwrap(), 1);
    r.stop().await;
}

#[tokio::test]
async fn large_batches_with_many_keys_dedup_across_query_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::open(&dir.path().join("g.db")).await;
    // 900 distinct containers, more than one candidate query holds.
    let first: Vec<Read> = (0..900)
        .map(|i| read(&format!("TGHU{:06}", i), at(0)))
        .collect();
    let again: Vec<Read> = (0..900)
        .map(|i| read(&format!("TGHU{:06}", i), at(60)))
        .collect();
    let a = r.store.writer().write(first).await.unwrap();
    assert!(a.iter().all(|o| o.kind == OutcomeKind::Created));
    let b = r.store.writer().write(again).await.unwrap();
    assert!(b
        .iter()
        .all(|o| o.kind == OutcomeKind::Joined && o.passage.seen_count == 2));
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.passage.id, y.passage.id);
    }
    assert_eq!(r.store.count().await.unwrap(), 900);
    r.stop().await;
}

#[tokio::test]
async fn substring_search_agrees_with_a_plain_scan_on_every_plan() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::open(&dir.path().join("g.db")).await;
    // 6,000 passages whose numbers all contain "TGH", so that common
    // substring walks the time index, plus a few rare numbers.
    let many: Vec<Read> = (0..6_000)
        .map(|i| read(&format!("TGHU{:06}", i), at(i)))
        .collect();
    r.store.writer().write(many).await.unwrap();
    // A flagged number (no check digit) later corrected by a valid read.
    r.store
        .writer()
        .write(vec![read("MSCU123456", at(0))])
        .await
        .unwrap();
    let corrected = r
        .store
        .writer()
        .write(vec![read("MSCU1234566", at(10))])
        .await
        .unwrap();
    assert_eq!(corrected[0].passage.container, "MSCU1234566");

    let count = |q: &str| {
        let store = r.store.clone();
        let q = q.to_string();
        async move {
            let mut n = 0;
            let mut cursor = None;
            loop {
                let page = store
                    .search(&LogFilter {
                        q: Some(q.clone()),
                        limit: 1000,
                        cursor,
                        ..LogFilter::default()
                    })
                    .await
                    .unwrap();
                n += page.logs.len();
                assert!(page.logs.iter().all(|p| p.container.contains(&q)));
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => return n,
                }
            }
        }
    };
    assert_eq!(count("TGH").await, 6_000, "common: time-index walk");
    assert_eq!(count("00599").await, 1 + 10, "rare: trigram index");
    assert_eq!(
        count("U1234566").await,
        1,
        "the trigram index follows a corrected number"
    );
    assert_eq!(
        count("5").await,
        (0..6_000)
            .filter(|i| format!("{:06}", i).contains('5'))
            .count()
            + 1
    );
    assert_eq!(count("ZZZ").await, 0);

    // Another owner whose code ends like TGHU's: the trigram lookup for
    // "TGHU0005" uses only "HU0005", and the exact prefix sorts it out.
    r.store
        .writer()
        .write(vec![read("AAHU000512", at(20))])
        .await
        .unwrap();

    // Prefix and serial filters are narrowed by the same plan.
    let total = |filter: LogFilter| {
        let store = r.store.clone();
        async move {
            let page = store
                .search(&LogFilter {
                    limit: 1000,
                    ..filter.clone()
                })
                .await
                .unwrap();
            let mut n = page.logs.len();
            let mut cursor = page.next_cursor;
            while let Some(c) = cursor {
                let page = store
                    .search(&LogFilter {
                        limit: 1000,
                        cursor: Some(c),
                        ..filter.clone()
                    })
                    .await
                    .unwrap();
                n += page.logs.len();
                cursor = page.next_cursor;
            }
            n
        }
    };
    let prefix = |p: &str| LogFilter {
        container: Some(p.into()),
        ..LogFilter::default()
    };
    let number = |n: &str| LogFilter {
        number: Some(n.into()),
        ..LogFilter::default()
    };
    assert_eq!(
        total(prefix("TGHU")).await,
        6_000,
        "common prefix: time-index walk"
    );
    assert_eq!(
        total(prefix("TGHU0005")).await,
        100,
        "rare prefix: trigram index"
    );
    assert_eq!(total(prefix("AAHU0005")).await, 1);
    assert_eq!(total(prefix("GHU")).await, 0, "a prefix, not a substring");
    assert_eq!(total(number("000599")).await, 1);
    assert_eq!(total(number("123456")).await, 1);
    assert_eq!(
        total(LogFilter {
            number: Some("000599".into()),
            q: Some("05".into()),
            ..LogFilter::default()
        })
        .await,
        1
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_cannot_be_stored_fails_alone_and_its_group_commits() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let r = Running::open(&path).await;
    // A read the database refuses whatever the writer does: a stand-in for
    // a constraint or a bug that only some input reaches.
    let mut side = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER poison BEFORE INSERT ON sightings WHEN new.container = 'CSQU3054383' \
         BEGIN SELECT RAISE(ABORT, 'poison read'); END",
    )
    .execute(&mut side)
    .await
    .unwrap();

    // Hold the write lock so that the writes below queue up and are
    // gathered into one group behind the first.
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut side)
        .await
        .unwrap();
    let write = |c: &'static str, secs: i64| {
        let writer = r.store.writer().clone();
        tokio::spawn(async move { writer.write(vec![read(c, at(secs))]).await })
    };
    let first = write("MSCU1234566", 0);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let good = ["MAEU1234567", "HLXU1234560", "CMAU1234563", "OOLU1234561"];
    let mut tasks: Vec<_> = good
        .iter()
        .enumerate()
        .map(|(i, c)| write(c, i as i64))
        .collect();
    let poison = write("CSQU3054383", 10);
    tasks.extend(
        good.iter()
            .enumerate()
            .map(|(i, c)| write(c, 400 + i as i64)),
    );
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    sqlx::query("COMMIT").execute(&mut side).await.unwrap();

    assert!(first.await.unwrap().is_ok());
    for t in tasks {
        let outcome = t.await.unwrap().expect("the good writes commit");
        assert_eq!(outcome.len(), 1);
    }
    let err = poison.await.unwrap().expect_err("the poison write fails");
    assert!(!err.is_unavailable(), "a refusal, not a 503: {err}");

    let page = r
        .store
        .search(&LogFilter {
            limit: 100,
            ..LogFilter::default()
        })
        .await
        .unwrap();
    // Five containers; the second read of each good one (400 s later) is a
    // new passage, since the window is 300 s.
    assert_eq!(
        page.logs.len(),
        1 + 2 * good.len(),
        "{:?}",
        page.logs.iter().map(|p| &p.container).collect::<Vec<_>>()
    );
    assert!(page.logs.iter().all(|p| p.container != "CSQU3054383"));
    r.stop().await;
}

#[tokio::test]
async fn a_misread_passage_is_corrected_by_later_reads_across_commits() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::open(&dir.path().join("g.db")).await;
    let w = r.store.writer();
    let first = w
        .write(vec![read("CSQU3054883", at(0))])
        .await
        .unwrap()
        .remove(0);
    assert!(!first.passage.check_digit_ok);
    let truth = w
        .write(vec![read("CSQU3054383", at(1)), read("CSQU3054383", at(2))])
        .await
        .unwrap();
    assert_eq!(
        truth[0].passage.id, first.passage.id,
        "{:?}",
        truth[0].passage
    );
    assert_eq!(truth[1].passage.container, "CSQU3054383");
    let stored = r.store.passage(first.passage.id).await.unwrap().unwrap();
    assert_eq!(stored.container, "CSQU3054383");
    assert_eq!(stored.corrections.len(), 1);
    assert_eq!(r.store.count().await.unwrap(), 1);
    r.stop().await;
}

/// A read at a gate camera of `direction`, on truck `plate`.
fn gate(container: &str, t: DateTime<Utc>, direction: Direction, plate: &str) -> Read {
    let mut r = read(container, t);
    r.direction = direction;
    r.truck_plate = Some(plate.into());
    r
}

#[tokio::test]
async fn the_yard_follows_gate_ins_and_gate_outs_with_dwell() {
    let dir = tempfile::tempdir().unwrap();
    let r = Running::open(&dir.path().join("g.db")).await;
    let w = r.store.writer();
    let (a, b, c) = ("MSCU1234566", "CSQU3054383", "TGHU7654320");
    // Two boxes on one truck come in; a third box goes out never having
    // come in.
    let ins = w
        .write(vec![
            gate(a, at(0), Direction::In, "12가3456"),
            gate(b, at(1), Direction::In, "12가3456"),
        ])
        .await
        .unwrap();
    let stray = w
        .write(vec![gate(c, at(2), Direction::Out, "99나9999")])
        .await
        .unwrap()
        .remove(0);
    assert!(stray.passage.flags.contains(Flags::OUT_WITHOUT_IN));
    assert_eq!(stray.passage.dwell_secs, None);

    let now = at(3_600);
    let page = r
        .store
        .yard(
            &YardFilter {
                limit: 10,
                ..YardFilter::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(page.count, 2);
    assert_eq!(
        page.yard
            .iter()
            .map(|i| (i.container.as_str(), i.dwell_secs))
            .collect::<Vec<_>>(),
        [(a, 3_600), (b, 3_599)],
        "longest stays first"
    );
    assert_eq!(page.yard[0].passage_id, ins[0].passage.id);
    assert_eq!(page.yard[0].truck_plate.as_deref(), Some("12가3456"));

    // A goes out two hours after it came in: its stay ends, with its dwell.
    let out = w
        .write(vec![gate(a, at(7_200), Direction::Out, "34다5678")])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(out.passage.dwell_secs, Some(7_200));
    assert!(out.passage.flags.is_empty() || !out.passage.flags.contains(Flags::OUT_WITHOUT_IN));
    // B comes in again without going out.
    let again = w
        .write(vec![gate(b, at(7_300), Direction::In, "56라7890")])
        .await
        .unwrap()
        .remove(0);
    assert!(again.passage.flags.contains(Flags::IN_WHILE_IN));
    // A comes back after the window: in the yard again, from now.
    w.write(vec![gate(a, at(9_000), Direction::In, "34다5678")])
        .await
        .unwrap();

    let now = at(10_000);
    let page = r
        .store
        .yard(
            &YardFilter {
                limit: 1,
                ..YardFilter::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(page.count, 2);
    let rest = r
        .store
        .yard(
            &YardFilter {
                limit: 10,
                cursor: Cursor::decode(page.next_cursor.as_deref().unwrap()),
                ..YardFilter::default()
            },
            now,
        )
        .await
        .unwrap();
    let listed: Vec<(String, i64)> = page
        .yard
        .iter()
        .chain(&rest.yard)
        .map(|i| (i.container.clone(), i.dwell_secs))
        .collect();
    assert_eq!(listed, [(b.to_string(), 2_700), (a.to_string(), 1_000)]);
    assert!(rest.next_cursor.is_none());
    // The filters, and the count against a direct count.
    let long = r
        .store
        .yard(
            &YardFilter {
                limit: 10,
                min_dwell_secs: Some(2_000),
                ..YardFilter::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!((long.count, long.yard.len()), (1, 1));
    let msc = r
        .store
        .yard(
            &YardFilter {
                limit: 10,
                owner: Some("MSCU".into()),
                ..YardFilter::default()
            },
            now,
        )
        .await
        .unwrap();
    assert_eq!(
        msc.yard
            .iter()
            .map(|i| i.container.as_str())
            .collect::<Vec<_>>(),
        [a]
    );
    let stats = r
        .store
        .yard_stats(at(0), at(10_000), gatelog_local_store::Bucket::Hour, now)
        .await
        .unwrap();
    assert_eq!(stats.count, 2);
    assert_eq!(stats.per_owner.get("CSQU"), Some(&1));
    assert_eq!(stats.dwell.max, 2_700);
    let ins: i64 = stats.movements.iter().map(|m| m.gate_ins).sum();
    let outs: i64 = stats.movements.iter().map(|m| m.gate_outs).sum();
    assert_eq!((ins, outs), (4, 2));
    r.stop().await;
}
