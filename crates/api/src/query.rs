//! Strict query strings, one mechanism for every route.
//!
//! A route declares its parameters as a serde struct with
//! `#[serde(deny_unknown_fields)]` and parses the query with [`parse`].
//! serde refuses unknown and repeated parameters; `serde_path_to_error`
//! names the parameter at fault; and each value is parsed from its text by
//! [`FromParam`], whose error is a phrase that follows the parameter's
//! name ("must be an integer from 1 to 1000"). Every failure is a 400
//! naming the parameter. Values reach SQL only as bound parameters.
//!
//! # Layout
//! - [`parse`]: query text to a route's struct, or the 400.
//! - [`FromParam`] and [`param`]: how one value is read; a field says
//!   `#[serde(default, deserialize_with = "param")]`.
//! - The value kinds routes share: [`Limit`], [`Fragment`], [`Serial`],
//!   [`Id`], [`Check`], times, cursors, orders and the other enums.

use chrono::{DateTime, Datelike, Utc};
use gatelog_local_store::export::ExportFormat;
use gatelog_local_store::{Bucket, Cursor, Order, SyncFilter};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};

use crate::ApiError;

/// The longest parameter name repeated back in an error.
const MAX_NAME_SHOWN: usize = 40;
/// The longest camera or site id accepted in a filter.
pub const MAX_ID_LEN: usize = 256;

/// Parses `query` into `T`, strictly: an unknown or repeated parameter, or
/// a value of the wrong shape, is a 400 that names the parameter.
pub fn parse<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let pairs = form_urlencoded::parse(query.as_bytes());
    serde_path_to_error::deserialize(serde_urlencoded::Deserializer::new(pairs))
        .map_err(|e| refusal(query, &e))
}

/// The 400 for a query serde refused.
fn refusal(query: &str, e: &serde_path_to_error::Error<serde::de::value::Error>) -> ApiError {
    let inner = e.inner().to_string();
    let name = match e.path().iter().next_back() {
        Some(serde_path_to_error::Segment::Map { key }) => key.clone(),
        // An error at the top of the struct is serde's "duplicate field",
        // which does not say which; the first repeated name is the one.
        _ => match repeated(query) {
            Some(name) => {
                let name = shown(&name);
                return ApiError::bad_param(&name, format!("{name} is given more than once"));
            }
            None => return ApiError::bad_param("query", inner),
        },
    };
    let shown_name = shown(&name);
    // serde says "unknown field `x`, expected one of `a`, `b`" (or "there
    // are no fields"); the name is taken off so a long one is not repeated
    // whole.
    if let Some(rest) = inner.strip_prefix(&format!("unknown field `{name}`, ")) {
        let known = match rest {
            "there are no fields" => "this route takes no parameters".to_string(),
            rest => rest.to_string(),
        };
        return ApiError::bad_param(
            &shown_name,
            format!("unknown parameter {shown_name:?}; {known}"),
        );
    }
    ApiError::bad_param(&shown_name, format!("{shown_name} {inner}"))
}

/// The first parameter name given twice in `query`.
fn repeated(query: &str) -> Option<String> {
    let mut seen = std::collections::HashSet::new();
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, _)| k.into_owned())
        .find(|k| !seen.insert(k.clone()))
}

fn shown(name: &str) -> String {
    name.chars().take(MAX_NAME_SHOWN).collect()
}

/// The parameters of a route that takes none.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NoParams {}

/// A value read from a parameter's text. The error is a phrase that reads
/// after the parameter's name, such as "must be ok or bad".
pub trait FromParam: Sized {
    fn from_param(text: &str) -> Result<Self, String>;
}

/// Reads an optional parameter through [`FromParam`]; use it with
/// `#[serde(default, deserialize_with = "param")]`.
pub fn param<'de, D: Deserializer<'de>, T: FromParam>(d: D) -> Result<Option<T>, D::Error> {
    let text = String::deserialize(d)?;
    T::from_param(&text).map(Some).map_err(D::Error::custom)
}

/// A page size from 1 to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit<const MAX: u32>(pub u32);

impl<const MAX: u32> FromParam for Limit<MAX> {
    fn from_param(text: &str) -> Result<Self, String> {
        text.parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX).contains(n))
            .map(Self)
            .ok_or_else(|| format!("must be an integer from 1 to {MAX}"))
    }
}

/// A fragment of a container number: upper-cased, separators (space,
/// `-`, `.`, `/`) dropped, 1 to `MAX` letters or digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment<const MAX: usize>(pub String);

impl<const MAX: usize> FromParam for Fragment<MAX> {
    fn from_param(text: &str) -> Result<Self, String> {
        let v: String = text
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '/'))
            .collect::<String>()
            .to_ascii_uppercase();
        if v.is_empty() || v.len() > MAX || !v.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!("must be 1 to {MAX} letters or digits"));
        }
        Ok(Self(v))
    }
}

/// An owner filter: four letters name the owner code with its category
/// letter; three name the owner alone, which is a prefix of the number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerFilter {
    Owner(String),
    Prefix(String),
}

impl FromParam for OwnerFilter {
    fn from_param(text: &str) -> Result<Self, String> {
        let Fragment::<4>(v) = Fragment::from_param(text)?;
        if !v.chars().all(|c| c.is_ascii_alphabetic()) || v.len() < 3 {
            return Err("must be 3 or 4 letters, such as MSCU".into());
        }
        Ok(if v.len() == 3 {
            Self::Prefix(v)
        } else {
            Self::Owner(v)
        })
    }
}

/// A comma-separated list of owner filters, such as `MSCU,MEDU`. A
/// listing takes one; a CODECO export narrows its partner's owners to
/// several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerList(pub Vec<OwnerFilter>);

/// The most owners one list may name.
pub const MAX_OWNERS: usize = 100;

impl FromParam for OwnerList {
    fn from_param(text: &str) -> Result<Self, String> {
        let items: Vec<&str> = text.split(',').collect();
        if items.len() > MAX_OWNERS {
            return Err(format!("must name at most {MAX_OWNERS} owners"));
        }
        items
            .into_iter()
            .map(|item| {
                OwnerFilter::from_param(item).map_err(|_| {
                    "must be 3 or 4 letters, such as MSCU (a CODECO export also takes a \
                     comma-separated list, such as MSCU,MEDU)"
                        .to_string()
                })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }
}

/// A six-digit serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial(pub String);

impl FromParam for Serial {
    fn from_param(text: &str) -> Result<Self, String> {
        let Fragment::<6>(v) = Fragment::from_param(text)?;
        if v.len() != 6 || !v.chars().all(|c| c.is_ascii_digit()) {
            return Err("must be six digits".into());
        }
        Ok(Self(v))
    }
}

/// A camera or site id: 1 to [`MAX_ID_LEN`] printable characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(pub String);

impl FromParam for Id {
    fn from_param(text: &str) -> Result<Self, String> {
        if text.is_empty() || text.len() > MAX_ID_LEN || text.chars().any(char::is_control) {
            return Err(format!("must be 1 to {MAX_ID_LEN} printable characters"));
        }
        Ok(Self(text.to_string()))
    }
}

/// `check=ok|bad`: passages whose check digit passed, or was flagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Ok,
    Bad,
}

impl FromParam for Check {
    fn from_param(text: &str) -> Result<Self, String> {
        match text {
            "ok" => Ok(Self::Ok),
            "bad" => Ok(Self::Bad),
            _ => Err("must be ok or bad".into()),
        }
    }
}

/// An RFC 3339 time. It must fall in the years 0001 to 9998 once in UTC:
/// an offset can carry `9999-12-31T23:59:59-23:59` past year 9999, and a
/// range rounded up to a whole bucket must still be a time RFC 3339 can
/// write.
impl FromParam for DateTime<Utc> {
    fn from_param(text: &str) -> Result<Self, String> {
        let t = DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| "must be an RFC 3339 time, such as 2024-05-01T00:00:00Z".to_string())?;
        if !(1..=9998).contains(&t.year()) {
            return Err("must fall in the years 0001 to 9998 (UTC)".into());
        }
        Ok(t)
    }
}

/// A cursor as this server issued it.
impl FromParam for Cursor {
    fn from_param(text: &str) -> Result<Self, String> {
        Cursor::decode(text).ok_or_else(|| {
            "is not one this server issued; pass the next_cursor (or sightings_next_cursor) \
             you were given back as it is"
                .into()
        })
    }
}

impl FromParam for Order {
    fn from_param(text: &str) -> Result<Self, String> {
        match text {
            "desc" => Ok(Order::Desc),
            "asc" => Ok(Order::Asc),
            _ => Err("must be desc or asc".into()),
        }
    }
}

impl FromParam for SyncFilter {
    fn from_param(text: &str) -> Result<Self, String> {
        match text {
            "pending" => Ok(SyncFilter::Pending),
            "synced" => Ok(SyncFilter::Synced),
            _ => Err("must be pending or synced".into()),
        }
    }
}

impl FromParam for Bucket {
    fn from_param(text: &str) -> Result<Self, String> {
        match text {
            "hour" => Ok(Bucket::Hour),
            "day" => Ok(Bucket::Day),
            _ => Err("must be hour or day".into()),
        }
    }
}

impl FromParam for ExportFormat {
    fn from_param(text: &str) -> Result<Self, String> {
        ExportFormat::parse(text).ok_or_else(|| "must be csv, jsonl or codeco".into())
    }
}

impl FromParam for gatelog_core::Direction {
    fn from_param(text: &str) -> Result<Self, String> {
        match text {
            "in" => Ok(Self::In),
            "out" => Ok(Self::Out),
            _ => Err("must be in or out".into()),
        }
    }
}

/// A licence plate: trimmed, upper case, 1 to 32 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plate(pub String);

impl FromParam for Plate {
    fn from_param(text: &str) -> Result<Self, String> {
        let v = text.trim().to_uppercase();
        if v.is_empty()
            || v.chars().count() > gatelog_core::read::MAX_PLATE_LEN
            || v.chars().any(char::is_control)
        {
            return Err(format!(
                "must be 1 to {} printable characters",
                gatelog_core::read::MAX_PLATE_LEN
            ));
        }
        Ok(Self(v))
    }
}

/// The schemas of parameter values, for the published contract
/// ([`crate::openapi`]); a field names one with `#[param(schema_with =
/// …)]`. Each lists what its [`FromParam`] accepts, and a unit test parses
/// every listed value.
pub mod doc {
    use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

    fn one_of(values: &[&str]) -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(values.iter().copied()))
            .build()
    }

    pub const ORDERS: [&str; 2] = ["desc", "asc"];
    pub const SYNCS: [&str; 2] = ["pending", "synced"];
    pub const BUCKETS: [&str; 2] = ["hour", "day"];
    pub const CHECKS: [&str; 2] = ["ok", "bad"];
    pub const DIRECTIONS: [&str; 2] = ["in", "out"];
    pub const FORMATS: [&str; 4] = ["csv", "jsonl", "ndjson", "codeco"];

    pub fn order() -> Object {
        one_of(&ORDERS)
    }
    pub fn sync() -> Object {
        one_of(&SYNCS)
    }
    pub fn bucket() -> Object {
        one_of(&BUCKETS)
    }
    pub fn check() -> Object {
        one_of(&CHECKS)
    }
    pub fn direction() -> Object {
        one_of(&DIRECTIONS)
    }
    pub fn format() -> Object {
        one_of(&FORMATS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Q {
        #[serde(default, deserialize_with = "param")]
        limit: Option<Limit<10>>,
        #[serde(default, deserialize_with = "param")]
        order: Option<Order>,
    }

    fn refused<T: DeserializeOwned + std::fmt::Debug>(q: &str) -> (String, String) {
        match parse::<T>(q).unwrap_err() {
            ApiError::BadParameter { param, message } => (param, message),
            other => panic!("{q}: {other:?}"),
        }
    }

    #[test]
    fn unknown_repeated_and_malformed_parameters_are_named() {
        let (p, m) = refused::<Q>("limit=1&colour=red");
        assert_eq!(p, "colour");
        assert!(
            m.starts_with("unknown parameter \"colour\"; expected"),
            "{m}"
        );
        assert!(m.contains("`limit`") && m.contains("`order`"), "{m}");
        let (p, m) = refused::<Q>("order=asc&limit=1&limit=2");
        assert_eq!(
            (p.as_str(), m.as_str()),
            ("limit", "limit is given more than once")
        );
        let (p, m) = refused::<Q>("limit=11");
        assert_eq!(
            (p.as_str(), m.as_str()),
            ("limit", "limit must be an integer from 1 to 10")
        );
        assert_eq!(refused::<Q>("order").0, "order");
        let long = "x".repeat(100);
        let (p, m) = refused::<Q>(&format!("{long}=1"));
        assert_eq!(p, "x".repeat(40));
        assert!(!m.contains(&long), "{m}");
        let (p, m) = refused::<NoParams>("x=1");
        assert_eq!(
            (p.as_str(), m.as_str()),
            (
                "x",
                "unknown parameter \"x\"; this route takes no parameters"
            )
        );
    }

    #[test]
    fn every_documented_value_parses() {
        for v in doc::ORDERS {
            Order::from_param(v).unwrap();
        }
        for v in doc::SYNCS {
            SyncFilter::from_param(v).unwrap();
        }
        for v in doc::BUCKETS {
            Bucket::from_param(v).unwrap();
        }
        for v in doc::CHECKS {
            Check::from_param(v).unwrap();
        }
        for v in doc::DIRECTIONS {
            gatelog_core::Direction::from_param(v).unwrap();
        }
        for v in doc::FORMATS {
            ExportFormat::from_param(v).unwrap();
        }
    }

    #[test]
    fn good_values_parse_and_absent_ones_are_none() {
        let q: Q = parse("limit=10&order=asc").unwrap();
        assert_eq!((q.limit, q.order), (Some(Limit(10)), Some(Order::Asc)));
        let q: Q = parse("").unwrap();
        assert_eq!((q.limit, q.order), (None, None));
        assert!(parse::<NoParams>("").is_ok());
    }
}
