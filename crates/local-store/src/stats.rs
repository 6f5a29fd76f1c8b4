//! Counts per time bucket, for `GET /api/v1/stats` and the dashboard chart.
//!
//! Buckets are aligned to UTC hours or days. Passages are counted by their
//! first capture time, over the `passages_by_time` index; reads (sightings)
//! by their capture time, over the covering `sightings_by_time` index, so
//! neither count reads a table row.

use chrono::{DateTime, Utc};

use crate::rows::{micros, time};
use crate::{Store, StoreError};

/// The width of one bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    /// The width in microseconds, the unit the store keeps time in.
    pub fn micros(self) -> i64 {
        match self {
            Bucket::Hour => 3_600_000_000,
            Bucket::Day => 86_400_000_000,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }
}

/// The counts of one bucket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BucketCounts {
    /// Where the bucket starts (inclusive); it ends where the next starts.
    pub start: DateTime<Utc>,
    /// Passages whose first sighting falls in the bucket.
    pub passages: i64,
    /// Reads accepted in the bucket, new and repeated.
    pub sightings: i64,
    /// Reads that joined an existing passage.
    pub duplicates: i64,
    /// Reads that carry a validation flag (check digit missing or wrong,
    /// unknown category letter).
    pub flagged: i64,
}

/// The counts over a range, one entry per bucket, empty buckets included.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    /// The start of the first bucket: `from` rounded down.
    pub from: DateTime<Utc>,
    /// The end of the last bucket: `to` rounded up.
    pub to: DateTime<Utc>,
    pub bucket: &'static str,
    pub buckets: Vec<BucketCounts>,
    /// The same buckets per site, from the head office's view; absent
    /// from a site's own answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sites: Option<Vec<SiteStats>>,
}

/// One site's buckets in the head office's stats.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SiteStats {
    pub site_id: String,
    pub buckets: Vec<BucketCounts>,
}

impl Store {
    /// Counts per `bucket` from `from` to `to`. The range is widened to
    /// whole buckets; the caller bounds how many buckets it may span.
    pub async fn stats(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> Result<Stats, StoreError> {
        let width = bucket.micros();
        let start = micros(from).div_euclid(width) * width;
        let end = {
            let t = micros(to);
            let e = t.div_euclid(width) * width;
            if e < t || e == start {
                e + width
            } else {
                e
            }
        };
        let n = usize::try_from((end - start) / width).unwrap_or(0);
        let mut buckets: Vec<BucketCounts> = (0..n)
            .map(|i| {
                Ok(BucketCounts {
                    start: time(start + i as i64 * width)?,
                    passages: 0,
                    sightings: 0,
                    duplicates: 0,
                    flagged: 0,
                })
            })
            .collect::<Result<_, StoreError>>()?;

        let passages: Vec<(i64, i64)> = sqlx::query_as(
            "SELECT (captured_at - ?1) / ?2 AS b, count(*) FROM passages \
             WHERE captured_at >= ?1 AND captured_at < ?3 GROUP BY b",
        )
        .bind(start)
        .bind(width)
        .bind(end)
        .fetch_all(self.pool())
        .await?;
        for (b, count) in passages {
            if let Some(slot) = usize::try_from(b).ok().and_then(|b| buckets.get_mut(b)) {
                slot.passages = count;
            }
        }

        let reads: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT (captured_at - ?1) / ?2 AS b, count(*), \
                    coalesce(sum(outcome = 'joined'), 0), coalesce(sum(flags != 0), 0) \
             FROM sightings WHERE captured_at >= ?1 AND captured_at < ?3 GROUP BY b",
        )
        .bind(start)
        .bind(width)
        .bind(end)
        .fetch_all(self.pool())
        .await?;
        for (b, count, joined, flagged) in reads {
            if let Some(slot) = usize::try_from(b).ok().and_then(|b| buckets.get_mut(b)) {
                slot.sightings = count;
                slot.duplicates = joined;
                slot.flagged = flagged;
            }
        }
        Ok(Stats {
            from: time(start)?,
            to: time(end)?,
            bucket: bucket.as_str(),
            buckets,
            sites: None,
        })
    }
}
