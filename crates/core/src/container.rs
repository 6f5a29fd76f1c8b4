//! ISO 6346 container numbers.
//!
//! A container number is an owner code of three letters, a category letter
//! (`U`, `J` or `Z`), a six-digit serial and a check digit, as in
//! `CSQU3054383`. The types here parse rather than validate: once a value of
//! [`OwnerCode`], [`SerialNumber`] or [`CheckDigit`] exists, it is well formed.
//! What is merely *suspicious* (a wrong or missing check digit, an unknown
//! category letter) is not an error here; [`crate::read`] decides whether to
//! flag it or reject it.

use std::fmt;

use crate::error::{Field, FieldError};

/// The owner code together with its category letter, such as `MSCU`.
///
/// The first three letters name the owner; the fourth is the equipment
/// category. The seed's `container_owner` column stores all four.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerCode([u8; 4]);

impl OwnerCode {
    /// Parses four letters in any case, ignoring surrounding blanks.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        Self::parse_as(input.trim(), Field::Owner)
    }

    fn parse_as(input: &str, field: Field) -> Result<Self, FieldError> {
        let bytes = input.as_bytes();
        if bytes.len() != 4 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(FieldError::new(
                field,
                format!(
                    "owner code must be three letters and a category letter, such as MSCU; got {:?}",
                    truncate(input)
                ),
            ));
        }
        let mut code = [0u8; 4];
        for (slot, b) in code.iter_mut().zip(bytes) {
            *slot = b.to_ascii_uppercase();
        }
        Ok(Self(code))
    }

    /// The four letters, upper case.
    pub fn as_str(&self) -> &str {
        // The constructor admits only ASCII letters.
        std::str::from_utf8(&self.0).expect("owner code is ASCII")
    }

    /// The equipment category letter (the fourth letter).
    pub fn category(&self) -> char {
        self.0[3] as char
    }

    /// Whether the category letter is one ISO 6346 defines: `U` (freight
    /// container), `J` (detachable equipment) or `Z` (trailer or chassis).
    pub fn category_known(&self) -> bool {
        matches!(self.0[3], b'U' | b'J' | b'Z')
    }
}

impl fmt::Display for OwnerCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The six-digit serial number, such as `123456`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SerialNumber([u8; 6]);

impl SerialNumber {
    /// Parses exactly six digits, ignoring surrounding blanks.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        Self::parse_as(input.trim(), Field::Number)
    }

    fn parse_as(input: &str, field: Field) -> Result<Self, FieldError> {
        let bytes = input.as_bytes();
        if bytes.len() != 6 || !bytes.iter().all(u8::is_ascii_digit) {
            return Err(FieldError::new(
                field,
                format!(
                    "serial number must be exactly six digits; got {:?}",
                    truncate(input)
                ),
            ));
        }
        let mut serial = [0u8; 6];
        serial.copy_from_slice(bytes);
        Ok(Self(serial))
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("serial is ASCII digits")
    }
}

impl fmt::Display for SerialNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check digit, 0 to 9.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CheckDigit(u8);

impl CheckDigit {
    /// Accepts 0 to 9.
    pub fn new(value: u8) -> Result<Self, FieldError> {
        if value <= 9 {
            Ok(Self(value))
        } else {
            Err(FieldError::new(
                Field::CheckDigit,
                format!("check digit must be a single digit 0-9; got {value}"),
            ))
        }
    }

    /// Accepts one digit character, as some OCR modules send `"3"`.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let trimmed = input.trim();
        match trimmed.as_bytes() {
            [d] if d.is_ascii_digit() => Ok(Self(d - b'0')),
            _ => Err(FieldError::new(
                Field::CheckDigit,
                format!(
                    "check digit must be a single digit 0-9; got {:?}",
                    truncate(trimmed)
                ),
            )),
        }
    }

    /// Computes the check digit of an owner code and serial.
    ///
    /// Letters take the values 10 upwards, skipping the multiples of 11
    /// (so A=10, B=12, ..., Z=38); digits keep their value. Position `i`
    /// (from 0) is weighted by `2^i`; the sum is taken mod 11, then mod 10.
    pub fn compute(owner: &OwnerCode, serial: &SerialNumber) -> Self {
        let sum: u32 = owner
            .0
            .iter()
            .map(|&b| letter_value(b))
            .chain(serial.0.iter().map(|&b| u32::from(b - b'0')))
            .enumerate()
            .map(|(i, v)| v << i)
            .sum();
        // Both casts are in range: the result is 0..=9.
        Self(((sum % 11) % 10) as u8)
    }

    pub fn value(&self) -> u8 {
        self.0
    }
}

impl fmt::Display for CheckDigit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The ISO 6346 value of an upper-case letter: 10 upwards, skipping 11, 22
/// and 33.
pub(crate) fn letter_value(b: u8) -> u32 {
    let mut v = 10 + u32::from(b - b'A');
    for skipped in [11, 22, 33] {
        if v >= skipped {
            v += 1;
        }
    }
    v
}

/// How a container number's check digit compares with the computed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckStatus {
    /// Given and equal to the computed digit.
    Valid,
    /// Not given at all.
    Missing,
    /// Given but different from the computed digit.
    Mismatch,
}

/// A whole container number: owner code, serial and, when the read carried
/// one, its check digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContainerNumber {
    owner: OwnerCode,
    serial: SerialNumber,
    check_digit: Option<CheckDigit>,
}

impl ContainerNumber {
    pub fn new(owner: OwnerCode, serial: SerialNumber, check_digit: Option<CheckDigit>) -> Self {
        Self {
            owner,
            serial,
            check_digit,
        }
    }

    /// Parses one string such as `"CSQU3054383"`, `"CSQU 305438 3"` or
    /// `"csqu305438-3"`: any case, with blanks, dashes, dots or slashes as
    /// separators, with or without the check digit.
    pub fn parse(input: &str) -> Result<Self, FieldError> {
        let compact: String = input
            .chars()
            .filter(|c| !matches!(c, ' ' | '\t' | '-' | '.' | '/' | '_'))
            .collect();
        let too_short = || {
            FieldError::new(
                Field::Container,
                format!(
                    "container number must be four letters and six digits with an optional check digit, such as CSQU3054383; got {:?}",
                    truncate(input.trim())
                ),
            )
        };
        if !compact.is_ascii() || !(10..=11).contains(&compact.len()) {
            return Err(too_short());
        }
        let owner = OwnerCode::parse_as(&compact[..4], Field::Container)?;
        let serial = SerialNumber::parse_as(&compact[4..10], Field::Container)?;
        let check_digit = match compact.get(10..) {
            Some("") | None => None,
            Some(d) => Some(CheckDigit::parse(d).map_err(|_| {
                FieldError::new(
                    Field::Container,
                    format!(
                        "the check digit of {:?} must be a digit",
                        truncate(input.trim())
                    ),
                )
            })?),
        };
        Ok(Self::new(owner, serial, check_digit))
    }

    pub fn owner(&self) -> OwnerCode {
        self.owner
    }

    pub fn serial(&self) -> SerialNumber {
        self.serial
    }

    pub fn check_digit(&self) -> Option<CheckDigit> {
        self.check_digit
    }

    /// The check digit this owner code and serial should carry.
    pub fn computed_check_digit(&self) -> CheckDigit {
        CheckDigit::compute(&self.owner, &self.serial)
    }

    pub fn check_status(&self) -> CheckStatus {
        match self.check_digit {
            None => CheckStatus::Missing,
            Some(d) if d == self.computed_check_digit() => CheckStatus::Valid,
            Some(_) => CheckStatus::Mismatch,
        }
    }

    /// The normalised form: upper case, no separators, with the check digit
    /// when one was given (`MSCU1234566`, or `MSCU123456` without).
    pub fn normalized(&self) -> String {
        let mut s = String::with_capacity(11);
        s.push_str(self.owner.as_str());
        s.push_str(self.serial.as_str());
        if let Some(d) = self.check_digit {
            s.push((b'0' + d.value()) as char);
        }
        s
    }
}

impl fmt::Display for ContainerNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.normalized())
    }
}

/// Keeps echoed input short, so an error message never carries a whole
/// hostile payload.
fn truncate(s: &str) -> String {
    const MAX: usize = 32;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(MAX).collect();
        t.push('…');
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cn(s: &str) -> ContainerNumber {
        ContainerNumber::parse(s).unwrap()
    }

    #[test]
    fn worked_example_has_check_digit_three() {
        let c = cn("CSQU305438");
        assert_eq!(c.computed_check_digit().value(), 3);
        assert_eq!(cn("CSQU3054383").check_status(), CheckStatus::Valid);
    }

    #[test]
    fn mscu_examples() {
        assert_eq!(cn("MSCU1234566").check_status(), CheckStatus::Valid);
        assert_eq!(cn("MSCU1234560").check_status(), CheckStatus::Mismatch);
        assert_eq!(cn("MSCU123456").check_status(), CheckStatus::Missing);
    }

    #[test]
    fn letter_values_skip_multiples_of_eleven() {
        let values: Vec<u32> = (b'A'..=b'Z').map(letter_value).collect();
        assert_eq!(values[0], 10); // A
        assert_eq!(values[1], 12); // B
        assert_eq!(values[10], 21); // K
        assert_eq!(values[11], 23); // L
        assert_eq!(values[20], 32); // U
        assert_eq!(values[21], 34); // V
        assert_eq!(values[25], 38); // Z
        assert!(values.iter().all(|v| v % 11 != 0));
    }

    #[test]
    fn accepts_separators_and_case() {
        for s in [
            "CSQU3054383",
            "CSQU 305438 3",
            "csqu305438-3",
            " csqu.305438/3 ",
        ] {
            assert_eq!(cn(s).normalized(), "CSQU3054383", "{s}");
        }
        assert_eq!(cn("msku 123456").normalized(), "MSKU123456");
    }

    #[test]
    fn rejects_malformed_strings_naming_the_field() {
        for s in [
            "",
            "CSQ3054383",
            "CSQU30543",
            "1SQU3054383",
            "CSQUA054383",
            "CSQU305438X",
            "CSQU30543833",
            "ÇSQU3054383",
        ] {
            let err = ContainerNumber::parse(s).unwrap_err();
            assert_eq!(err.field, Field::Container, "{s}");
        }
    }

    #[test]
    fn owner_and_serial_errors_name_their_fields() {
        assert_eq!(OwnerCode::parse("MS1U").unwrap_err().field, Field::Owner);
        assert_eq!(OwnerCode::parse("MSCUX").unwrap_err().field, Field::Owner);
        assert_eq!(
            SerialNumber::parse("12345").unwrap_err().field,
            Field::Number
        );
        assert_eq!(
            SerialNumber::parse("12345a").unwrap_err().field,
            Field::Number
        );
        assert_eq!(
            CheckDigit::parse("10").unwrap_err().field,
            Field::CheckDigit
        );
        assert_eq!(CheckDigit::new(10).unwrap_err().field, Field::CheckDigit);
    }

    #[test]
    fn category_letters() {
        assert!(OwnerCode::parse("MSCU").unwrap().category_known());
        assert!(OwnerCode::parse("MSCJ").unwrap().category_known());
        assert!(OwnerCode::parse("mscz").unwrap().category_known());
        assert!(!OwnerCode::parse("MSCX").unwrap().category_known());
    }

    #[test]
    fn error_messages_do_not_echo_long_input() {
        let long = "A".repeat(10_000);
        let err = ContainerNumber::parse(&long).unwrap_err();
        assert!(err.message.len() < 200, "{}", err.message);
    }

    fn owner_strategy() -> impl Strategy<Value = String> {
        "[A-Z]{3}[UJZ]"
    }

    proptest! {
        #[test]
        fn computed_digit_always_validates(owner in owner_strategy(), serial in "[0-9]{6}") {
            let bare = cn(&format!("{owner}{serial}"));
            let d = bare.computed_check_digit();
            let full = cn(&format!("{owner}{serial}{d}"));
            prop_assert_eq!(full.check_status(), CheckStatus::Valid);
            prop_assert_eq!(full.normalized().len(), 11);
        }

        #[test]
        fn any_single_digit_change_is_detected_unless_mod_ten_collides(
            owner in owner_strategy(), serial in "[0-9]{6}", pos in 0usize..6, delta in 1u8..10
        ) {
            // Changing one serial digit changes the weighted sum by
            // delta * 2^pos, which is never a multiple of 11; the digit can
            // only coincide when the mod-11 result is 10 (folded to 0).
            let mut changed = serial.clone().into_bytes();
            changed[pos] = b'0' + (changed[pos] - b'0' + delta) % 10;
            let a = cn(&format!("{owner}{serial}"));
            let b = cn(&format!("{owner}{}", String::from_utf8(changed).unwrap()));
            let raw = |c: &ContainerNumber| {
                let s: u32 = c.owner().0.iter().map(|&x| letter_value(x))
                    .chain(c.serial().0.iter().map(|&x| u32::from(x - b'0')))
                    .enumerate().map(|(i, v)| v << i).sum();
                s % 11
            };
            prop_assert_ne!(raw(&a), raw(&b));
        }

        #[test]
        fn parse_is_case_and_separator_insensitive(owner in "[a-zA-Z]{3}[uUjJzZ]", serial in "[0-9]{6}", sep in "[ ./-]{0,2}") {
            let a = cn(&format!("{owner}{sep}{serial}"));
            let b = cn(&format!("{}{}", owner.to_uppercase(), serial));
            prop_assert_eq!(a, b);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = ContainerNumber::parse(&s);
            let _ = OwnerCode::parse(&s);
            let _ = SerialNumber::parse(&s);
            let _ = CheckDigit::parse(&s);
        }
    }
}
