//! Network faults between the real app and its central target, for both
//! targets: PostgreSQL directly, and a real `postrust` (PostgREST
//! protocol) over HTTP. A [`FaultProxy`] in the path adds 2 s of latency,
//! resets a request in its middle, cuts a reply after a few bytes once
//! the target has committed, swallows everything (a blackhole), or flaps
//! up and down while reads keep coming in over HTTP.
//!
//! After every run: the central ids equal the local ids, no id is there
//! twice, every central row carries the local (newest) version, no
//! transient fault made a dead letter, and `GET /api/v1/sync/status`
//! showed the outage while it lasted (polled every 50 ms by an observer).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatelog_tests::central::{service_key, CentralDb, LocalCopy, Postrust};
use gatelog_tests::faults::{Fault, FaultProxy};
use gatelog_tests::{container, TestApp};
use secrecy::SecretString;
use serde_json::{json, Value};

/// How the app reaches the centre.
#[derive(Debug, Clone, Copy)]
enum Via {
    Direct,
    Rest,
}

/// The central database, the optional postrust in front of it, and the
/// proxy the app talks to.
struct Centre {
    db: CentralDb,
    _postrust: Option<Postrust>,
    proxy: FaultProxy,
    via: Via,
}

impl Centre {
    async fn new(via: Via) -> Option<Self> {
        let db = CentralDb::create().await?;
        let (postrust, upstream) = match via {
            Via::Direct => (None, "127.0.0.1:5432".parse().unwrap()),
            Via::Rest => {
                let p = Postrust::start(&db).await?;
                let addr = p.addr;
                (Some(p), addr)
            }
        };
        let proxy = FaultProxy::start(upstream).await;
        Some(Self {
            db,
            _postrust: postrust,
            proxy,
            via,
        })
    }

    /// Starts the real app with sync to this centre through the proxy,
    /// with quick backoffs so outages are crossed fast.
    async fn app(&self, batch_size: usize, request_timeout_ms: u64) -> TestApp {
        let proxy = self.proxy.addr;
        let (via, db_url) = (self.via, self.db.url_via(proxy));
        TestApp::spawn_with(move |c| {
            c.sync.batch_size = batch_size;
            c.sync.backoff_initial_ms = 50;
            c.sync.backoff_max_ms = 400;
            c.sync.poll_interval_ms = 100;
            c.sync.status_interval_ms = 100;
            c.sync.request_timeout_ms = request_timeout_ms;
            match via {
                Via::Direct => {
                    c.sync.target = gatelog_sync::TargetKind::Postgres;
                    c.postgres.url = Some(SecretString::from(db_url));
                }
                Via::Rest => {
                    c.sync.target = gatelog_sync::TargetKind::Supabase;
                    c.supabase.url = Some(format!("http://{proxy}"));
                    c.supabase.key = Some(SecretString::from(service_key()));
                    c.supabase.rest_path = String::new();
                }
            }
        })
        .await
    }

    /// Bytes that open a batch's write: the upsert statement, or the
    /// POST to the table.
    fn write_request(&self) -> Vec<u8> {
        match self.via {
            Via::Direct => b"INSERT INTO container_logs".to_vec(),
            Via::Rest => b"POST /container_logs".to_vec(),
        }
    }

    /// Bytes after which the target has committed once it answers: sqlx
    /// commits with a simple query "COMMIT"; PostgREST commits a POST
    /// before it answers.
    fn commit_request(&self) -> Vec<u8> {
        match self.via {
            Via::Direct => b"COMMIT\0".to_vec(),
            Via::Rest => b"POST /container_logs".to_vec(),
        }
    }
}

/// Posts one batch of reads of containers `range`, each at its own time
/// 20 s from the next, so that no two containers are ever close enough in
/// time to be taken for misreads of each other. A `Repeat` comes 30 s
/// after the first read: it joins that passage and raises its version,
/// so the newest version has to travel too.
async fn post_reads(app: &TestApp, range: std::ops::Range<u64>, kind: ReadKind) {
    let base = chrono::DateTime::parse_from_rfc3339("2024-05-01T08:00:00Z").unwrap();
    let items: Vec<Value> = range
        .map(|n| {
            let offset = n as i64 * 20 + if kind == ReadKind::Repeat { 30 } else { 0 };
            json!({
                "container": container(n),
                "captured_at": (base + chrono::Duration::seconds(offset)).to_rfc3339(),
                "camera_id": "cam-1",
            })
        })
        .collect();
    let (status, body) = app.post(&Value::Array(items)).await;
    assert_eq!(status, 200, "{body}");
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadKind {
    First,
    Repeat,
}

async fn sync_status(app: &TestApp) -> Value {
    let (status, body) = app.get("/api/v1/sync/status").await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the store holds nothing pending and the status shows
/// none either, with the last error cleared. (The status alone could
/// still show the count from before the latest reads: it is recounted
/// on a timer.)
async fn drained(app: &TestApp, secs: u64) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    let db = app.dir.path().join("gatelog.db");
    loop {
        let s = sync_status(app).await;
        if s["pending"] == 0
            && s["last_error"].is_null()
            && s["last_success_at"].is_string()
            && LocalCopy::read(&db).await.pending == 0
        {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sync did not drain in {secs} s: {s}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What an observer saw of the status while a fault lasted.
#[derive(Debug, Default, Clone)]
struct Seen {
    /// The largest `pending` shown.
    max_pending: i64,
    /// Every distinct `last_error` shown.
    errors: Vec<String>,
    /// The largest `dead_letters` shown.
    max_dead_letters: i64,
}

/// Polls the status every 50 ms until stopped.
struct Observer {
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    fn start(app: &TestApp) -> Self {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let url = app.url("/api/v1/sync/status");
        let (s, halt) = (seen.clone(), stop.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::new();
            while !halt.load(Ordering::SeqCst) {
                let status: Value = client
                    .get(&url)
                    .send()
                    .await
                    .expect("the status answers during a fault")
                    .json()
                    .await
                    .expect("a JSON status");
                {
                    let mut seen = s.lock().unwrap();
                    seen.max_pending = seen.max_pending.max(status["pending"].as_i64().unwrap());
                    seen.max_dead_letters = seen
                        .max_dead_letters
                        .max(status["dead_letters"].as_i64().unwrap());
                    if let Some(e) = status["last_error"].as_str() {
                        if !seen.errors.iter().any(|x| x == e) {
                            seen.errors.push(e.to_string());
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        Self { seen, stop, task }
    }

    async fn finish(self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.expect("the observer ends");
        let seen = self.seen.lock().unwrap().clone();
        seen
    }
}

/// The checks after every run: the same ids centrally as locally, none
/// twice, every central row at the local version, and no dead letter.
async fn assert_exact(centre: &Centre, app: &TestApp, passages: usize) {
    let local = LocalCopy::read(&app.dir.path().join("gatelog.db")).await;
    assert_eq!(local.ids_and_versions.len(), passages, "passages stored");
    assert_eq!(local.pending, 0);
    assert_eq!(
        local.dead_letters, 0,
        "no transient fault makes a dead letter"
    );
    assert_eq!(
        centre.db.repeated_ids().await,
        Vec::<String>::new(),
        "no id twice"
    );
    let central = centre.db.ids_and_versions().await;
    assert_eq!(central.len(), local.ids_and_versions.len(), "same count");
    assert_eq!(
        central, local.ids_and_versions,
        "same ids, each at the newest version"
    );
    let status = sync_status(app).await;
    assert_eq!(status["dead_letters"], 0, "{status}");
}

/// 100 passages synced, then the fault for `hold` while 60 new passages
/// and 40 changes to old ones come in, then the fault lifts. Returns what
/// the status showed during the fault.
async fn run_fault(
    centre: &Centre,
    app: &TestApp,
    fault: Fault,
    hold: Duration,
    drain_under_fault: bool,
) -> Seen {
    post_reads(app, 0..100, ReadKind::First).await;
    drained(app, 30).await;
    assert_eq!(centre.db.ids_and_versions().await.len(), 100);

    centre.proxy.set(fault);
    let observer = Observer::start(app);
    post_reads(app, 100..130, ReadKind::First).await;
    post_reads(app, 0..40, ReadKind::Repeat).await;
    post_reads(app, 130..160, ReadKind::First).await;
    if drain_under_fault {
        // A slow path is not an outage: sync gets through while it lasts.
        drained(app, 120).await;
    } else {
        tokio::time::sleep(hold).await;
    }
    let seen = observer.finish().await;
    centre.proxy.set(Fault::None);
    drained(app, 60).await;
    assert_exact(centre, app, 160).await;
    eprintln!(
        "{:?}: injected {:?}; the status showed {seen:?}",
        centre.via,
        centre.proxy.injected()
    );
    assert_eq!(seen.max_dead_letters, 0, "no dead letter was ever shown");
    seen
}

/// Asserts that the status showed an outage: a backlog and an error.
fn assert_outage_shown(seen: &Seen) {
    assert!(seen.max_pending > 0, "the backlog was shown: {seen:?}");
    assert!(!seen.errors.is_empty(), "the error was shown: {seen:?}");
}

async fn latency(via: Via) {
    let Some(centre) = Centre::new(via).await else {
        return;
    };
    let app = centre.app(500, 30_000).await;
    let seen = run_fault(
        &centre,
        &app,
        Fault::Latency(Duration::from_secs(2)),
        Duration::ZERO,
        true,
    )
    .await;
    assert!(
        centre.proxy.injected().delayed_chunks > 0,
        "the latency was felt"
    );
    assert!(seen.max_pending > 0, "the backlog was shown: {seen:?}");
    assert!(
        seen.errors.is_empty(),
        "2 s of latency under a 30 s timeout is no failure: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_target_syncs_exactly_through_2s_of_latency() {
    latency(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_target_syncs_exactly_through_2s_of_latency() {
    latency(Via::Rest).await;
}

async fn reset_mid_request(via: Via) {
    let Some(centre) = Centre::new(via).await else {
        return;
    };
    let app = centre.app(20, 5_000).await;
    let fault = Fault::ResetMidRequest {
        pattern: centre.write_request(),
    };
    let seen = run_fault(&centre, &app, fault, Duration::from_secs(2), false).await;
    assert!(
        centre.proxy.injected().resets_mid_request > 0,
        "requests were reset"
    );
    assert_outage_shown(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_target_survives_resets_in_the_middle_of_a_request() {
    reset_mid_request(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_target_survives_resets_in_the_middle_of_a_request() {
    reset_mid_request(Via::Rest).await;
}

/// The target commits and the reply is cut after a few bytes: the rows
/// are central, the site never heard it and sends them again.
async fn reply_cut_after_commit(via: Via, bytes: usize) {
    let Some(centre) = Centre::new(via).await else {
        return;
    };
    let app = centre.app(20, 5_000).await;
    post_reads(&app, 0..100, ReadKind::First).await;
    drained(&app, 30).await;

    centre.proxy.set(Fault::CutReplyAfter {
        pattern: centre.commit_request(),
        bytes,
    });
    let observer = Observer::start(&app);
    post_reads(&app, 100..160, ReadKind::First).await;
    post_reads(&app, 0..40, ReadKind::Repeat).await;
    // The oldest batch is committed centrally on the first try, but the
    // site never hears it, so it sends that same batch again and again and
    // everything after it waits: 60 new passages and 40 changed ones.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while centre.db.ids_and_versions().await.len() == 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the target committed nothing under the fault: {:?}",
            centre.proxy.injected()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while centre.proxy.injected().replies_cut < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the batch was not sent again: {:?}",
            centre.proxy.injected()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let central = centre.db.ids_and_versions().await.len();
    assert!(central > 100 && central < 160, "{central} central");
    let local = LocalCopy::read(&app.dir.path().join("gatelog.db")).await;
    assert_eq!(
        local.pending, 100,
        "committed centrally but never heard: every new or changed passage is still pending"
    );
    let seen = observer.finish().await;
    centre.proxy.set(Fault::None);
    drained(&app, 60).await;
    assert_exact(&centre, &app, 160).await;
    assert_eq!(seen.max_dead_letters, 0);
    assert!(centre.proxy.injected().replies_cut > 0, "replies were cut");
    eprintln!(
        "{via:?}: injected {:?}; the status showed {seen:?}",
        centre.proxy.injected()
    );
    assert_outage_shown(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_target_survives_a_reply_cut_after_commit() {
    // CommandComplete for COMMIT is 12 bytes; 5 of them leave a torn message.
    reply_cut_after_commit(Via::Direct, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_target_survives_a_reply_cut_after_commit() {
    // "HTTP/1.1 201": the status line, no more.
    reply_cut_after_commit(Via::Rest, 12).await;
}

async fn blackhole(via: Via) {
    let Some(centre) = Centre::new(via).await else {
        return;
    };
    let app = centre.app(20, 1_000).await;
    let seen = run_fault(
        &centre,
        &app,
        Fault::Blackhole,
        Duration::from_secs(3),
        false,
    )
    .await;
    assert!(
        centre.proxy.injected().blackholed_connections > 0,
        "connections went silent"
    );
    assert_outage_shown(&seen);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_target_survives_a_blackhole() {
    blackhole(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_target_survives_a_blackhole() {
    blackhole(Via::Rest).await;
}

/// The path goes down for 2 s and up for 2 s, four times, while reads
/// keep arriving over HTTP; each down phase must show in the status.
async fn flapping(via: Via) {
    let Some(centre) = Centre::new(via).await else {
        return;
    };
    let app = centre.app(20, 2_000).await;
    let ingest = async {
        // 40 posts of 5 reads, one every 400 ms or so, for as long as the
        // flapping lasts: new passages, and repeats that raise the version
        // of earlier ones.
        for i in 0..40u64 {
            post_reads(&app, i * 5..i * 5 + 5, ReadKind::First).await;
            if i >= 10 {
                post_reads(&app, (i - 10) * 5..(i - 10) * 5 + 2, ReadKind::Repeat).await;
            }
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
    };
    let flap = async {
        let mut downs = Vec::new();
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            centre.proxy.set(Fault::Down);
            let observer = Observer::start(&app);
            tokio::time::sleep(Duration::from_secs(2)).await;
            downs.push(observer.finish().await);
            centre.proxy.set(Fault::None);
        }
        downs
    };
    let ((), downs) = tokio::join!(ingest, flap);
    drained(&app, 60).await;
    assert_exact(&centre, &app, 200).await;
    assert!(centre.proxy.injected().down_resets > 0);
    eprintln!(
        "{via:?}: injected {:?}; the down phases showed {downs:?}",
        centre.proxy.injected()
    );
    for (i, seen) in downs.iter().enumerate() {
        assert_eq!(seen.max_dead_letters, 0);
        assert!(
            !seen.errors.is_empty(),
            "down phase {i} showed no error: {seen:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_target_syncs_exactly_while_the_path_flaps() {
    flapping(Via::Direct).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_target_syncs_exactly_while_the_path_flaps() {
    flapping(Via::Rest).await;
}
