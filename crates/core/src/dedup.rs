//! The dedup rule: a sliding window over `captured_at`.
//!
//! A read joins an existing passage of the same key (site, owner code and
//! serial) when its `captured_at` lies within the window of that passage's
//! span, that is between `first_seen - window` and `last_seen + window`,
//! both ends included. Joining widens the span, so the window slides: a
//! truck that stands in view for twenty minutes stays one passage.
//!
//! Time is what the camera says (`captured_at`), never arrival time, so a
//! late or out-of-order read lands in the passage whose span it falls in.
//! When more than one passage covers a read (possible once late reads
//! arrive), the read joins the nearest one, and among equally near ones
//! the latest. Passages are never merged: each already has an id that may
//! have been replicated, and ids are the idempotency key everywhere.
//!
//! [`DedupIndex`] applies the rule to a set of known spans. The local store
//! loads the candidate spans of a batch into one and lets it decide, so the
//! rule lives here, once, and is tested here against a reference model.

use std::collections::HashMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// Settings of the dedup rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupConfig {
    /// The window in seconds; the seed's "same container within 5 minutes".
    pub window_secs: u64,
    /// How close in time (seconds) a near miss without a check digit must
    /// be to a passage to fold into it; see [`crate::fold`].
    pub near_miss_gap_secs: u64,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            window_secs: 300,
            near_miss_gap_secs: 5,
        }
    }
}

impl DedupConfig {
    /// The window in microseconds, the unit timestamps are kept in.
    pub fn window_micros(&self) -> i64 {
        micros(self.window_secs)
    }

    /// The settings of the fold rule.
    pub fn fold(&self) -> crate::fold::FoldConfig {
        crate::fold::FoldConfig {
            window: self.window_micros(),
            near_miss_gap: micros(self.near_miss_gap_secs),
        }
    }
}

fn micros(secs: u64) -> i64 {
    i64::try_from(secs)
        .unwrap_or(i64::MAX / 1_000_000)
        .saturating_mul(1_000_000)
}

/// The time span a passage covers: its earliest and latest sighting, in
/// microseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassageSpan {
    pub first_seen: i64,
    pub last_seen: i64,
}

impl PassageSpan {
    /// The span of a single read.
    pub fn at(t: i64) -> Self {
        Self {
            first_seen: t,
            last_seen: t,
        }
    }

    /// Whether a read at `t` falls within `window` of this span.
    pub fn covers(&self, t: i64, window: i64) -> bool {
        t >= self.first_seen.saturating_sub(window) && t <= self.last_seen.saturating_add(window)
    }

    /// How far `t` lies outside the span; zero inside it.
    pub fn distance(&self, t: i64) -> i64 {
        if t < self.first_seen {
            self.first_seen - t
        } else if t > self.last_seen {
            t - self.last_seen
        } else {
            0
        }
    }

    /// Widens the span to include `t`.
    pub fn absorb(&mut self, t: i64) {
        self.first_seen = self.first_seen.min(t);
        self.last_seen = self.last_seen.max(t);
    }
}

/// What a read did to the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation<P> {
    /// The read opened a new passage.
    Created(P),
    /// The read joined this existing passage, whose span it widened.
    Joined(P),
}

/// The dedup rule applied to a set of passage spans, grouped by key.
///
/// `K` is the dedup key (site, owner code, serial) and `P` whatever handle
/// the caller uses for a passage (an id, or an index into a batch).
#[derive(Debug, Clone)]
pub struct DedupIndex<K, P> {
    window: i64,
    by_key: HashMap<K, Vec<(P, PassageSpan)>>,
}

impl<K: Eq + Hash, P: Clone> DedupIndex<K, P> {
    pub fn new(config: &DedupConfig) -> Self {
        Self {
            window: config.window_micros(),
            by_key: HashMap::new(),
        }
    }

    /// Adds a passage that already exists (in the store, say).
    pub fn insert(&mut self, key: K, passage: P, span: PassageSpan) {
        self.by_key.entry(key).or_default().push((passage, span));
    }

    /// The passage a read of `key` at `t` would join, if any.
    pub fn decide(&self, key: &K, t: i64) -> Option<&P> {
        self.position(key, t).map(|i| &self.by_key[key][i].0)
    }

    fn position(&self, key: &K, t: i64) -> Option<usize> {
        let entries = self.by_key.get(key)?;
        entries
            .iter()
            .enumerate()
            .filter(|(_, (_, span))| span.covers(t, self.window))
            // Nearest first; among equals the latest span, then the one
            // added last, so the choice never depends on hash order.
            .min_by_key(|(i, (_, span))| {
                (
                    span.distance(t),
                    std::cmp::Reverse(span.last_seen),
                    std::cmp::Reverse(*i),
                )
            })
            .map(|(i, _)| i)
    }

    /// Applies a read: it joins the passage [`decide`](Self::decide) picks,
    /// widening its span, or opens a new passage made by `new_passage`.
    pub fn observe(&mut self, key: K, t: i64, new_passage: impl FnOnce() -> P) -> Observation<P> {
        match self.position(&key, t) {
            Some(i) => {
                let entry = &mut self.by_key.get_mut(&key).expect("position found the key")[i];
                entry.1.absorb(t);
                Observation::Joined(entry.0.clone())
            }
            None => {
                let p = new_passage();
                self.insert(key, p.clone(), PassageSpan::at(t));
                Observation::Created(p)
            }
        }
    }

    /// The current span of a passage, if the index holds it.
    pub fn span(&self, key: &K, passage: &P) -> Option<PassageSpan>
    where
        P: PartialEq,
    {
        self.by_key
            .get(key)?
            .iter()
            .find(|(p, _)| p == passage)
            .map(|(_, s)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const W: i64 = 300_000_000;

    fn index() -> DedupIndex<u8, usize> {
        DedupIndex::new(&DedupConfig::default())
    }

    #[test]
    fn window_slides_with_each_read() {
        let mut ix = index();
        let mut next = 0;
        let mut new = || {
            next += 1;
            next
        };
        assert_eq!(ix.observe(1, 0, &mut new), Observation::Created(1));
        // Every read is 200 s after the last: twenty minutes, one passage.
        for k in 1..=6 {
            assert_eq!(
                ix.observe(1, k * 200_000_000, &mut new),
                Observation::Joined(1)
            );
        }
        // A gap of more than the window opens a new passage.
        assert_eq!(
            ix.observe(1, 6 * 200_000_000 + W + 1, &mut new),
            Observation::Created(2)
        );
    }

    #[test]
    fn window_edge_is_inclusive() {
        let mut ix = index();
        ix.insert(1, 7, PassageSpan::at(1_000 * 1_000_000));
        assert_eq!(ix.decide(&1, 1_000 * 1_000_000 + W), Some(&7));
        assert_eq!(ix.decide(&1, 1_000 * 1_000_000 - W), Some(&7));
        assert_eq!(ix.decide(&1, 1_000 * 1_000_000 + W + 1), None);
    }

    #[test]
    fn late_read_joins_the_passage_it_falls_in() {
        let mut ix = index();
        ix.insert(
            1,
            10,
            PassageSpan {
                first_seen: 0,
                last_seen: 60_000_000,
            },
        );
        ix.insert(
            1,
            11,
            PassageSpan {
                first_seen: 3_600_000_000,
                last_seen: 3_660_000_000,
            },
        );
        // Arrives after the second passage, but was captured during the first.
        assert_eq!(ix.decide(&1, 30_000_000), Some(&10));
        assert_eq!(ix.decide(&1, 3_500_000_000), Some(&11));
    }

    #[test]
    fn keys_are_independent() {
        let mut ix = index();
        ix.insert(1, 10, PassageSpan::at(0));
        assert_eq!(ix.decide(&2, 0), None);
    }

    /// The reference model: a flat list of passages, scanned in full.
    #[derive(Default)]
    struct Model {
        passages: Vec<(u8, i64, i64, Vec<i64>)>,
    }

    impl Model {
        fn apply(&mut self, key: u8, t: i64) -> usize {
            let best = self
                .passages
                .iter()
                .enumerate()
                .filter(|(_, (k, first, last, _))| *k == key && t >= first - W && t <= last + W)
                .min_by_key(|(i, (_, first, last, _))| {
                    let d = if t < *first {
                        first - t
                    } else if t > *last {
                        t - last
                    } else {
                        0
                    };
                    (d, std::cmp::Reverse(*last), std::cmp::Reverse(*i))
                })
                .map(|(i, _)| i);
            match best {
                Some(i) => {
                    let p = &mut self.passages[i];
                    p.1 = p.1.min(t);
                    p.2 = p.2.max(t);
                    p.3.push(t);
                    i
                }
                None => {
                    self.passages.push((key, t, t, vec![t]));
                    self.passages.len() - 1
                }
            }
        }
    }

    fn reads() -> impl Strategy<Value = Vec<(u8, i64)>> {
        // Few keys and a time range of about an hour, in steps of up to ten
        // minutes, so windows overlap, gaps occur and reads arrive out of
        // order.
        prop::collection::vec((0u8..3, 0i64..3_600), 1..120)
            .prop_map(|v| v.into_iter().map(|(k, s)| (k, s * 1_000_000)).collect())
    }

    proptest! {
        #[test]
        fn index_matches_reference_model(reads in reads()) {
            let mut ix: DedupIndex<u8, usize> = index();
            let mut model = Model::default();
            let mut created = 0usize;
            for &(key, t) in &reads {
                let expected = model.apply(key, t);
                let got = match ix.observe(key, t, || { created += 1; created - 1 }) {
                    Observation::Created(p) | Observation::Joined(p) => p,
                };
                prop_assert_eq!(got, expected);
            }
            // Invariants that do not depend on the model's code.
            let total: usize = model.passages.iter().map(|p| p.3.len()).sum();
            prop_assert_eq!(total, reads.len());
            for (i, (key, first, last, ts)) in model.passages.iter().enumerate() {
                prop_assert_eq!(*first, *ts.iter().min().unwrap());
                prop_assert_eq!(*last, *ts.iter().max().unwrap());
                prop_assert_eq!(ix.span(key, &i), Some(PassageSpan { first_seen: *first, last_seen: *last }));
            }
        }

        #[test]
        fn in_order_reads_split_exactly_at_gaps_over_the_window(mut ts in prop::collection::vec(0i64..10_000, 1..80)) {
            ts.sort_unstable();
            let ts: Vec<i64> = ts.into_iter().map(|s| s * 1_000_000).collect();
            let mut ix: DedupIndex<u8, usize> = index();
            let mut created = 0usize;
            for &t in &ts {
                ix.observe(0, t, || { created += 1; created });
            }
            let gaps = ts.windows(2).filter(|w| w[1] - w[0] > W).count();
            prop_assert_eq!(created, gaps + 1);
        }

        #[test]
        fn no_read_opens_a_passage_while_one_covers_it(reads in reads()) {
            let mut ix: DedupIndex<u8, usize> = index();
            let mut spans: Vec<(u8, PassageSpan)> = Vec::new();
            for &(key, t) in &reads {
                let covered = spans.iter().any(|(k, s)| *k == key && s.covers(t, W));
                let n = spans.len();
                match ix.observe(key, t, || n) {
                    Observation::Created(_) => {
                        prop_assert!(!covered);
                        spans.push((key, PassageSpan::at(t)));
                    }
                    Observation::Joined(p) => {
                        prop_assert!(covered);
                        spans[p].1.absorb(t);
                    }
                }
            }
        }
    }
}
