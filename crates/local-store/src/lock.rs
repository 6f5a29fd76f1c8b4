//! The store lock: one `gatelog serve` per store file, and no restore
//! under a running server.
//!
//! SQLite's own locks cannot tell whether a server has the file open: in
//! WAL mode an idle connection holds no lock that another process can
//! detect. So `serve` holds an advisory `flock` on a file beside the store
//! (`gatelog.db.lock`) for as long as it runs, and `restore` refuses to
//! start while it cannot take that lock. The kernel releases the lock when
//! the process exits, however it exits, so a crash leaves nothing stale.

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

/// The lock file of the store at `store`.
pub fn lock_path(store: &Path) -> PathBuf {
    let mut name = store.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl StoreLock {
    /// Takes the lock without waiting. Fails with [`StoreError::Refused`]
    /// when another process holds it.
    pub fn try_acquire(store: &Path) -> Result<Self, StoreError> {
        let path = lock_path(store);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.display().to_string(),
                source: e,
            })?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| StoreError::Io {
                path: path.display().to_string(),
                source: e,
            })?;
        if !try_lock(&file) {
            return Err(StoreError::Refused(format!(
                "the store {} is in use by a running gatelog (it holds {}); stop it first",
                store.display(),
                path.display()
            )));
        }
        Ok(Self { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(unix)]
fn try_lock(file: &File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock only reads the descriptor, which `file` keeps open for
    // the duration of the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> bool {
    // Elsewhere the lock is advisory only in name: operators must stop the
    // server before a restore.
    true
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
}
