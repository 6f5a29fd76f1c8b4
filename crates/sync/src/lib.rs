//! gatelog's sync: replicates passages from the local store to the central
//! database, idempotently, through outages.
//!
//! The local store is the system of record; sync only copies. A passage is
//! marked synced only after the target confirmed the version that was
//! sent, and every write to the target is an upsert keyed on the passage's
//! site-generated id and guarded by its `version`, so a retry, a duplicate
//! request or a late reply can neither duplicate a row nor bring back an
//! older state.
//!
//! # Using it
//! ```no_run
//! # async fn demo(store: gatelog_local_store::Store) -> Result<(), gatelog_sync::SyncError> {
//! use gatelog_sync::{PostgresConfig, SyncActor, SyncConfig, Target, TargetKind};
//! let target = Target::from_config(
//!     TargetKind::Postgres,
//!     None,
//!     Some(PostgresConfig::new("postgres://gatelog@db/central")),
//! )?;
//! let (actor, handle) = SyncActor::new(SyncConfig::default(), target, store, Default::default());
//! let shutdown = tokio_util::sync::CancellationToken::new();
//! tokio::spawn(async move { actor.run(shutdown).await });
//! let status = handle.status().borrow().clone();
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`config`]: [`SyncConfig`] (`sync.*`: target, batch size, backoff,
//!   timeouts), [`TargetKind`], and [`Target`], which pairs the kind with
//!   its checked settings.
//! - [`actor`]: [`SyncActor`], which owns the loop, and [`SyncHandle`],
//!   which reads its [`SyncStatus`] and asks for retries.
//! - [`supabase`]: the REST target (PostgREST protocol over reqwest),
//!   [`SupabaseConfig`].
//! - [`postgres`]: the direct target (sqlx, pooler-safe),
//!   [`PostgresConfig`].
//! - [`sink`]: [`Sink`], one connected target of either kind (or none).
//! - [`status`]: [`SyncStatus`], the snapshot the API and CLI show.
//! - [`migrate`]: [`migrate_central`], which applies `migrations/central`
//!   and upgrades an unpartitioned `container_logs` in place, in batches.
//! - [`central`]: upkeep of the central database itself: month partitions
//!   archived to checked files and loaded back.
//! - [`error`]: [`SyncError`] and its [`ErrorClass`]: transient (retry with
//!   backoff), misconfigured (retry with backoff, log as an error) or
//!   rejected (split the batch; dead-letter the offending rows).
//!
//! The local side of sync (the backlog query and the synced / dead-letter
//! bookkeeping) lives in `gatelog_local_store::sync_state`, because only
//! the store's writer may change the file.

pub mod actor;
pub mod central;
pub mod config;
pub mod error;
pub mod migrate;
pub mod postgres;
mod row;
pub mod sink;
pub mod status;
pub mod supabase;

pub use actor::{SyncActor, SyncHandle};
pub use config::{SyncConfig, Target, TargetKind};
pub use error::{ErrorClass, SyncError};
pub use migrate::{migrate_central, migrate_central_reporting, UpgradeProgress};
pub use postgres::PostgresConfig;
pub use sink::Sink;
pub use status::SyncStatus;
pub use supabase::SupabaseConfig;

use gatelog_local_store::Store;

/// Puts dead letters back in the backlog: all of them when `ids` is
/// `None`. A running actor picks them up at its next look (wake it with
/// [`SyncHandle::wake`], or use [`SyncHandle::retry_dead_letters`]).
/// Returns how many passages were put back.
pub async fn retry_dead_letters(
    store: &Store,
    ids: Option<Vec<uuid::Uuid>>,
) -> Result<u64, SyncError> {
    Ok(store.writer().retry_dead_letters(ids).await?)
}
