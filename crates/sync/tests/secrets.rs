//! The Supabase key appears in no log line (at any level, from any crate)
//! and in no status output, whether sync succeeds or fails.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::*;
use gatelog_sync::{SupabaseConfig, Target};

/// Collects every formatted log line.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn supabase_key_is_never_logged_or_shown() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let Some(db) = TestDb::new().await else {
        return;
    };
    let Some(postrust) = Postrust::start(&db).await else {
        return;
    };
    let local = Local::open().await;
    local.ingest("KEYU", 0, 50).await;

    let good_key = service_key();
    let wrong_key = jwt(
        "not-the-server-secret-but-just-as-long-as-it",
        &serde_json::json!({"role": "service_role", "exp": 4_000_000_000u64}),
    );
    let mut shown = Vec::new();

    // 1. A wrong key: the target refuses, the error is shown.
    let config = |key: &str| SupabaseConfig {
        rest_path: String::new(),
        ..SupabaseConfig::new(postrust.url(), key)
    };
    let running = Running::start(&local, fast_config(), Target::Supabase(config(&wrong_key)));
    let mut status = running.handle.status();
    status
        .wait_for(|s| s.last_error.is_some())
        .await
        .expect("an error is reported");
    let s = status.borrow().clone();
    assert!(
        s.last_error.as_deref().unwrap().contains("401"),
        "{:?}",
        s.last_error
    );
    shown.push(serde_json::to_string(&s).unwrap());
    running.stop().await;

    // 2. An unreachable target.
    let running = Running::start(
        &local,
        fast_config(),
        Target::Supabase(SupabaseConfig::new("http://127.0.0.1:9", good_key.clone())),
    );
    let mut status = running.handle.status();
    status.wait_for(|s| s.last_error.is_some()).await.unwrap();
    shown.push(serde_json::to_string(&*status.borrow()).unwrap());
    running.stop().await;

    // 3. The right key: everything arrives.
    let running = Running::start(&local, fast_config(), Target::Supabase(config(&good_key)));
    drained(&local, 20).await;
    assert_eq!(db.count().await, 50);
    shown.push(serde_json::to_string(&*running.handle.status().borrow()).unwrap());
    running.stop().await;

    // The settings themselves print redacted.
    shown.push(format!("{:?}", config(&good_key)));
    shown.push(serde_json::to_string(&config(&good_key)).unwrap());
    shown.push(format!("{:?}", Target::Supabase(config(&wrong_key))));

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("sync batch failed"),
        "the failures were logged"
    );
    for key in [&good_key, &wrong_key] {
        let signature = key.rsplit('.').next().unwrap();
        assert!(!logs.contains(signature), "a key leaked into the logs");
        for s in &shown {
            assert!(!s.contains(signature), "a key leaked into {s}");
        }
    }
    local.stop().await;
}
