//! The market tick: the single unit of input for the writer, plus the
//! validation rules every input path (replay file, HTTP ingest, synthetic
//! feed) must agree on.
//!
//! Parsing lives in `tick/ndjson.rs` and `tick/csv.rs`; both report the first
//! bad line as a [`TickError`] naming the exact field, and are all-or-nothing
//! so a half-ingested file never reaches the cache.

mod csv;
mod ndjson;

pub use csv::parse_csv;
pub use ndjson::parse_ndjson;

use serde::{Deserialize, Serialize};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

/// Longest accepted ticker symbol, in characters.
pub const MAX_SYMBOL_LEN: usize = 15;

/// Lowest accepted price: one unit of the 4 published decimals. Anything
/// smaller would be published as 0.
pub const MIN_PRICE: f64 = 0.0001;
/// Highest accepted price. Far above any listed share, and low enough that
/// price × volume sums stay finite and exact enough for a session.
pub const MAX_PRICE: f64 = 1e9;
/// Largest accepted volume of one trade (a trillion shares).
pub const MAX_VOLUME: u64 = 1_000_000_000_000;
/// How far ahead of this machine's clock a `ts` may be: room for the
/// sender's clock running a little fast, not for a date that has not come.
pub const MAX_CLOCK_SKEW: Duration = Duration::seconds(60);

/// One trade print for one symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tick {
    pub symbol: String,
    pub price: f64,
    pub volume: u64,
    #[serde(with = "crate::market::rfc3339")]
    pub ts: OffsetDateTime,
}

/// Why a line of input was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize)]
#[error("line {line}: {field}: {reason}")]
pub struct TickError {
    /// 1-based line number in the input text (blank lines and CSV headers count).
    pub line: usize,
    /// `symbol`, `price`, `volume`, `ts`, or `line` for whole-line problems.
    pub field: String,
    pub reason: String,
}

impl TickError {
    pub(crate) fn new(line: usize, field: &str, reason: impl Into<String>) -> Self {
        Self {
            line,
            field: field.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Parses `text` as CSV when `path_hint` ends in `.csv` (any case), else as NDJSON.
pub fn parse_file(path_hint: &str, text: &str) -> Result<Vec<Tick>, TickError> {
    if path_hint.to_ascii_lowercase().ends_with(".csv") {
        parse_csv(text)
    } else {
        parse_ndjson(text)
    }
}

/// Validates a ticker symbol and returns it upper-cased.
///
/// Accepts 1–15 characters of `A-Z`, `0-9`, `.` and `-` after ASCII
/// upper-casing. ASCII-only upper-casing is deliberate: Unicode upper-casing
/// could turn e.g. `ß` into a valid-looking `SS`.
pub fn validate_symbol(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let upper = s.to_ascii_uppercase();
    if let Some(bad) = upper
        .chars()
        .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return Err(format!("invalid character {bad:?} (allowed: A-Z 0-9 . -)"));
    }
    // Only ASCII survives the check above, so bytes == characters here.
    if upper.len() > MAX_SYMBOL_LEN {
        return Err(format!("longer than {MAX_SYMBOL_LEN} characters"));
    }
    Ok(upper)
}

/// A price must be a finite number in [`MIN_PRICE`, `MAX_PRICE`].
pub(crate) fn validate_price(p: f64) -> Result<f64, String> {
    if !p.is_finite() {
        return Err("must be a finite number".to_owned());
    }
    if p <= 0.0 {
        return Err("must be greater than 0".to_owned());
    }
    if p < MIN_PRICE {
        return Err(format!("must be at least {MIN_PRICE}"));
    }
    if p > MAX_PRICE {
        return Err(format!("must be at most {MAX_PRICE:.0}"));
    }
    Ok(p)
}

/// A volume must be at most [`MAX_VOLUME`].
pub(crate) fn validate_volume(v: u64) -> Result<u64, String> {
    if v > MAX_VOLUME {
        return Err(format!("must be at most {MAX_VOLUME}"));
    }
    Ok(v)
}

/// Parses an RFC 3339 timestamp such as `2026-01-02T15:04:05Z` that is not
/// in the future (beyond [`MAX_CLOCK_SKEW`]).
pub(crate) fn parse_ts(s: &str) -> Result<OffsetDateTime, String> {
    let ts = OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("not an RFC 3339 timestamp: {e}"))?;
    not_in_future(ts, OffsetDateTime::now_utc())
}

fn not_in_future(ts: OffsetDateTime, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    if ts - now > MAX_CLOCK_SKEW {
        return Err(format!(
            "is in the future (more than {} s ahead of this clock)",
            MAX_CLOCK_SKEW.whole_seconds()
        ));
    }
    Ok(ts)
}

/// Explains why a numeric volume that is not a plain `u64` literal was rejected.
pub(crate) fn volume_rejection(value: f64) -> String {
    // 2^64 as f64; anything at or above it cannot be a u64.
    const U64_LIMIT: f64 = 18_446_744_073_709_551_616.0;
    let reason = if value < 0.0 {
        "must not be negative"
    } else if value.fract() != 0.0 {
        "must be an integer"
    } else if value >= U64_LIMIT {
        "too large"
    } else {
        // e.g. `300.0` or `3e2`: whole, but written as a float, which usually
        // means the producer's units are off. Strict beats silently coercing.
        "must be written as an integer (no decimal point or exponent)"
    };
    reason.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn symbol_is_uppercased_and_checked() {
        assert_eq!(validate_symbol("brk.b").unwrap(), "BRK.B");
        assert_eq!(validate_symbol("abc-1").unwrap(), "ABC-1");
        assert_eq!(validate_symbol("A").unwrap(), "A");
        assert_eq!(
            validate_symbol("ABCDEFGHIJKLMNO").unwrap(),
            "ABCDEFGHIJKLMNO"
        );
        assert!(validate_symbol("").is_err());
        assert!(validate_symbol("AA PL").is_err());
        assert!(validate_symbol(" AAPL").is_err());
        assert!(validate_symbol("AAPL/").is_err());
        assert!(validate_symbol("ß").is_err());
        assert!(validate_symbol("ABCDEFGHIJKLMNOP").is_err());
    }

    #[test]
    fn price_rules() {
        assert_eq!(validate_price(0.01), Ok(0.01));
        assert_eq!(validate_price(MIN_PRICE), Ok(MIN_PRICE));
        assert_eq!(validate_price(MAX_PRICE), Ok(MAX_PRICE));
        assert_eq!(
            validate_price(1e300).unwrap_err(),
            "must be at most 1000000000"
        );
        assert!(validate_price(0.00009).is_err());
        assert!(validate_price(0.0).is_err());
        assert!(validate_price(-1.0).is_err());
        assert!(validate_price(f64::NAN).is_err());
        assert!(validate_price(f64::INFINITY).is_err());
    }

    #[test]
    fn volume_and_ts_bounds() {
        assert_eq!(validate_volume(MAX_VOLUME), Ok(MAX_VOLUME));
        assert!(validate_volume(MAX_VOLUME + 1).is_err());
        assert!(validate_volume(u64::MAX).is_err());
        let now = datetime!(2026-01-02 15:00:00 UTC);
        assert!(not_in_future(now + MAX_CLOCK_SKEW, now).is_ok());
        assert!(not_in_future(now - Duration::days(300), now).is_ok());
        let err = not_in_future(now + MAX_CLOCK_SKEW + Duration::seconds(1), now).unwrap_err();
        assert!(err.contains("future"), "{err}");
        assert!(parse_ts("2099-01-01T00:00:00Z").is_err());
        assert!(parse_ts("2026-01-02T15:04:05Z").is_ok());
    }

    #[test]
    fn parse_file_picks_format_by_extension() {
        let csv = "symbol,price,volume,ts\nAAPL,1.5,2,2026-01-02T15:04:05Z\n";
        let ndjson = r#"{"symbol":"AAPL","price":1.5,"volume":2,"ts":"2026-01-02T15:04:05Z"}"#;
        let expected = vec![Tick {
            symbol: "AAPL".into(),
            price: 1.5,
            volume: 2,
            ts: datetime!(2026-01-02 15:04:05 UTC),
        }];
        assert_eq!(parse_file("replay/day1.CSV", csv).unwrap(), expected);
        assert_eq!(parse_file("replay/day1.ndjson", ndjson).unwrap(), expected);
        // A CSV body under a non-.csv name is parsed as NDJSON and fails on line 1.
        assert_eq!(parse_file("day1.txt", csv).unwrap_err().line, 1);
    }

    #[test]
    fn tick_serde_round_trip() {
        let tick = Tick {
            symbol: "MSFT".into(),
            price: 410.25,
            volume: 100,
            ts: datetime!(2026-01-02 15:04:05.5 UTC),
        };
        let json = serde_json::to_string(&tick).unwrap();
        assert!(json.contains(r#""ts":"2026-01-02T15:04:05.5Z""#), "{json}");
        assert_eq!(serde_json::from_str::<Tick>(&json).unwrap(), tick);
    }

    #[test]
    fn error_display_names_line_and_field() {
        let e = TickError::new(3, "price", "must be greater than 0");
        assert_eq!(e.to_string(), "line 3: price: must be greater than 0");
    }
}
