//! Reading a container number the way OCR gets it wrong.
//!
//! Gate OCR confuses look-alike characters: `O`↔`0`, `I`↔`1`, `S`↔`5`,
//! `B`↔`8`, `Z`↔`2`, `G`↔`6`, and reads `D` as `0`. ISO 6346 says which
//! kind of character belongs where: positions 1–4 are letters (three of
//! owner code and the category letter), 5–10 the serial's digits, 11 the
//! check digit. So a digit in a letter position, or a letter in a digit
//! position, is a misread whose true character is its look-alike; only `0`
//! in a letter position is ambiguous (`O` or `D`).
//!
//! [`interpret`] turns the text of one read into a number:
//! 1. Each character of the wrong kind maps through the look-alike table.
//! 2. When that leaves more than one candidate (`0` → `O`/`D`), the check
//!    digit picks, if exactly one candidate passes it; otherwise the
//!    owner-code allowlist, if exactly one candidate is on it; otherwise
//!    the likelier look-alike (`O`).
//! 3. A character with no look-alike of the right kind (`7` in the owner
//!    code, `K` in the serial) marks its position as misread. With a check
//!    digit, the one character there that passes it is taken, if exactly
//!    one does (or exactly one of those is on the allowlist). Otherwise
//!    the read is unresolved: it is kept for an operator, not guessed.
//!
//! A check digit that passes is strong evidence, not proof: a remainder of
//! 10 is written as 0, so two numbers can share a check digit, and `A`,
//! `K` and `U` are worth 10, 21 and 32, equal mod 11, so swapping one for
//! another at a position goes unseen. A read whose check digit fails after
//! mapping is not "repaired" by trying every substitution: about one in
//! eleven of them passes by chance, so none is plausible on its own. The
//! passage's consensus over many reads settles such a number instead (see
//! [`crate::fold`]).

use std::collections::HashSet;

use crate::container::{CheckDigit, ContainerNumber, OwnerCode, SerialNumber};
use crate::passage::CorrectionRule;

/// The owner codes an operator expects at the yard: the lines that call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerCodes(HashSet<String>);

impl OwnerCodes {
    /// Parses a list with one code a line: three letters, or three letters
    /// and the category letter (`MSC` or `MSCU`). Blank lines and lines
    /// starting with `#` are skipped. An error names the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut codes = HashSet::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let code = line.to_ascii_uppercase();
            if !(3..=4).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "line {}: an owner code is three letters, optionally with the category letter (such as MSCU); got {:?}",
                    n + 1,
                    line.chars().take(20).collect::<String>()
                ));
            }
            codes.insert(code[..3].to_string());
        }
        Ok(Self(codes))
    }

    /// Whether the owner (its first three letters) is on the list.
    pub fn contains(&self, owner: &OwnerCode) -> bool {
        self.0.contains(&owner.as_str()[..3])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What the text of one read turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Interpretation {
    /// A number, and how it was reached when it is not the text as read.
    Number {
        number: ContainerNumber,
        correction: Option<ReadCorrection>,
    },
    /// Ten or eleven letters and digits that cannot be made into a number
    /// with confidence; kept for an operator.
    Unresolved,
}

/// How a read's own text was corrected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCorrection {
    /// The text as read (upper case, without separators).
    pub from: String,
    pub rule: CorrectionRule,
}

/// Removes separators and upper-cases; `None` unless the rest is 10 or 11
/// ASCII letters and digits, the shape of a container number.
pub fn compact(text: &str) -> Option<String> {
    let compact: String = text
        .chars()
        .filter(|c| !matches!(c, ' ' | '\t' | '-' | '.' | '/' | '_'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    ((10..=11).contains(&compact.len()) && compact.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then_some(compact)
}

/// The letters a digit in a letter position may have been, likelier first.
fn letters_for(digit: u8) -> &'static [u8] {
    match digit {
        b'0' => b"OD",
        b'1' => b"I",
        b'2' => b"Z",
        b'5' => b"S",
        b'6' => b"G",
        b'8' => b"B",
        _ => b"",
    }
}

/// The digit a letter in a digit position may have been.
fn digit_for(letter: u8) -> Option<u8> {
    match letter {
        b'O' | b'D' => Some(b'0'),
        b'I' => Some(b'1'),
        b'Z' => Some(b'2'),
        b'S' => Some(b'5'),
        b'G' => Some(b'6'),
        b'B' => Some(b'8'),
        _ => None,
    }
}

fn is_letter_position(i: usize) -> bool {
    i < 4
}

/// The characters position `i` may hold, likelier first; empty when the
/// character there has no look-alike of the right kind.
fn options(i: usize, c: u8) -> Vec<u8> {
    match (is_letter_position(i), c.is_ascii_uppercase()) {
        (true, true) | (false, false) => vec![c],
        (true, false) => letters_for(c).to_vec(),
        (false, true) => digit_for(c).into_iter().collect(),
    }
}

/// Every character of the right kind for position `i`.
fn all_of_kind(i: usize) -> Vec<u8> {
    if is_letter_position(i) {
        (b'A'..=b'Z').collect()
    } else {
        (b'0'..=b'9').collect()
    }
}

/// Every combination of per-position options, likelier first (fewer
/// second choices first).
fn combinations(opts: &[Vec<u8>]) -> Vec<(Vec<u8>, usize)> {
    let mut out: Vec<(Vec<u8>, usize)> = vec![(Vec::with_capacity(opts.len()), 0)];
    for o in opts {
        let mut next = Vec::with_capacity(out.len() * o.len());
        for (prefix, cost) in &out {
            for (rank, &c) in o.iter().enumerate() {
                let mut p = prefix.clone();
                p.push(c);
                next.push((p, cost + rank));
            }
        }
        out = next;
    }
    out.sort_by_key(|(_, cost)| *cost);
    out
}

fn number_of(chars: &[u8]) -> Option<ContainerNumber> {
    let text = std::str::from_utf8(chars).ok()?;
    let owner = OwnerCode::parse(&text[..4]).ok()?;
    let serial = SerialNumber::parse(&text[4..10]).ok()?;
    let check = match text.get(10..11) {
        Some(d) => Some(CheckDigit::parse(d).ok()?),
        None => None,
    };
    Some(ContainerNumber::new(owner, serial, check))
}

fn passes(n: &ContainerNumber) -> bool {
    n.check_status() == crate::container::CheckStatus::Valid
}

/// The one candidate (of several, likelier first) whose owner is on the
/// allowlist, if exactly one is.
fn listed(candidates: &[ContainerNumber], owners: Option<&OwnerCodes>) -> Option<ContainerNumber> {
    let owners = owners?;
    let mut on_list = candidates.iter().filter(|n| owners.contains(&n.owner()));
    match (on_list.next(), on_list.next()) {
        (Some(n), None) => Some(*n),
        _ => None,
    }
}

/// Interprets the compact text of one read (see [`compact`]).
pub fn interpret(text: &str, owners: Option<&OwnerCodes>) -> Interpretation {
    let chars = text.as_bytes();
    if !(10..=11).contains(&chars.len()) || !chars.iter().all(u8::is_ascii_alphanumeric) {
        return Interpretation::Unresolved;
    }
    // An unreadable check digit is no check digit; raw keeps what it was.
    let chars = match chars.get(10) {
        Some(c) if c.is_ascii_uppercase() && digit_for(*c).is_none() => &chars[..10],
        _ => chars,
    };
    let mut opts: Vec<Vec<u8>> = chars
        .iter()
        .enumerate()
        .map(|(i, &c)| options(i, c))
        .collect();
    let unreadable: Vec<usize> = (0..opts.len()).filter(|&i| opts[i].is_empty()).collect();
    let corrected = |number: ContainerNumber, rule: CorrectionRule| {
        let changed = number.normalized().as_bytes() != chars;
        Interpretation::Number {
            number,
            correction: changed.then(|| ReadCorrection {
                from: text.to_string(),
                rule,
            }),
        }
    };
    match unreadable.as_slice() {
        [] => {
            let candidates: Vec<ContainerNumber> = combinations(&opts)
                .into_iter()
                .filter_map(|(c, _)| number_of(&c))
                .collect();
            let Some(first) = candidates.first().copied() else {
                return Interpretation::Unresolved;
            };
            let valid: Vec<ContainerNumber> = candidates.iter().copied().filter(passes).collect();
            match valid.as_slice() {
                [only] => corrected(*only, CorrectionRule::Lookalike),
                // Several pass (a remainder of 10 reads as 0): the
                // allowlist may tell them apart.
                [likeliest, ..] => match listed(&valid, owners) {
                    Some(n) => corrected(n, CorrectionRule::OwnerCode),
                    None => corrected(*likeliest, CorrectionRule::Lookalike),
                },
                // None passes, or there is no check digit: the allowlist,
                // else the likelier look-alike. The check digit, if any,
                // stays wrong and the read is flagged.
                [] => corrected(
                    listed(&candidates, owners).unwrap_or(first),
                    CorrectionRule::Lookalike,
                ),
            }
        }
        // One misread position, and a check digit to find it by.
        [i] if chars.len() == 11 => {
            opts[*i] = all_of_kind(*i);
            let candidates: Vec<ContainerNumber> = combinations(&opts)
                .into_iter()
                .filter_map(|(c, _)| number_of(&c))
                .filter(passes)
                .collect();
            match candidates.as_slice() {
                [only] => corrected(*only, CorrectionRule::CheckDigit),
                _ => match listed(&candidates, owners) {
                    Some(n) => corrected(n, CorrectionRule::OwnerCode),
                    None => Interpretation::Unresolved,
                },
            }
        }
        _ => Interpretation::Unresolved,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn number(text: &str, owners: Option<&OwnerCodes>) -> (String, Option<CorrectionRule>) {
        match interpret(text, owners) {
            Interpretation::Number { number, correction } => {
                (number.normalized(), correction.map(|c| c.rule))
            }
            Interpretation::Unresolved => ("unresolved".into(), None),
        }
    }

    #[test]
    fn lookalikes_map_by_position() {
        // A digit where a letter belongs, a letter where a digit belongs.
        assert_eq!(
            number("M5CU1234566", None),
            ("MSCU1234566".into(), Some(CorrectionRule::Lookalike))
        );
        assert_eq!(
            number("MSCUI2345G6", None),
            ("MSCU1234566".into(), Some(CorrectionRule::Lookalike))
        );
        assert_eq!(
            number("8SCU1234566", None).0,
            "BSCU1234566",
            "8 in a letter position is B"
        );
        assert_eq!(number("MSCU1234566", None), ("MSCU1234566".into(), None));
        // The check digit position is a digit too.
        assert_eq!(number("MSCU123456G", None).0, "MSCU1234566");
    }

    #[test]
    fn the_check_digit_settles_o_against_d() {
        // DFSU and OFSU: only one passes each check digit.
        let d = ContainerNumber::parse("DFSU123456")
            .unwrap()
            .computed_check_digit();
        let o = ContainerNumber::parse("OFSU123456")
            .unwrap()
            .computed_check_digit();
        assert_ne!(d, o);
        assert_eq!(
            number(&format!("0FSU123456{d}"), None).0,
            format!("DFSU123456{d}")
        );
        assert_eq!(
            number(&format!("0FSU123456{o}"), None).0,
            format!("OFSU123456{o}")
        );
        // Without a check digit, the allowlist; without that, O.
        let list = OwnerCodes::parse("DFS\n").unwrap();
        assert_eq!(
            number("0FSU123456", Some(&list)),
            ("DFSU123456".into(), Some(CorrectionRule::Lookalike))
        );
        assert_eq!(number("0FSU123456", None).0, "OFSU123456");
    }

    #[test]
    fn one_unreadable_position_is_found_by_the_check_digit() {
        // 'K' has no digit look-alike; exactly one digit there passes.
        assert_eq!(
            number("MSCU12K4566", None),
            ("MSCU1234566".into(), Some(CorrectionRule::CheckDigit))
        );
        // Without a check digit, or with two unreadable positions: kept
        // for an operator.
        assert_eq!(number("MSCU12K456", None).0, "unresolved");
        assert_eq!(number("MSCU12K45X6", None).0, "unresolved");
        assert_eq!(number("M7CU123456", None).0, "unresolved");
    }

    #[test]
    fn allowlist_parsing_names_the_line() {
        let list = OwnerCodes::parse("# lines calling here\nMSCU\n\nmae\n").unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&OwnerCode::parse("MAEU").unwrap()));
        let err = OwnerCodes::parse("MSCU\nM5CU\n").unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn compact_keeps_only_number_shaped_text() {
        assert_eq!(compact("msc0 123456-6").as_deref(), Some("MSC01234566"));
        assert_eq!(compact("HELLO"), None);
        assert_eq!(compact("MSCU12345678"), None);
        assert_eq!(compact("MSCU12345é"), None);
    }

    fn valid_number() -> impl Strategy<Value = String> {
        ("[A-Z]{3}[UJZ]", "[0-9]{6}").prop_map(|(o, s)| {
            let n = ContainerNumber::parse(&format!("{o}{s}")).unwrap();
            format!("{o}{s}{}", n.computed_check_digit())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_valid_number_never_changes(n in valid_number()) {
            prop_assert_eq!(number(&n, None), (n.clone(), None));
        }

        #[test]
        fn a_corrected_number_with_a_check_digit_always_passes_it(
            n in valid_number(), noise in prop::collection::vec((0usize..11, any::<u8>()), 0..4)
        ) {
            // Any damage at all: what comes out corrected either passes
            // its check digit or is unresolved.
            let mut chars = n.into_bytes();
            for (i, c) in noise {
                chars[i] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"[usize::from(c) % 36];
            }
            let text = String::from_utf8(chars).unwrap();
            // A number chosen by the check digit or the allowlist passes
            // its check digit; a look-alike mapping never turns a read
            // that passed into one that fails.
            let before = number_of(&text.clone().into_bytes()).map(|n| passes(&n));
            if let Interpretation::Number { number, correction: Some(c) } = interpret(&text, None) {
                if matches!(c.rule, CorrectionRule::CheckDigit | CorrectionRule::OwnerCode) {
                    prop_assert!(passes(&number), "{text} -> {number}");
                }
                if before == Some(true) {
                    prop_assert!(passes(&number), "{text} -> {number}");
                }
            }
        }

        #[test]
        fn lookalike_confusions_alone_are_undone(
            n in valid_number(), flips in prop::collection::vec(0usize..11, 0..4)
        ) {
            // Cross-kind confusions (digit for letter, letter for digit)
            // are all undone, with the check digit settling O against D.
            let mut chars = n.clone().into_bytes();
            for i in flips {
                let c = chars[i];
                let swapped = if is_letter_position(i) {
                    match c { b'O' | b'D' => b'0', b'I' => b'1', b'Z' => b'2', b'S' => b'5', b'G' => b'6', b'B' => b'8', other => other }
                } else {
                    match c { b'0' => b'O', b'1' => b'I', b'2' => b'Z', b'5' => b'S', b'6' => b'G', b'8' => b'B', other => other }
                };
                chars[i] = swapped;
            }
            let text = String::from_utf8(chars).unwrap();
            let (got, _) = number(&text, None);
            prop_assert!(passes(&ContainerNumber::parse(&got).unwrap()), "{text} -> {got}");
            // O and D can share a check digit (a remainder of 10 is 0), so
            // only then may the answer differ from the truth.
            if got != n {
                let a = ContainerNumber::parse(&got).unwrap();
                prop_assert_eq!(a.computed_check_digit(), ContainerNumber::parse(&n).unwrap().computed_check_digit());
            }
        }
    }
}
