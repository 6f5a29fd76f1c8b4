//! The fold rule: which passage each read joins, and what number a passage
//! holds.
//!
//! [`fold`] is one pure function. The store loads the candidate passages a
//! batch of reads could join, calls it, and writes what it returns in one
//! transaction; `gatelog eval` runs the same function through the same
//! store. Nothing here knows where passages are kept.
//!
//! # Joining
//! A read joins a passage of the same site whose span it falls within (the
//! sliding window of [`crate::dedup`]) when either
//! - **exact**: the owner code and serial are the passage's (a missing or
//!   wrong check digit does not matter); the nearest such passage wins; or
//! - **near miss**: the owner code and serial are one character away from
//!   the passage's, and the check digits say a misread explains it:
//!   - one check digit shared by both sides, and one side fails it: a
//!     single misread character broke it. Two real containers one digit
//!     apart differ in their check digits too, so they never fold this way;
//!   - one side has no check digit, and the other side's fails its own
//!     number but fits this one's: it vouches for it;
//!   - weaker evidence needs the same camera (or an unknown one) and a read
//!     within [`FoldConfig::near_miss_gap`] of the passage's span (a truck
//!     in view is read every second or two; the next truck comes later):
//!     both sides pass one check digit and differ by letters 11 apart in
//!     value (such as `E`/`O` or `A`/`K`/`U`, where the check digit is
//!     blind), or one side passes and the other has no check digit. (A
//!     remainder of 10 written as 0 also lets two numbers share a check
//!     digit, but one real number in eleven has it, so it is no sign of a
//!     misread.);
//!   - two misread characters fold only when the read fails the check
//!     digit the passage passes, and it comes close, from the same camera;
//!   - a number whose check digit had to fill in an unreadable character
//!     counts as not verified;
//!   - two numbers that no check digit vouches for never fold.
//!   
//!   Among several near misses, the same camera wins, then the nearest.
//! - Reads from an `in` camera and from an `out` camera never fold into
//!   one passage, even inside the window: a truck turned away at the gate
//!   is two movements. A camera without a direction folds with either.
//! - Otherwise the read opens a passage.
//!
//! # Consensus
//! Each passage keeps [`Votes`]: the weight its reads gave each number
//! (owner code and serial). A read weighs by its check digit (valid 3,
//! missing 1, wrong 0.5; a number the check digit had to complete 1) times its
//! OCR confidence. The passage's number is the heaviest; a tie keeps the
//! current one. When the consensus moves, the passage changes number,
//! records a [`Correction`], and its version is bumped (every join bumps
//! it), so sync sends the corrected row. Passages are never merged: their
//! ids may already be replicated.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::container::CheckStatus;
use crate::dedup::PassageSpan;
use crate::passage::{Correction, CorrectionRule, Direction, Flags, Passage, SyncState};
use crate::read::Read;

/// Who made an automatic correction.
pub const AUTOMATIC: &str = "gatelog";

/// How much more than the heaviest number an operator's number weighs. A
/// read weighs at most 3, so a passage would need over 300 billion reads
/// to outweigh a correction by hand.
pub const OPERATOR_WEIGHT: f64 = 1e12;

/// Settings of the fold rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoldConfig {
    /// The dedup window, in microseconds.
    pub window: i64,
    /// How close in time (microseconds) a near miss without a check digit
    /// must be to the passage's span.
    pub near_miss_gap: i64,
}

/// The weight each number got from a passage's reads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Votes(BTreeMap<String, Vote>);

/// The votes for one number (owner code and serial).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Vote {
    pub weight: f64,
    /// Some read of this number passed its check digit.
    pub valid: bool,
    /// The last check digit a read of this number carried.
    pub digit: Option<u8>,
}

impl Votes {
    /// The votes of a passage made before votes were kept: its number, once.
    pub fn seed(p: &Passage) -> Self {
        let mut v = Self::default();
        v.0.insert(
            core(&p.container),
            Vote {
                weight: 1.0,
                valid: p.check_digit_ok,
                digit: p.check_digit,
            },
        );
        v
    }

    fn add(&mut self, read: &Read) {
        let n = &read.container;
        let status = n.check_status();
        let base = match (status, &read.correction) {
            (CheckStatus::Valid, Some(c)) if c.rule == CorrectionRule::CheckDigit => 1.0,
            (CheckStatus::Valid, _) => 3.0,
            (CheckStatus::Missing, _) => 1.0,
            (CheckStatus::Mismatch, _) => 0.5,
        };
        let confidence = read.confidence.unwrap_or(0.8).clamp(0.05, 1.0);
        let v = self.0.entry(core(&n.normalized())).or_default();
        v.weight += base * confidence;
        v.valid |= status == CheckStatus::Valid;
        if let Some(d) = n.check_digit() {
            v.digit = Some(d.value());
        }
    }

    /// Makes `number` the passage's consensus for good, as a correction by
    /// hand does: it weighs [`OPERATOR_WEIGHT`] more than the heaviest
    /// number, so no run of later reads moves the consensus off it, and a
    /// later correction by hand pins its own number above this one.
    pub fn pin(&mut self, number: &crate::ContainerNumber) {
        let heaviest = self.0.values().map(|v| v.weight).fold(0.0, f64::max);
        let v = self.0.entry(core(&number.normalized())).or_default();
        v.weight = heaviest + OPERATOR_WEIGHT;
        v.valid |= number.check_status() == CheckStatus::Valid;
        if let Some(d) = number.check_digit() {
            v.digit = Some(d.value());
        }
    }

    /// The heaviest number; `current` wins a tie.
    fn best(&self, current: &str) -> Option<(&String, &Vote)> {
        self.0.iter().max_by(|a, b| {
            a.1.weight
                .total_cmp(&b.1.weight)
                .then_with(|| (a.0 == current).cmp(&(b.0 == current)))
        })
    }
}

/// A passage the rule may join or change, with its votes.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub passage: Passage,
    pub votes: Votes,
}

/// Whether a read opened its passage or joined one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Joined {
    Created,
    /// Same owner code and serial.
    Exact,
    /// One substitution away; see the module doc.
    NearMiss,
}

/// What the rule decided for one read. Each decision is one sighting to
/// store, attached to `passage_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub passage_id: Uuid,
    pub joined: Joined,
    /// The passage as it stood right after this read.
    pub passage: Passage,
    /// The change of number this read caused, if it caused one.
    pub correction: Option<Correction>,
}

/// Everything a batch changes: the passages to insert or update (with
/// their votes; corrections are in each passage's history) and one
/// decision per read, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct FoldPlan {
    pub passages: Vec<Candidate>,
    pub decisions: Vec<Decision>,
}

/// The owner code and serial of a normalised number.
fn core(number: &str) -> String {
    number.get(..10).unwrap_or(number).to_string()
}

fn hamming(a: &str, b: &str) -> Option<usize> {
    (a.len() == b.len()).then(|| a.bytes().zip(b.bytes()).filter(|(x, y)| x != y).count())
}

fn span(p: &Passage) -> PassageSpan {
    PassageSpan {
        first_seen: p.captured_at.timestamp_micros(),
        last_seen: p.last_seen_at.timestamp_micros(),
    }
}

/// The check digit that owner code and serial (`core`) compute.
fn computed(core: &str) -> Option<u8> {
    crate::ContainerNumber::parse(core)
        .ok()
        .map(|n| n.computed_check_digit().value())
}

/// Whether a read's check digit vouches for its number. A number the check
/// digit had to complete (one unreadable character) has spent it.
fn verified(read: &Read) -> bool {
    read.container.check_status() == CheckStatus::Valid
        && read
            .correction
            .as_ref()
            .is_none_or(|c| c.rule != CorrectionRule::CheckDigit)
}

/// Whether two numbers one character apart differ by two letters whose
/// ISO 6346 values are 11 apart, which the check digit cannot tell apart.
fn letters_eleven_apart(a: &str, b: &str) -> bool {
    a.bytes().zip(b.bytes()).any(|(x, y)| {
        x != y
            && x.is_ascii_uppercase()
            && y.is_ascii_uppercase()
            && crate::container::letter_value(x)
                .abs_diff(crate::container::letter_value(y))
                .is_multiple_of(11)
    })
}

/// Whether `read` at `t` is a near miss of passage `p` (see the module doc).
fn near_miss(read: &Read, p: &Passage, t: i64, config: &FoldConfig) -> bool {
    let number = read.container.normalized();
    let (r_core, p_core) = (core(&number), core(&p.container));
    let r_digit = read.container.check_digit().map(|d| d.value());
    let r_pass = verified(read);
    let p_pass = p.check_digit_ok;
    let same_camera = match (&read.camera_id, &p.camera_id) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    let close = || same_camera && span(p).distance(t) <= config.near_miss_gap;
    match hamming(&r_core, &p_core) {
        Some(1) => {}
        // Two misread characters: the read fails the check digit the
        // passage passes, and it comes from the truck in view. A near twin
        // carries its own check digit, so it does not match this way.
        Some(2) => {
            return r_digit.is_some() && r_digit == p.check_digit && !r_pass && p_pass && close()
        }
        _ => return false,
    }
    match (r_digit, p.check_digit) {
        // Different check digits as well as one character: two numbers.
        (Some(a), Some(b)) if a != b => false,
        // One check digit, and one side fails it: a misread character.
        (Some(_), Some(_)) if !r_pass || !p_pass => true,
        // Both pass one check digit. Where the difference is two letters
        // 11 apart in value (`E`/`O`, `A`/`K`/`U`), the check digit cannot
        // see a misread. A remainder of 10 read as 0 also makes two numbers
        // share a check digit, but one in eleven real numbers has it: that
        // says nothing, and they stay apart.
        (Some(_), Some(_)) => letters_eleven_apart(&r_core, &p_core) && close(),
        // The read's check digit fails its own number but fits the
        // passage's: it vouches for the passage.
        (Some(a), None) if !r_pass && computed(&p_core) == Some(a) => true,
        (Some(_), None) => r_pass && close(),
        // And the other way round.
        (None, Some(b)) if !p_pass && computed(&r_core) == Some(b) => true,
        (None, Some(_)) => p_pass && close(),
        // No check digit vouches for either: as likely two trucks.
        (None, None) => false,
    }
}

/// Decides a batch of reads, in order, against `candidates` (the passages
/// of this site the store found near the reads). `new_id` makes the id of
/// each passage opened.
pub fn fold(
    reads: &[&Read],
    candidates: Vec<Candidate>,
    site_id: &str,
    now: DateTime<Utc>,
    config: &FoldConfig,
    mut new_id: impl FnMut() -> Uuid,
) -> FoldPlan {
    let mut working: Vec<Work> = candidates
        .into_iter()
        .map(|c| Work {
            candidate: c,
            dirty: false,
            bumped: false,
        })
        .collect();
    let mut by_core: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, w) in working.iter().enumerate() {
        by_core
            .entry(core(&w.candidate.passage.container))
            .or_default()
            .push(i);
    }
    let mut decisions = Vec::with_capacity(reads.len());
    for read in reads {
        let t = read.captured_micros();
        let key = core(&read.container.normalized());
        let exact = by_core.get(&key).and_then(|ix| {
            ix.iter()
                .copied()
                .filter(|&i| {
                    let p = &working[i].candidate.passage;
                    span(p).covers(t, config.window) && p.direction.compatible(read.direction)
                })
                // Nearest, then the latest span, then the one added last.
                .min_by_key(|&i| {
                    let s = span(&working[i].candidate.passage);
                    (
                        s.distance(t),
                        std::cmp::Reverse(s.last_seen),
                        std::cmp::Reverse(i),
                    )
                })
        });
        let target = match exact {
            Some(i) => Some((i, Joined::Exact)),
            None => working
                .iter()
                .enumerate()
                .filter(|(_, w)| {
                    let p = &w.candidate.passage;
                    span(p).covers(t, config.window)
                        && p.direction.compatible(read.direction)
                        && near_miss(read, p, t, config)
                })
                .min_by_key(|(i, w)| {
                    let p = &w.candidate.passage;
                    let other_camera = read.camera_id.is_some()
                        && p.camera_id.is_some()
                        && read.camera_id != p.camera_id;
                    (other_camera, span(p).distance(t), std::cmp::Reverse(*i))
                })
                .map(|(i, _)| (i, Joined::NearMiss)),
        };
        let decision = match target {
            Some((i, joined)) => {
                let w = &mut working[i];
                let before = core(&w.candidate.passage.container);
                let correction = w.join(read, now);
                let after = core(&w.candidate.passage.container);
                if before != after {
                    if let Some(ix) = by_core.get_mut(&before) {
                        ix.retain(|&j| j != i);
                    }
                    by_core.entry(after).or_default().push(i);
                }
                Decision {
                    passage_id: w.candidate.passage.id,
                    joined,
                    passage: w.candidate.passage.clone(),
                    correction,
                }
            }
            None => {
                let w = Work::open(new_id(), site_id, read, now);
                let i = working.len();
                by_core.entry(key).or_default().push(i);
                let d = Decision {
                    passage_id: w.candidate.passage.id,
                    joined: Joined::Created,
                    passage: w.candidate.passage.clone(),
                    correction: None,
                };
                working.push(w);
                d
            }
        };
        decisions.push(decision);
    }
    FoldPlan {
        passages: working
            .into_iter()
            .filter(|w| w.dirty)
            .map(|w| w.candidate)
            .collect(),
        decisions,
    }
}

/// A passage being decided in this batch.
struct Work {
    candidate: Candidate,
    /// Changed in this batch; written back at the end.
    dirty: bool,
    /// The version was bumped already in this batch.
    bumped: bool,
}

impl Work {
    fn open(id: Uuid, site_id: &str, read: &Read, now: DateTime<Utc>) -> Self {
        let c = &read.container;
        let mut votes = Votes::default();
        votes.add(read);
        let corrections = read
            .correction
            .iter()
            .map(|rc| Correction {
                from: rc.from.clone(),
                to: c.normalized(),
                rule: rc.rule,
                at: now,
                by: AUTOMATIC.to_string(),
                reason: None,
            })
            .collect();
        Self {
            candidate: Candidate {
                passage: Passage {
                    id,
                    site_id: site_id.to_string(),
                    container: c.normalized(),
                    container_owner: c.owner().as_str().to_string(),
                    container_number: c.serial().as_str().to_string(),
                    check_digit: c.check_digit().map(|d| d.value()),
                    check_digit_ok: c.check_status() == CheckStatus::Valid,
                    flags: read.flags,
                    captured_at: read.captured_at,
                    last_seen_at: read.captured_at,
                    seen_count: 1,
                    camera_id: read.camera_id.clone(),
                    source_video: read.source_video.clone(),
                    cropped_image_ref: read.cropped_image_ref.clone(),
                    confidence: read.confidence,
                    created_at: now,
                    updated_at: now,
                    version: 1,
                    sync_state: SyncState::Pending,
                    corrections,
                    direction: read.direction,
                    lane: read.lane.clone(),
                    truck_plate: read.truck_plate.clone(),
                    iso_type: read.iso_type.clone(),
                    dwell_secs: None,
                },
                votes,
            },
            dirty: true,
            bumped: true,
        }
    }

    /// Folds a read in; returns the correction when the number changed.
    fn join(&mut self, read: &Read, now: DateTime<Utc>) -> Option<Correction> {
        let Candidate { passage: p, votes } = &mut self.candidate;
        p.seen_count += 1;
        p.captured_at = p.captured_at.min(read.captured_at);
        p.last_seen_at = p.last_seen_at.max(read.captured_at);
        p.updated_at = now;
        // Fill what the first read lacked.
        if p.camera_id.is_none() {
            p.camera_id.clone_from(&read.camera_id);
        }
        if p.source_video.is_none() {
            p.source_video.clone_from(&read.source_video);
        }
        if p.cropped_image_ref.is_none() {
            p.cropped_image_ref.clone_from(&read.cropped_image_ref);
        }
        if p.confidence.is_none() {
            p.confidence = read.confidence;
        }
        if p.direction == Direction::None {
            p.direction = read.direction;
        }
        if p.lane.is_none() {
            p.lane.clone_from(&read.lane);
        }
        // The latest non-empty plate and size-type code.
        if read.truck_plate.is_some() {
            p.truck_plate.clone_from(&read.truck_plate);
        }
        if read.iso_type.is_some() {
            p.iso_type.clone_from(&read.iso_type);
        }
        if !self.bumped {
            p.version += 1;
            self.bumped = true;
        }
        p.sync_state = SyncState::Pending;
        self.dirty = true;

        votes.add(read);
        let current = core(&p.container);
        let (best, vote) = votes.best(&current)?;
        let (best, vote) = (best.clone(), *vote);
        let was = p.container.clone();
        let moved = best != current;
        p.container_owner = best[..4].to_string();
        p.container_number = best[4..].to_string();
        p.check_digit_ok = vote.valid;
        p.check_digit = if vote.valid {
            crate::ContainerNumber::parse(&best)
                .ok()
                .map(|n| n.computed_check_digit().value())
        } else {
            vote.digit
        };
        p.container = match p.check_digit {
            Some(d) => format!("{best}{d}"),
            None => best,
        };
        // The check-digit flags follow the number; the others (time,
        // category, owner) stay as the reads made them.
        let mut flags = Flags::empty();
        for f in [
            Flags::CATEGORY_UNKNOWN,
            Flags::CLOCK_SKEW,
            Flags::TIME_ASSUMED,
            Flags::OWNER_UNKNOWN,
            Flags::OUT_WITHOUT_IN,
            Flags::IN_WHILE_IN,
        ] {
            if p.flags.contains(f) {
                flags.insert(f);
            }
        }
        if p.iso_type
            .as_deref()
            .is_some_and(|t| !crate::gate::iso_type_valid(t))
        {
            flags.insert(Flags::ISO_TYPE_INVALID);
        }
        match (p.check_digit_ok, p.check_digit) {
            (true, _) => {}
            (false, Some(_)) => flags.insert(Flags::CHECK_DIGIT_MISMATCH),
            (false, None) => flags.insert(Flags::CHECK_DIGIT_MISSING),
        }
        p.flags = flags;
        if !moved {
            return None;
        }
        let correction = Correction {
            from: was,
            to: p.container.clone(),
            rule: CorrectionRule::Consensus,
            at: now,
            by: AUTOMATIC.to_string(),
            reason: None,
        };
        p.corrections.push(correction.clone());
        Some(correction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::{DedupConfig, DedupIndex, Observation};
    use crate::read::{RawRead, ValidationConfig};
    use crate::ContainerNumber;
    use proptest::prelude::*;

    const S: i64 = 1_000_000;

    fn config() -> FoldConfig {
        FoldConfig {
            window: 300 * S,
            near_miss_gap: 30 * S,
        }
    }

    fn t0() -> DateTime<Utc> {
        "2024-05-01T08:00:00Z".parse().unwrap()
    }

    /// A read of `text` at `secs` after t0 from `camera`.
    fn read(text: &str, secs: i64, camera: &str) -> Read {
        let t = t0() + chrono::Duration::seconds(secs);
        Read::parse_at(
            RawRead {
                container: Some(text.into()),
                captured_at: Some(t.to_rfc3339()),
                camera_id: Some(camera.into()),
                raw: "{}".into(),
                ..RawRead::default()
            },
            &ValidationConfig::default(),
            "2026-01-01T00:00:00Z".parse().unwrap(),
        )
        .unwrap()
    }

    fn valid(bare: &str) -> String {
        let d = ContainerNumber::parse(bare).unwrap().computed_check_digit();
        format!("{bare}{d}")
    }

    /// Folds reads one batch at a time, carrying every passage over, as the
    /// store would when each read's candidates are all passages.
    struct Yard {
        passages: Vec<Candidate>,
        next: u128,
    }

    impl Yard {
        fn new() -> Self {
            Self {
                passages: Vec::new(),
                next: 0,
            }
        }

        fn add(&mut self, reads: &[Read]) -> Vec<Decision> {
            let refs: Vec<&Read> = reads.iter().collect();
            let next = &mut self.next;
            let plan = fold(
                &refs,
                self.passages.clone(),
                "site-1",
                t0(),
                &config(),
                || {
                    *next += 1;
                    Uuid::from_u128(*next)
                },
            );
            for c in plan.passages {
                match self
                    .passages
                    .iter_mut()
                    .find(|p| p.passage.id == c.passage.id)
                {
                    Some(p) => *p = c,
                    None => self.passages.push(c),
                }
            }
            plan.decisions
        }

        fn one(&mut self, r: Read) -> Decision {
            self.add(&[r]).remove(0)
        }

        fn numbers(&self) -> Vec<String> {
            self.passages
                .iter()
                .map(|c| c.passage.container.clone())
                .collect()
        }
    }

    #[test]
    fn a_misread_serial_with_its_check_digit_folds_in() {
        let truth = valid("MSCU123456");
        let mut yard = Yard::new();
        let first = yard.one(read(&truth, 0, "gate-1"));
        // One random misread digit: the check digit fails.
        let misread = format!("MSCU123486{}", &truth[10..]);
        let d = yard.one(read(&misread, 2, "gate-2"));
        assert_eq!(
            (d.passage_id, d.joined),
            (first.passage_id, Joined::NearMiss)
        );
        assert_eq!(d.passage.container, truth);
        assert_eq!(d.passage.seen_count, 2);
        assert!(d.correction.is_none());
    }

    #[test]
    fn the_consensus_corrects_a_passage_opened_by_a_misread() {
        let truth = valid("MSCU123456");
        let misread = format!("MSCU123486{}", &truth[10..]);
        let mut yard = Yard::new();
        let first = yard.one(read(&misread, 0, "gate-1"));
        assert!(!first.passage.check_digit_ok);
        let d = yard.one(read(&truth, 1, "gate-1"));
        assert_eq!(
            (d.passage_id, d.joined),
            (first.passage_id, Joined::NearMiss)
        );
        let c = d.correction.expect("the number moved");
        assert_eq!(
            (c.from.as_str(), c.to.as_str(), c.rule),
            (misread.as_str(), truth.as_str(), CorrectionRule::Consensus)
        );
        assert_eq!(d.passage.container, truth);
        assert!(d.passage.check_digit_ok);
        assert!(d.passage.flags.is_empty(), "{:?}", d.passage.flags);
        assert_eq!(d.passage.corrections, vec![c]);
        // Later reads of the truth join exactly, and nothing moves again.
        let d = yard.one(read(&truth, 2, "gate-1"));
        assert_eq!((d.joined, d.correction), (Joined::Exact, None));
        assert_eq!(yard.passages.len(), 1);
    }

    #[test]
    fn two_real_containers_one_digit_apart_stay_apart() {
        let (a, b) = (valid("MSCU123456"), valid("MSCU123457"));
        let mut yard = Yard::new();
        for s in 0..5 {
            yard.one(read(&a, s, "gate-1"));
        }
        // The next truck, 40 s later, one digit apart, read with and
        // without its check digit.
        let d = yard.one(read(&b, 45, "gate-1"));
        assert_eq!(d.joined, Joined::Created);
        let d2 = yard.one(read(&b[..10], 46, "gate-1"));
        assert_eq!((d2.passage_id, d2.joined), (d.passage_id, Joined::Exact));
        // Its first read lacking the check digit, from another camera or
        // after the gap, opens its own passage too.
        let c = valid("MSCU123458");
        let d3 = yard.one(read(&c[..10], 47, "gate-2"));
        assert_eq!(d3.joined, Joined::Created);
        let e = valid("MSCU123459");
        let d4 = yard.one(read(&e[..10], 47 + 31, "gate-2"));
        assert_eq!(d4.joined, Joined::Created, "{:?}", yard.numbers());
        assert_eq!(yard.passages.len(), 4, "{:?}", yard.numbers());
        assert!(yard
            .passages
            .iter()
            .all(|c| c.passage.corrections.is_empty()));
    }

    #[test]
    fn a_near_miss_without_check_digits_folds_only_close_and_from_the_same_camera() {
        let truth = valid("TGHU765432");
        let mut yard = Yard::new();
        let first = yard.one(read(&truth, 0, "gate-1"));
        // A misread digit and no check digit, two seconds later.
        let d = yard.one(read("TGHU765482", 2, "gate-1"));
        assert_eq!(
            (d.passage_id, d.joined),
            (first.passage_id, Joined::NearMiss)
        );
        assert_eq!(
            d.passage.container, truth,
            "one weak read does not move the number"
        );
    }

    #[test]
    fn numbers_no_check_digit_vouches_for_never_fold_by_near_miss() {
        let mut yard = Yard::new();
        yard.one(read("MSCU123456", 0, "gate-1"));
        let d = yard.one(read("MSCU123457", 1, "gate-1"));
        assert_eq!(d.joined, Joined::Created);
    }

    #[test]
    fn two_misreads_fold_only_when_the_check_digit_fails_and_the_truck_is_in_view() {
        let truth = valid("FCIU890307");
        let mut yard = Yard::new();
        let first = yard.one(read(&truth, 0, "gate-1"));
        // An unreadable character the check digit fills in, plus another
        // misread: the completed number is not evidence, and folds.
        let two = format!("FCIU89K309{}", &truth[10..]);
        let d = yard.one(read(&two, 2, "gate-1"));
        assert_eq!(
            (d.passage_id, d.joined),
            (first.passage_id, Joined::NearMiss),
            "{}",
            d.passage.container
        );
        assert_eq!(d.passage.container, truth);
        // The same read from another camera, or long after, opens its own.
        for (secs, camera) in [(3, "gate-2"), (40, "gate-1")] {
            let mut yard = Yard::new();
            yard.one(read(&truth, 0, "gate-1"));
            let d = yard.one(read(&two, secs, camera));
            assert_eq!(d.joined, Joined::Created, "{secs} s, {camera}");
        }
    }

    #[test]
    fn an_in_and_an_out_never_fold_into_one_passage() {
        let truth = valid("MSCU123456");
        let at_gate = |secs, direction| {
            let mut r = read(&truth, secs, "gate-1");
            r.direction = direction;
            r
        };
        let mut yard = Yard::new();
        let entered = yard.one(at_gate(0, Direction::In));
        assert_eq!(entered.passage.direction, Direction::In);
        // Turned away: straight out, inside the window.
        let left = yard.one(at_gate(30, Direction::Out));
        assert_eq!(left.joined, Joined::Created);
        assert_eq!(left.passage.direction, Direction::Out);
        // A camera without a direction joins the nearest compatible one.
        let side = yard.one(at_gate(31, Direction::None));
        assert_eq!(
            (side.passage_id, side.joined),
            (left.passage_id, Joined::Exact)
        );
        let again = yard.one(at_gate(32, Direction::In));
        assert_eq!(
            (again.passage_id, again.joined),
            (entered.passage_id, Joined::Exact)
        );
    }

    #[test]
    fn a_return_visit_after_the_window_is_a_new_passage() {
        let truth = valid("CSQU305438");
        let mut yard = Yard::new();
        let a = yard.one(read(&truth, 0, "gate-1"));
        let b = yard.one(read(&truth, 300, "gate-1"));
        assert_eq!(b.passage_id, a.passage_id, "the window's edge is inside");
        let c = yard.one(read(&truth, 601, "gate-1"));
        assert_eq!(c.joined, Joined::Created);
        // A misread a minute into the new visit joins the new passage.
        let misread = format!("CSQU305488{}", &truth[10..]);
        let d = yard.one(read(&misread, 660, "gate-1"));
        assert_eq!((d.passage_id, d.joined), (c.passage_id, Joined::NearMiss));
    }

    #[test]
    fn a_passage_opened_by_a_corrected_read_records_why() {
        let mut yard = Yard::new();
        let d = yard.one(read("M5CU1234566", 0, "gate-1"));
        assert_eq!(d.passage.container, "MSCU1234566");
        assert_eq!(d.passage.corrections.len(), 1);
        assert_eq!(d.passage.corrections[0].from, "M5CU1234566");
        assert_eq!(d.passage.corrections[0].rule, CorrectionRule::Lookalike);
    }

    #[test]
    fn valid_numbers_sharing_a_check_digit_stay_apart_unless_letters_eleven_apart() {
        // Serials one digit apart whose remainders are 0 and 10 both carry
        // check digit 0: two real containers, read at once.
        let zero: Vec<String> = (0..2000)
            .map(|i| valid(&format!("MSCU{:06}", i)))
            .filter(|n| n.ends_with('0'))
            .collect();
        let (a, b) = zero
            .iter()
            .flat_map(|a| zero.iter().map(move |b| (a, b)))
            .find(|(a, b)| hamming(&a[..10], &b[..10]) == Some(1))
            .expect("such a pair exists");
        let mut yard = Yard::new();
        let first = yard.one(read(a, 0, "gate-1"));
        let second = yard.one(read(b, 0, "gate-1"));
        assert_ne!(first.passage_id, second.passage_id, "{a} {b}");
        // E and O are 11 apart: the check digit cannot tell EOLU from OOLU.
        let truth = valid("OOLU123456");
        let twin = format!("EOLU123456{}", &truth[10..]);
        assert!(ContainerNumber::parse(&twin).unwrap().check_status() == CheckStatus::Valid);
        let mut yard = Yard::new();
        let first = yard.one(read(&truth, 0, "gate-1"));
        let misread = yard.one(read(&twin, 1, "gate-1"));
        assert_eq!(
            (misread.passage_id, misread.joined),
            (first.passage_id, Joined::NearMiss)
        );
    }

    /// Distinct valid numbers far apart: clean input has no near misses.
    const CLEAN: [&str; 3] = ["MSCU123456", "CSQU305438", "TGHU765432"];

    fn reads() -> impl Strategy<Value = Vec<(usize, i64)>> {
        prop::collection::vec((0usize..3, 0i64..3_600), 1..120)
    }

    proptest! {
        #[test]
        fn on_clean_input_the_fold_matches_the_reference_model(reads in reads(), batch in 1usize..8) {
            let reads: Vec<(usize, i64)> = reads;
            let mut model: DedupIndex<usize, u128> = DedupIndex::new(&DedupConfig::default());
            let mut created = 0u128;
            let mut expected = Vec::new();
            for &(k, s) in &reads {
                let p = match model.observe(k, s * S + t0().timestamp_micros(), || { created += 1; created }) {
                    Observation::Created(p) | Observation::Joined(p) => p,
                };
                expected.push(p);
            }
            let numbers: Vec<String> = CLEAN.iter().map(|b| valid(b)).collect();
            let mut yard = Yard::new();
            let mut got = Vec::new();
            for chunk in reads.chunks(batch) {
                let rs: Vec<Read> = chunk.iter().map(|&(k, s)| read(&numbers[k], s, "gate-1")).collect();
                got.extend(yard.add(&rs).into_iter().map(|d| d.passage_id.as_u128()));
            }
            prop_assert_eq!(got, expected);
            // Clean reads never correct anything.
            prop_assert!(yard.passages.iter().all(|c| c.passage.corrections.is_empty()));
            let total: i64 = yard.passages.iter().map(|c| c.passage.seen_count).sum();
            prop_assert_eq!(total as usize, reads.len());
        }
    }
}
