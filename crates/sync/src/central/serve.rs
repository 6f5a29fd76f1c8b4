//! The head-office view's reads: the central `container_logs` behind the
//! same [`PassageReader`] a site's store implements, so `gatelog central
//! serve` answers with the API's own handlers.
//!
//! - [`CentralReader`]: listings with the API's filters (and `site`),
//!   keyset pages on `(captured_at, id)`, one passage, stats per site, the
//!   export's pages, and the list of sites with their lag.
//! - [`CentralFeed`]: `LISTEN`s for the central trigger's notifications
//!   (`container_logs_notify`, channel [`CHANNEL`]), fetches each changed
//!   row and publishes it as a committed outcome, which the API's
//!   broadcaster pushes to `/ws/logs` as `new_log` or `duplicate`.
//! - [`maintain`]: the daily partition upkeep (`container_logs_maintain`).
//!
//! **Read-only.** Every connection of the reader's pool starts with
//! `default_transaction_read_only = on`, so no statement it runs can write
//! a passage, whatever a bug in this module asked. Only [`maintain`] opens
//! a connection of its own that may create partitions.
//!
//! Values reach SQL only as bound parameters. The build has no sqlx type
//! support for UUIDs, times or JSON, so ids and JSON travel as text, times
//! as text going in (`$n::timestamptz`) and as integer microseconds coming
//! out, as in the direct sync target.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use gatelog_core::passage::SyncState;
use gatelog_core::{Correction, Direction, Flags, Passage};
use gatelog_local_store::{
    Bucket, BucketCounts, Cursor, LogFilter, Order, Outcome, OutcomeKind, Page, PassageReader,
    ReadFuture, Replay, Scope, SightingPage, SiteStats, SiteStatus, Stats, StoreError, SyncFilter,
};
use secrecy::{ExposeSecret, SecretString};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection, Postgres, QueryBuilder, Row};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The channel the central trigger notifies on.
pub const CHANNEL: &str = "gatelog_container_logs";

/// The full number as the site spells it: owner code, serial and the
/// check digit when known. The central indexes are on this expression.
const NUMBER: &str = "(container_owner || container_number || COALESCE(check_digit::text, ''))";

/// The columns read, times as integer microseconds.
const COLUMNS: &str = "id::text, site_id, \
     (extract(epoch from captured_at) * 1000000)::int8, \
     container_owner, container_number, check_digit, check_digit_ok, flags, \
     source_video, cropped_image_ref, camera_id, confidence, seen_count::int8, \
     (extract(epoch from COALESCE(last_seen_at, captured_at)) * 1000000)::int8, \
     (extract(epoch from created_at) * 1000000)::int8, \
     (extract(epoch from updated_at) * 1000000)::int8, \
     version, corrections::text, direction, lane, truck_plate, iso_type, dwell_secs";

/// How the head-office view connects and when it calls a site stale.
#[derive(Debug, Clone)]
pub struct CentralOptions {
    /// The central database (`postgres.url`, `DATABASE_URL`).
    pub url: SecretString,
    /// A site that synced nothing for longer than this, while another
    /// site synced within it, is stale.
    pub stale_after: Duration,
    /// Connections for reads.
    pub max_connections: u32,
}

/// The central database's read side. Cheap to clone.
#[derive(Clone)]
pub struct CentralReader {
    pool: PgPool,
    stale_after: Duration,
}

/// Options for every connection of the head-office view: no statement
/// cache (a transaction-mode pooler may move the session), its own
/// application name, and read-only unless `writes` is set.
fn connect_options(url: &SecretString, writes: bool) -> Result<PgConnectOptions, StoreError> {
    let options = PgConnectOptions::from_str(url.expose_secret())
        .map_err(|_| StoreError::Refused("postgres.url (DATABASE_URL) is not a valid URL".into()))?
        .statement_cache_capacity(0)
        .application_name("gatelog-central")
        .log_statements(tracing::log::LevelFilter::Trace)
        .log_slow_statements(tracing::log::LevelFilter::Debug, Duration::from_secs(2));
    Ok(if writes {
        options
    } else {
        options.options([("default_transaction_read_only", "on")])
    })
}

impl CentralReader {
    /// Opens the read-only pool; fails when the database cannot be
    /// reached or holds no `container_logs`.
    pub async fn connect(options: &CentralOptions) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(connect_options(&options.url, false)?)
            .await
            .map_err(StoreError::from_sqlx)?;
        let table: Option<String> =
            sqlx::query_scalar("SELECT to_regclass('public.container_logs')::text")
                .fetch_one(&pool)
                .await?;
        if table.is_none() {
            return Err(StoreError::Refused(
                "the central database has no container_logs table; run gatelog migrate --central"
                    .into(),
            ));
        }
        Ok(Self {
            pool,
            stale_after: options.stale_after,
        })
    }

    /// The read-only pool, for the live feed's listener.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn search_page(&self, filter: &LogFilter) -> Result<Page, StoreError> {
        let limit = filter.limit.clamp(1, 1000);
        let want = limit as usize + 1;
        let mut rows = Vec::new();
        if filter.order == Order::Desc && (filter.container.is_some() || filter.q.is_some()) {
            for slice in slices(filter, Utc::now()) {
                rows.extend(self.rows(&slice, want - rows.len()).await?);
                if rows.len() >= want {
                    break;
                }
            }
        } else {
            rows = self.rows(filter, want).await?;
        }
        let mut logs = rows.iter().map(passage).collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if logs.len() > limit as usize {
            logs.truncate(limit as usize);
            logs.last().map(|p| Cursor {
                captured_at: p.captured_at.timestamp_micros(),
                id: p.id,
            })
        } else {
            None
        };
        Ok(Page { logs, next_cursor })
    }

    /// Up to `n` rows matching `filter`, in its order.
    async fn rows(&self, filter: &LogFilter, n: usize) -> Result<Vec<PgRow>, StoreError> {
        let mut q =
            QueryBuilder::<Postgres>::new(format!("SELECT {COLUMNS} FROM public.container_logs"));
        push_filters(&mut q, filter);
        let dir = match filter.order {
            Order::Desc => "DESC",
            Order::Asc => "ASC",
        };
        q.push(format!(" ORDER BY captured_at {dir}, id {dir} LIMIT "));
        q.push_bind(i64::try_from(n).unwrap_or(i64::MAX));
        Ok(q.build().fetch_all(&self.pool).await?)
    }

    async fn one(&self, id: Uuid) -> Result<Option<Passage>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM public.container_logs WHERE id = $1::uuid LIMIT 1"
        ))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(passage).transpose()
    }

    /// The rows with these keys, as the live feed fetches them.
    pub async fn changed(&self, keys: &[(Uuid, String)]) -> Result<Vec<Passage>, StoreError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<String> = keys.iter().map(|(id, _)| id.to_string()).collect();
        let times: Vec<String> = keys.iter().map(|(_, t)| t.clone()).collect();
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM public.container_logs \
             WHERE id = ANY($1::text[]::uuid[]) AND captured_at = ANY($2::text[]::timestamptz[])"
        ))
        .bind(ids)
        .bind(times)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(passage).collect()
    }

    async fn counts(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> Result<Stats, StoreError> {
        let width = bucket.micros();
        let start = from.timestamp_micros().div_euclid(width) * width;
        let end = {
            let t = to.timestamp_micros();
            let e = t.div_euclid(width) * width;
            if e < t || e == start {
                e + width
            } else {
                e
            }
        };
        let n = usize::try_from((end - start) / width).unwrap_or(0);
        let empty = || -> Result<Vec<BucketCounts>, StoreError> {
            (0..n)
                .map(|i| {
                    Ok(BucketCounts {
                        start: time(start + i as i64 * width)?,
                        passages: 0,
                        sightings: 0,
                        duplicates: 0,
                        flagged: 0,
                    })
                })
                .collect()
        };
        // Counted from `container_logs_hourly`, kept per site and UTC hour
        // by the central table's triggers (`20270301000000_hourly.sql`):
        // both buckets are whole UTC hours, so summing hours is exact and
        // the cost grows with sites and hours, not with passages. The
        // central table holds passages, not reads: a passage's reads count
        // in the hour of its first capture (`seen_count`), its repeats are
        // `seen_count - 1`, and a flagged passage counts once. `date_bin`
        // (PostgreSQL 14) groups on the timestamps themselves; only the
        // groups' starts are turned into numbers.
        let rows = sqlx::query(
            "SELECT site_id, (((extract(epoch from b) * 1000000)::int8 - $1) / $2)::int8, \
                    n, s, d, f \
             FROM (SELECT site_id, date_bin($3::interval, hour, $4::timestamptz) AS b, \
                          sum(passages)::int8 AS n, sum(sightings)::int8 AS s, \
                          sum(duplicates)::int8 AS d, sum(flagged)::int8 AS f \
                   FROM public.container_logs_hourly \
                   WHERE hour >= $4::timestamptz AND hour < $5::timestamptz \
                   GROUP BY 1, 2) g \
             WHERE n <> 0 OR s <> 0 \
             ORDER BY 1, 2",
        )
        .bind(start)
        .bind(width)
        .bind(format!("{} microseconds", width))
        .bind(text_time(start)?)
        .bind(text_time(end)?)
        .fetch_all(&self.pool)
        .await?;
        let mut total = empty()?;
        let mut sites: Vec<SiteStats> = Vec::new();
        for row in rows {
            let site: String = row.try_get(0)?;
            let b: i64 = row.try_get(1)?;
            let (passages, sightings, duplicates, flagged): (i64, i64, i64, i64) = (
                row.try_get(2)?,
                row.try_get(3)?,
                row.try_get(4)?,
                row.try_get(5)?,
            );
            let Some(b) = usize::try_from(b).ok().filter(|b| *b < n) else {
                continue;
            };
            if sites.last().is_none_or(|s| s.site_id != site) {
                sites.push(SiteStats {
                    site_id: site,
                    buckets: empty()?,
                });
            }
            if let Some(s) = sites.last_mut() {
                let slot = &mut s.buckets[b];
                slot.passages = passages;
                slot.sightings = sightings;
                slot.duplicates = duplicates;
                slot.flagged = flagged;
            }
            let slot = &mut total[b];
            slot.passages += passages;
            slot.sightings += sightings;
            slot.duplicates += duplicates;
            slot.flagged += flagged;
        }
        Ok(Stats {
            from: time(start)?,
            to: time(end)?,
            bucket: bucket.as_str(),
            buckets: total,
            sites: Some(sites),
        })
    }

    /// Every site, its latest synced change and its passages in the last
    /// hour. Sites are found by a skip scan of the `(site_id, updated_at)`
    /// index, and each figure by an index probe per site, so the cost
    /// grows with the number of sites, not of rows.
    pub async fn site_list(&self) -> Result<Vec<SiteStatus>, StoreError> {
        let rows = sqlx::query(
            "WITH RECURSIVE s(site) AS ( \
                 (SELECT site_id FROM public.container_logs ORDER BY site_id LIMIT 1) \
                 UNION ALL \
                 SELECT (SELECT c.site_id FROM public.container_logs c \
                         WHERE c.site_id > s.site ORDER BY c.site_id LIMIT 1) \
                 FROM s WHERE s.site IS NOT NULL) \
             SELECT site, \
                    (SELECT (extract(epoch from max(c.updated_at)) * 1000000)::int8 \
                     FROM public.container_logs c WHERE c.site_id = s.site), \
                    (SELECT count(*)::int8 FROM public.container_logs c \
                     WHERE c.site_id = s.site AND c.captured_at >= now() - interval '1 hour'), \
                    (extract(epoch from now()) * 1000000)::int8 \
             FROM s WHERE site IS NOT NULL ORDER BY site",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut sites = Vec::with_capacity(rows.len());
        let mut now = 0;
        for row in rows {
            let last: i64 = row.try_get(1)?;
            now = row.try_get(3)?;
            sites.push(SiteStatus {
                site_id: row.try_get(0)?,
                last_change: time(last)?,
                passages_last_hour: row.try_get(2)?,
                lag_secs: (now - last).max(0) as f64 / 1e6,
                stale: false,
            });
        }
        mark_stale(&mut sites, now, self.stale_after);
        Ok(sites)
    }
}

/// A site is stale when it synced nothing for longer than `after` while
/// at least one other site synced within it: when every site is quiet
/// (a night, a holiday, the centre's own outage) nobody is singled out.
pub fn mark_stale(sites: &mut [SiteStatus], now_micros: i64, after: Duration) {
    let after = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
    let quiet = |s: &SiteStatus| now_micros - s.last_change.timestamp_micros() > after;
    let someone_syncs = sites.iter().any(|s| !quiet(s));
    for s in sites.iter_mut() {
        s.stale = someone_syncs && quiet(s);
    }
}

impl PassageReader for CentralReader {
    fn scope(&self) -> Scope {
        Scope::Central
    }

    fn search<'a>(&'a self, filter: &'a LogFilter) -> ReadFuture<'a, Page> {
        Box::pin(self.search_page(filter))
    }

    fn passage(&self, id: Uuid) -> ReadFuture<'_, Option<Passage>> {
        Box::pin(self.one(id))
    }

    /// The central database keeps passages, not their reads; those stay
    /// at the site. Every page is empty.
    fn sightings(
        &self,
        _id: Uuid,
        _after: Option<Cursor>,
        _limit: u32,
    ) -> ReadFuture<'_, SightingPage> {
        Box::pin(async {
            Ok(SightingPage {
                sightings: Vec::new(),
                next_cursor: None,
            })
        })
    }

    fn stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> ReadFuture<'_, Stats> {
        Box::pin(self.counts(from, to, bucket))
    }

    fn sites(&self) -> ReadFuture<'_, Option<Vec<SiteStatus>>> {
        Box::pin(async { self.site_list().await.map(Some) })
    }
}

/// How far back, in days from the newest possible match, each slice of a
/// newest-first number search reaches; after the last, the rest.
const SLICE_DAYS: [i64; 4] = [7, 35, 120, 400];

/// A newest-first search by number (prefix or substring) cut into time
/// slices, newest first, each ending where the one before began.
///
/// Such a search matches a few rows in thousands, spread over every month:
/// as one query it must fetch every match of every partition to find the
/// newest page, which grows with the table. Asked slice by slice, the
/// partitions outside a slice are pruned and the first slice usually fills
/// the page; a rare number costs a few more index probes, not more rows.
/// The slices are disjoint and in the page's order, so their rows, taken
/// in turn, are the page the single query would give. (An ordered Append
/// over the partitions would do the same inside PostgreSQL, but the
/// planner cannot use one while the default partition may hold any time.)
fn slices(filter: &LogFilter, now: DateTime<Utc>) -> Vec<LogFilter> {
    let top = [
        filter.to,
        filter
            .cursor
            .and_then(|c| DateTime::from_timestamp_micros(c.captured_at)),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(now);
    let mut out = Vec::new();
    let mut upper = filter.to;
    for days in SLICE_DAYS {
        let lower = top - chrono::Duration::days(days);
        if filter.from.is_some_and(|f| f >= lower) {
            break;
        }
        out.push(LogFilter {
            from: Some(lower),
            to: upper,
            ..filter.clone()
        });
        // `to` is inclusive; times are kept to the microsecond.
        upper = Some(lower - chrono::Duration::microseconds(1));
    }
    out.push(LogFilter {
        to: upper,
        ..filter.clone()
    });
    out
}

/// Appends the WHERE clause for `filter`, binding every value.
fn push_filters(q: &mut QueryBuilder<'_, Postgres>, filter: &LogFilter) {
    let mut first = true;
    let mut and = |q: &mut QueryBuilder<'_, Postgres>| {
        q.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(owner) = &filter.owner {
        and(q);
        q.push("container_owner = ").push_bind(owner.clone());
    }
    if let Some(number) = &filter.number {
        and(q);
        q.push("container_number = ").push_bind(number.clone());
    }
    if let Some(prefix) = &filter.container {
        // The pattern operators match the `text_pattern_ops` index on the
        // full number; numbers hold only A-Z and 0-9, below '~'.
        and(q);
        q.push(format!("{NUMBER} ~>=~ "))
            .push_bind(prefix.clone())
            .push(format!(" AND {NUMBER} ~<~ "))
            .push_bind(format!("{prefix}~"));
    }
    if let Some(sub) = &filter.q {
        // The API lets only A-Z and 0-9 through, so the text has no LIKE
        // wildcards; the trigram index serves it.
        and(q);
        q.push(format!("{NUMBER} LIKE "))
            .push_bind(format!("%{sub}%"));
    }
    if let Some(from) = filter.from {
        and(q);
        q.push("captured_at >= ")
            .push_bind(rfc3339(from))
            .push("::timestamptz");
    }
    if let Some(to) = filter.to {
        and(q);
        q.push("captured_at <= ")
            .push_bind(rfc3339(to))
            .push("::timestamptz");
    }
    if let Some(camera) = &filter.camera {
        and(q);
        q.push("camera_id = ").push_bind(camera.clone());
    }
    if let Some(site) = &filter.site {
        and(q);
        q.push("site_id = ").push_bind(site.clone());
    }
    if let Some(direction) = filter.direction {
        and(q);
        q.push("direction = ").push_bind(direction.as_str());
    }
    if let Some(plate) = &filter.truck_plate {
        and(q);
        q.push("truck_plate = ").push_bind(plate.clone());
    }
    if let Some(ok) = filter.check_ok {
        and(q);
        q.push("check_digit_ok = ").push_bind(ok);
    }
    // Every central row is one a site synced; none is pending here.
    if filter.sync == Some(SyncFilter::Pending) {
        and(q);
        q.push("false");
    }
    if let Some(c) = filter.cursor {
        and(q);
        let (bound, op) = match filter.order {
            Order::Desc => ("<=", "<"),
            Order::Asc => (">=", ">"),
        };
        let at = DateTime::from_timestamp_micros(c.captured_at).unwrap_or_default();
        // The plain bound lets the time indexes seek to the page (and
        // prunes partitions); the row value settles ties on the id.
        q.push(format!("captured_at {bound} "))
            .push_bind(rfc3339(at))
            .push("::timestamptz AND ");
        q.push(format!("(captured_at, id) {op} ("))
            .push_bind(rfc3339(at))
            .push("::timestamptz, ")
            .push_bind(c.id.to_string())
            .push("::uuid)");
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn time(micros: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| StoreError::Corrupt(format!("time out of range: {micros} µs")))
}

fn text_time(micros: i64) -> Result<String, StoreError> {
    time(micros).map(rfc3339)
}

/// One central row as a passage. Its sync state is `synced`: the row is
/// what a site sent and the centre confirmed.
fn passage(row: &PgRow) -> Result<Passage, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("central row: bad {what}"));
    let id: String = row.try_get(0)?;
    let owner: String = row.try_get(3)?;
    let number: String = row.try_get(4)?;
    let check_digit: Option<i16> = row.try_get(5)?;
    let check_digit = check_digit
        .map(|d| u8::try_from(d).map_err(|_| corrupt("check_digit")))
        .transpose()?;
    let corrections: String = row.try_get(17)?;
    let direction: String = row.try_get(18)?;
    Ok(Passage {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
        site_id: row.try_get(1)?,
        container: format!(
            "{owner}{number}{}",
            check_digit.map(|d| d.to_string()).unwrap_or_default()
        ),
        container_owner: owner,
        container_number: number,
        check_digit,
        check_digit_ok: row.try_get(6)?,
        flags: Flags::from_bits_truncate(i64::from(row.try_get::<i16, _>(7)?)),
        captured_at: time(row.try_get(2)?)?,
        last_seen_at: time(row.try_get(13)?)?,
        seen_count: row.try_get(12)?,
        camera_id: row.try_get(10)?,
        source_video: row.try_get(8)?,
        cropped_image_ref: row.try_get(9)?,
        confidence: row.try_get(11)?,
        created_at: time(row.try_get(14)?)?,
        updated_at: time(row.try_get(15)?)?,
        version: row.try_get(16)?,
        sync_state: SyncState::Synced,
        corrections: serde_json::from_str::<Vec<Correction>>(&corrections)
            .map_err(|_| corrupt("corrections"))?,
        direction: Direction::parse(&direction).ok_or_else(|| corrupt("direction"))?,
        lane: row.try_get(19)?,
        truck_plate: row.try_get(20)?,
        iso_type: row.try_get(21)?,
        dwell_secs: row.try_get(22)?,
    })
}

/// One notification of the central trigger.
#[derive(Debug, serde::Deserialize)]
struct Notice {
    id: Uuid,
    captured_at: String,
    #[serde(default)]
    kind: String,
}

/// Notifications fetched together at most.
const FEED_BATCH: usize = 500;
/// Committed batches kept for a broadcaster that is momentarily slow.
const FEED_BUFFER: usize = 1024;

/// The live feed from the central database. Run it under the supervisor
/// with [`CentralFeed::run`]; subscribe the broadcaster to
/// [`CentralFeed::sender`].
pub struct CentralFeed {
    reader: CentralReader,
    events: broadcast::Sender<Arc<[Outcome]>>,
}

impl CentralFeed {
    pub fn new(reader: CentralReader) -> Self {
        let (events, _) = broadcast::channel(FEED_BUFFER);
        Self { reader, events }
    }

    /// Where the feed publishes, for the broadcaster.
    pub fn sender(&self) -> broadcast::Sender<Arc<[Outcome]>> {
        self.events.clone()
    }

    /// Listens until `shutdown`. `lost` is called whenever notifications
    /// may have been missed: when the listening connection dropped (sqlx
    /// reconnects it and listens again on the next receive) and at the
    /// start of every run after the first, so live clients refetch. A
    /// failure to fetch rows ends the run with an error, for the
    /// supervisor to restart.
    pub async fn run(
        &self,
        shutdown: CancellationToken,
        lost: impl Fn(&str),
    ) -> Result<(), StoreError> {
        let mut listener = PgListener::connect_with(self.reader.pool()).await?;
        listener.listen(CHANNEL).await?;
        tracing::info!(channel = CHANNEL, "listening for central changes");
        loop {
            let first = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                n = listener.try_recv() => n?,
            };
            let Some(first) = first else {
                tracing::warn!("the central feed's connection dropped; reconnecting");
                lost("the live feed from the central database was interrupted; refetch what you show");
                continue;
            };
            let mut notices = vec![first];
            while notices.len() < FEED_BATCH {
                match listener.next_buffered() {
                    Some(n) => notices.push(n),
                    None => break,
                }
            }
            let mut kinds = std::collections::HashMap::new();
            let mut keys = Vec::new();
            for n in &notices {
                match serde_json::from_str::<Notice>(n.payload()) {
                    Ok(notice) => {
                        // An insert and later updates in one batch: the
                        // passage is new to the dashboards.
                        let created = notice.kind == "insert";
                        let entry = kinds.entry(notice.id).or_insert(created);
                        *entry |= created;
                        keys.push((notice.id, notice.captured_at));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "ignoring a malformed central notification")
                    }
                }
            }
            let passages = self.reader.changed(&keys).await?;
            let outcomes: Vec<Outcome> = passages
                .into_iter()
                .map(|p| Outcome {
                    kind: if kinds.get(&p.id).copied().unwrap_or(false) {
                        OutcomeKind::Created
                    } else {
                        OutcomeKind::Joined
                    },
                    passage: p,
                    sighting_id: Uuid::nil(),
                    replay: Replay::Fresh,
                    correction: None,
                })
                .collect();
            if !outcomes.is_empty() {
                // No subscriber yet is not an error.
                let _ = self.events.send(outcomes.into());
            }
        }
    }
}

/// Creates this month's partition and the next `months_ahead`, on a
/// connection of its own that may write (the reader's may not). Returns
/// how many were created; 0 on a table that is not partitioned yet.
pub async fn maintain(url: &SecretString, months_ahead: u32) -> Result<i64, StoreError> {
    let mut conn = connect_options(url, true)?.connect().await?;
    let created: i32 = sqlx::query_scalar("SELECT public.container_logs_maintain($1)")
        .bind(i32::try_from(months_ahead).unwrap_or(i32::MAX))
        .fetch_one(&mut conn)
        .await?;
    let _ = conn.close().await;
    Ok(i64::from(created))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site(id: &str, last: i64) -> SiteStatus {
        SiteStatus {
            site_id: id.into(),
            last_change: DateTime::from_timestamp_micros(last).unwrap(),
            passages_last_hour: 0,
            lag_secs: 0.0,
            stale: false,
        }
    }

    #[test]
    fn slices_are_disjoint_newest_first_and_cover_the_range() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let day = chrono::Duration::days(1);
        let filter = LogFilter {
            q: Some("12".into()),
            ..Default::default()
        };
        let s = slices(&filter, now);
        assert_eq!(s.len(), SLICE_DAYS.len() + 1);
        assert_eq!((s[0].from, s[0].to), (Some(now - day * 7), None));
        for w in s.windows(2) {
            let gap = w[0].from.unwrap() - w[1].to.unwrap();
            assert_eq!(gap, chrono::Duration::microseconds(1));
        }
        assert_eq!(s.last().unwrap().from, None);
        // A cursor and a `to` start the slices at the earlier of the two;
        // a `from` ends them.
        let bounded = LogFilter {
            to: Some(now - day * 2),
            from: Some(now - day * 50),
            cursor: Some(Cursor {
                captured_at: (now - day * 3).timestamp_micros(),
                id: Uuid::nil(),
            }),
            ..filter
        };
        let s = slices(&bounded, now);
        assert_eq!(s.len(), 3);
        assert_eq!(s[0].from, Some(now - day * 10));
        assert_eq!(s[0].to, bounded.to);
        assert_eq!(s[1].from, Some(now - day * 38));
        assert_eq!(s[2].from, bounded.from);
        assert_eq!(
            s[2].to,
            Some(now - day * 38 - chrono::Duration::microseconds(1))
        );
    }

    #[test]
    fn a_site_is_stale_only_while_another_keeps_syncing() {
        let now = 10_000_000_000;
        let after = Duration::from_secs(60);
        let mut sites = vec![site("a", now - 1_000_000), site("b", now - 120_000_000)];
        mark_stale(&mut sites, now, after);
        assert_eq!((sites[0].stale, sites[1].stale), (false, true));
        // Everyone quiet: nobody is singled out.
        let mut sites = vec![site("a", now - 90_000_000), site("b", now - 120_000_000)];
        mark_stale(&mut sites, now, after);
        assert_eq!((sites[0].stale, sites[1].stale), (false, false));
    }
}
