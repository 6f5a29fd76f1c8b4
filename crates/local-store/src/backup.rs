//! Online backup and checked, atomic restore of the store file.
//!
//! **Backup** runs `VACUUM INTO` on a connection of its own. In WAL mode
//! that is a read transaction, so it sees one consistent snapshot (every
//! commit before it began, nothing after) and never blocks the writer.
//! The copy is written beside the target under a temporary name, fsynced,
//! checked, and only then renamed into place, so `FILE` is either a whole
//! backup or absent. A `FILE` that resolves (through links, `..` or a
//! bind mount) to one of the store's own files is refused before anything
//! is written: renamed over the live database or its WAL, the copy would
//! corrupt the store under the running server.
//!
//! **Restore** never touches the current store until the candidate has
//! passed `PRAGMA integrity_check`, its applied migrations match this
//! binary's [`MIGRATOR`](crate::MIGRATOR), and it holds every table,
//! column, index and trigger those migrations create. It refuses while a server holds
//! the [store lock](crate::lock). The replacement is a rename of a fsynced
//! copy, and the previous store is kept beside it (a hard link, so it costs
//! no copy) as `<store>.pre-restore-<time>` with its WAL.

use std::path::{Path, PathBuf};

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::lock::{sidecar, StoreFiles, StoreLock};
use crate::{StoreConfig, StoreError};

/// The first 16 bytes of every SQLite database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// What a checked database file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub passages: i64,
    pub sightings: i64,
    /// Migrations applied in the file (all of them known to this binary).
    pub migrations: usize,
    pub bytes: u64,
}

/// The temporary name a backup to `dest` is written under.
pub fn partial_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    dest.with_file_name(format!(".{name}.partial-{}", std::process::id()))
}

/// The size of the store, main file and WAL, as a guide to backup progress.
pub fn store_bytes(config: &StoreConfig) -> u64 {
    let main = std::fs::metadata(&config.path)
        .map(|m| m.len())
        .unwrap_or(0);
    let wal = std::fs::metadata(sidecar(&config.path, "-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    main + wal
}

/// Writes a consistent copy of the store to `dest`, while a server may be
/// writing. Refuses to overwrite `dest` unless `overwrite` is set.
pub async fn backup(
    config: &StoreConfig,
    dest: &Path,
    overwrite: bool,
) -> Result<Verified, StoreError> {
    if !config.path.is_file() {
        return Err(StoreError::Refused(format!(
            "there is no store at {}",
            config.path.display()
        )));
    }
    refuse_store_file(config, dest, "write the backup to")?;
    if dest.exists() && !overwrite {
        return Err(StoreError::Refused(format!(
            "{} exists; choose another name or pass --force to replace it",
            dest.display()
        )));
    }
    let partial = partial_path(dest);
    let _ = std::fs::remove_file(&partial);
    let target = partial
        .to_str()
        .ok_or_else(|| StoreError::Refused(format!("{} is not a UTF-8 path", partial.display())))?;

    let mut conn = crate::write_options(config)
        .create_if_missing(false)
        .connect()
        .await
        .map_err(StoreError::from_sqlx)?;
    let result = sqlx::query("VACUUM INTO ?")
        .bind(target)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(StoreError::from_sqlx(e));
    }

    let checked = async {
        fail::fail_point!("backup-before-verify", |_| Err(StoreError::Io {
            path: partial.display().to_string(),
            source: std::io::Error::other("fail point backup-before-verify"),
        }));
        sync_file(&partial)?;
        verify(&partial).await
    }
    .await;
    match checked {
        Ok(v) => {
            std::fs::rename(&partial, dest).map_err(|e| io(dest, e))?;
            sync_dir(dest)?;
            Ok(v)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

/// Refuses `file` when it is, or resolves to, one of the store's own files
/// (the database, its WAL, its shared-memory index, its lock file).
/// Renaming a copy over any of them under a running server corrupts the
/// store, and restoring the store from itself would drop what its WAL
/// holds.
fn refuse_store_file(config: &StoreConfig, file: &Path, verb: &str) -> Result<(), StoreError> {
    let files = StoreFiles::of(&config.path)?;
    match files.clash(file) {
        Some((what, path)) => Err(StoreError::Refused(format!(
            "cannot {verb} {}: it is {what} ({}); choose a file outside the store's own files",
            file.display(),
            path.display()
        ))),
        None => Ok(()),
    }
}

/// Checks that `file` is a sound gatelog store this binary can serve:
/// a SQLite file, `integrity_check` clean, and migrations that are a
/// prefix of this binary's, with matching checksums. Opens it read-only
/// and changes nothing.
pub async fn verify(file: &Path) -> Result<Verified, StoreError> {
    let refused = |why: String| StoreError::Refused(format!("{} {why}", file.display()));
    let mut head = [0u8; 16];
    {
        use std::io::Read;
        let mut f = std::fs::File::open(file).map_err(|e| io(file, e))?;
        if f.read_exact(&mut head).is_err() || &head != SQLITE_MAGIC {
            return Err(refused("is not a SQLite database".into()));
        }
    }
    let bytes = std::fs::metadata(file).map_err(|e| io(file, e))?.len();
    // Immutable: no locks, no WAL or journal read or created; the file is
    // taken exactly as it is on disk.
    let mut conn: SqliteConnection = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .immutable(true)
        .connect()
        .await
        .map_err(|_| refused("cannot be opened as a SQLite database".into()))?;
    let result = check(&mut conn).await.map_err(refused);
    let _ = conn.close().await;
    result.map(|(passages, sightings, migrations)| Verified {
        passages,
        sightings,
        migrations,
        bytes,
    })
}

async fn check(conn: &mut SqliteConnection) -> Result<(i64, i64, usize), String> {
    let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut *conn)
        .await
        .map_err(|_| "is damaged: the integrity check could not run".to_string())?;
    if report != ["ok"] {
        let first: Vec<&str> = report.iter().take(3).map(String::as_str).collect();
        return Err(format!("failed the integrity check: {}", first.join("; ")));
    }
    let applied: Vec<(i64, Vec<u8>, bool)> =
        sqlx::query_as("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
            .fetch_all(&mut *conn)
            .await
            .map_err(|_| "is not a gatelog store: it has no migration history".to_string())?;
    let known: Vec<_> = crate::MIGRATOR
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    if applied.is_empty() {
        return Err("is not a gatelog store: no migration was applied".into());
    }
    for (i, (version, checksum, success)) in applied.iter().enumerate() {
        let Some(m) = known.get(i) else {
            return Err(format!(
                "has schema version {version}, newer than this gatelog knows; restore it with a newer gatelog"
            ));
        };
        if m.version != *version || m.checksum.as_ref() != checksum.as_slice() {
            return Err(format!(
                "has a schema this gatelog does not know (migration {version} differs)"
            ));
        }
        if !success {
            return Err(format!("has a half-applied migration {version}"));
        }
    }
    let missing = missing_schema(conn, applied.len()).await?;
    if !missing.is_empty() {
        const SHOWN: usize = 10;
        let mut list = missing
            .iter()
            .take(SHOWN)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if missing.len() > SHOWN {
            list.push_str(&format!(" and {} more", missing.len() - SHOWN));
        }
        return Err(format!(
            "lacks part of the schema its migrations create: {list}; \
             it cannot be served as it is"
        ));
    }
    let passages: i64 = sqlx::query_scalar("SELECT count(*) FROM passages")
        .fetch_one(&mut *conn)
        .await
        .map_err(|_| "is not a gatelog store: it has no passages table".to_string())?;
    let sightings: i64 = sqlx::query_scalar("SELECT count(*) FROM sightings")
        .fetch_one(&mut *conn)
        .await
        .map_err(|_| "is not a gatelog store: it has no sightings table".to_string())?;
    Ok((passages, sightings, applied.len()))
}

/// A table and its columns, an index, a trigger or a view, as
/// `sqlite_schema` lists it.
#[derive(Debug, sqlx::FromRow)]
struct SchemaObject {
    #[sqlx(rename = "type")]
    kind: String,
    name: String,
}

/// What the first `applied` migrations of this binary create and `conn`
/// lacks: each missing table, column, index, trigger or view, named.
///
/// The migration history says what should be there, but a file can be
/// changed after the fact (a table dropped by hand, a half-copied file
/// that still passes the integrity check), and a store without, say, the
/// `readiness` table serves but is never ready. So the migrations are
/// replayed into an empty in-memory database, and every object and column
/// they create must be in the candidate too. Extra objects are allowed.
async fn missing_schema(
    conn: &mut SqliteConnection,
    applied: usize,
) -> Result<Vec<String>, String> {
    let unreadable = |_| "is damaged: its schema cannot be read".to_string();
    let mut reference: SqliteConnection = SqliteConnectOptions::new()
        .in_memory(true)
        .connect()
        .await
        .map_err(|e| format!("cannot be checked: an in-memory database failed to open ({e})"))?;
    let result = async {
        for m in crate::MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .take(applied)
        {
            sqlx::raw_sql(&m.sql)
                .execute(&mut reference)
                .await
                .map_err(|e| {
                    format!(
                        "cannot be checked: migration {} failed to replay ({e})",
                        m.version
                    )
                })?;
        }
        let expected = schema_objects(&mut reference).await.map_err(unreadable)?;
        let present = schema_objects(conn).await.map_err(unreadable)?;
        let mut missing = Vec::new();
        for object in &expected {
            if !present
                .iter()
                .any(|p| p.kind == object.kind && p.name == object.name)
            {
                missing.push(format!("{} {}", object.kind, object.name));
                continue;
            }
            if object.kind != "table" {
                continue;
            }
            let want = table_columns(&mut reference, &object.name)
                .await
                .map_err(unreadable)?;
            let have = table_columns(conn, &object.name)
                .await
                .map_err(unreadable)?;
            for column in want.iter().filter(|c| !have.contains(c)) {
                missing.push(format!("column {}.{column}", object.name));
            }
        }
        Ok(missing)
    }
    .await;
    let _ = reference.close().await;
    result
}

async fn schema_objects(conn: &mut SqliteConnection) -> Result<Vec<SchemaObject>, sqlx::Error> {
    sqlx::query_as(
        "SELECT type, name FROM sqlite_schema \
         WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations' \
         ORDER BY rowid",
    )
    .fetch_all(conn)
    .await
}

async fn table_columns(
    conn: &mut SqliteConnection,
    table: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
        .bind(table)
        .fetch_all(conn)
        .await
}

/// What a restore did.
#[derive(Debug, Clone)]
pub struct Restored {
    pub verified: Verified,
    /// Where the replaced store was kept, if there was one.
    pub previous: Option<PathBuf>,
}

/// Replaces the store with `file` after checking it. Refuses, changing
/// nothing, when a server holds the store or the file is not sound.
pub async fn restore(config: &StoreConfig, file: &Path) -> Result<Restored, StoreError> {
    let store = &config.path;
    let _lock = StoreLock::try_acquire(store)?;
    refuse_store_file(config, file, "restore from")?;
    // Check the source first for a fast, clear refusal…
    verify(file).await?;

    // …then copy it beside the store and check the copy, which is what
    // will be installed.
    let dir = store
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = store
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "gatelog.db".into());
    let tmp = dir.join(format!(".{name}.restore-{}", std::process::id()));
    let copied = async {
        std::fs::copy(file, &tmp).map_err(|e| io(&tmp, e))?;
        sync_file(&tmp)?;
        verify(&tmp).await
    }
    .await;
    let verified = match copied {
        Ok(v) => v,
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };

    let previous = if store.exists() {
        // Fold the WAL into the main file, so the kept copy is whole in
        // one file. A store too damaged to open keeps its WAL beside it.
        if let Ok(mut conn) = crate::write_options(config)
            .create_if_missing(false)
            .connect()
            .await
        {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
        }
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let kept = dir.join(format!("{name}.pre-restore-{stamp}"));
        if std::fs::hard_link(store, &kept).is_err() {
            std::fs::copy(store, &kept).map_err(|e| io(&kept, e))?;
            sync_file(&kept)?;
        }
        let wal = sidecar(store, "-wal");
        if wal.exists() {
            std::fs::rename(&wal, sidecar(&kept, "-wal")).map_err(|e| io(&wal, e))?;
        }
        Some(kept)
    } else {
        None
    };
    // A shared-memory index describes the old WAL; it must not outlive it.
    let shm = sidecar(store, "-shm");
    if shm.exists() {
        std::fs::remove_file(&shm).map_err(|e| io(&shm, e))?;
    }
    std::fs::rename(&tmp, store).map_err(|e| io(store, e))?;
    sync_dir(store)?;
    Ok(Restored { verified, previous })
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn sync_file(path: &Path) -> Result<(), StoreError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io(path, e))
}

/// Makes a rename in the folder of `path` durable.
fn sync_dir(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::File::open(dir)
            .and_then(|f| f.sync_all())
            .map_err(|e| io(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
