//! The partitioned central table against the real PostgreSQL at
//! 127.0.0.1:5432: a new database, the in-place upgrade of a populated v1
//! table (with a real `postrust` reading it, and after an interruption),
//! partitions made ahead and the default partition, and a passage whose
//! `captured_at` moves earlier, through both targets; the head-office
//! view's notifications through an upgrade, and its read-only reader;
//! the hourly statistics kept exact through all of it.

mod common;

use common::*;
use gatelog_sync::migrate::CENTRAL_MIGRATIONS;
use gatelog_sync::{PostgresConfig, SupabaseConfig, Target, UpgradeProgress};
use sqlx::{Connection, PgConnection};

/// How many of [`CENTRAL_MIGRATIONS`] made the unpartitioned (v1) schema.
const V1_FILES: usize = 3;

/// A fresh database with no schema at all, dropped after the test.
async fn bare_db() -> Option<TestDb> {
    let admin_url =
        std::env::var("GATELOG_TEST_PG_ADMIN").unwrap_or_else(|_| ADMIN_URL_DEFAULT.to_string());
    let mut admin = match PgConnection::connect(&admin_url).await {
        Ok(c) => c,
        Err(e) => {
            unavailable(&format!("PostgreSQL at {admin_url} ({e})"));
            return None;
        }
    };
    let name = format!("gatelog_central_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create database");
    admin.close().await.ok();
    let url = db_url(&name);
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    Some(TestDb { name, url, pool })
}

/// A database with the schema as it was before partitioning, and a
/// `supabase_realtime` publication as Supabase has.
async fn v1_db() -> Option<TestDb> {
    let db = bare_db().await?;
    sqlx::raw_sql("CREATE PUBLICATION supabase_realtime")
        .execute(&db.pool)
        .await
        .unwrap();
    for (name, sql) in &CENTRAL_MIGRATIONS[..V1_FILES] {
        sqlx::raw_sql(sql)
            .execute(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    Some(db)
}

/// Applies the files after v1 only, as a run interrupted right after them
/// would leave the database.
async fn apply_new_files_only(db: &TestDb) {
    for (name, sql) in &CENTRAL_MIGRATIONS[V1_FILES..] {
        sqlx::raw_sql(sql)
            .execute(&db.pool)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Fills a v1 table with `n` passages of three sites across months of
/// 2025, with every column set.
async fn fill_v1(db: &TestDb, n: i64) {
    sqlx::query(
        "INSERT INTO container_logs (id, site_id, captured_at, container_owner, container_number,
             source_video, cropped_image_ref, created_at, check_digit, check_digit_ok, flags,
             camera_id, confidence, seen_count, last_seen_at, updated_at, version, corrections)
         SELECT gen_random_uuid(), 'site-' || (i % 3), ts, 'MSCU', lpad(i::text, 6, '0'),
             'v' || i || '.mp4', 'c' || i || '.jpg', ts, (i % 10)::int2, i % 2 = 0, (i % 8)::int2,
             'cam-' || (i % 4), (i % 100) / 100.0, 1 + i % 5, ts + interval '1 minute', ts,
             1 + i % 3, jsonb_build_array(jsonb_build_object('from', 'X', 'to', 'Y', 'n', i))
         FROM generate_series(1, $1) i,
              LATERAL (SELECT timestamptz '2025-03-01 00:00:00Z'
                              + (i * interval '1 hour') * (240 * 24) / $1) t(ts)",
    )
    .bind(n)
    .execute(&db.pool)
    .await
    .unwrap();
}

/// A digest of every row, every column, in id order. The partitioned table
/// has the v1 table's columns in the same order, so equal digests mean
/// equal rows.
async fn digest(db: &TestDb) -> (i64, String) {
    sqlx::query_as(
        // Every column a v1 table has; the gate columns arrive with the
        // upgrade, with their defaults.
        "SELECT count(*), md5(coalesce(string_agg(
             (to_jsonb(c) - ARRAY['direction', 'lane', 'truck_plate', 'iso_type', 'dwell_secs'])::text,
             '|' ORDER BY c.id), ''))
         FROM container_logs c",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

/// The per-site hourly statistics (`container_logs_hourly`) equal a count
/// of the table itself: the triggers missed nothing and counted nothing
/// twice. Hours that netted to zero may stay as rows of zeros.
async fn assert_hourly_exact(db: &TestDb) {
    let wrong: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT a.site_id, b.site_id FROM (
             SELECT site_id, container_logs_hour(captured_at) AS hour, count(*) AS n,
                    sum(seen_count) AS s, sum(seen_count - 1) AS d,
                    count(*) FILTER (WHERE flags <> 0) AS f
             FROM container_logs GROUP BY 1, 2) a
         FULL JOIN (SELECT * FROM container_logs_hourly WHERE passages <> 0 OR sightings <> 0) b
             ON a.site_id = b.site_id AND a.hour = b.hour
         WHERE a.n IS DISTINCT FROM b.passages OR a.s IS DISTINCT FROM b.sightings
            OR a.d IS DISTINCT FROM b.duplicates OR a.f IS DISTINCT FROM b.flagged",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(
        wrong.is_empty(),
        "hourly counts differ from the table: {wrong:?}"
    );
    let total: Option<i64> =
        sqlx::query_scalar("SELECT sum(passages)::int8 FROM container_logs_hourly")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(total.unwrap_or(0), digest(db).await.0);
}

async fn relkind(db: &TestDb, table: &str) -> Option<String> {
    sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = to_regclass('public.' || $1)",
    )
    .bind(table)
    .fetch_optional(&db.pool)
    .await
    .unwrap()
}

/// Rows per partition of `container_logs`, by partition name.
async fn rows_per_partition(db: &TestDb) -> Vec<(String, i64)> {
    sqlx::query_as(
        "SELECT tableoid::regclass::text, count(*) FROM container_logs GROUP BY 1 ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// Everything the upgrade must keep: the key, RLS and its policies, the
/// GRANTs, the guards, the indexes, and the publication.
async fn assert_partitioned_and_guarded(db: &TestDb) {
    assert_eq!(relkind(db, "container_logs").await.as_deref(), Some("p"));
    let key: String = sqlx::query_scalar(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint
         WHERE conrelid = 'public.container_logs'::regclass AND contype = 'p'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(key, "PRIMARY KEY (id, captured_at)");
    let rls: bool = sqlx::query_scalar(
        "SELECT relrowsecurity FROM pg_class WHERE oid = 'public.container_logs'::regclass",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(rls, "row-level security stays on");
    let policies: Vec<String> = sqlx::query_scalar(
        "SELECT policyname::text FROM pg_policies WHERE tablename = 'container_logs' ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        policies,
        [
            "container_logs_authenticated_read",
            "container_logs_service_role_all"
        ]
    );
    let grants: (bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege('anon', 'public.container_logs', 'SELECT'),
                has_table_privilege('authenticated', 'public.container_logs', 'SELECT'),
                has_table_privilege('authenticated', 'public.container_logs', 'INSERT'),
                has_table_privilege('service_role', 'public.container_logs', 'INSERT, UPDATE')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        grants,
        (false, true, false, true),
        "anon, authenticated, service_role"
    );
    let triggers: Vec<String> = sqlx::query_scalar(
        "SELECT tgname::text FROM pg_trigger
         WHERE tgrelid = 'public.container_logs'::regclass AND NOT tgisinternal ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        triggers,
        [
            "container_logs_guard_site",
            "container_logs_hourly_delete",
            "container_logs_hourly_insert",
            "container_logs_hourly_update",
            "container_logs_keep_newest",
            "container_logs_move_passage",
            // The head-office view's live feed (20270201000000_notify.sql),
            // kept across the upgrade in place.
            "container_logs_notify"
        ]
    );
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexrelid::regclass::text FROM pg_index
         WHERE indrelid = 'public.container_logs'::regclass ORDER BY 1",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "container_logs_pkey",
            "idx_container_logs_captured_at",
            "idx_container_logs_number_prefix",
            "idx_container_logs_number_trgm",
            "idx_container_logs_owner_number",
            "idx_container_logs_site_captured_at",
            "idx_container_logs_site_updated_at",
        ]
    );
    let published: Vec<(String, bool)> = sqlx::query_as(
        "SELECT t.tablename::text, p.pubviaroot FROM pg_publication_tables t
         JOIN pg_publication p USING (pubname) WHERE t.pubname = 'supabase_realtime'",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(published, [("container_logs".to_string(), true)]);
    // Partitions cannot be read around the parent's policies.
    let exposed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'public.container_logs'::regclass
           AND (NOT c.relrowsecurity
                OR has_table_privilege('authenticated', c.oid, 'SELECT')
                OR has_table_privilege('anon', c.oid, 'SELECT'))",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(exposed, 0, "every partition has RLS on and no API grants");
}

#[tokio::test]
async fn a_new_database_is_partitioned_with_months_ahead_and_a_default() {
    let Some(db) = v1_db().await else { return };
    apply_new_files_only(&db).await;
    assert_partitioned_and_guarded(&db).await;
    assert!(
        relkind(&db, "container_logs_next").await.is_none(),
        "an empty table is swapped by the file itself"
    );

    // This month and the next three exist before any row needs them.
    let ahead: Vec<String> = sqlx::query_scalar(
        "SELECT public.container_logs_partition_name(
                    (date_trunc('month', now() AT TIME ZONE 'UTC') + make_interval(months => i))::date)
         FROM generate_series(0, 3) i",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    for name in &ahead {
        assert_eq!(relkind(&db, name).await.as_deref(), Some("r"), "{name}");
    }

    // A passage of a month without a partition lands in the default one…
    sqlx::query(
        "INSERT INTO container_logs (id, site_id, captured_at, container_owner, container_number)
         VALUES (gen_random_uuid(), 'site-1', '2031-05-17 10:00:00Z', 'MSCU', '123456')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        rows_per_partition(&db).await,
        [("container_logs_default".to_string(), 1)]
    );
    // …and moves into its month's partition when that is created.
    let created: bool = sqlx::query_scalar(
        "SELECT public.container_logs_ensure_partition('container_logs', '2031-05-01')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(created);
    assert_eq!(
        rows_per_partition(&db).await,
        [("container_logs_y2031m05".to_string(), 1)]
    );

    // Running the whole schema again changes nothing and creates nothing.
    gatelog_sync::migrate_central(&db.url.clone().into())
        .await
        .expect("migrations re-run");
    let made: i32 = sqlx::query_scalar("SELECT public.container_logs_maintain()")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(made, 0);
    assert_partitioned_and_guarded(&db).await;
    assert_eq!(digest(&db).await.0, 1);
}

#[tokio::test]
async fn upgrading_a_populated_table_in_place_loses_nothing_while_postrust_reads_it() {
    init_log();
    let Some(db) = v1_db().await else { return };
    fill_v1(&db, 25_000).await;
    let before = digest(&db).await;
    let Some(postrust) = Postrust::start(&db).await else {
        return;
    };

    let mut seen = Vec::new();
    gatelog_sync::migrate_central_reporting(&db.url.clone().into(), 4_000, |p| seen.push(p))
        .await
        .expect("upgrade");

    assert_eq!(digest(&db).await, before, "every row, every column");
    assert_partitioned_and_guarded(&db).await;
    assert_eq!(seen.len(), 7, "batches of 4,000: {seen:?}");
    assert_eq!(
        seen.last(),
        Some(&UpgradeProgress {
            copied: 25_000,
            total: 25_000
        })
    );
    let parts = rows_per_partition(&db).await;
    assert!(
        parts
            .iter()
            .all(|(name, _)| name.starts_with("container_logs_y2025m")),
        "every row in its month's partition, none in the default: {parts:?}"
    );
    assert_eq!(parts.len(), 8, "March to October 2025: {parts:?}");
    for table in ["container_logs_next", "container_logs_upgrade"] {
        assert!(relkind(&db, table).await.is_none(), "{table} is gone");
    }

    // PostgREST users reload the schema cache after the swap; then the API
    // reads the partitioned table and a site writes through it.
    sqlx::raw_sql("NOTIFY pgrst, 'reload schema'")
        .execute(&db.pool)
        .await
        .unwrap();
    let client = reqwest::Client::new();
    let key = service_key();
    let total = |r: &reqwest::Response| {
        r.headers()["content-range"]
            .to_str()
            .unwrap()
            .rsplit('/')
            .next()
            .unwrap()
            .to_string()
    };
    // The reload is asynchronous; ask until the answer comes from the new
    // table (bounded, so a server that never reloads fails the test).
    let mut read_back = None;
    for _ in 0..200 {
        let r = client
            .get(format!(
                "{}/container_logs?select=id&site_id=eq.site-1&limit=1",
                postrust.url()
            ))
            .bearer_auth(&key)
            .header("Prefer", "count=exact")
            .send()
            .await;
        if let Ok(r) = r {
            if r.status().is_success() {
                read_back = Some(total(&r));
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let site_1: i64 =
        sqlx::query_scalar("SELECT count(*) FROM container_logs WHERE site_id = 'site-1'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(read_back, Some(site_1.to_string()));

    let local = Local::open_site("site-9").await;
    local.ingest("TGHU", 0, 120).await;
    let target = Target::Supabase(SupabaseConfig {
        rest_path: String::new(),
        ..SupabaseConfig::new(postrust.url(), service_key())
    });
    let running = Running::start(&local, fast_config(), target);
    drained(&local, 30).await;
    running.stop().await;
    let site_9: i64 =
        sqlx::query_scalar("SELECT count(*) FROM container_logs WHERE site_id = 'site-9'")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(site_9, 120);
    assert_hourly_exact(&db).await;
    local.stop().await;
}

#[tokio::test]
async fn an_interrupted_upgrade_resumes_and_keeps_what_sites_changed_meanwhile() {
    let Some(db) = v1_db().await else { return };
    fill_v1(&db, 5_000).await;
    // A run that got as far as the files and two batches…
    apply_new_files_only(&db).await;
    assert_eq!(relkind(&db, "container_logs").await.as_deref(), Some("r"));
    assert_eq!(
        relkind(&db, "container_logs_next").await.as_deref(),
        Some("p")
    );
    for _ in 0..2 {
        let n: i64 = sqlx::query_scalar("SELECT public.container_logs_upgrade_step(1000)")
            .fetch_one(&db.pool)
            .await
            .unwrap();
        assert_eq!(n, 1000);
    }
    // …and was killed in the middle of the third.
    {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("SELECT public.container_logs_upgrade_step(1000)")
            .execute(&mut *tx)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
    }
    let copied: i64 = sqlx::query_scalar("SELECT copied FROM container_logs_upgrade")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(copied, 2000);

    // Meanwhile the sites keep writing to the live table: updates to rows
    // already copied and to rows not yet copied, a passage whose
    // captured_at moved into the previous month, new passages, and a
    // retention delete.
    sqlx::raw_sql(
        "UPDATE container_logs SET seen_count = seen_count + 10, version = version + 1
         WHERE container_number IN ('000007', '000070', '004900');
         UPDATE container_logs SET captured_at = '2025-02-27 23:00:00Z', version = version + 1
         WHERE container_number = '000001';
         INSERT INTO container_logs (id, site_id, captured_at, container_owner, container_number)
         SELECT gen_random_uuid(), 'site-7', '2025-12-24 08:00:00Z', 'TGHU', lpad(i::text, 6, '0')
         FROM generate_series(1, 50) i;
         DELETE FROM container_logs WHERE container_owner = 'MSCU' AND container_number = '000002';",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let before = digest(&db).await;
    assert_eq!(before.0, 5_049);

    let mut seen = Vec::new();
    gatelog_sync::migrate_central_reporting(&db.url.clone().into(), 1_000, |p| seen.push(p))
        .await
        .expect("the upgrade resumes");
    assert_eq!(digest(&db).await, before, "every row as the sites left it");
    assert_partitioned_and_guarded(&db).await;
    let copied_this_run: u64 = seen.last().map(|p| p.copied).unwrap_or(0);
    assert!(
        copied_this_run < 5_049,
        "the second run went on from the cursor: {seen:?}"
    );
    let moved: String = sqlx::query_scalar(
        "SELECT tableoid::regclass::text FROM container_logs WHERE container_number = '000001'
           AND container_owner = 'MSCU'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(moved, "container_logs_y2025m02");
    assert_hourly_exact(&db).await;
}

/// Reads one container at `t`.
async fn ingest_at(local: &Local, t: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(t).unwrap().to_utc();
    local
        .store
        .writer()
        .write(vec![read("MSCU1234565", t)])
        .await
        .expect("ingest");
}

/// The central rows of the one passage: (partition, captured_at, version,
/// seen_count).
async fn central_rows(db: &TestDb) -> Vec<(String, String, i64, i32)> {
    sqlx::query_as(
        "SELECT tableoid::regclass::text,
                to_char(captured_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS'),
                version, seen_count
         FROM container_logs ORDER BY captured_at",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn a_late_earlier_read_moves_the_central_row(rest: bool) {
    init_log();
    let Some(db) = TestDb::new().await else {
        return;
    };
    let postrust = if rest {
        match Postrust::start(&db).await {
            Some(p) => Some(p),
            None => return,
        }
    } else {
        None
    };
    let target = || match &postrust {
        Some(p) => Target::Supabase(SupabaseConfig {
            rest_path: String::new(),
            ..SupabaseConfig::new(p.url(), service_key())
        }),
        None => Target::Postgres(PostgresConfig::new(db.url.clone())),
    };
    for month in ["2025-06-01", "2025-07-01"] {
        sqlx::query("SELECT public.container_logs_ensure_partition('container_logs', $1::date)")
            .bind(month)
            .execute(&db.pool)
            .await
            .unwrap();
    }
    let local = Local::open().await;

    // The passage opens just after midnight on 1 July…
    ingest_at(&local, "2025-07-01T00:00:30Z").await;
    let running = Running::start(&local, fast_config(), target());
    drained(&local, 30).await;
    assert_eq!(
        central_rows(&db).await,
        [(
            "container_logs_y2025m07".to_string(),
            "2025-07-01T00:00:30".to_string(),
            1,
            1
        )]
    );

    // …then a camera whose read was delayed reports the same truck 90 s
    // earlier, in June. The passage's captured_at moves to that read.
    ingest_at(&local, "2025-06-30T23:59:00Z").await;
    drained(&local, 30).await;
    running.stop().await;
    let moved = central_rows(&db).await;
    assert_eq!(
        moved,
        [(
            "container_logs_y2025m06".to_string(),
            "2025-06-30T23:59:00".to_string(),
            2,
            2
        )],
        "one central row, under the site's captured_at, in June's partition"
    );

    // The first state arriving late (a retry whose reply was lost) is
    // skipped: it is older than the stored row.
    let stale = gatelog_sync::Sink::new(&target(), &fast_config()).unwrap();
    let mut first = local
        .store
        .passage(local.ids_and_versions().await[0].0)
        .await
        .unwrap()
        .unwrap();
    first.captured_at = chrono::DateTime::parse_from_rfc3339("2025-07-01T00:00:30Z")
        .unwrap()
        .to_utc();
    first.version = 1;
    first.seen_count = 1;
    stale
        .send(&[first])
        .await
        .expect("a stale row is confirmed, not refused");
    stale.close().await;
    assert_eq!(central_rows(&db).await, moved);
    assert_hourly_exact(&db).await;
    local.stop().await;
}

#[tokio::test]
async fn a_late_earlier_read_moves_the_central_row_direct() {
    a_late_earlier_read_moves_the_central_row(false).await;
}

#[tokio::test]
async fn a_late_earlier_read_moves_the_central_row_rest() {
    a_late_earlier_read_moves_the_central_row(true).await;
}

#[tokio::test]
async fn a_site_upgraded_before_its_centre_waits_without_dead_letters() {
    init_log();
    let Some(db) = v1_db().await else { return };
    let Some(postrust) = Postrust::start(&db).await else {
        return;
    };
    let local = Local::open().await;
    local.ingest("ABCU", 0, 40).await;
    let target = Target::Supabase(SupabaseConfig {
        rest_path: String::new(),
        ..SupabaseConfig::new(postrust.url(), service_key())
    });
    let running = Running::start(&local, fast_config(), target);
    // The unpartitioned table has no key on (id, captured_at): every
    // attempt fails, and is retried, not dead-lettered.
    // The status is recounted on its own timer, so wait for both the
    // error and the backlog.
    let status = status_until(&running.handle, 30, "a failed attempt", |s| {
        s.last_error.is_some() && s.pending == 40
    })
    .await;
    assert_eq!(status.dead_letters, 0, "{status:?}");
    assert_eq!(status.pending, 40);

    gatelog_sync::migrate_central(&db.url.clone().into())
        .await
        .expect("upgrade");
    sqlx::raw_sql("NOTIFY pgrst, 'reload schema'")
        .execute(&db.pool)
        .await
        .unwrap();
    drained(&local, 60).await;
    let status = running.handle.status().borrow().clone();
    assert_eq!(status.dead_letters, 0);
    running.stop().await;
    assert_eq!(db.ids_and_versions().await, local.ids_and_versions().await);
    local.stop().await;
}

/// Adds `n` passages captured in `month` (`YYYY-MM`), with text that does
/// not compress away.
async fn add_month(db: &TestDb, month: &str, site: &str, n: i64) {
    sqlx::query(
        "INSERT INTO container_logs (id, site_id, captured_at, container_owner, container_number,
             source_video, check_digit, check_digit_ok, seen_count, last_seen_at, version, corrections)
         SELECT gen_random_uuid(), $2, ts, 'MSCU', lpad(i::text, 6, '0'),
             'rtsp://gate/' || md5(random()::text) || md5(random()::text), (i % 10)::int2, true,
             1 + i % 4, ts, 1 + i % 2, '[{\"from\":\"MSCU1\",\"to\":\"MSCU2\"}]'
         FROM generate_series(1, $3) i,
              LATERAL (SELECT ($1 || '-01 00:00:00Z')::timestamptz
                              + (i % (27 * 24 * 60)) * interval '1 minute') t(ts)",
    )
    .bind(month)
    .bind(site)
    .bind(n)
    .execute(&db.pool)
    .await
    .unwrap();
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn archive_checks_then_drops_and_restore_brings_every_row_back() {
    use gatelog_sync::central::archive::{self, ArchiveEvent, Month};
    let Some(db) = TestDb::new().await else {
        return;
    };
    // May has its partition; June and December 2024 have none, so their
    // rows wait in the default partition; the current month stays.
    sqlx::query("SELECT public.container_logs_ensure_partition('container_logs', '2025-05-01')")
        .execute(&db.pool)
        .await
        .unwrap();
    add_month(&db, "2025-05", "site-1", 1_500).await;
    add_month(&db, "2025-06", "site-2", 700).await;
    add_month(&db, "2024-12", "site-1", 30).await;
    let everything = digest(&db).await;
    sqlx::query(
        "INSERT INTO container_logs (id, site_id, captured_at, container_owner, container_number)
         VALUES (gen_random_uuid(), 'site-1', now(), 'TGHU', '000001')",
    )
    .execute(&db.pool)
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let url: secrecy::SecretString = db.url.clone().into();
    let mut rows_reported = 0;
    let archived = archive::archive(&url, "2025-07".parse::<Month>().unwrap(), dir.path(), |e| {
        if let ArchiveEvent::Rows(n) = e {
            rows_reported += n;
        }
    })
    .await
    .expect("archive");
    let summary: Vec<(String, u64)> = archived
        .iter()
        .map(|a| (a.partition.clone(), a.rows))
        .collect();
    assert_eq!(
        summary,
        [
            ("container_logs_y2024m12".to_string(), 30),
            ("container_logs_y2025m05".to_string(), 1_500),
            ("container_logs_y2025m06".to_string(), 700),
        ]
    );
    assert_eq!(rows_reported, 2_230);
    // Only the current month's passage is left, and none of the archived
    // partitions.
    assert_eq!(digest(&db).await.0, 1);
    for a in &archived {
        assert!(
            relkind(&db, &a.partition).await.is_none(),
            "{} dropped",
            a.partition
        );
        let manifest = archive::verify_archive(&a.file).expect("the archive checks");
        assert_eq!(manifest.rows, a.rows);
        assert_eq!(manifest.partition, a.partition);
    }
    // Dropping fires no trigger; the archive recounted the months it dropped.
    assert_hourly_exact(&db).await;
    let names = files_in(dir.path());
    assert_eq!(names.len(), 6, "an archive and a manifest each: {names:?}");
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");

    // Loading every archive back restores every row as it was; loading
    // them again changes nothing.
    sqlx::query("DELETE FROM container_logs WHERE container_owner = 'TGHU'")
        .execute(&db.pool)
        .await
        .unwrap();
    for round in 0..2 {
        for a in &archived {
            let restored = archive::restore_archive(&url, &a.file, |_| {})
                .await
                .expect("restore");
            assert_eq!(restored.rows, a.rows);
        }
        assert_eq!(digest(&db).await, everything, "round {round}");
        assert_hourly_exact(&db).await;
    }
    let parts = rows_per_partition(&db).await;
    assert_eq!(
        parts,
        [
            ("container_logs_y2024m12".to_string(), 30),
            ("container_logs_y2025m05".to_string(), 1_500),
            ("container_logs_y2025m06".to_string(), 700),
        ]
    );
}

#[tokio::test]
async fn archive_refuses_the_current_month_and_a_damaged_archive() {
    use gatelog_sync::central::archive::{self, Month};
    let Some(db) = TestDb::new().await else {
        return;
    };
    let url: secrecy::SecretString = db.url.clone().into();
    let dir = tempfile::tempdir().unwrap();
    let next_month = Month::of(chrono::Utc::now()).next();
    let e = archive::archive(&url, next_month, dir.path(), |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("later than the current month"), "{e}");
    assert!(files_in(dir.path()).is_empty());

    add_month(&db, "2025-03", "site-1", 50).await;
    let archived = archive::archive(&url, "2025-04".parse().unwrap(), dir.path(), |_| {})
        .await
        .unwrap();
    // A damaged archive is refused before anything is loaded.
    let file = &archived[0].file;
    let mut bytes = std::fs::read(file).unwrap();
    let last = bytes.len() - 20;
    bytes[last] ^= 0xff;
    std::fs::write(file, &bytes).unwrap();
    let e = archive::restore_archive(&url, file, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("SHA-256"), "{e}");
    assert_eq!(digest(&db).await.0, 0, "nothing loaded");
}

/// A small tmpfs, unmounted when dropped: a disk that fills up.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it) on a new
    /// folder. Needs root; `None` when it cannot.
    fn mount(size: &str) -> Option<Self> {
        let dir = std::env::temp_dir().join(format!("gatelog-archive-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::fs::remove_dir(&dir);
        }
        ok.then_some(Self(dir))
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[tokio::test]
async fn a_partition_whose_archive_cannot_be_written_is_never_dropped() {
    use gatelog_sync::central::archive::{self, Month};
    let Some(db) = TestDb::new().await else {
        return;
    };
    let Some(disk) = SmallDisk::mount("64k") else {
        unavailable("mounting a small tmpfs (needs root)");
        return;
    };
    sqlx::query("SELECT public.container_logs_ensure_partition('container_logs', '2025-05-01')")
        .execute(&db.pool)
        .await
        .unwrap();
    add_month(&db, "2025-05", "site-1", 3_000).await;
    let before = digest(&db).await;
    let url: secrecy::SecretString = db.url.clone().into();
    let june: Month = "2025-06".parse().unwrap();

    // 3,000 rows of random text do not fit in 64 KiB compressed.
    let e = archive::archive(&url, june, &disk.0, |_| {})
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("container_logs_y2025m05 was not archived and is kept"),
        "{e}"
    );
    assert!(e.contains("No space left on device"), "{e}");
    assert_eq!(digest(&db).await, before, "every row still there");
    assert_eq!(
        relkind(&db, "container_logs_y2025m05").await.as_deref(),
        Some("r")
    );
    assert!(files_in(&disk.0).is_empty(), "no archive claims to exist");

    // With room, the same command goes through.
    disk.resize("16m");
    let archived = archive::archive(&url, june, &disk.0, |_| {}).await.unwrap();
    assert_eq!(archived.len(), 1);
    assert_eq!(archived[0].rows, 3_000);
    assert_eq!(digest(&db).await.0, 0);
}

/// Every notification on the head-office view's channel that arrives
/// within `wait`, as (id, kind).
async fn notices(
    listener: &mut sqlx::postgres::PgListener,
    wait: std::time::Duration,
) -> Vec<(String, String)> {
    let mut got = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(wait, listener.recv()).await {
        let v: serde_json::Value = serde_json::from_str(n.payload()).unwrap();
        got.push((
            v["id"].as_str().unwrap().to_string(),
            v["kind"].as_str().unwrap().to_string(),
        ));
    }
    got
}

#[tokio::test]
async fn the_live_table_notifies_once_per_change_through_an_upgrade_in_place() {
    use gatelog_sync::central::serve::CHANNEL;
    let Some(db) = v1_db().await else { return };
    fill_v1(&db, 500).await;
    // The files prepare the upgrade: the live v1 table mirrors into
    // container_logs_next, and both carry the notify trigger.
    apply_new_files_only(&db).await;
    assert_eq!(
        relkind(&db, "container_logs_next").await.as_deref(),
        Some("p")
    );
    let mut listener = sqlx::postgres::PgListener::connect(&db.url).await.unwrap();
    listener.listen(CHANNEL).await.unwrap();
    let wait = std::time::Duration::from_millis(500);

    // A site inserts during the upgrade: one notice, not a second one
    // for the mirrored copy.
    let id: String = sqlx::query_scalar(
        "INSERT INTO container_logs (id, site_id, captured_at, container_owner, container_number)
         VALUES (gen_random_uuid(), 'site-x', now(), 'MSCU', '000001') RETURNING id::text",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        notices(&mut listener, wait).await,
        [(id.clone(), "insert".to_string())]
    );

    // The copy and the swap announce nothing: no site changed anything.
    gatelog_sync::migrate_central(&db.url.clone().into())
        .await
        .unwrap();
    assert_eq!(relkind(&db, "container_logs").await.as_deref(), Some("p"));
    assert_eq!(notices(&mut listener, wait).await, []);

    // After the swap the partitioned table notifies: an update of the
    // same passage, and a skipped older version sends nothing.
    sqlx::query("UPDATE container_logs SET seen_count = 2, version = 2 WHERE id = $1::uuid")
        .bind(&id)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE container_logs SET seen_count = 1, version = 1 WHERE id = $1::uuid")
        .bind(&id)
        .execute(&db.pool)
        .await
        .unwrap();
    assert_eq!(
        notices(&mut listener, wait).await,
        [(id, "update".to_string())]
    );
    listener.unlisten_all().await.ok();
}

#[tokio::test]
async fn the_head_office_reader_cannot_write() {
    use gatelog_local_store::PassageReader;
    use gatelog_sync::central::serve::{CentralOptions, CentralReader};
    let Some(db) = bare_db().await else { return };
    gatelog_sync::migrate_central(&db.url.clone().into())
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO container_logs (id, site_id, captured_at, container_owner, container_number)
         VALUES (gen_random_uuid(), 'site-x', now(), 'MSCU', '000001')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let reader = CentralReader::connect(&CentralOptions {
        url: db.url.clone().into(),
        stale_after: std::time::Duration::from_secs(60),
        max_connections: 2,
    })
    .await
    .unwrap();
    assert_eq!(reader.recent(10).await.unwrap().len(), 1);
    let err = sqlx::query("DELETE FROM container_logs")
        .execute(reader.pool())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("read-only transaction"), "{err}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM container_logs")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "nothing was deleted");
}

/// A newest-first number search is asked in time slices
/// (`central::serve`); walked page by page through every cursor, it gives
/// the rows one plain query gives, in the same order, across slice
/// boundaries, the default partition, future times and a `from`/`to`.
#[tokio::test]
async fn a_number_search_in_time_slices_pages_like_one_query() {
    use gatelog_local_store::{LogFilter, Order, PassageReader};
    use gatelog_sync::central::serve::{CentralOptions, CentralReader};
    let Some(db) = bare_db().await else { return };
    gatelog_sync::migrate_central(&db.url.clone().into())
        .await
        .unwrap();
    // 3,000 passages from 3 years ago to a month ahead (the oldest wait in
    // the default partition), owners MSCU and TGHU; `MSCU00` matches one
    // in ten, and a few times fall on exactly the same microsecond.
    sqlx::query(
        "INSERT INTO container_logs (id, site_id, captured_at, container_owner, container_number,
             check_digit)
         SELECT gen_random_uuid(), 'site-' || (i % 3),
                date_trunc('second', now()) + interval '30 days'
                    - (i / 2) * interval '9 hours',
                CASE WHEN i % 2 = 0 THEN 'MSCU' ELSE 'TGHU' END,
                lpad(((i * 37) % 100)::text, 2, '0') || lpad((i % 10000)::text, 4, '0'),
                (i % 10)::int2
         FROM generate_series(1, 3000) i",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let reader = CentralReader::connect(&CentralOptions {
        url: db.url.clone().into(),
        stale_after: std::time::Duration::from_secs(60),
        max_connections: 2,
    })
    .await
    .unwrap();
    let now = chrono::Utc::now();
    let cases: Vec<(&str, LogFilter)> = vec![
        (
            "prefix",
            LogFilter {
                container: Some("MSCU00".into()),
                ..Default::default()
            },
        ),
        (
            "substring",
            LogFilter {
                q: Some("00".into()),
                ..Default::default()
            },
        ),
        (
            "rare",
            LogFilter {
                container: Some("TGHU632999".into()),
                ..Default::default()
            },
        ),
        (
            "bounded",
            LogFilter {
                q: Some("1".into()),
                from: Some(now - chrono::Duration::days(200)),
                to: Some(now - chrono::Duration::days(3)),
                ..Default::default()
            },
        ),
    ];
    for (name, filter) in cases {
        let like = |f: &LogFilter| -> String {
            match (&f.container, &f.q) {
                (Some(p), _) => format!("{p}%"),
                (_, Some(q)) => format!("%{q}%"),
                _ => unreachable!(),
            }
        };
        let expected: Vec<String> = sqlx::query_scalar(
            "SELECT id::text FROM container_logs
             WHERE container_owner || container_number || COALESCE(check_digit::text, '') LIKE $1
               AND ($2::timestamptz IS NULL OR captured_at >= $2::timestamptz)
               AND ($3::timestamptz IS NULL OR captured_at <= $3::timestamptz)
             ORDER BY captured_at DESC, id DESC",
        )
        .bind(like(&filter))
        .bind(filter.from.map(|t| t.to_rfc3339()))
        .bind(filter.to.map(|t| t.to_rfc3339()))
        .fetch_all(&db.pool)
        .await
        .unwrap();
        assert!(!expected.is_empty(), "{name}: the case matches something");
        let mut got = Vec::new();
        let mut page_filter = LogFilter {
            limit: 7,
            order: Order::Desc,
            ..filter
        };
        loop {
            let page = reader.search(&page_filter).await.unwrap();
            got.extend(page.logs.iter().map(|p| p.id.to_string()));
            match page.next_cursor {
                Some(c) => page_filter.cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(got, expected, "{name}");
    }
}
