//! Archiving, never silent deletion: a month partition of `container_logs`
//! leaves the central database only as a checked file.
//!
//! `archive` takes the month partitions before a given month, oldest first,
//! one at a time, each in its own transaction:
//! 1. it locks the partition against writes (reads go on; a site writing
//!    to that month waits, and a deadlock with one is resolved by
//!    PostgreSQL aborting one side, after which either retries safely);
//! 2. it writes every row, as the JSON of the row (`to_jsonb`), one a line,
//!    gzip-compressed, to `<partition>.<UTC stamp>.jsonl.gz`, and beside it
//!    `<same>.manifest.json` with the row count, the SHA-256 of the file
//!    and of its uncompressed lines, and the month's bounds; both are
//!    fsynced;
//! 3. it reads the file back: the file's digest, every line decompressed
//!    and parsed, each row's `captured_at` inside the month, the count
//!    equal to the partition's and the lines' digest equal to what was
//!    written;
//! 4. only then does it move both files to their final names and detach
//!    and drop the partition, and commit.
//!
//! A failure at any step rolls the transaction back: the partition stays,
//! whole. Names carry a stamp and are never reused, so an archive is never
//! overwritten; a run interrupted after step 4's renames leaves an extra
//! archive whose rows the partition still holds, which is harmless.
//!
//! `restore_archive` checks an archive the same way before it touches the
//! database, creates the month's partition if needed, and upserts the rows
//! as a site would (newer `version` wins), so loading an archive twice, or
//! two archives of one month in either order, leaves the newest state.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use flate2::Compression;
use futures_util::TryStreamExt;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::error::Redactor;
use crate::postgres::service::connect_options;
use crate::{PostgresConfig, SyncError};

/// The `format` of every manifest this module writes.
pub const FORMAT: &str = "gatelog-central-archive/1";

/// Rows per statement when an archive is loaded back.
const RESTORE_BATCH: usize = 1_000;

/// How often progress hears about rows.
const PROGRESS_EVERY: u64 = 1_000;

/// A calendar month, in UTC, as the commands take it (`YYYY-MM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    year: i32,
    /// 1 to 12.
    month: u32,
}

impl Month {
    /// The month holding `t`.
    pub fn of(t: DateTime<Utc>) -> Self {
        Self {
            year: t.year(),
            month: t.month(),
        }
    }

    /// Its first day.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).expect("a parsed month is valid")
    }

    /// Its first instant, in UTC.
    pub fn start(self) -> DateTime<Utc> {
        Utc.from_utc_datetime(&self.first_day().and_time(chrono::NaiveTime::MIN))
    }

    /// The month after it.
    pub fn next(self) -> Self {
        if self.month == 12 {
            Self {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Self {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// The name of its partition, as the central schema makes it.
    pub fn partition_name(self) -> String {
        format!("container_logs_y{:04}m{:02}", self.year, self.month)
    }

    /// The month of a partition name; None for any other table.
    fn from_partition_name(name: &str) -> Option<Self> {
        let rest = name.strip_prefix("container_logs_y")?;
        let (year, month) = rest.split_once('m')?;
        if year.len() != 4 || month.len() != 2 {
            return None;
        }
        format!("{year}-{month}").parse().ok()
    }
}

impl FromStr for Month {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not a month: expected YYYY-MM, such as 2025-07");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let (year, month) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if !(1..=12).contains(&month) {
            return Err(format!(
                "`{s}` is not a month: {month} is not between 01 and 12"
            ));
        }
        Ok(Self { year, month })
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// What an archive holds, written beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: String,
    pub table: String,
    pub partition: String,
    /// `YYYY-MM`.
    pub month: String,
    /// The month's bounds: `from <= captured_at < to`.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub rows: u64,
    /// The archive's file name, in the manifest's folder.
    pub file: String,
    /// SHA-256 of the compressed file, in hex.
    pub sha256: String,
    /// SHA-256 of the uncompressed JSON Lines, in hex.
    pub jsonl_sha256: String,
    pub archived_at: DateTime<Utc>,
}

/// One partition archived and dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub partition: String,
    pub rows: u64,
    pub file: PathBuf,
    pub manifest: PathBuf,
}

/// One archive loaded back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    pub partition: String,
    /// Rows in the archive; each is now central, in its newest state.
    pub rows: u64,
}

/// What a long run reports, for a progress display.
#[derive(Debug)]
pub enum ArchiveEvent<'a> {
    /// Work on a partition begins; it holds `rows` rows.
    Partition { name: &'a str, rows: u64 },
    /// This many more rows were written (or loaded).
    Rows(u64),
    /// A partition was archived, checked and dropped.
    Archived(&'a Archived),
}

/// Archives every month partition before `before` into `dir`, oldest
/// first; see the module documentation. Rows of those months waiting in
/// the default partition get their month's partition first, so they are
/// archived too. Refuses a `before` later than the current month, whose
/// partition still takes passages.
pub async fn archive(
    url: &SecretString,
    before: Month,
    dir: &Path,
    mut progress: impl FnMut(ArchiveEvent<'_>),
) -> Result<Vec<Archived>, SyncError> {
    let this_month = Month::of(Utc::now());
    if before > this_month {
        return Err(SyncError::Archive(format!(
            "--before {before} is later than the current month ({this_month}), \
             whose partition still takes passages; archive months before it only"
        )));
    }
    if dir.exists() && !dir.is_dir() {
        return Err(SyncError::Archive(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(|e| io_error("cannot create", dir, e))?;

    let (mut conn, redactor) = connect(url).await?;
    let fail = |e: sqlx::Error| SyncError::Archive(redactor.clean(&e.to_string()));
    require_partitioned(&mut conn, &redactor).await?;
    let waiting: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT to_char(date_trunc('month', captured_at AT TIME ZONE 'UTC'), 'YYYY-MM-DD')
         FROM public.container_logs_default WHERE captured_at < $1::timestamptz ORDER BY 1",
    )
    .bind(before.start().to_rfc3339())
    .fetch_all(&mut conn)
    .await
    .map_err(fail)?;
    for month in waiting {
        sqlx::query("SELECT public.container_logs_ensure_partition('container_logs', $1::date)")
            .bind(month)
            .execute(&mut conn)
            .await
            .map_err(fail)?;
    }
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'public.container_logs'::regclass ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(fail)?;
    let mut done = Vec::new();
    for month in names
        .iter()
        .filter_map(|n| Month::from_partition_name(n))
        .filter(|m| *m < before)
    {
        let archived = archive_month(&mut conn, month, dir, &redactor, &mut progress).await?;
        progress(ArchiveEvent::Archived(&archived));
        done.push(archived);
    }
    conn.close().await.map_err(fail)?;
    Ok(done)
}

async fn archive_month(
    conn: &mut PgConnection,
    month: Month,
    dir: &Path,
    redactor: &Redactor,
    progress: &mut impl FnMut(ArchiveEvent<'_>),
) -> Result<Archived, SyncError> {
    let fail = |e: sqlx::Error| SyncError::Archive(redactor.clean(&e.to_string()));
    // The name is made here from two numbers, so it is a plain identifier.
    let name = month.partition_name();
    let mut tx = conn.begin().await.map_err(fail)?;
    sqlx::raw_sql(&format!("LOCK TABLE public.{name} IN SHARE MODE"))
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM public.{name}"))
        .fetch_one(&mut *tx)
        .await
        .map_err(fail)?;
    let rows = rows.max(0) as u64;
    progress(ArchiveEvent::Partition { name: &name, rows });

    let base = format!("{name}.{}", Utc::now().format("%Y%m%dT%H%M%SZ"));
    let data = dir.join(format!("{base}.jsonl.gz"));
    let manifest_path = dir.join(format!("{base}.manifest.json"));
    let data_partial = dir.join(format!("{base}.jsonl.gz.partial"));
    let manifest_partial = dir.join(format!("{base}.manifest.json.partial"));
    for path in [&data, &manifest_path] {
        if path.exists() {
            return Err(SyncError::Archive(format!(
                "{} exists already; an archive is never overwritten",
                path.display()
            )));
        }
    }
    let written = async {
        let (count, sha256, jsonl_sha256) = {
            let file = File::create(&data_partial)
                .map_err(|e| io_error("cannot write", &data_partial, e))?;
            let mut out = GzEncoder::new(
                HashingWriter::new(BufWriter::new(file)),
                Compression::default(),
            );
            let mut jsonl = Sha256::new();
            let mut count = 0u64;
            let select =
                format!("SELECT to_jsonb(p)::text FROM public.{name} p ORDER BY captured_at, id");
            let mut lines = sqlx::query_scalar::<_, String>(&select).fetch(&mut *tx);
            while let Some(line) = lines.try_next().await.map_err(fail)? {
                let write_err = |e| io_error("cannot write", &data_partial, e);
                out.write_all(line.as_bytes()).map_err(write_err)?;
                out.write_all(b"\n").map_err(write_err)?;
                jsonl.update(line.as_bytes());
                jsonl.update(b"\n");
                count += 1;
                if count.is_multiple_of(PROGRESS_EVERY) {
                    progress(ArchiveEvent::Rows(PROGRESS_EVERY));
                }
            }
            progress(ArchiveEvent::Rows(count % PROGRESS_EVERY));
            let write_err = |e| io_error("cannot write", &data_partial, e);
            let hashing = out.finish().map_err(write_err)?;
            let (buffered, sha256) = hashing.finish();
            let file = buffered
                .into_inner()
                .map_err(|e| write_err(e.into_error()))?;
            file.sync_all().map_err(write_err)?;
            (count, hex(&sha256), hex(&jsonl.finalize()))
        };
        if count != rows {
            return Err(SyncError::Archive(format!(
                "{name}: wrote {count} rows, but the partition holds {rows}"
            )));
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            table: "container_logs".into(),
            partition: name.clone(),
            month: month.to_string(),
            from: month.start(),
            to: month.next().start(),
            rows,
            file: file_name(&data),
            sha256,
            jsonl_sha256,
            archived_at: Utc::now(),
        };
        let text = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
        write_synced(&manifest_partial, &text)?;
        // Read back what is on disk, not what was meant to be written.
        check_data(&data_partial, &manifest)?;
        fs::rename(&data_partial, &data).map_err(|e| io_error("cannot rename", &data, e))?;
        fs::rename(&manifest_partial, &manifest_path)
            .map_err(|e| io_error("cannot rename", &manifest_path, e))?;
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_error("cannot sync", dir, e))?;
        Ok::<_, SyncError>(())
    }
    .await;
    if let Err(e) = written {
        // The transaction rolls back when dropped: the partition stays.
        let _ = fs::remove_file(&data_partial);
        let _ = fs::remove_file(&manifest_partial);
        return Err(SyncError::Archive(format!(
            "{name} was not archived and is kept: {e}"
        )));
    }
    sqlx::raw_sql(&format!(
        "ALTER TABLE public.container_logs DETACH PARTITION public.{name}; DROP TABLE public.{name}"
    ))
    .execute(&mut *tx)
    .await
    .map_err(fail)?;
    // Dropping a partition fires no trigger: recount its month's hourly
    // statistics (now none) in the same transaction.
    sqlx::query("SELECT public.container_logs_hourly_rebuild($1::timestamptz, $2::timestamptz)")
        .bind(month.start().to_rfc3339())
        .bind(month.next().start().to_rfc3339())
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    tx.commit().await.map_err(fail)?;
    tracing::info!(partition = %name, rows, file = %data.display(), "partition archived and dropped");
    Ok(Archived {
        partition: name,
        rows,
        file: data,
        manifest: manifest_path,
    })
}

/// Checks an archive against the manifest beside it (`X.jsonl.gz` →
/// `X.manifest.json`): the file's SHA-256, every line decompressed and
/// parsed as a row of the manifest's month, the row count and the lines'
/// SHA-256. Returns the manifest.
pub fn verify_archive(file: &Path) -> Result<Manifest, SyncError> {
    let manifest_path = manifest_path(file)?;
    let text = fs::read(&manifest_path).map_err(|e| io_error("cannot read", &manifest_path, e))?;
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| {
        SyncError::Archive(format!(
            "{} is not a manifest: {e}",
            manifest_path.display()
        ))
    })?;
    if manifest.format != FORMAT {
        return Err(SyncError::Archive(format!(
            "{}: format `{}` is not {FORMAT}",
            manifest_path.display(),
            manifest.format
        )));
    }
    if manifest.file != file_name(file) {
        return Err(SyncError::Archive(format!(
            "{} describes {}, not {}",
            manifest_path.display(),
            manifest.file,
            file_name(file)
        )));
    }
    check_data(file, &manifest)?;
    Ok(manifest)
}

/// Checks an archive and loads it back into `container_logs`; see the
/// module documentation. Nothing is written when the check fails.
pub async fn restore_archive(
    url: &SecretString,
    file: &Path,
    mut progress: impl FnMut(ArchiveEvent<'_>),
) -> Result<Restored, SyncError> {
    let manifest = verify_archive(file)?;
    let month: Month = manifest
        .month
        .parse()
        .map_err(|e| SyncError::Archive(format!("{}: {e}", file.display())))?;
    let (mut conn, redactor) = connect(url).await?;
    let fail = |e: sqlx::Error| SyncError::Archive(redactor.clean(&e.to_string()));
    require_partitioned(&mut conn, &redactor).await?;
    sqlx::query("SELECT public.container_logs_ensure_partition('container_logs', $1::date)")
        .bind(month.first_day().to_string())
        .execute(&mut conn)
        .await
        .map_err(fail)?;
    // Every column the table has now, so the statement follows the schema.
    let columns: Vec<String> = sqlx::query_scalar(
        "SELECT attname::text FROM pg_attribute
         WHERE attrelid = 'public.container_logs'::regclass AND attnum > 0 AND NOT attisdropped
         ORDER BY attnum",
    )
    .fetch_all(&mut conn)
    .await
    .map_err(fail)?;
    let updates = columns
        .iter()
        .filter(|c| !matches!(c.as_str(), "id" | "captured_at"))
        .map(|c| {
            let c = format!("\"{}\"", c.replace('"', "\"\""));
            format!("{c} = excluded.{c}")
        })
        .collect::<Vec<_>>()
        .join(", ");
    let upsert = format!(
        "INSERT INTO public.container_logs
         SELECT * FROM jsonb_populate_recordset(NULL::public.container_logs, $1::jsonb)
         ON CONFLICT (id, captured_at) DO UPDATE SET {updates}
         WHERE container_logs.version < excluded.version"
    );
    progress(ArchiveEvent::Partition {
        name: &manifest.partition,
        rows: manifest.rows,
    });
    let source = File::open(file).map_err(|e| io_error("cannot read", file, e))?;
    let mut lines = BufReader::new(GzDecoder::new(BufReader::new(source))).lines();
    let mut batch: Vec<String> = Vec::with_capacity(RESTORE_BATCH);
    loop {
        let line = lines
            .next()
            .transpose()
            .map_err(|e| io_error("cannot read", file, e))?;
        if let Some(line) = line {
            batch.push(line);
            if batch.len() < RESTORE_BATCH {
                continue;
            }
        }
        if batch.is_empty() {
            break;
        }
        let rows = format!("[{}]", batch.join(","));
        sqlx::query(&upsert)
            .bind(rows)
            .persistent(false)
            .execute(&mut conn)
            .await
            .map_err(fail)?;
        progress(ArchiveEvent::Rows(batch.len() as u64));
        batch.clear();
    }
    conn.close().await.map_err(fail)?;
    Ok(Restored {
        partition: manifest.partition,
        rows: manifest.rows,
    })
}

async fn connect(url: &SecretString) -> Result<(PgConnection, Redactor), SyncError> {
    let config = PostgresConfig { url: url.clone() };
    config.validate()?;
    let redactor = crate::Target::Postgres(config.clone()).redactor();
    let conn = connect_options(&config)?
        .connect()
        .await
        .map_err(|e| SyncError::Archive(redactor.clean(&e.to_string())))?;
    Ok((conn, redactor))
}

async fn require_partitioned(
    conn: &mut PgConnection,
    redactor: &Redactor,
) -> Result<(), SyncError> {
    let kind: Option<String> = sqlx::query_scalar(
        "SELECT relkind::text FROM pg_class WHERE oid = to_regclass('public.container_logs')",
    )
    .fetch_optional(&mut *conn)
    .await
    .map_err(|e| SyncError::Archive(redactor.clean(&e.to_string())))?
    .flatten();
    if kind.as_deref() != Some("p") {
        return Err(SyncError::Archive(
            "container_logs is not partitioned; run `gatelog migrate --central` first".into(),
        ));
    }
    Ok(())
}

/// Reads `path` back and compares it with `manifest`.
fn check_data(path: &Path, manifest: &Manifest) -> Result<(), SyncError> {
    let bad = |what: String| SyncError::Archive(format!("{} {what}", path.display()));
    let mut file_sha = Sha256::new();
    let mut raw = File::open(path).map_err(|e| io_error("cannot read", path, e))?;
    io::copy(&mut raw, &mut file_sha).map_err(|e| io_error("cannot read", path, e))?;
    if hex(&file_sha.finalize()) != manifest.sha256 {
        return Err(bad("does not match its manifest's SHA-256".into()));
    }
    let file = File::open(path).map_err(|e| io_error("cannot read", path, e))?;
    let mut reader = BufReader::new(GzDecoder::new(BufReader::new(file)));
    let mut jsonl = Sha256::new();
    let mut count = 0u64;
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader
            .read_line(&mut line)
            .map_err(|e| bad(format!("cannot be decompressed: {e}")))?;
        if n == 0 {
            break;
        }
        count += 1;
        jsonl.update(line.as_bytes());
        let row: serde_json::Value = serde_json::from_str(line.trim_end_matches('\n'))
            .map_err(|e| bad(format!("line {count} is not JSON: {e}")))?;
        let captured_at = row
            .get("captured_at")
            .and_then(|v| v.as_str())
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|t| t.to_utc())
            .ok_or_else(|| bad(format!("line {count} has no captured_at")))?;
        if captured_at < manifest.from || captured_at >= manifest.to {
            return Err(bad(format!(
                "line {count}: captured_at {captured_at} is outside {}",
                manifest.month
            )));
        }
        if row.get("id").and_then(|v| v.as_str()).is_none() {
            return Err(bad(format!("line {count} has no id")));
        }
    }
    if count != manifest.rows {
        return Err(bad(format!(
            "holds {count} rows; its manifest says {}",
            manifest.rows
        )));
    }
    if hex(&jsonl.finalize()) != manifest.jsonl_sha256 {
        return Err(bad("decompresses to other lines than were archived".into()));
    }
    Ok(())
}

fn manifest_path(file: &Path) -> Result<PathBuf, SyncError> {
    let name = file_name(file);
    let stem = name.strip_suffix(".jsonl.gz").ok_or_else(|| {
        SyncError::Archive(format!(
            "{} is not an archive: its name does not end in .jsonl.gz",
            file.display()
        ))
    })?;
    Ok(file.with_file_name(format!("{stem}.manifest.json")))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), SyncError> {
    let mut file = File::create(path).map_err(|e| io_error("cannot write", path, e))?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(|e| io_error("cannot write", path, e))
}

fn io_error(what: &str, path: &Path, e: io::Error) -> SyncError {
    SyncError::Archive(format!("{what} {}: {e}", path.display()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes what passes through it.
struct HashingWriter<W> {
    inner: W,
    sha: Sha256,
}

impl<W: Write> HashingWriter<W> {
    fn new(inner: W) -> Self {
        Self {
            inner,
            sha: Sha256::new(),
        }
    }

    fn finish(self) -> (W, Vec<u8>) {
        (self.inner, self.sha.finalize().to_vec())
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_parse_strictly() {
        let m: Month = "2025-07".parse().unwrap();
        assert_eq!(m.to_string(), "2025-07");
        assert_eq!(m.partition_name(), "container_logs_y2025m07");
        assert_eq!(m.next().to_string(), "2025-08");
        assert_eq!(
            "2025-12".parse::<Month>().unwrap().next().to_string(),
            "2026-01"
        );
        assert_eq!(
            Month::from_partition_name("container_logs_y2025m07"),
            Some(m)
        );
        assert_eq!(Month::from_partition_name("container_logs_default"), None);
        for bad in [
            "2025-7",
            "2025-13",
            "2025-00",
            "25-07",
            "2025/07",
            "2025-07-01",
            "",
        ] {
            let e = bad.parse::<Month>().unwrap_err();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn a_damaged_archive_fails_its_check() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("container_logs_y2025m06.x.jsonl.gz");
        let line = r#"{"id":"0190a0a0-0000-7000-8000-000000000001","captured_at":"2025-06-30T23:59:00+00:00"}"#;
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        writeln!(gz, "{line}").unwrap();
        let bytes = gz.finish().unwrap();
        fs::write(&data, &bytes).unwrap();
        let month: Month = "2025-06".parse().unwrap();
        let manifest = Manifest {
            format: FORMAT.into(),
            table: "container_logs".into(),
            partition: month.partition_name(),
            month: month.to_string(),
            from: month.start(),
            to: month.next().start(),
            rows: 1,
            file: file_name(&data),
            sha256: hex(&Sha256::digest(&bytes)),
            jsonl_sha256: hex(&Sha256::digest(format!("{line}\n").as_bytes())),
            archived_at: Utc::now(),
        };
        fs::write(
            manifest_path(&data).unwrap(),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .unwrap();
        assert_eq!(verify_archive(&data).unwrap(), manifest);

        let mut flipped = bytes.clone();
        let middle = flipped.len() / 2;
        flipped[middle] ^= 1;
        fs::write(&data, &flipped).unwrap();
        let e = verify_archive(&data).unwrap_err().to_string();
        assert!(e.contains("SHA-256"), "{e}");
    }
}
