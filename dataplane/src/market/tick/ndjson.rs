//! NDJSON tick parsing: one JSON object per line, as produced by HTTP ingest
//! and by most replay captures.
//!
//! Each line is parsed as a generic `serde_json::Value` first, and each field
//! is then checked by hand, so an error names the exact field instead of
//! serde's less specific "invalid type at column N".

use serde_json::{Map, Number, Value};

use super::{
    Tick, TickError, parse_ts, validate_price, validate_symbol, validate_volume, volume_rejection,
};

/// Parses newline-delimited JSON ticks, e.g.
/// `{"symbol":"AAPL","price":189.5,"volume":300,"ts":"2026-01-02T15:04:05Z"}`.
///
/// Blank lines are skipped but still counted in line numbers. Unknown fields
/// are ignored; `null` is treated the same as an absent field ("missing").
/// All-or-nothing: the first bad line is returned as the error.
pub fn parse_ndjson(text: &str) -> Result<Vec<Tick>, TickError> {
    let mut ticks = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        if raw.trim().is_empty() {
            continue;
        }
        ticks.push(parse_line(line, raw)?);
    }
    Ok(ticks)
}

fn parse_line(line: usize, raw: &str) -> Result<Tick, TickError> {
    let value: Value =
        serde_json::from_str(raw).map_err(|e| TickError::new(line, "line", e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(TickError::new(line, "line", "expected a JSON object"));
    };
    // Field order here decides which error wins when several fields are bad.
    let at = |field: &'static str| move |reason: String| TickError::new(line, field, reason);
    let symbol = required(&obj, "symbol")
        .and_then(symbol_from)
        .map_err(at("symbol"))?;
    let price = required(&obj, "price")
        .and_then(price_from)
        .map_err(at("price"))?;
    let volume = required(&obj, "volume")
        .and_then(volume_from)
        .map_err(at("volume"))?;
    let ts = required(&obj, "ts")
        .and_then(|v| parse_ts(v.as_str().ok_or("expected a string")?))
        .map_err(at("ts"))?;
    Ok(Tick {
        symbol,
        price,
        volume,
        ts,
    })
}

fn required<'a>(obj: &'a Map<String, Value>, name: &str) -> Result<&'a Value, String> {
    match obj.get(name) {
        None | Some(Value::Null) => Err("missing".to_owned()),
        Some(v) => Ok(v),
    }
}

fn symbol_from(v: &Value) -> Result<String, String> {
    validate_symbol(v.as_str().ok_or("expected a string")?)
}

// Prices given as strings are rejected: silently coercing text hides feed bugs.
fn price_from(v: &Value) -> Result<f64, String> {
    match v {
        Value::Number(n) => validate_price(n.as_f64().ok_or("not representable as f64")?),
        _ => Err("expected a number".to_owned()),
    }
}

// Only integer literals are accepted; `300.0` is rejected as a likely unit bug.
fn volume_from(v: &Value) -> Result<u64, String> {
    match v {
        Value::Number(n) => volume_from_number(n),
        _ => Err("expected an integer".to_owned()),
    }
}

fn volume_from_number(n: &Number) -> Result<u64, String> {
    // `as_u64` is `None` for negatives and for anything written with a
    // fraction or exponent, which is exactly the set to reject.
    let volume = n
        .as_u64()
        .ok_or_else(|| volume_rejection(n.as_f64().unwrap_or(f64::NAN)))?;
    validate_volume(volume)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const GOOD: &str =
        r#"{"symbol":"AAPL","price":189.5,"volume":300,"ts":"2026-01-02T15:04:05Z"}"#;

    fn err(text: &str) -> (usize, String, String) {
        let e = parse_ndjson(text).unwrap_err();
        (e.line, e.field, e.reason)
    }

    fn bad_line(json: &str) -> (usize, String) {
        let text = format!("{GOOD}\n{json}\n");
        let (line, field, _) = err(&text);
        (line, field)
    }

    #[test]
    fn parses_multiple_lines_and_normalizes_symbol() {
        let text = format!(
            "{GOOD}\n{}\n",
            r#"{"symbol":"brk.b","price":410,"volume":0,"ts":"2026-01-02T10:04:05-05:00","venue":"X"}"#
        );
        let ticks = parse_ndjson(&text).unwrap();
        assert_eq!(ticks.len(), 2);
        assert_eq!(
            ticks[0],
            Tick {
                symbol: "AAPL".into(),
                price: 189.5,
                volume: 300,
                ts: datetime!(2026-01-02 15:04:05 UTC),
            }
        );
        assert_eq!(ticks[1].symbol, "BRK.B");
        assert_eq!(ticks[1].price, 410.0);
        assert_eq!(ticks[1].volume, 0);
        assert_eq!(ticks[1].ts, datetime!(2026-01-02 15:04:05 UTC));
    }

    #[test]
    fn empty_input_is_empty_ok() {
        assert_eq!(parse_ndjson("").unwrap(), vec![]);
        assert_eq!(parse_ndjson("\n  \n").unwrap(), vec![]);
    }

    #[test]
    fn blank_lines_are_skipped_but_counted() {
        let text = format!("{GOOD}\n\n   \r\n{GOOD}\n{{\"symbol\":\"\"}}\n");
        let (line, field, _) = err(&text);
        assert_eq!((line, field.as_str()), (5, "symbol"));
        let ok = format!("\n{GOOD}\n\n{GOOD}\n\n");
        assert_eq!(parse_ndjson(&ok).unwrap().len(), 2);
    }

    #[test]
    fn bad_symbol() {
        let j = r#"{"symbol":"AA PL","price":1,"volume":1,"ts":"2026-01-02T15:04:05Z"}"#;
        assert_eq!(bad_line(j), (2, "symbol".into()));
        let j = r#"{"symbol":7,"price":1,"volume":1,"ts":"2026-01-02T15:04:05Z"}"#;
        assert_eq!(bad_line(j), (2, "symbol".into()));
    }

    #[test]
    fn bad_prices() {
        for price in ["-1.5", "0", "0.0", "\"189.5\"", "1e999"] {
            let j = format!(
                r#"{{"symbol":"AAPL","price":{price},"volume":1,"ts":"2026-01-02T15:04:05Z"}}"#
            );
            let (line, field, _) = err(&format!("{GOOD}\n{j}"));
            // 1e999 overflows f64 and serde_json rejects it as invalid JSON.
            let expected = if price == "1e999" { "line" } else { "price" };
            assert_eq!((line, field.as_str()), (2, expected), "price {price}");
        }
        // NaN is not valid JSON at all.
        let j = r#"{"symbol":"AAPL","price":NaN,"volume":1,"ts":"2026-01-02T15:04:05Z"}"#;
        assert_eq!(bad_line(j), (2, "line".into()));
    }

    #[test]
    fn bad_volumes() {
        let cases = [
            ("-1", "must not be negative"),
            ("1.5", "must be an integer"),
            (
                "300.0",
                "must be written as an integer (no decimal point or exponent)",
            ),
            ("1e20", "too large"),
            ("\"300\"", "expected an integer"),
            ("true", "expected an integer"),
        ];
        for (volume, reason) in cases {
            let j = format!(
                r#"{{"symbol":"AAPL","price":1,"volume":{volume},"ts":"2026-01-02T15:04:05Z"}}"#
            );
            let got = err(&j);
            assert_eq!(got, (1, "volume".into(), reason.into()), "volume {volume}");
        }
    }

    #[test]
    fn impossible_values_are_named() {
        let cases = [
            (
                r#""price":1e300,"volume":1,"ts":"2026-01-02T15:04:05Z""#,
                "price",
            ),
            (
                r#""price":1,"volume":18446744073709551615,"ts":"2026-01-02T15:04:05Z""#,
                "volume",
            ),
            (r#""price":1,"volume":1,"ts":"2099-01-01T00:00:00Z""#, "ts"),
        ];
        for (fields, field) in cases {
            let j = format!(r#"{{"symbol":"AAPL",{fields}}}"#);
            assert_eq!(bad_line(&j), (2, field.into()), "{j}");
        }
    }

    #[test]
    fn bad_timestamps() {
        for ts in ["\"2026-01-02 15:04:05\"", "\"yesterday\"", "1767366245"] {
            let j = format!(r#"{{"symbol":"AAPL","price":1,"volume":1,"ts":{ts}}}"#);
            assert_eq!(bad_line(&j), (2, "ts".into()), "ts {ts}");
        }
    }

    #[test]
    fn missing_fields_are_named() {
        let cases = [
            (
                r#"{"price":1,"volume":1,"ts":"2026-01-02T15:04:05Z"}"#,
                "symbol",
            ),
            (
                r#"{"symbol":"A","volume":1,"ts":"2026-01-02T15:04:05Z"}"#,
                "price",
            ),
            (
                r#"{"symbol":"A","price":1,"ts":"2026-01-02T15:04:05Z"}"#,
                "volume",
            ),
            (r#"{"symbol":"A","price":1,"volume":1}"#, "ts"),
            (
                r#"{"symbol":"A","price":null,"volume":1,"ts":"2026-01-02T15:04:05Z"}"#,
                "price",
            ),
        ];
        for (json, field) in cases {
            assert_eq!(err(json), (1, field.into(), "missing".into()), "{json}");
        }
    }

    #[test]
    fn broken_json_and_non_objects_are_line_errors() {
        let (line, field, reason) = err(&format!("{GOOD}\n{{\"symbol\":\"AAPL\""));
        assert_eq!((line, field.as_str()), (2, "line"));
        assert!(reason.contains("EOF"), "{reason}");
        assert_eq!(bad_line("[1,2,3]"), (2, "line".into()));
        assert_eq!(bad_line("42"), (2, "line".into()));
    }

    #[test]
    fn all_or_nothing_on_last_line() {
        let text = format!("{GOOD}\n{GOOD}\n{}", r#"{"symbol":"AAPL"}"#);
        let e = parse_ndjson(&text).unwrap_err();
        assert_eq!(e.line, 3);
        assert_eq!(e.field, "price");
    }
}
