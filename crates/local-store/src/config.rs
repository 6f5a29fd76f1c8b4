//! Settings of the local store.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StoreConfig {
    /// The SQLite file. Its folder is created when missing.
    pub path: PathBuf,
    /// How long a write waits for a lock held by another process (a backup,
    /// say) before the request fails with 503.
    pub busy_timeout_ms: u64,
    /// Read-only connections for the API.
    pub read_connections: u32,
    /// The most reads one group commit carries.
    pub max_batch_reads: usize,
    /// How often the checkpointer moves the WAL into the database file.
    pub checkpoint_interval_ms: u64,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("data/gatelog.db"),
            busy_timeout_ms: 5_000,
            read_connections: 4,
            max_batch_reads: 4_096,
            checkpoint_interval_ms: 1_000,
        }
    }
}
