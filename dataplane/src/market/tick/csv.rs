//! CSV tick parsing for spreadsheet-style replay files.
//!
//! Deliberately minimal: a header row naming `symbol,price,volume,ts` in any
//! order (case-insensitive), plain comma separation and whitespace trimming.
//! Quoting and escaped commas are NOT supported — none of the four fields can
//! legitimately contain a comma, so a quote character is simply rejected by
//! the field validators.

use super::{
    Tick, TickError, parse_ts, validate_price, validate_symbol, validate_volume, volume_rejection,
};

const COLUMNS: [&str; 4] = ["symbol", "price", "volume", "ts"];

/// Where each required column sits in a row.
struct Layout {
    width: usize,
    symbol: usize,
    price: usize,
    volume: usize,
    ts: usize,
}

/// Parses CSV ticks. The first non-blank line is the header; line numbers are
/// 1-based and count the header and any blank lines. Extra columns are
/// ignored. All-or-nothing: the first bad line is returned as the error.
pub fn parse_csv(text: &str) -> Result<Vec<Tick>, TickError> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(index, raw)| (index + 1, raw))
        .filter(|(_, raw)| !raw.trim().is_empty());
    let Some((header_line, header)) = lines.next() else {
        return Err(TickError::new(1, "line", "missing header row"));
    };
    let layout = parse_header(header_line, header)?;
    lines
        .map(|(line, raw)| parse_row(&layout, line, raw))
        .collect()
}

fn parse_header(line: usize, raw: &str) -> Result<Layout, TickError> {
    // Spreadsheet exports often start with a UTF-8 byte-order mark.
    let raw = raw.strip_prefix('\u{feff}').unwrap_or(raw);
    let names: Vec<String> = raw
        .split(',')
        .map(|c| c.trim().to_ascii_lowercase())
        .collect();
    let mut positions = [0usize; 4];
    for (slot, column) in positions.iter_mut().zip(COLUMNS) {
        let mut found = names.iter().enumerate().filter(|(_, n)| *n == column);
        *slot = match (found.next(), found.next()) {
            (None, _) => return Err(TickError::new(line, column, "missing column")),
            (Some(_), Some(_)) => return Err(TickError::new(line, column, "duplicate column")),
            (Some((index, _)), None) => index,
        };
    }
    let [symbol, price, volume, ts] = positions;
    Ok(Layout {
        width: names.len(),
        symbol,
        price,
        volume,
        ts,
    })
}

fn parse_row(layout: &Layout, line: usize, raw: &str) -> Result<Tick, TickError> {
    let cells: Vec<&str> = raw.split(',').map(str::trim).collect();
    if cells.len() != layout.width {
        let reason = format!("expected {} columns, found {}", layout.width, cells.len());
        return Err(TickError::new(line, "line", reason));
    }
    let at = |field: &'static str| move |reason: String| TickError::new(line, field, reason);
    let symbol = present(cells[layout.symbol])
        .and_then(validate_symbol)
        .map_err(at("symbol"))?;
    let price = present(cells[layout.price])
        .and_then(price_from)
        .map_err(at("price"))?;
    let volume = present(cells[layout.volume])
        .and_then(volume_from)
        .map_err(at("volume"))?;
    let ts = present(cells[layout.ts])
        .and_then(parse_ts)
        .map_err(at("ts"))?;
    Ok(Tick {
        symbol,
        price,
        volume,
        ts,
    })
}

/// An empty cell is reported as "missing", matching NDJSON's absent field.
fn present(cell: &str) -> Result<&str, String> {
    if cell.is_empty() {
        Err("missing".to_owned())
    } else {
        Ok(cell)
    }
}

fn price_from(cell: &str) -> Result<f64, String> {
    // Rust accepts "NaN"/"inf" here; validate_price then rejects them.
    let price: f64 = cell.parse().map_err(|_| "not a number".to_owned())?;
    validate_price(price)
}

fn volume_from(cell: &str) -> Result<u64, String> {
    if let Ok(volume) = cell.parse::<u64>() {
        return validate_volume(volume);
    }
    match cell.parse::<f64>() {
        Ok(value) if value.is_finite() => Err(volume_rejection(value)),
        _ => Err("not a number".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn err(text: &str) -> (usize, String, String) {
        let e = parse_csv(text).unwrap_err();
        (e.line, e.field, e.reason)
    }

    #[test]
    fn header_in_any_order_and_case_with_extra_column() {
        let text = "\u{feff}TS, Volume ,venue,SYMBOL,Price\n\
                    2026-01-02T15:04:05Z, 300 ,X, aapl ,189.5\r\n\
                    2026-01-02T15:04:06Z,0,Y,MSFT,410\n";
        let ticks = parse_csv(text).unwrap();
        assert_eq!(
            ticks,
            vec![
                Tick {
                    symbol: "AAPL".into(),
                    price: 189.5,
                    volume: 300,
                    ts: datetime!(2026-01-02 15:04:05 UTC),
                },
                Tick {
                    symbol: "MSFT".into(),
                    price: 410.0,
                    volume: 0,
                    ts: datetime!(2026-01-02 15:04:06 UTC),
                },
            ]
        );
    }

    #[test]
    fn header_only_is_empty_ok() {
        assert_eq!(parse_csv("symbol,price,volume,ts\n").unwrap(), vec![]);
    }

    #[test]
    fn missing_or_duplicate_header_column_is_named_on_line_1() {
        assert_eq!(
            err("symbol,price,ts\nAAPL,1,2026-01-02T15:04:05Z\n"),
            (1, "volume".into(), "missing column".into())
        );
        assert_eq!(
            err("symbol,price,volume,ts,PRICE\n"),
            (1, "price".into(), "duplicate column".into())
        );
        assert_eq!(err(""), (1, "line".into(), "missing header row".into()));
    }

    #[test]
    fn bad_rows_report_line_counting_header_and_blanks() {
        let head = "symbol,price,volume,ts\n";
        let good = "AAPL,1,1,2026-01-02T15:04:05Z\n";
        let cases = [
            ("AA PL,1,1,2026-01-02T15:04:05Z", "symbol"),
            (",1,1,2026-01-02T15:04:05Z", "symbol"),
            ("AAPL,-1,1,2026-01-02T15:04:05Z", "price"),
            ("AAPL,0,1,2026-01-02T15:04:05Z", "price"),
            ("AAPL,NaN,1,2026-01-02T15:04:05Z", "price"),
            ("AAPL,abc,1,2026-01-02T15:04:05Z", "price"),
            ("AAPL,1,1.5,2026-01-02T15:04:05Z", "volume"),
            ("AAPL,1,-3,2026-01-02T15:04:05Z", "volume"),
            ("AAPL,1,lots,2026-01-02T15:04:05Z", "volume"),
            ("AAPL,1,1,2026-01-02", "ts"),
            ("AAPL,1,1,2099-01-01T00:00:00Z", "ts"),
            ("AAPL,1e300,1,2026-01-02T15:04:05Z", "price"),
            ("AAPL,1,18446744073709551615,2026-01-02T15:04:05Z", "volume"),
            ("AAPL,1,1", "line"),
            ("AAPL,1,1,2026-01-02T15:04:05Z,extra", "line"),
        ];
        for (row, field) in cases {
            // header (1), good (2), blank (3), good (4), bad row (5)
            let text = format!("{head}{good}\n{good}{row}\n{good}");
            let (line, got_field, _) = err(&text);
            assert_eq!((line, got_field.as_str()), (5, field), "row {row:?}");
        }
    }

    #[test]
    fn volume_reasons() {
        let text = "symbol,price,volume,ts\nAAPL,1,-3,2026-01-02T15:04:05Z\n";
        assert_eq!(err(text).2, "must not be negative");
        let text = "symbol,price,volume,ts\nAAPL,1,2.5,2026-01-02T15:04:05Z\n";
        assert_eq!(err(text).2, "must be an integer");
        let text = "symbol,price,volume,ts\nAAPL,1,99999999999999999999,2026-01-02T15:04:05Z\n";
        assert_eq!(err(text).2, "too large");
    }
}
