//! The read side, as one interface: what the API's read routes, the
//! export and the live feed's `initial_data` ask of a store of passages.
//!
//! A site answers from its SQLite file ([`Store`] implements
//! [`PassageReader`]); the head office answers from the central PostgreSQL
//! database (`gatelog_sync::central::serve::CentralReader`). The API holds
//! one `Arc<dyn PassageReader>` and so serves either with the same
//! handlers, and knows no SQL.
//!
//! The query and answer types ([`LogFilter`], [`Cursor`], [`Page`],
//! [`SightingPage`], [`Stats`], [`Bucket`]) live in this crate because the
//! local store defined them first; the central reader depends on this
//! crate anyway (sync reads the store to replicate it), and none of them
//! carries SQL.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use gatelog_core::Passage;
use uuid::Uuid;

use crate::{Bucket, Cursor, LogFilter, Page, SightingPage, Stats, Store, StoreError};

/// What a reader's calls return: a boxed future, so the trait can be held
/// as `dyn PassageReader`.
pub type ReadFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Whose passages a reader serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// One site's own store.
    Site,
    /// Every site, from the central database (read-only).
    Central,
}

/// One site as the head office sees it (`GET /api/v1/sites`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SiteStatus {
    pub site_id: String,
    /// The latest `updated_at` this site synced.
    pub last_change: DateTime<Utc>,
    /// Passages captured in the hour before the answer.
    pub passages_last_hour: i64,
    /// Seconds from `last_change` to the answer.
    pub lag_secs: f64,
    /// Nothing synced for longer than the configured time while another
    /// site kept syncing.
    pub stale: bool,
}

/// The read side of a store of passages. See the module docs.
pub trait PassageReader: Send + Sync + 'static {
    /// Whose passages these are.
    fn scope(&self) -> Scope;

    /// One keyset page of passages matching `filter`.
    fn search<'a>(&'a self, filter: &'a LogFilter) -> ReadFuture<'a, Page>;

    /// One passage, without its sightings.
    fn passage(&self, id: Uuid) -> ReadFuture<'_, Option<Passage>>;

    /// A keyset page of a passage's sightings, oldest first. The central
    /// database holds passages only, so there every page is empty.
    fn sightings(
        &self,
        id: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> ReadFuture<'_, SightingPage>;

    /// Counts per bucket; the central reader adds them per site.
    fn stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> ReadFuture<'_, Stats>;

    /// The `n` most recent passages, newest first.
    fn recent(&self, n: u32) -> ReadFuture<'_, Vec<Passage>> {
        Box::pin(async move {
            let filter = LogFilter {
                limit: n,
                ..LogFilter::default()
            };
            Ok(self.search(&filter).await?.logs)
        })
    }

    /// Every site and how its sync stands; `None` from a site's own store,
    /// which knows only itself.
    fn sites(&self) -> ReadFuture<'_, Option<Vec<SiteStatus>>> {
        Box::pin(async { Ok(None) })
    }
}

impl PassageReader for Store {
    fn scope(&self) -> Scope {
        Scope::Site
    }

    fn search<'a>(&'a self, filter: &'a LogFilter) -> ReadFuture<'a, Page> {
        Box::pin(Store::search(self, filter))
    }

    fn passage(&self, id: Uuid) -> ReadFuture<'_, Option<Passage>> {
        Box::pin(Store::passage(self, id))
    }

    fn sightings(
        &self,
        id: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> ReadFuture<'_, SightingPage> {
        Box::pin(Store::sightings(self, id, after, limit))
    }

    fn stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> ReadFuture<'_, Stats> {
        Box::pin(Store::stats(self, from, to, bucket))
    }

    fn recent(&self, n: u32) -> ReadFuture<'_, Vec<Passage>> {
        Box::pin(Store::recent(self, n))
    }
}

impl<R: PassageReader + ?Sized> PassageReader for Arc<R> {
    fn scope(&self) -> Scope {
        (**self).scope()
    }

    fn search<'a>(&'a self, filter: &'a LogFilter) -> ReadFuture<'a, Page> {
        (**self).search(filter)
    }

    fn passage(&self, id: Uuid) -> ReadFuture<'_, Option<Passage>> {
        (**self).passage(id)
    }

    fn sightings(
        &self,
        id: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> ReadFuture<'_, SightingPage> {
        (**self).sightings(id, after, limit)
    }

    fn stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> ReadFuture<'_, Stats> {
        (**self).stats(from, to, bucket)
    }

    fn recent(&self, n: u32) -> ReadFuture<'_, Vec<Passage>> {
        (**self).recent(n)
    }

    fn sites(&self) -> ReadFuture<'_, Option<Vec<SiteStatus>>> {
        (**self).sites()
    }
}
