//! The store lock: one `gatelog serve` per store file, and no restore
//! under a running server.
//!
//! SQLite's own locks cannot tell whether a server has the file open: in
//! WAL mode an idle connection holds no lock that another process can
//! detect. So `serve` holds an advisory lock (`flock`, through `fs4`) on a
//! file beside the store (`gatelog.db.lock`) for as long as it runs, and
//! `restore` refuses to start while it cannot take that lock. The kernel
//! releases the lock when the process exits, however it exits, so a crash
//! leaves nothing stale.
//!
//! The lock file is named after the store's **canonical** path, with
//! symbolic links resolved, so two spellings of one store (a symlink to
//! the file or to its folder, `..`, a relative path) meet at the same
//! lock. [`StoreFiles`] names every file that belongs to a live store, for
//! commands that must never write over one of them.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use crate::StoreError;

/// Held for as long as the store is in exclusive use; dropping it releases
/// the lock.
#[derive(Debug)]
pub struct StoreLock {
    /// The open lock file; the lock lives as long as this descriptor.
    _file: File,
    path: PathBuf,
}

/// The lock file of the store at `store`, as spelled (see
/// [`StoreFiles::lock`] for the one the lock is taken on).
pub fn lock_path(store: &Path) -> PathBuf {
    sidecar(store, ".lock")
}

/// `gatelog.db` → `gatelog.db-wal` and the like.
pub(crate) fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `path` with every symbolic link resolved, whether or not the file
/// itself exists yet: the folder is resolved, and then the file if it is
/// there (it may itself be a link). The folder must exist.
pub fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Ok(p);
    }
    let name = path.file_name().ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        )
    })?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(std::fs::canonicalize(dir)?.join(name))
}

/// The files of one store, by canonical path: the database, its WAL, its
/// shared-memory index and its lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFiles {
    pub db: PathBuf,
    pub wal: PathBuf,
    pub shm: PathBuf,
    pub lock: PathBuf,
}

impl StoreFiles {
    /// Resolves the files of the store at `store` (whose folder must
    /// exist).
    pub fn of(store: &Path) -> Result<Self, StoreError> {
        let db = canonical(store).map_err(|e| StoreError::Io {
            path: store.display().to_string(),
            source: e,
        })?;
        Ok(Self {
            wal: sidecar(&db, "-wal"),
            shm: sidecar(&db, "-shm"),
            lock: sidecar(&db, ".lock"),
            db,
        })
    }

    /// The store file that writing (or renaming) to `file` would replace,
    /// with what it is: `file` is resolved through links first. On Unix a
    /// folder reached by another route (a bind mount) is recognised too,
    /// by its device and inode.
    pub fn clash(&self, file: &Path) -> Option<(&'static str, &Path)> {
        let resolved = canonical(file).ok()?;
        let entry = entry_id(&resolved);
        [
            ("the store", &self.db),
            ("the store's write-ahead log", &self.wal),
            ("the store's shared-memory index", &self.shm),
            ("the store's lock file", &self.lock),
        ]
        .into_iter()
        .find(|(_, p)| **p == resolved || (entry.is_some() && entry_id(p) == entry))
        .map(|(what, p)| (what, p.as_path()))
    }
}

/// A directory entry's identity: its folder's device and inode, and its
/// name.
#[cfg(unix)]
fn entry_id(path: &Path) -> Option<(u64, u64, std::ffi::OsString)> {
    use std::os::unix::fs::MetadataExt;
    let dir = std::fs::metadata(path.parent()?).ok()?;
    Some((dir.dev(), dir.ino(), path.file_name()?.to_owned()))
}

#[cfg(not(unix))]
fn entry_id(_path: &Path) -> Option<()> {
    None
}

impl StoreLock {
    /// Takes the lock without waiting. Fails with [`StoreError::Refused`]
    /// when another process holds it.
    pub fn try_acquire(store: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = store.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        let path = StoreFiles::of(store)?.lock;
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Io {
                path: path.display().to_string(),
                source: e,
            })?;
        // Called through the trait: `File` has an inherent `try_lock` of
        // the same name on newer toolchains than this crate's minimum.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(Self { _file: file, path }),
            Err(fs4::TryLockError::WouldBlock) => Err(StoreError::Refused(format!(
                "the store {} is in use by a running gatelog (it holds {}); stop it first",
                store.display(),
                path.display()
            ))),
            Err(fs4::TryLockError::Error(e)) => Err(StoreError::Io {
                path: path.display().to_string(),
                source: e,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("gatelog.db");
        let first = StoreLock::try_acquire(&store).unwrap();
        assert!(matches!(
            StoreLock::try_acquire(&store),
            Err(StoreError::Refused(_))
        ));
        drop(first);
        StoreLock::try_acquire(&store).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn every_spelling_of_one_store_meets_at_one_lock() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let store = real.join("gatelog.db");
        std::fs::write(&store, b"").unwrap();
        // A link to the file, and a link to its folder.
        let file_link = dir.path().join("link.db");
        std::os::unix::fs::symlink(&store, &file_link).unwrap();
        let dir_link = dir.path().join("alias");
        std::os::unix::fs::symlink(&real, &dir_link).unwrap();

        let first = StoreLock::try_acquire(&store).unwrap();
        for other in [
            file_link.clone(),
            dir_link.join("gatelog.db"),
            real.join("..").join("real").join("gatelog.db"),
        ] {
            assert!(
                matches!(StoreLock::try_acquire(&other), Err(StoreError::Refused(_))),
                "{} took a second lock",
                other.display()
            );
        }
        assert_eq!(
            first.path(),
            std::fs::canonicalize(&real)
                .unwrap()
                .join("gatelog.db.lock")
        );
    }
}
