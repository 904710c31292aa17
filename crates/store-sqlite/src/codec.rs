//! Column codecs: how ids, timestamps and enums are stored, and read back without a `String`
//! per value where a sync loads 100,000 rows.

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Row, ToSql};
use sponsorship_core::wire::time::{self, Fraction, Rfc3339};

/// A timestamp in the stored form (RFC 3339, UTC, microseconds: `YYYY-MM-DDTHH:MM:SS.ffffffZ`),
/// bound to a statement without a `String` per value.
pub(crate) enum TsText {
    Fixed(Rfc3339),
    Other(String),
}

impl TsText {
    pub(crate) fn new(t: DateTime<Utc>) -> Self {
        match Rfc3339::new(&t, Fraction::Micros) {
            Some(fixed) => Self::Fixed(fixed),
            None => Self::Other(t.to_rfc3339_opts(SecondsFormat::Micros, true)),
        }
    }

    fn as_str(&self) -> &str {
        match self {
            Self::Fixed(f) => f.as_str(),
            Self::Other(s) => s,
        }
    }
}

impl ToSql for TsText {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(
            self.as_str().as_bytes(),
        )))
    }
}

/// The stored form of a timestamp: RFC 3339 in UTC with microseconds.
pub(crate) fn ts(t: DateTime<Utc>) -> String {
    match TsText::new(t) {
        TsText::Fixed(f) => f.as_str().to_owned(),
        TsText::Other(s) => s,
    }
}

pub(crate) fn opt_ts(t: Option<DateTime<Utc>>) -> Option<String> {
    t.map(ts)
}

/// Reads a stored timestamp: strict RFC 3339, the stored form without chrono's general parser.
pub(crate) fn parse_ts(s: &str) -> Result<DateTime<Utc>, String> {
    time::parse_rfc3339(s).ok_or_else(|| match DateTime::parse_from_rfc3339(s) {
        Err(e) => format!("bad timestamp {s:?}: {e}"),
        Ok(_) => format!("bad timestamp {s:?}"),
    })
}

#[allow(clippy::needless_pass_by_value)] // takes what `Row::get` returns
pub(crate) fn parse_opt_ts(s: Option<String>) -> Result<Option<DateTime<Utc>>, String> {
    s.as_deref().map(parse_ts).transpose()
}

pub(crate) fn parse_id<T: std::str::FromStr>(s: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| e.to_string())
}

/// Converts a closure's string error into a rusqlite conversion error.
pub(crate) fn conv<T>(r: Result<T, String>) -> rusqlite::Result<T> {
    r.map_err(|m| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, m.into())
    })
}

/// A text column's bytes without copying them into a `String`; `None` for NULL. Any other type
/// fails as `Row::get::<String>` would.
pub(crate) fn text_at<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<Option<&'r [u8]>> {
    match r.get_ref(i)? {
        ValueRef::Null => Ok(None),
        ValueRef::Text(b) => Ok(Some(b)),
        other => Err(rusqlite::Error::InvalidColumnType(
            i,
            r.as_ref().column_name(i)?.to_owned(),
            other.data_type(),
        )),
    }
}

/// A NOT NULL text column's bytes.
pub(crate) fn required_text_at<'r>(r: &'r Row<'_>, i: usize) -> rusqlite::Result<&'r [u8]> {
    text_at(r, i)?.ok_or_else(|| {
        rusqlite::Error::InvalidColumnType(
            i,
            r.as_ref()
                .column_name(i)
                .map_or_else(|_| String::new(), str::to_owned),
            rusqlite::types::Type::Null,
        )
    })
}

pub(crate) fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|e| e.to_string())
}

/// An id from its stored bytes: the hyphenated form parses straight from them; any other form
/// goes through `FromStr` as before.
pub(crate) fn id_from<T>(b: &[u8]) -> Result<T, String>
where
    T: From<uuid::Uuid> + std::str::FromStr,
    T::Err: std::fmt::Display,
{
    match uuid::Uuid::try_parse_ascii(b) {
        Ok(u) => Ok(T::from(u)),
        Err(_) => parse_id(utf8(b)?),
    }
}

pub(crate) fn ts_from(b: &[u8]) -> Result<DateTime<Utc>, String> {
    parse_ts(utf8(b)?)
}

/// Reads one row; ids and timestamps are parsed from the column bytes (no `String` each), and
/// timestamps in the stored form skip chrono's general RFC 3339 parser (loading 100,000 rows
/// before a sync is on the operator's clock).
/// An id in its stored (lowercase hyphenated) form on the stack, bound without a `String`.
pub(crate) struct IdText([u8; uuid::fmt::Hyphenated::LENGTH]);

impl IdText {
    pub(crate) fn new(id: &uuid::Uuid) -> Self {
        let mut buf = [0; uuid::fmt::Hyphenated::LENGTH];
        id.hyphenated().encode_lower(&mut buf);
        Self(buf)
    }
}

impl ToSql for IdText {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(ValueRef::Text(&self.0)))
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// chrono on the common path: both directions agree with chrono everywhere, and forms the
    /// fast path does not take are left to chrono.
    #[test]
    fn timestamps_match_chrono_both_ways() {
        let chrono_ts = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        let chrono_parse = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .map(|t| t.with_timezone(&Utc))
                .ok()
        };
        let mut times = vec![
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(2024, 2, 29, 7, 8, 9).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10_000, 1, 1, 0, 0, 0).unwrap(),
            now() + chrono::TimeDelta::nanoseconds(999_999_999),
        ];
        // A spread of instants over the years 0..=9999, with sub-microsecond parts.
        let mut x: i64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let secs = x.rem_euclid(253_402_300_800) - 62_167_219_200;
            let nanos = u32::try_from(x.rem_euclid(1_000_000_000)).unwrap();
            times.push(DateTime::from_timestamp(secs, nanos).unwrap());
        }
        for t in times {
            let s = ts(t);
            assert_eq!(s, chrono_ts(t));
            assert_eq!(parse_ts(&s).ok(), chrono_parse(&s), "{s}");
            assert_eq!(ts_from(s.as_bytes()).ok(), chrono_parse(&s), "{s}");
        }
        for s in [
            "2026-11-24T12:00:00Z",
            "2026-11-24T12:00:00.123+02:00",
            "2026-11-24t12:00:00.000000z",
            "2016-12-31T23:59:60.000000Z",
            "2026-02-30T00:00:00.000000Z",
            "2026-13-01T00:00:00.000000Z",
            "2026-11-24T24:00:00.000000Z",
            "2026-11-24T12:00:00.00000aZ",
            "+2026-11-24T12:00:00.00000Z",
            "",
        ] {
            assert_eq!(parse_ts(s).ok(), chrono_parse(s), "{s}");
            assert_eq!(ts_from(s.as_bytes()).ok(), chrono_parse(s), "{s}");
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
    }
}
