//! What sync reports: the snapshot behind `GET /api/v1/sync/status`,
//! `gatelog sync status` and the WebSocket `sync_status` event.

use chrono::{DateTime, Utc};
use gatelog_local_store::sync_state::Backlog;
use gatelog_local_store::Store;
use serde::Serialize;

use crate::{SyncError, TargetKind};

/// A snapshot of sync. Every string in it has had secrets removed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SyncStatus {
    /// `none`, `supabase` or `postgres`.
    pub target: &'static str,
    /// Passages whose latest version the target has not confirmed, dead
    /// letters excluded. Always 0 with no target: nothing waits for one.
    pub pending: i64,
    /// Whole seconds since the oldest of those changed; 0 when none is
    /// pending.
    pub oldest_pending_age_secs: i64,
    /// When the target last confirmed a batch (kept across restarts of the
    /// actor, not of the process).
    pub last_success_at: Option<DateTime<Utc>>,
    /// The latest failure, redacted; cleared by the next confirmed batch.
    pub last_error: Option<String>,
    /// When `last_error` first happened; a retry that fails the same way
    /// keeps this time, so the status changes only when something does.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Passages the target refused for good; list them with
    /// [`Store::dead_letters`], retry them with [`crate::retry_dead_letters`].
    pub dead_letters: i64,
}

impl SyncStatus {
    pub(crate) fn new(target: TargetKind) -> Self {
        Self {
            target: target.as_str(),
            pending: 0,
            oldest_pending_age_secs: 0,
            last_success_at: None,
            last_error: None,
            last_error_at: None,
            dead_letters: 0,
        }
    }

    /// Reads the backlog straight from the store, for `gatelog sync
    /// status` run beside (or without) a serving process. Only the actor
    /// knows `last_success_at` and `last_error`, so they are empty here.
    /// With no target nothing is pending, so nothing is counted.
    pub async fn from_store(store: &Store, target: TargetKind) -> Result<Self, SyncError> {
        let mut s = Self::new(target);
        if target != TargetKind::None {
            s.apply_backlog(&store.sync_backlog().await?, Utc::now());
        }
        Ok(s)
    }

    pub(crate) fn apply_backlog(&mut self, b: &Backlog, now: DateTime<Utc>) {
        self.pending = b.pending;
        self.dead_letters = b.dead_letters;
        self.oldest_pending_age_secs = lag_seconds(b, now) as i64;
    }
}

/// The age of the oldest pending change, in seconds.
pub(crate) fn lag_seconds(b: &Backlog, now: DateTime<Utc>) -> f64 {
    b.oldest_pending_at
        .map(|t| ((now - t).num_milliseconds().max(0) as f64) / 1000.0)
        .unwrap_or(0.0)
}
