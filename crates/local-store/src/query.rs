//! Reads for the API: filtered keyset pages, single passages, and a
//! passage's sightings in keyset pages.
//!
//! Every filter value is bound as a parameter, never spliced into SQL. The
//! filters map onto the indexes in the local migrations: owner onto
//! `passages_by_owner`, time onto `passages_by_time`, camera onto
//! `passages_by_camera`, and the number filters (serial, prefix,
//! substring) onto the trigram index, as `Store::substring_plan`
//! decides. Pages are keyset pages on `(captured_at, id)`, so
//! page 1,000 costs what page 1 costs and no row is skipped or repeated
//! while new rows arrive.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use gatelog_core::{Passage, Sighting};
use sqlx::{QueryBuilder, Sqlite};
use uuid::Uuid;

use crate::rows::{micros, PassageRow, SightingRow, PASSAGE_COLUMNS, SIGHTING_COLUMNS};
use crate::{Store, StoreError};

/// Above this many matching passages, a search walks the time index
/// instead of sorting the trigram index's answer.
const TRIGRAM_MAX_MATCHES: i64 = 5_000;

/// How the number filters are narrowed; see [`Store::substring_plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Substring {
    /// Only rows whose number contains this text, through the trigram
    /// index; the exact filters still apply on top.
    Trigram(String),
    /// No narrowing: walk an ordinary index and test each row.
    Scan,
}

/// An FTS5 phrase for `s`. Filters hold only A-Z and 0-9 (the API checks),
/// but any double quote is doubled so the phrase can never be broken out of.
fn trigram_phrase(s: &str) -> String {
    let s = selective_part(s);
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// The part of a search text worth looking up in the trigram index. An
/// owner code's trigrams are in every passage of that owner, so merging
/// them costs far more than it narrows; the text from two characters
/// before its first digit is as selective. The exact filter is applied to
/// the rows found either way.
fn selective_part(s: &str) -> &str {
    match s.find(|c: char| c.is_ascii_digit()) {
        Some(i) if i > 2 => &s[i - 2..],
        _ => s,
    }
}

/// Newest first (the default) or oldest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Desc,
    Asc,
}

/// Which passages by sync state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncFilter {
    /// The latest version is not confirmed yet (dead letters included).
    Pending,
    Synced,
}

/// A position in a listing: the last row of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub captured_at: i64,
    pub id: Uuid,
}

impl Cursor {
    /// The opaque form clients pass back.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.captured_at, self.id))
    }

    /// Parses the opaque form; `None` when it is not one gatelog made.
    pub fn decode(s: &str) -> Option<Self> {
        if s.len() > 128 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(s).ok()?;
        let text = std::str::from_utf8(&bytes).ok()?;
        let (t, id) = text.split_once(':')?;
        Some(Self {
            captured_at: t.parse().ok()?,
            id: Uuid::parse_str(id).ok()?,
        })
    }
}

/// The filters of `GET /api/v1/logs`, already validated by the caller.
#[derive(Debug, Clone, Default)]
pub struct LogFilter {
    /// Owner code with category letter, upper case.
    pub owner: Option<String>,
    /// Six-digit serial.
    pub number: Option<String>,
    /// A prefix of the normalised number (or all of it).
    pub container: Option<String>,
    /// A substring of the normalised number.
    pub q: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub camera: Option<String>,
    pub site: Option<String>,
    /// `Some(true)`: check digit ok; `Some(false)`: flagged.
    pub check_ok: Option<bool>,
    pub sync: Option<SyncFilter>,
    /// Movements of this direction only.
    pub direction: Option<gatelog_core::Direction>,
    /// One truck's boxes: the plate as stored (upper case).
    pub truck_plate: Option<String>,
    pub limit: u32,
    pub cursor: Option<Cursor>,
    pub order: Order,
}

/// One page of passages.
#[derive(Debug, Clone)]
pub struct Page {
    pub logs: Vec<Passage>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl Store {
    /// One page of passages matching `filter`.
    pub async fn search(&self, filter: &LogFilter) -> Result<Page, StoreError> {
        let limit = filter.limit.clamp(1, 1000);
        let substring = self.substring_plan(filter).await?;
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {PASSAGE_COLUMNS} FROM passages"));
        push_filters(&mut q, filter, substring);
        let dir = match filter.order {
            Order::Desc => "DESC",
            Order::Asc => "ASC",
        };
        q.push(format!(" ORDER BY captured_at {dir}, id {dir} LIMIT "));
        q.push_bind(i64::from(limit) + 1);
        let rows: Vec<PassageRow> = q.build_query_as().fetch_all(self.pool()).await?;
        let mut logs = rows
            .into_iter()
            .map(Passage::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if logs.len() > limit as usize {
            logs.truncate(limit as usize);
            logs.last().map(|p| Cursor {
                captured_at: micros(p.captured_at),
                id: p.id,
            })
        } else {
            None
        };
        Ok(Page { logs, next_cursor })
    }

    /// Chooses how to narrow the number filters (`container` prefix,
    /// `number`, `q`). There are deliberately no b-tree indexes on the serial
    /// or the whole number: those land at random positions and would cost
    /// every ingest a page write each. The trigram index answers "which rows
    /// contain this text" instead, but sorting its answer costs time in
    /// proportion to the matches, while a walk down the time index costs
    /// time in inverse proportion to them. A capped count on the longest of
    /// the filters tells which is cheaper.
    pub(crate) async fn substring_plan(&self, filter: &LogFilter) -> Result<Substring, StoreError> {
        let probe = [&filter.container, &filter.number, &filter.q]
            .into_iter()
            .flatten()
            .filter(|s| s.len() >= 3)
            .max_by_key(|s| s.len());
        let Some(probe) = probe else {
            return Ok(Substring::Scan);
        };
        let matches: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT rowid FROM passages_trigram \
             WHERE passages_trigram MATCH ? LIMIT ?)",
        )
        .bind(trigram_phrase(probe))
        .bind(TRIGRAM_MAX_MATCHES + 1)
        .fetch_one(self.pool())
        .await?;
        Ok(if matches <= TRIGRAM_MAX_MATCHES {
            Substring::Trigram(probe.clone())
        } else {
            Substring::Scan
        })
    }

    /// The `n` most recent passages, newest first.
    pub async fn recent(&self, n: u32) -> Result<Vec<Passage>, StoreError> {
        let page = self
            .search(&LogFilter {
                limit: n,
                ..LogFilter::default()
            })
            .await?;
        Ok(page.logs)
    }

    /// How many passages the store holds.
    pub async fn count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar("SELECT count(*) FROM passages")
            .fetch_one(self.pool())
            .await?)
    }
}

/// Appends the WHERE clause for `filter`, binding every value.
pub(crate) fn push_filters(
    q: &mut QueryBuilder<'_, Sqlite>,
    filter: &LogFilter,
    substring: Substring,
) {
    let mut first = true;
    let mut and = |q: &mut QueryBuilder<'_, Sqlite>| {
        q.push(if first { " WHERE " } else { " AND " });
        first = false;
    };
    if let Some(owner) = &filter.owner {
        and(q);
        q.push("container_owner = ").push_bind(owner.clone());
    }
    if let Some(number) = &filter.number {
        and(q);
        q.push("container_number = ").push_bind(number.clone());
    }
    if let Substring::Trigram(probe) = &substring {
        // Few matches: fetch them through the trigram index and sort.
        and(q);
        q.push("rowid IN (SELECT rowid FROM passages_trigram WHERE passages_trigram MATCH ")
            .push_bind(trigram_phrase(probe))
            .push(")");
    }
    if let Some(prefix) = &filter.container {
        // A range, not LIKE: normalised numbers hold only A-Z and 0-9,
        // which all sort below '~'.
        and(q);
        q.push("container >= ").push_bind(prefix.clone());
        q.push(" AND container < ").push_bind(format!("{prefix}~"));
    }
    if let Some(sub) = &filter.q {
        and(q);
        q.push("instr(container, ")
            .push_bind(sub.clone())
            .push(") > 0");
    }
    if let Some(from) = filter.from {
        and(q);
        q.push("captured_at >= ").push_bind(micros(from));
    }
    if let Some(to) = filter.to {
        and(q);
        q.push("captured_at <= ").push_bind(micros(to));
    }
    if let Some(camera) = &filter.camera {
        and(q);
        q.push("camera_id = ").push_bind(camera.clone());
    }
    if let Some(site) = &filter.site {
        and(q);
        q.push("site_id = ").push_bind(site.clone());
    }
    if let Some(direction) = filter.direction {
        and(q);
        q.push("direction = ").push_bind(direction.as_str());
    }
    if let Some(plate) = &filter.truck_plate {
        and(q);
        q.push("truck_plate = ").push_bind(plate.clone());
    }
    if let Some(ok) = filter.check_ok {
        and(q);
        q.push("check_digit_ok = ").push_bind(i64::from(ok));
    }
    match filter.sync {
        Some(SyncFilter::Pending) => {
            and(q);
            q.push("version > synced_version");
        }
        Some(SyncFilter::Synced) => {
            and(q);
            q.push("version <= synced_version");
        }
        None => {}
    }
    if let Some(c) = filter.cursor {
        and(q);
        let op = match filter.order {
            Order::Desc => "<",
            Order::Asc => ">",
        };
        q.push(format!("(captured_at, id) {op} ("))
            .push_bind(c.captured_at)
            .push(", ")
            .push_bind(c.id.to_string())
            .push(")");
    }
}

/// One page of a passage's sightings, oldest first.
#[derive(Debug, Clone)]
pub struct SightingPage {
    pub sightings: Vec<Sighting>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl Store {
    /// The passage with this id, without its sightings, which can be
    /// many: a container parked in view of a camera is one passage of
    /// hundreds of thousands of reads. [`Store::sightings`] pages them.
    pub async fn passage(&self, id: Uuid) -> Result<Option<Passage>, StoreError> {
        let row: Option<PassageRow> = sqlx::query_as(&format!(
            "SELECT {PASSAGE_COLUMNS} FROM passages WHERE id = ?"
        ))
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?;
        row.map(Passage::try_from).transpose()
    }

    /// Up to `limit` (1 to 1,000) sightings of passage `id` in capture
    /// order, `(captured_at, id)`, starting after `after`: a keyset page,
    /// so no sighting is skipped or repeated while new ones arrive, and
    /// the last page costs what the first does.
    pub async fn sightings(
        &self,
        id: Uuid,
        after: Option<Cursor>,
        limit: u32,
    ) -> Result<SightingPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        let mut q = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {SIGHTING_COLUMNS} FROM sightings WHERE passage_id = "
        ));
        q.push_bind(id.to_string());
        if let Some(c) = after {
            // The plain bound on captured_at lets `sightings_by_passage`
            // (passage_id, captured_at) seek to the page; the row value
            // settles ties on the id.
            q.push(" AND captured_at >= ")
                .push_bind(c.captured_at)
                .push(" AND (captured_at, id) > (")
                .push_bind(c.captured_at)
                .push(", ")
                .push_bind(c.id.to_string())
                .push(")");
        }
        q.push(" ORDER BY captured_at, id LIMIT ")
            .push_bind(i64::from(limit) + 1);
        let rows: Vec<SightingRow> = q.build_query_as().fetch_all(self.pool()).await?;
        let mut sightings = rows
            .into_iter()
            .map(Sighting::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = if sightings.len() > limit as usize {
            sightings.truncate(limit as usize);
            sightings.last().map(|s| Cursor {
                captured_at: micros(s.captured_at),
                id: s.id,
            })
        } else {
            None
        };
        Ok(SightingPage {
            sightings,
            next_cursor,
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn owner_letters_before_the_digits_are_left_out_of_trigram_lookups() {
        assert_eq!(selective_part("MSCU12"), "CU12");
        assert_eq!(selective_part("MSCU1234566"), "CU1234566");
        assert_eq!(selective_part("SCU1"), "CU1");
        assert_eq!(selective_part("CU12"), "CU12");
        assert_eq!(selective_part("MSCU"), "MSCU");
        assert_eq!(selective_part("123456"), "123456");
        assert_eq!(trigram_phrase("MSCU12"), "\"CU12\"");
    }

    use super::*;

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor {
            captured_at: 1_714_552_200_000_000,
            id: Uuid::now_v7(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        for bad in ["", "abc", "' OR 1=1 --", &"A".repeat(500)] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
