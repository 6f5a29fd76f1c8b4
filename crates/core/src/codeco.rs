//! CODECO gate reports: the UN/EDIFACT container gate-in/gate-out report
//! (D.95B, as the SMDG guidelines use it), written from passages.
//!
//! This module is a pure writer. It knows the partners a site reports to
//! ([`Partners`]), the site's UN/LOCODE ([`Locode`]), which partner an
//! export goes to ([`CodecoConfig::plan`]), and how one interchange is
//! spelt ([`Writer`]). It reads no store and speaks no HTTP: the store
//! feeds it passages page by page and the API or the CLI sends the bytes
//! on.
//!
//! # The interchange
//!
//! ```text
//! UNA:+.? '
//! UNB+UNOC:3+<sender_id>+<recipient_id>+<YYMMDD>:<HHMM>+<control ref>'
//! UNH+<n>+CODECO:D:95B:UN:<association>'      one message a movement
//! BGM+<bgm_in|bgm_out>+<passage id, 32 hex>+9'
//! DTM+137:<prepared, CCYYMMDDHHMM>:203'
//! EQD+CN+<container>+<iso_type>:102:5'         the size-type when valid
//! DTM+7:<gate time, CCYYMMDDHHMM>:203'
//! LOC+165+<site UN/LOCODE>:139:6'
//! TDT+1++3+31++++<truck plate>'                when the plate is known
//! CNT+16:1'
//! UNT+<segments, UNH and UNT included>+<n>'
//! UNZ+<messages>+<control ref>'
//! ```
//!
//! Only passages with a direction are movements: an `in` passage is a
//! gate-in (`bgm_in`), an `out` passage a gate-out (`bgm_out`); a passage
//! from a camera without a direction is left out. Each partner receives
//! only the containers of its own owner codes.
//!
//! # Choices
//! - Character set UNOC (ISO 8859-1), syntax version 3, and the bytes are
//!   ISO 8859-1. A character that UNOC cannot carry (a Hangul syllable on
//!   a Korean plate, a control character) is written as `_`: partners'
//!   systems expect UNOA or UNOC, and a visible stand-in is better than a
//!   refused interchange.
//! - The release character `?` escapes `'`, `+`, `:` and `?` in every
//!   value, codes included (they never hold one).
//! - Times are UTC; format 203 carries no zone.
//! - The document number is the passage id without hyphens (32
//!   characters; data element 1004 allows 35), so a message sent twice
//!   is recognisably the same movement.
//! - `EQD` carries the size-type code only when it is a valid ISO 6346
//!   code; a malformed one (flagged `iso_type_invalid` on the passage) is
//!   left out rather than sent to a partner who would refuse it.
//! - The full/empty indicator (data element 8169) is left out: gatelog
//!   does not know whether a box is loaded.
//! - The truck's `TDT` stands in the equipment's group, after `LOC`, as
//!   the SMDG guideline places inland transport; the header's `TDT` is the
//!   vessel's, which a gate does not know. Stage 1 (inland transport),
//!   mode 3 (road), means 31 (truck), the plate as the identification.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::container::OwnerCode;
use crate::gate::iso_type_valid;
use crate::passage::{Direction, Passage};

/// The SMDG association code used when a partner names none.
pub const DEFAULT_ASSOCIATION: &str = "SMDG20";
/// BGM document name code for a gate-in report, by default.
pub const DEFAULT_BGM_IN: u16 = 34;
/// BGM document name code for a gate-out report, by default.
pub const DEFAULT_BGM_OUT: u16 = 36;
/// The longest sender or recipient id UNB takes (an..35).
pub const MAX_PARTY_ID: usize = 35;
/// What stands in for a character UNOC cannot carry.
pub const REPLACEMENT: u8 = b'_';

fn default_association() -> String {
    DEFAULT_ASSOCIATION.into()
}
fn default_bgm_in() -> u16 {
    DEFAULT_BGM_IN
}
fn default_bgm_out() -> u16 {
    DEFAULT_BGM_OUT
}

/// One `[[partners]]` entry as configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    /// How exports name the partner (`--partner`, `partner=`).
    pub name: String,
    /// The owner codes (such as `MSCU`) whose containers this partner
    /// receives.
    #[serde(default)]
    pub owners: Vec<String>,
    /// UNB sender; the site id when unset.
    #[serde(default)]
    pub sender_id: Option<String>,
    /// UNB recipient; the partner's name when unset.
    #[serde(default)]
    pub recipient_id: Option<String>,
    /// The association assigned code in UNH, such as `SMDG20`.
    #[serde(default = "default_association")]
    pub association: String,
    /// BGM document name code of a gate-in.
    #[serde(default = "default_bgm_in")]
    pub bgm_in: u16,
    /// BGM document name code of a gate-out.
    #[serde(default = "default_bgm_out")]
    pub bgm_out: u16,
}

/// A partner, checked and with its defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partner {
    pub name: String,
    pub owners: Vec<OwnerCode>,
    pub sender_id: String,
    pub recipient_id: String,
    pub association: String,
    pub bgm_in: u16,
    pub bgm_out: u16,
}

/// A party id for UNB: 1 to 35 printable characters.
fn party_id(value: &str, key: &str) -> Result<String, String> {
    if value.trim().is_empty()
        || value.chars().count() > MAX_PARTY_ID
        || value.chars().any(char::is_control)
    {
        return Err(format!(
            "{key} must be 1 to {MAX_PARTY_ID} printable characters; got {value:?}"
        ));
    }
    Ok(value.to_string())
}

impl Partner {
    /// Checks entry `i` of `[[partners]]`; an error names the key.
    fn new(i: usize, c: &PartnerConfig, site_id: &str) -> Result<Self, String> {
        let key = |k: &str| format!("partners[{i}].{k}");
        let name = party_id(&c.name, &key("name"))?;
        if c.owners.is_empty() {
            return Err(format!(
                "{} must list at least one owner code, such as [\"MSCU\"]",
                key("owners")
            ));
        }
        let mut owners = Vec::with_capacity(c.owners.len());
        for (j, o) in c.owners.iter().enumerate() {
            let code = OwnerCode::parse(o)
                .map_err(|e| format!("{}[{j}]: {}", key("owners"), e.message))?;
            if !owners.contains(&code) {
                owners.push(code);
            }
        }
        let sender_id = match &c.sender_id {
            Some(s) => party_id(s, &key("sender_id"))?,
            None => party_id(site_id, "site.id").map_err(|_| {
                format!(
                    "{} must be set: it defaults to site.id, which is longer than {MAX_PARTY_ID} characters",
                    key("sender_id")
                )
            })?,
        };
        let recipient_id = match &c.recipient_id {
            Some(r) => party_id(r, &key("recipient_id"))?,
            None => name.clone(),
        };
        if c.association.is_empty()
            || c.association.len() > 6
            || !c.association.bytes().all(|b| b.is_ascii_alphanumeric())
        {
            return Err(format!(
                "{} must be 1 to 6 letters or digits, such as SMDG20; got {:?}",
                key("association"),
                c.association
            ));
        }
        for (k, v) in [("bgm_in", c.bgm_in), ("bgm_out", c.bgm_out)] {
            if !(1..=999).contains(&v) {
                return Err(format!(
                    "{} must be a document name code from 1 to 999; got {v}",
                    key(k)
                ));
            }
        }
        Ok(Self {
            name,
            owners,
            sender_id,
            recipient_id,
            association: c.association.clone(),
            bgm_in: c.bgm_in,
            bgm_out: c.bgm_out,
        })
    }
}

/// The configured partners, in configuration order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partners(Vec<Partner>);

impl Partners {
    /// Checks every entry; `site_id` is the default sender. An error names
    /// the entry and key at fault.
    pub fn new(list: &[PartnerConfig], site_id: &str) -> Result<Self, String> {
        let mut partners: Vec<Partner> = Vec::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            let p = Partner::new(i, c, site_id)?;
            if partners.iter().any(|q| q.name == p.name) {
                return Err(format!("partners[{i}].name {:?} is listed twice", p.name));
            }
            partners.push(p);
        }
        Ok(Self(partners))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Partner> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn names(&self) -> String {
        self.0
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A UN/LOCODE: a two-letter country code and three letters or digits
/// (2 to 9) for the place, such as `KRPUS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locode([u8; 5]);

impl Locode {
    /// Parses five characters in any case; the error is a phrase that
    /// follows the key's name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let b = text.trim().as_bytes();
        let ok = b.len() == 5
            && b[..2].iter().all(u8::is_ascii_alphabetic)
            && b[2..]
                .iter()
                .all(|c| c.is_ascii_alphabetic() || (b'2'..=b'9').contains(c));
        if !ok {
            return Err(format!(
                "must be a UN/LOCODE: a 2-letter country code and 3 letters or digits, such as KRPUS; got {text:?}"
            ));
        }
        let mut code = [0u8; 5];
        for (slot, c) in code.iter_mut().zip(b) {
            *slot = c.to_ascii_uppercase();
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII.
        std::str::from_utf8(&self.0).expect("a UN/LOCODE is ASCII")
    }
}

impl fmt::Display for Locode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What CODECO exports need from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodecoConfig {
    pub partners: Partners,
    /// `site.locode`; an export is refused without it.
    pub locode: Option<Locode>,
}

/// Why an export cannot be planned. [`PlanError::param`] names the
/// request parameter at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("a CODECO export needs the site's UN/LOCODE: set site.locode (GATELOG_SITE__LOCODE), such as KRPUS")]
    NoLocode,
    #[error("no [[partners]] are configured; a CODECO export goes to one of them")]
    NoPartners,
    #[error("partner is required when more than one partner is configured: one of {0}")]
    PartnerRequired(String),
    #[error("unknown partner {name:?}; configured partners: {known}")]
    UnknownPartner { name: String, known: String },
    #[error("owner {owner} is not among partner {partner}'s owners ({owners})")]
    OwnerNotOfPartner {
        owner: String,
        partner: String,
        owners: String,
    },
}

impl PlanError {
    /// The request parameter to name in the error.
    pub fn param(&self) -> &'static str {
        match self {
            PlanError::NoLocode => "format",
            PlanError::NoPartners
            | PlanError::PartnerRequired(_)
            | PlanError::UnknownPartner { .. } => "partner",
            PlanError::OwnerNotOfPartner { .. } => "owner",
        }
    }
}

/// An owner a request narrows the export to: four letters name an owner
/// code, three an owner of any category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerSelector {
    Code(String),
    Prefix(String),
}

impl OwnerSelector {
    fn matches(&self, code: &OwnerCode) -> bool {
        match self {
            OwnerSelector::Code(c) => code.as_str() == c,
            OwnerSelector::Prefix(p) => code.as_str().starts_with(p.as_str()),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            OwnerSelector::Code(s) | OwnerSelector::Prefix(s) => s,
        }
    }
}

/// One interchange to write: to whom, from where, for which owners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub partner: Partner,
    pub locode: Locode,
    /// The owner codes whose containers go into this interchange: the
    /// partner's, narrowed by the request.
    pub owners: Vec<OwnerCode>,
}

impl CodecoConfig {
    /// Which partner an export goes to, and which owners it covers.
    ///
    /// The rule: a named partner must be configured; without a name, the
    /// only configured partner is meant, and with several the name is
    /// required. An interchange never mixes partners. Requested owners
    /// narrow the partner's owners, and each must be one of them.
    pub fn plan(&self, partner: Option<&str>, owners: &[OwnerSelector]) -> Result<Plan, PlanError> {
        let locode = self.locode.ok_or(PlanError::NoLocode)?;
        let partner = match partner {
            Some(name) => self
                .partners
                .iter()
                .find(|p| p.name == name)
                .ok_or_else(|| PlanError::UnknownPartner {
                    name: name.to_string(),
                    known: if self.partners.is_empty() {
                        "none".into()
                    } else {
                        self.partners.names()
                    },
                })?,
            None => match self.partners.0.as_slice() {
                [] => return Err(PlanError::NoPartners),
                [only] => only,
                _ => return Err(PlanError::PartnerRequired(self.partners.names())),
            },
        };
        let mut selected = partner.owners.clone();
        if !owners.is_empty() {
            for o in owners {
                if !partner.owners.iter().any(|c| o.matches(c)) {
                    return Err(PlanError::OwnerNotOfPartner {
                        owner: o.as_str().to_string(),
                        partner: partner.name.clone(),
                        owners: partner
                            .owners
                            .iter()
                            .map(OwnerCode::as_str)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
            }
            selected.retain(|c| owners.iter().any(|o| o.matches(c)));
        }
        Ok(Plan {
            partner: partner.clone(),
            locode,
            owners: selected,
        })
    }
}

/// The interchange control reference for an interchange prepared at `at`:
/// its Unix time in milliseconds (13 digits; data element 0020 allows
/// 14), so references from one site increase and do not repeat.
pub fn control_ref(at: DateTime<Utc>) -> String {
    at.timestamp_millis().max(0).to_string()
}

/// Escapes `'`, `+`, `:` and `?` with the release character `?`, and
/// writes `value` as ISO 8859-1, with [`REPLACEMENT`] for what UNOC cannot
/// carry (characters past U+00FF and control characters).
pub fn escape_into(value: &str, out: &mut Vec<u8>) {
    for c in value.chars() {
        match c {
            '\'' | '+' | ':' | '?' => {
                out.push(b'?');
                out.push(c as u8);
            }
            c if c.is_control() || (c as u32) > 0xFF => out.push(REPLACEMENT),
            // U+0020..=U+00FF less the controls is ISO 8859-1's graphic
            // range, one byte each.
            c => out.push(c as u32 as u8),
        }
    }
}

/// One segment under construction: its tag, then data elements, each of
/// components. Trailing empty elements and components are left out, as
/// the syntax allows.
struct Segment {
    elements: Vec<Vec<String>>,
}

impl Segment {
    fn new(tag: &str) -> Self {
        Self {
            elements: vec![vec![tag.to_string()]],
        }
    }

    /// Adds an element of `components`.
    fn el(mut self, components: &[&str]) -> Self {
        self.elements
            .push(components.iter().map(|c| c.to_string()).collect());
        self
    }

    fn write(mut self, out: &mut Vec<u8>) {
        for e in &mut self.elements {
            while e.last().is_some_and(String::is_empty) {
                e.pop();
            }
        }
        while self.elements.last().is_some_and(Vec::is_empty) {
            self.elements.pop();
        }
        for (i, e) in self.elements.iter().enumerate() {
            if i > 0 {
                out.push(b'+');
            }
            for (j, c) in e.iter().enumerate() {
                if j > 0 {
                    out.push(b':');
                }
                escape_into(c, out);
            }
        }
        out.extend_from_slice(b"'\n");
    }
}

/// `CCYYMMDDHHMM`, format 203.
fn ccyymmddhhmm(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M").to_string()
}

/// Writes one interchange, a message at a time: [`Writer::start`], then
/// [`Writer::movement`] for each passage in gate-time order, then
/// [`Writer::finish`]. Each call appends to the caller's buffer, so an
/// export of any size streams in pieces.
#[derive(Debug, Clone)]
pub struct Writer {
    plan: Plan,
    prepared_at: DateTime<Utc>,
    control_ref: String,
    /// Messages written so far; the next message's reference is one more.
    messages: u64,
}

impl Writer {
    /// A writer for `plan`, prepared at `prepared_at`, with the control
    /// reference [`control_ref`] gives for that time.
    pub fn new(plan: Plan, prepared_at: DateTime<Utc>) -> Self {
        Self {
            control_ref: control_ref(prepared_at),
            plan,
            prepared_at,
            messages: 0,
        }
    }

    /// The interchange header: `UNA` and `UNB`.
    pub fn start(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"UNA:+.? '\n");
        let date = self.prepared_at.format("%y%m%d").to_string();
        let time = self.prepared_at.format("%H%M").to_string();
        Segment::new("UNB")
            .el(&["UNOC", "3"])
            .el(&[&self.plan.partner.sender_id])
            .el(&[&self.plan.partner.recipient_id])
            .el(&[&date, &time])
            .el(&[&self.control_ref])
            .write(out);
    }

    /// Whether `p` is a movement for this interchange: it has a direction
    /// and its owner is one of the plan's.
    pub fn wants(&self, p: &Passage) -> bool {
        p.direction != Direction::None
            && self
                .plan
                .owners
                .iter()
                .any(|o| o.as_str() == p.container_owner)
    }

    /// Writes the message for `p` when it is a movement for this
    /// interchange ([`Writer::wants`]); says whether it did.
    pub fn movement(&mut self, p: &Passage, out: &mut Vec<u8>) -> bool {
        if !self.wants(p) {
            return false;
        }
        let partner = &self.plan.partner;
        let code = match p.direction {
            Direction::In => partner.bgm_in,
            _ => partner.bgm_out,
        }
        .to_string();
        self.messages += 1;
        let reference = self.messages.to_string();
        let mut segs = vec![
            Segment::new("UNH").el(&[&reference]).el(&[
                "CODECO",
                "D",
                "95B",
                "UN",
                &partner.association,
            ]),
            Segment::new("BGM")
                .el(&[&code])
                .el(&[&p.id.simple().to_string()])
                .el(&["9"]),
            Segment::new("DTM").el(&["137", &ccyymmddhhmm(self.prepared_at), "203"]),
        ];
        let eqd = Segment::new("EQD").el(&["CN"]).el(&[&p.container]);
        segs.push(match p.iso_type.as_deref().filter(|t| iso_type_valid(t)) {
            Some(t) => eqd.el(&[t, "102", "5"]),
            None => eqd,
        });
        segs.push(Segment::new("DTM").el(&["7", &ccyymmddhhmm(p.captured_at), "203"]));
        segs.push(
            Segment::new("LOC")
                .el(&["165"])
                .el(&[self.plan.locode.as_str(), "139", "6"]),
        );
        if let Some(plate) = p.truck_plate.as_deref().filter(|s| !s.is_empty()) {
            segs.push(
                Segment::new("TDT")
                    .el(&["1"])
                    .el(&[])
                    .el(&["3"])
                    .el(&["31"])
                    .el(&[])
                    .el(&[])
                    .el(&[])
                    .el(&[plate]),
            );
        }
        segs.push(Segment::new("CNT").el(&["16", "1"]));
        // UNT counts every segment of the message, UNH and itself included.
        let count = (segs.len() + 1).to_string();
        segs.push(Segment::new("UNT").el(&[&count]).el(&[&reference]));
        for seg in segs {
            seg.write(out);
        }
        true
    }

    /// The owner codes this interchange covers.
    pub fn owners(&self) -> &[OwnerCode] {
        &self.plan.owners
    }

    /// Messages written so far.
    pub fn messages(&self) -> u64 {
        self.messages
    }

    /// The interchange trailer: `UNZ` with the message count.
    pub fn finish(&self, out: &mut Vec<u8>) {
        Segment::new("UNZ")
            .el(&[&self.messages.to_string()])
            .el(&[&self.control_ref])
            .write(out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::passage::{Flags, SyncState};
    use chrono::TimeZone;
    use uuid::Uuid;

    fn partner(name: &str, owners: &[&str]) -> PartnerConfig {
        PartnerConfig {
            name: name.into(),
            owners: owners.iter().map(|o| o.to_string()).collect(),
            sender_id: None,
            recipient_id: None,
            association: default_association(),
            bgm_in: DEFAULT_BGM_IN,
            bgm_out: DEFAULT_BGM_OUT,
        }
    }

    fn config(list: &[PartnerConfig]) -> CodecoConfig {
        CodecoConfig {
            partners: Partners::new(list, "site-1").unwrap(),
            locode: Some(Locode::parse("krpus").unwrap()),
        }
    }

    fn passage(container: &str, direction: Direction, plate: Option<&str>) -> Passage {
        let at = Utc.with_ymd_and_hms(2024, 5, 1, 8, 30, 15).unwrap();
        Passage {
            id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            site_id: "site-1".into(),
            container: container.into(),
            container_owner: container[..4].into(),
            container_number: container[4..10].into(),
            check_digit: container[10..].parse().ok(),
            check_digit_ok: true,
            flags: Flags::empty(),
            captured_at: at,
            last_seen_at: at,
            seen_count: 1,
            camera_id: None,
            source_video: None,
            cropped_image_ref: None,
            confidence: None,
            created_at: at,
            updated_at: at,
            version: 1,
            sync_state: SyncState::Pending,
            corrections: Vec::new(),
            direction,
            lane: None,
            truck_plate: plate.map(str::to_string),
            iso_type: Some("22G1".into()),
            dwell_secs: None,
        }
    }

    fn text(b: &[u8]) -> String {
        b.iter().map(|&c| c as char).collect()
    }

    #[test]
    fn special_characters_are_released_and_others_replaced() {
        let mut out = Vec::new();
        escape_into("AB'C+D:E?F", &mut out);
        assert_eq!(text(&out), "AB?'C?+D?:E??F");
        out.clear();
        escape_into("12가3456 é\n", &mut out);
        assert_eq!(out, b"12_3456 \xe9_");
    }

    #[test]
    fn an_interchange_counts_its_segments_and_messages() {
        let plan = config(&[partner("MSC", &["MSCU", "MEDU"])])
            .plan(None, &[])
            .unwrap();
        let prepared = Utc.with_ymd_and_hms(2024, 5, 2, 1, 2, 3).unwrap();
        let mut w = Writer::new(plan, prepared);
        let mut out = Vec::new();
        w.start(&mut out);
        assert!(w.movement(
            &passage("MSCU1234566", Direction::In, Some("K'1+2")),
            &mut out
        ));
        assert!(!w.movement(&passage("MSCU1234566", Direction::None, None), &mut out));
        assert!(!w.movement(&passage("CSQU3054383", Direction::In, None), &mut out));
        assert!(w.movement(&passage("MEDU1234560", Direction::Out, None), &mut out));
        w.finish(&mut out);
        let ctrl = prepared.timestamp_millis().to_string();
        let expected = format!(
            "UNA:+.? '\n\
             UNB+UNOC:3+site-1+MSC+240502:0102+{ctrl}'\n\
             UNH+1+CODECO:D:95B:UN:SMDG20'\n\
             BGM+34+0123456789abcdef0123456789abcdef+9'\n\
             DTM+137:202405020102:203'\n\
             EQD+CN+MSCU1234566+22G1:102:5'\n\
             DTM+7:202405010830:203'\n\
             LOC+165+KRPUS:139:6'\n\
             TDT+1++3+31++++K?'1?+2'\n\
             CNT+16:1'\n\
             UNT+9+1'\n\
             UNH+2+CODECO:D:95B:UN:SMDG20'\n\
             BGM+36+0123456789abcdef0123456789abcdef+9'\n\
             DTM+137:202405020102:203'\n\
             EQD+CN+MEDU1234560+22G1:102:5'\n\
             DTM+7:202405010830:203'\n\
             LOC+165+KRPUS:139:6'\n\
             CNT+16:1'\n\
             UNT+8+2'\n\
             UNZ+2+{ctrl}'\n"
        );
        assert_eq!(text(&out), expected);
        assert_eq!(w.messages(), 2);
    }

    #[test]
    fn an_invalid_size_type_is_left_out_and_ids_are_escaped() {
        let mut c = partner("A+B", &["MSCU"]);
        c.sender_id = Some("ME:1".into());
        c.bgm_in = 270;
        let plan = config(&[c]).plan(Some("A+B"), &[]).unwrap();
        let mut w = Writer::new(plan, Utc.with_ymd_and_hms(2024, 5, 2, 0, 0, 0).unwrap());
        let mut out = Vec::new();
        w.start(&mut out);
        let mut p = passage("MSCU1234566", Direction::In, None);
        p.iso_type = Some("XXXX".into());
        w.movement(&p, &mut out);
        let t = text(&out);
        assert!(t.contains("UNB+UNOC:3+ME?:1+A?+B+"), "{t}");
        assert!(t.contains("BGM+270+"), "{t}");
        assert!(t.contains("EQD+CN+MSCU1234566'"), "{t}");
    }

    #[test]
    fn the_partner_is_named_or_the_only_one() {
        let one = config(&[partner("MSC", &["MSCU", "MEDU"])]);
        assert_eq!(one.plan(None, &[]).unwrap().partner.name, "MSC");
        let plan = one
            .plan(None, &[OwnerSelector::Code("MEDU".into())])
            .unwrap();
        assert_eq!(plan.owners, vec![OwnerCode::parse("MEDU").unwrap()]);
        let err = one
            .plan(None, &[OwnerSelector::Code("MAEU".into())])
            .unwrap_err();
        assert_eq!(err.param(), "owner");
        let two = config(&[partner("MSC", &["MSCU"]), partner("MAERSK", &["MAEU"])]);
        let err = two.plan(None, &[]).unwrap_err();
        assert_eq!(err.param(), "partner");
        assert!(err.to_string().contains("MSC, MAERSK"), "{err}");
        assert_eq!(two.plan(Some("nope"), &[]).unwrap_err().param(), "partner");
        assert_eq!(
            two.plan(Some("MAERSK"), &[OwnerSelector::Prefix("MAE".into())])
                .unwrap()
                .owners
                .len(),
            1
        );
        assert_eq!(
            CodecoConfig::default().plan(None, &[]).unwrap_err(),
            PlanError::NoLocode
        );
    }

    #[test]
    fn partners_and_locodes_are_checked_by_key() {
        let err = |list: &[PartnerConfig]| Partners::new(list, "site-1").unwrap_err();
        assert!(err(&[partner("MSC", &[])]).starts_with("partners[0].owners"));
        assert!(err(&[partner("MSC", &["MS1U"])]).starts_with("partners[0].owners[0]"));
        assert!(err(&[partner("", &["MSCU"])]).starts_with("partners[0].name"));
        assert!(err(&[partner("A", &["MSCU"]), partner("A", &["MSCU"])])
            .starts_with("partners[1].name"));
        let mut c = partner("MSC", &["MSCU"]);
        c.association = "SMDG-20".into();
        assert!(err(&[c.clone()]).starts_with("partners[0].association"));
        c.association = "SMDG20".into();
        c.bgm_out = 0;
        assert!(err(&[c.clone()]).starts_with("partners[0].bgm_out"));
        c.bgm_out = 36;
        assert!(Partners::new(&[c.clone()], &"s".repeat(40))
            .unwrap_err()
            .starts_with("partners[0].sender_id"));
        c.recipient_id = Some("x".repeat(36));
        assert!(err(&[c]).starts_with("partners[0].recipient_id"));
        assert_eq!(Locode::parse("krpus").unwrap().as_str(), "KRPUS");
        assert_eq!(Locode::parse("DEHAM").unwrap().as_str(), "DEHAM");
        assert_eq!(Locode::parse("US2NY").unwrap().as_str(), "US2NY");
        for bad in ["", "KRPU", "KRPUSX", "K1PUS", "KRP1S", "KR-US"] {
            assert!(Locode::parse(bad).is_err(), "{bad}");
        }
    }
}
