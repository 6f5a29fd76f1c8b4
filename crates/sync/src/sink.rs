//! One connected target, whichever it is.

use gatelog_core::Passage;

use crate::postgres::service::PostgresService;
use crate::supabase::service::SupabaseService;
use crate::{SyncConfig, SyncError, Target};

/// A target ready to take batches. The actor holds one; tests and the
/// benchmark use it to write to a target directly.
pub struct Sink {
    inner: Inner,
}

enum Inner {
    None,
    Supabase(SupabaseService),
    Postgres(Box<PostgresService>),
}

impl Sink {
    /// Builds the client for `target`. Nothing is contacted yet: the first
    /// batch connects, so a target that is down at start only delays sync.
    pub fn new(target: &Target, config: &SyncConfig) -> Result<Self, SyncError> {
        let inner = match target {
            Target::None => Inner::None,
            Target::Supabase(c) => Inner::Supabase(SupabaseService::new(c, config)?),
            Target::Postgres(c) => Inner::Postgres(Box::new(PostgresService::new(c, config)?)),
        };
        Ok(Self { inner })
    }

    /// Whether this sink sends anything (false for `none`).
    pub fn is_active(&self) -> bool {
        !matches!(self.inner, Inner::None)
    }

    /// Writes `rows` to the target idempotently. Returns Ok only when the
    /// target confirmed all of them; an older version than the one stored
    /// centrally is ignored by the target.
    pub async fn send(&self, rows: &[Passage]) -> Result<(), SyncError> {
        if rows.is_empty() {
            return Ok(());
        }
        match &self.inner {
            Inner::None => Ok(()),
            Inner::Supabase(s) => s.send(rows).await,
            Inner::Postgres(s) => s.send(rows).await,
        }
    }

    /// Releases connections.
    pub async fn close(&self) {
        if let Inner::Postgres(s) = &self.inner {
            s.close().await;
        }
    }
}
