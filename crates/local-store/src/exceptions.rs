//! The exceptions queue: what waits for an operator.
//!
//! Two kinds of item are open: reads kept unresolved (`unresolved_reads`
//! without `resolved_at`) and passages whose number no read has verified
//! (`check_digit_ok = 0`). Both are listed in one keyset page on
//! `(captured_at, id)`, as `/api/v1/logs` pages passages: each kind is
//! fetched a page deep through its own partial index (`unresolved_open`,
//! `passages_unverified_by_time`) and the two are merged, so page 1,000
//! costs what page 1 costs. Ids are UUIDs made on site, so a cursor from
//! either kind places the next page exactly.
//!
//! Writes to the queue (resolving a read, correcting a passage) go
//! through the writer, like every write; see [`crate::writer`].

use chrono::{DateTime, Utc};
use gatelog_core::{Passage, QueuedRead};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use crate::rows::{micros, PassageRow, UnresolvedRow, PASSAGE_COLUMNS, UNRESOLVED_COLUMNS};
use crate::{Cursor, Order, Store, StoreError};

/// Which kind of open item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExceptionKind {
    /// A read that could not be made into a number.
    UnresolvedRead,
    /// A passage whose number no read has verified.
    UnverifiedPassage,
}

impl ExceptionKind {
    /// The stable name, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ExceptionKind::UnresolvedRead => "unresolved_read",
            ExceptionKind::UnverifiedPassage => "unverified_passage",
        }
    }
}

/// The filters of `GET /api/v1/exceptions`, already validated by the
/// caller.
#[derive(Debug, Clone, Default)]
pub struct ExceptionFilter {
    /// Only this kind; both when `None`.
    pub kind: Option<ExceptionKind>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub camera: Option<String>,
    pub site: Option<String>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
    pub order: Order,
}

/// One open item.
#[derive(Debug, Clone)]
pub enum Exception {
    UnresolvedRead(QueuedRead),
    UnverifiedPassage(Passage),
}

impl Exception {
    pub fn kind(&self) -> ExceptionKind {
        match self {
            Exception::UnresolvedRead(_) => ExceptionKind::UnresolvedRead,
            Exception::UnverifiedPassage(_) => ExceptionKind::UnverifiedPassage,
        }
    }

    /// The item's place in the listing.
    fn position(&self) -> Cursor {
        let (captured_at, id) = match self {
            Exception::UnresolvedRead(r) => (r.captured_at, r.id),
            Exception::UnverifiedPassage(p) => (p.captured_at, p.id),
        };
        Cursor {
            captured_at: micros(captured_at),
            id,
        }
    }
}

/// One page of open items.
#[derive(Debug, Clone)]
pub struct ExceptionPage {
    pub items: Vec<Exception>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

/// How many items are open, whatever the filters: the dashboard's badge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OpenCounts {
    pub unresolved_reads: i64,
    pub unverified_passages: i64,
    pub total: i64,
}

impl Store {
    /// One page of open items matching `filter`.
    pub async fn exceptions(&self, filter: &ExceptionFilter) -> Result<ExceptionPage, StoreError> {
        let limit = filter.limit.clamp(1, 1000);
        let mut items = Vec::new();
        if filter.kind != Some(ExceptionKind::UnverifiedPassage) {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {UNRESOLVED_COLUMNS} FROM unresolved_reads WHERE resolved_at IS NULL"
            ));
            push_filters(&mut q, filter, limit);
            let rows: Vec<UnresolvedRow> = q.build_query_as().fetch_all(self.pool()).await?;
            for row in rows {
                items.push(Exception::UnresolvedRead(QueuedRead::try_from(row)?));
            }
        }
        if filter.kind != Some(ExceptionKind::UnresolvedRead) {
            let mut q = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {PASSAGE_COLUMNS} FROM passages WHERE check_digit_ok = 0"
            ));
            push_filters(&mut q, filter, limit);
            let rows: Vec<PassageRow> = q.build_query_as().fetch_all(self.pool()).await?;
            for row in rows {
                items.push(Exception::UnverifiedPassage(Passage::try_from(row)?));
            }
        }
        items.sort_by_key(|e| {
            let c = e.position();
            (c.captured_at, c.id)
        });
        if filter.order == Order::Desc {
            items.reverse();
        }
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(Exception::position)
        } else {
            None
        };
        Ok(ExceptionPage { items, next_cursor })
    }

    /// How many items are open.
    pub async fn open_exceptions(&self) -> Result<OpenCounts, StoreError> {
        let unresolved_reads: i64 =
            sqlx::query_scalar("SELECT count(*) FROM unresolved_reads WHERE resolved_at IS NULL")
                .fetch_one(self.pool())
                .await?;
        let unverified_passages: i64 =
            sqlx::query_scalar("SELECT count(*) FROM passages WHERE check_digit_ok = 0")
                .fetch_one(self.pool())
                .await?;
        Ok(OpenCounts {
            unresolved_reads,
            unverified_passages,
            total: unresolved_reads + unverified_passages,
        })
    }

    /// The queued read with this id, open or resolved.
    pub async fn queued_read(&self, id: Uuid) -> Result<Option<QueuedRead>, StoreError> {
        let row: Option<UnresolvedRow> = sqlx::query_as(&format!(
            "SELECT {UNRESOLVED_COLUMNS} FROM unresolved_reads WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.map(QueuedRead::try_from).transpose()
    }
}

/// Appends the filters shared by both kinds (each table has
/// `captured_at`, `id`, `camera_id` and `site_id`) after a WHERE clause,
/// then the order and a limit one past the page.
fn push_filters(q: &mut QueryBuilder<'_, Sqlite>, filter: &ExceptionFilter, limit: u32) {
    if let Some(from) = filter.from {
        q.push(" AND captured_at >= ").push_bind(micros(from));
    }
    if let Some(to) = filter.to {
        q.push(" AND captured_at <= ").push_bind(micros(to));
    }
    if let Some(camera) = &filter.camera {
        q.push(" AND camera_id = ").push_bind(camera.clone());
    }
    if let Some(site) = &filter.site {
        q.push(" AND site_id = ").push_bind(site.clone());
    }
    let (op, dir) = match filter.order {
        Order::Desc => ("<", "DESC"),
        Order::Asc => (">", "ASC"),
    };
    if let Some(c) = filter.cursor {
        q.push(format!(" AND (captured_at, id) {op} ("))
            .push_bind(c.captured_at)
            .push(", ")
            .push_bind(c.id.to_string())
            .push(")");
    }
    q.push(format!(" ORDER BY captured_at {dir}, id {dir} LIMIT "))
        .push_bind(i64::from(limit) + 1);
}
