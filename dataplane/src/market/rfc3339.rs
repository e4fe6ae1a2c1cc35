//! Serde adapter that writes and reads `OffsetDateTime` as RFC 3339 text.
//!
//! It exists because the workspace enables `time` without its `serde`
//! feature, so `time::serde::rfc3339` is unavailable; this module is a
//! drop-in replacement used as `#[serde(with = "crate::market::rfc3339")]`.

use serde::{Deserialize, Deserializer, Serializer, de::Error as _, ser::Error as _};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Formats `ts` as RFC 3339 (UTC renders as `Z`).
pub fn serialize<S: Serializer>(ts: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let text = ts.format(&Rfc3339).map_err(S::Error::custom)?;
    serializer.serialize_str(&text)
}

/// Parses an RFC 3339 string into an `OffsetDateTime`.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OffsetDateTime, D::Error> {
    // Borrowing would fail for escaped JSON strings, so take an owned String.
    let text = String::deserialize(deserializer)?;
    OffsetDateTime::parse(&text, &Rfc3339).map_err(D::Error::custom)
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use time::macros::datetime;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Wrapper {
        #[serde(with = "super")]
        at: time::OffsetDateTime,
    }

    #[test]
    fn round_trips_utc_as_z() {
        let w = Wrapper {
            at: datetime!(2026-01-02 15:04:05 UTC),
        };
        let json = serde_json::to_string(&w).unwrap();
        assert_eq!(json, r#"{"at":"2026-01-02T15:04:05Z"}"#);
        assert_eq!(serde_json::from_str::<Wrapper>(&json).unwrap(), w);
    }

    #[test]
    fn rejects_non_rfc3339() {
        assert!(serde_json::from_str::<Wrapper>(r#"{"at":"2026-01-02 15:04"}"#).is_err());
    }
}
