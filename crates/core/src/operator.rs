//! Corrections by hand: an operator's number for a read that could not be
//! made into one, or for a passage whose number is wrong.
//!
//! An operator's number is taken as final, so it must be a whole, valid
//! ISO 6346 number: [`OperatorNumber::parse`] refuses one without its check
//! digit, with a check digit that fails, or with a category letter other
//! than U, J or Z, naming the field `container`.
//!
//! # Layout
//! - [`resolve`]: a queued read becomes a [`Read`] of the operator's
//!   number, keeping its raw input and times, which folds like any read
//!   (the store runs [`crate::fold::fold`] on it).
//! - [`attribute`]: after the fold, the passage the read landed in records
//!   the correction under the operator's name.
//! - [`correct`]: a passage changes number by hand; its votes are pinned
//!   to the new number so that later reads cannot move it back.
//! - [`parse_reason`]: the operator's optional words on why.

use chrono::{DateTime, Utc};

use crate::container::{CheckStatus, ContainerNumber};
use crate::error::{Field, FieldError};
use crate::fold::Candidate;
use crate::passage::{Correction, CorrectionRule, Flags, Passage, SyncState};
use crate::read::{Read, Unresolved};
use crate::recognize::{OwnerCodes, ReadCorrection};

/// Who corrects when no key is configured (a loopback-only server), so
/// nobody is identified.
pub const LOCAL: &str = "local";

/// The longest reason kept with a correction, in bytes.
pub const MAX_REASON_LEN: usize = 500;

/// A number an operator typed: a valid ISO 6346 number with its check
/// digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperatorNumber {
    number: ContainerNumber,
    /// The owner code is not on the configured allowlist; flagged as for a
    /// read, since the operator may know a line the list does not.
    owner_unknown: bool,
}

impl OperatorNumber {
    /// Parses what an operator typed (any case, separators allowed).
    pub fn parse(input: &str, owners: Option<&OwnerCodes>) -> Result<Self, FieldError> {
        let number = ContainerNumber::parse(input)?;
        match number.check_status() {
            CheckStatus::Valid => {}
            CheckStatus::Missing => {
                return Err(FieldError::new(
                    Field::Container,
                    format!(
                        "container must include its check digit (the eleventh character): {}{} has check digit {}",
                        number.owner(),
                        number.serial(),
                        number.computed_check_digit()
                    ),
                ))
            }
            CheckStatus::Mismatch => {
                return Err(FieldError::new(
                    Field::Container,
                    format!(
                        "check digit {} does not match {} computed for {}{}; check the number",
                        number.check_digit().map(|d| d.value()).unwrap_or_default(),
                        number.computed_check_digit(),
                        number.owner(),
                        number.serial()
                    ),
                ))
            }
        }
        if !number.owner().category_known() {
            return Err(FieldError::new(
                Field::Container,
                format!(
                    "category letter {:?} is not U, J or Z",
                    number.owner().category()
                ),
            ));
        }
        let owner_unknown = owners.is_some_and(|o| !o.is_empty() && !o.contains(&number.owner()));
        Ok(Self {
            number,
            owner_unknown,
        })
    }

    pub fn number(&self) -> ContainerNumber {
        self.number
    }

    /// The number as gatelog writes it, such as `CSQU3054383`.
    pub fn normalized(&self) -> String {
        self.number.normalized()
    }
}

/// Checks an operator's reason: trimmed, at most [`MAX_REASON_LEN`]
/// bytes, no control characters; blank is none.
pub fn parse_reason(input: Option<&str>) -> Result<Option<String>, FieldError> {
    let Some(reason) = input.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(None);
    };
    if reason.len() > MAX_REASON_LEN {
        return Err(FieldError::new(
            Field::Reason,
            format!("reason must be at most {MAX_REASON_LEN} bytes"),
        ));
    }
    if reason.chars().any(char::is_control) {
        return Err(FieldError::new(
            Field::Reason,
            "reason must be one line of printable text",
        ));
    }
    Ok(Some(reason.to_string()))
}

/// The read an operator's number makes of a queued read. It keeps the
/// read's raw input, camera, times and time flags, records the text as
/// read as its correction (rule `operator`), and carries no client id:
/// that stays with the queued read, whose retries it answers.
pub fn resolve(queued: Unresolved, number: &OperatorNumber) -> Read {
    let mut flags = queued.flags;
    if number.owner_unknown {
        flags.insert(Flags::OWNER_UNKNOWN);
    }
    Read {
        id: None,
        content_digest: queued.content_digest,
        container: number.number,
        correction: Some(ReadCorrection {
            from: queued.text,
            rule: CorrectionRule::Operator,
        }),
        flags,
        captured_at: queued.captured_at,
        camera_id: queued.camera_id,
        source_video: queued.source_video,
        cropped_image_ref: queued.cropped_image_ref,
        confidence: queued.confidence,
        direction: queued.direction,
        lane: queued.lane,
        truck_plate: queued.truck_plate,
        iso_type: queued.iso_type,
        raw: queued.raw,
    }
}

/// Records on passage `p`, which the resolved `read` just landed in, who
/// resolved it, and returns that correction. A passage the read opened
/// already holds the read's own correction under the automatic name
/// ([`crate::fold::AUTOMATIC`]), which becomes the operator's; a passage
/// it joined gets the correction added.
pub fn attribute(p: &mut Passage, read: &Read, by: &str, now: DateTime<Utc>) -> Correction {
    let from = read
        .correction
        .as_ref()
        .map(|c| c.from.clone())
        .unwrap_or_default();
    let opened = p.corrections.iter_mut().rev().find(|c| {
        c.rule == CorrectionRule::Operator && c.by == crate::fold::AUTOMATIC && c.from == from
    });
    if let Some(c) = opened {
        c.by = by.to_string();
        return c.clone();
    }
    let c = Correction {
        from,
        to: read.container.normalized(),
        rule: CorrectionRule::Operator,
        at: now,
        by: by.to_string(),
        reason: None,
    };
    p.corrections.push(c.clone());
    c
}

/// Changes a passage's number by hand. Returns the correction, or `None`
/// when the passage already holds `number` (nothing changes, and the
/// version stays). The new number passes its check digit, so the passage
/// is verified; its votes are pinned to it (see
/// [`crate::fold::Votes::pin`]), the check-digit and category flags go,
/// the time flags stay, and the version is bumped so sync sends the row.
pub fn correct(
    c: &mut Candidate,
    number: &OperatorNumber,
    by: &str,
    reason: Option<String>,
    now: DateTime<Utc>,
) -> Option<Correction> {
    let p = &mut c.passage;
    let to = number.normalized();
    if p.container == to {
        return None;
    }
    c.votes.pin(&number.number);
    let n = number.number;
    let correction = Correction {
        from: std::mem::replace(&mut p.container, to.clone()),
        to,
        rule: CorrectionRule::Operator,
        at: now,
        by: by.to_string(),
        reason,
    };
    p.container_owner = n.owner().as_str().to_string();
    p.container_number = n.serial().as_str().to_string();
    p.check_digit = n.check_digit().map(|d| d.value());
    p.check_digit_ok = true;
    let mut flags = Flags::empty();
    for f in [Flags::CLOCK_SKEW, Flags::TIME_ASSUMED] {
        if p.flags.contains(f) {
            flags.insert(f);
        }
    }
    if number.owner_unknown {
        flags.insert(Flags::OWNER_UNKNOWN);
    }
    p.flags = flags;
    p.version += 1;
    p.updated_at = now;
    p.sync_state = SyncState::Pending;
    p.corrections.push(correction.clone());
    Some(correction)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fold::{fold, FoldConfig, Joined};
    use crate::read::{ParseContext, Parsed, RawRead, ValidationConfig};

    fn t(secs: i64) -> DateTime<Utc> {
        "2024-05-01T08:00:00Z".parse::<DateTime<Utc>>().unwrap() + chrono::Duration::seconds(secs)
    }

    fn interpret(text: &str, secs: i64) -> Parsed {
        Read::interpret(
            RawRead {
                container: Some(text.into()),
                captured_at: Some(t(secs).to_rfc3339()),
                camera_id: Some("cam-1".into()),
                raw: format!("{{\"container\":\"{text}\"}}"),
                ..RawRead::default()
            },
            &ParseContext {
                validation: &ValidationConfig::default(),
                owners: None,
                cameras: None,
                received_at: t(10_000),
            },
        )
        .unwrap()
    }

    fn read(text: &str, secs: i64) -> Read {
        match interpret(text, secs) {
            Parsed::Read(r) => r,
            Parsed::Unresolved(u) => panic!("{u:?} is unresolved"),
        }
    }

    fn config() -> FoldConfig {
        FoldConfig {
            window: 300_000_000,
            near_miss_gap: 5_000_000,
        }
    }

    #[test]
    fn only_a_whole_valid_number_is_taken() {
        let n = OperatorNumber::parse(" csqu 305438-3 ", None).unwrap();
        assert_eq!(n.normalized(), "CSQU3054383");
        for bad in [
            "CSQU305438",
            "CSQU3054384",
            "CSQX3054383",
            "HELLO",
            "CSQU30543",
            "",
        ] {
            let e = OperatorNumber::parse(bad, None).unwrap_err();
            assert_eq!(e.field, Field::Container, "{bad}");
        }
        let e = OperatorNumber::parse("CSQU305438", None).unwrap_err();
        assert!(e.message.contains("check digit 3"), "{}", e.message);
        let owners = OwnerCodes::parse("MSC\n").unwrap();
        let n = OperatorNumber::parse("CSQU3054383", Some(&owners)).unwrap();
        let queued = match interpret("CSQU30K438", 1) {
            Parsed::Unresolved(u) => u,
            other => panic!("{other:?}"),
        };
        assert!(resolve(queued, &n).flags.contains(Flags::OWNER_UNKNOWN));
    }

    #[test]
    fn reasons_are_one_bounded_line() {
        assert_eq!(parse_reason(None).unwrap(), None);
        assert_eq!(parse_reason(Some("  ")).unwrap(), None);
        assert_eq!(
            parse_reason(Some(" seal photo ")).unwrap().as_deref(),
            Some("seal photo")
        );
        for bad in ["a\nb".to_string(), "x".repeat(MAX_REASON_LEN + 1)] {
            assert_eq!(parse_reason(Some(&bad)).unwrap_err().field, Field::Reason);
        }
    }

    #[test]
    fn a_resolved_read_keeps_its_raw_input_and_folds_under_the_operators_name() {
        let queued = match interpret("CSQU30K438", 7) {
            Parsed::Unresolved(u) => u,
            other => panic!("{other:?}"),
        };
        let raw = queued.raw.clone();
        let n = OperatorNumber::parse("CSQU3054383", None).unwrap();
        let r = resolve(queued, &n);
        assert_eq!(r.raw, raw);
        assert_eq!(r.captured_at, t(7));
        assert_eq!(r.id, None);
        assert_eq!(r.correction.as_ref().unwrap().from, "CSQU30K438");

        // Alone, it opens a passage whose one correction becomes the
        // operator's.
        let plan = fold(
            &[&r],
            Vec::new(),
            "site-1",
            t(100),
            &config(),
            uuid::Uuid::now_v7,
        );
        let mut p = plan.decisions[0].passage.clone();
        let c = attribute(&mut p, &r, "kim", t(100));
        assert_eq!(p.corrections, vec![c.clone()]);
        assert_eq!(
            (c.from.as_str(), c.to.as_str(), c.rule, c.by.as_str()),
            ("CSQU30K438", "CSQU3054383", CorrectionRule::Operator, "kim")
        );

        // Beside a passage of the same number, it joins it and adds one.
        let first = read("CSQU3054383", 5);
        let plan = fold(
            &[&first],
            Vec::new(),
            "site-1",
            t(100),
            &config(),
            uuid::Uuid::now_v7,
        );
        let plan = fold(
            &[&r],
            plan.passages,
            "site-1",
            t(101),
            &config(),
            uuid::Uuid::now_v7,
        );
        assert_eq!(plan.decisions[0].joined, Joined::Exact);
        let mut p = plan.decisions[0].passage.clone();
        assert!(p.corrections.is_empty());
        attribute(&mut p, &r, "kim", t(101));
        assert_eq!(p.corrections.len(), 1);
        assert_eq!(p.corrections[0].by, "kim");
    }

    #[test]
    fn a_number_set_by_hand_holds_against_later_reads() {
        // Reads without a check digit open a passage on a misread number.
        let reads: Vec<Read> = (0..3).map(|i| read("CSQU305488", i)).collect();
        let refs: Vec<&Read> = reads.iter().collect();
        let plan = fold(
            &refs,
            Vec::new(),
            "site-1",
            t(10),
            &config(),
            uuid::Uuid::now_v7,
        );
        let mut c = plan.passages[0].clone();
        let version = c.passage.version;
        assert!(!c.passage.check_digit_ok);

        let n = OperatorNumber::parse("CSQU3054383", None).unwrap();
        let fix = correct(&mut c, &n, "kim", Some("seal".into()), t(20)).unwrap();
        assert_eq!(
            (fix.from.as_str(), fix.to.as_str(), fix.by.as_str()),
            ("CSQU305488", "CSQU3054383", "kim")
        );
        assert_eq!(fix.reason.as_deref(), Some("seal"));
        assert_eq!(c.passage.container, "CSQU3054383");
        assert!(c.passage.check_digit_ok);
        assert!(c.passage.flags.is_empty());
        assert_eq!(c.passage.version, version + 1);
        assert_eq!(c.passage.sync_state, SyncState::Pending);
        assert_eq!(correct(&mut c, &n, "kim", None, t(21)), None, "no change");
        assert_eq!(c.passage.version, version + 1);

        // Many more reads of the old number join and do not move it back.
        let more: Vec<Read> = (3..40).map(|i| read("CSQU305488", i)).collect();
        let refs: Vec<&Read> = more.iter().collect();
        let plan = fold(
            &refs,
            vec![c],
            "site-1",
            t(60),
            &config(),
            uuid::Uuid::now_v7,
        );
        let last = plan.decisions.last().unwrap();
        assert_eq!(last.passage.container, "CSQU3054383");
        assert!(plan.decisions.iter().all(|d| d.correction.is_none()));

        // A second correction by hand wins over the first.
        let mut c = plan.passages[0].clone();
        let m = OperatorNumber::parse("CSQU3054887", None).unwrap();
        correct(&mut c, &m, "lee", None, t(70)).unwrap();
        // A read of the first number, without a check digit, still joins
        // (a near miss, from the truck in view) and does not move it.
        let again = read("CSQU305438", 40);
        let plan = fold(
            &[&again],
            vec![c],
            "site-1",
            t(72),
            &config(),
            uuid::Uuid::now_v7,
        );
        assert_eq!(plan.decisions[0].joined, Joined::NearMiss);
        assert_eq!(plan.decisions[0].passage.container, "CSQU3054887");
    }
}
