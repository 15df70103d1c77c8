//! Migration versions: UTC timestamps `YYYYMMDDHHMMSS`.

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDateTime;

const FORMAT: &str = "%Y%m%d%H%M%S";

/// A version that is not 14 digits of a real UTC date and time.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid migration version `{input}`: expected 14 digits YYYYMMDDHHMMSS forming a real UTC date and time")]
pub struct InvalidVersion {
    /// The text given.
    pub input: String,
}

/// A migration version: a UTC timestamp written as 14 digits, `YYYYMMDDHHMMSS`.
///
/// Ordering versions orders migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u64);

impl Version {
    /// Parses and validates a version; `const` callers use [`Version::new_unchecked`].
    pub fn parse(input: &str) -> Result<Self, InvalidVersion> {
        input.parse()
    }

    /// A version from its numeric form, unchecked, for `const` contexts
    /// (generated registries); [`Registry::new`](crate::Registry::new) checks it.
    pub const fn new_unchecked(value: u64) -> Self {
        Version(value)
    }

    /// Builds a version from its numeric form, checking it is a real date and time.
    pub fn from_u64(value: u64) -> Result<Self, InvalidVersion> {
        Self::parse(&value.to_string())
    }

    /// The numeric form, e.g. `20261125183000`.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Versions are stored as 64-bit integers in BSON.
    pub(crate) fn as_i64(self) -> i64 {
        self.0 as i64
    }

    pub(crate) fn from_i64(value: i64) -> Result<Self, InvalidVersion> {
        u64::try_from(value)
            .map_err(|_| InvalidVersion {
                input: value.to_string(),
            })
            .and_then(Self::from_u64)
    }

    /// The timestamp this version stands for.
    pub fn timestamp(self) -> NaiveDateTime {
        // Validated at construction.
        NaiveDateTime::parse_from_str(&self.0.to_string(), FORMAT).expect("validated version")
    }
}

impl FromStr for Version {
    type Err = InvalidVersion;

    fn from_str(input: &str) -> Result<Self, InvalidVersion> {
        let invalid = || InvalidVersion {
            input: input.to_string(),
        };
        if input.len() != 14 || !input.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        NaiveDateTime::parse_from_str(input, FORMAT).map_err(|_| invalid())?;
        input.parse().map(Version).map_err(|_| invalid())
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = u64::deserialize(d)?;
        Version::from_u64(value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_timestamps() {
        let v = Version::parse("20261125183000").unwrap();
        assert_eq!(v.as_u64(), 20261125183000);
        assert_eq!(v.to_string(), "20261125183000");
    }

    #[test]
    fn rejects_malformed_and_impossible_timestamps() {
        for bad in [
            "",
            "2026112518300",
            "202611251830000",
            "2026112518300x",
            "20261325183000",
            "20260230120000",
            "20261125250000",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn orders_by_time() {
        assert!(Version::parse("20261125183000").unwrap() < Version::parse("20261125183001").unwrap());
    }
}
