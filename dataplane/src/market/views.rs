//! The JSON payloads the writer publishes into the cache and the reader
//! serves: a market overview, one ticker per symbol, top movers, and signals.
//!
//! Built only from a [`Book`]; numbers are rounded (see `rounding.rs`) and
//! every ordering is total (ties broken by symbol) so the same book always
//! serializes to the same bytes.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::book::{Book, SymbolState};
use super::rounding::{MONEY_DP, PRICE_DP, round_dp};
use super::signals::{self, SymbolSignals};

/// Market-wide summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Overview {
    pub symbols: usize,
    pub total_traded_value: f64,
    pub total_volume: u64,
    pub advancers: usize,
    pub decliners: usize,
    pub unchanged: usize,
    /// Equal-weight index: 100 × mean(last / open). 100 means flat on the session.
    pub index: f64,
    /// The time of the newest tick the view is built from.
    #[serde(with = "crate::market::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub as_of: OffsetDateTime,
}

/// One symbol's session quote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Ticker {
    pub symbol: String,
    pub last: f64,
    pub open: f64,
    /// last − open.
    pub change: f64,
    /// 100 × (last − open) / open.
    pub change_pct: f64,
    pub volume: u64,
    pub vwap: f64,
    pub day_high: f64,
    pub day_low: f64,
    /// The time of the symbol's newest tick.
    #[serde(with = "crate::market::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub updated: OffsetDateTime,
}

/// Top-N lists. Each list is simply the top N of all symbols by its key, so
/// with few symbols `gainers` may include flat or falling names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Movers {
    /// By `change_pct` descending.
    pub gainers: Vec<Ticker>,
    /// By `change_pct` ascending.
    pub losers: Vec<Ticker>,
    /// By `volume` descending.
    pub most_active: Vec<Ticker>,
    /// The time of the newest tick the view is built from.
    #[serde(with = "crate::market::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub as_of: OffsetDateTime,
}

/// Everything published in one writer cycle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub overview: Overview,
    pub tickers: BTreeMap<String, Ticker>,
    pub movers: Movers,
    /// One entry per symbol; `signals` is empty until history is long enough.
    pub signals: BTreeMap<String, SymbolSignals>,
}

impl Ticker {
    pub fn from_state(state: &SymbolState) -> Self {
        let change = state.last - state.open;
        // open is always > 0 for states built by Book; guard anyway.
        let change_pct = if state.open > 0.0 {
            100.0 * change / state.open
        } else {
            0.0
        };
        Self {
            symbol: state.symbol.clone(),
            last: round_dp(state.last, PRICE_DP),
            open: round_dp(state.open, PRICE_DP),
            change: round_dp(change, PRICE_DP),
            change_pct: round_dp(change_pct, PRICE_DP),
            volume: state.volume,
            vwap: round_dp(state.vwap(), PRICE_DP),
            day_high: round_dp(state.high, PRICE_DP),
            day_low: round_dp(state.low, PRICE_DP),
            updated: state.updated,
        }
    }
}

impl Overview {
    /// Summarizes `book`. Advancers/decliners use the rounded `change`, so the
    /// counts agree with what readers see in the tickers.
    pub fn from_book(book: &Book, as_of: OffsetDateTime) -> Self {
        let mut overview = Self {
            symbols: book.len(),
            total_traded_value: 0.0,
            total_volume: 0,
            advancers: 0,
            decliners: 0,
            unchanged: 0,
            index: 0.0,
            as_of,
        };
        let mut ratio_sum = 0.0;
        for state in book.iter() {
            overview.total_traded_value += state.traded_value;
            overview.total_volume = overview.total_volume.saturating_add(state.volume);
            ratio_sum += state.last / state.open;
            match Ticker::from_state(state).change.partial_cmp(&0.0) {
                Some(Ordering::Greater) => overview.advancers += 1,
                Some(Ordering::Less) => overview.decliners += 1,
                _ => overview.unchanged += 1,
            }
        }
        overview.total_traded_value = round_dp(overview.total_traded_value, MONEY_DP);
        if !book.is_empty() {
            overview.index = round_dp(100.0 * ratio_sum / book.len() as f64, PRICE_DP);
        }
        overview
    }
}

impl Movers {
    /// Top `n` of `tickers` per list, ties broken by ascending symbol.
    pub fn from_tickers(tickers: &[Ticker], n: usize, as_of: OffsetDateTime) -> Self {
        let top = |cmp: fn(&Ticker, &Ticker) -> Ordering| {
            let mut sorted: Vec<&Ticker> = tickers.iter().collect();
            sorted.sort_by(|a, b| cmp(a, b).then_with(|| a.symbol.cmp(&b.symbol)));
            sorted.into_iter().take(n).cloned().collect()
        };
        Self {
            gainers: top(|a, b| b.change_pct.total_cmp(&a.change_pct)),
            losers: top(|a, b| a.change_pct.total_cmp(&b.change_pct)),
            most_active: top(|a, b| b.volume.cmp(&a.volume)),
            as_of,
        }
    }
}

/// Builds the full published snapshot, or `None` for an empty book: the
/// writer must never publish fabricated or empty market data.
///
/// Each symbol's signals are stamped with that symbol's `updated` time (the
/// data they describe), not `now`.
pub fn snapshot(book: &Book, movers_n: usize, now: OffsetDateTime) -> Option<Snapshot> {
    if book.is_empty() {
        return None;
    }
    let tickers: Vec<Ticker> = book.iter().map(Ticker::from_state).collect();
    let movers = Movers::from_tickers(&tickers, movers_n, now);
    let signals = book
        .iter()
        .map(|s| (s.symbol.clone(), signals::for_symbol(s, s.updated)))
        .collect();
    Some(Snapshot {
        overview: Overview::from_book(book, now),
        tickers: tickers.into_iter().map(|t| (t.symbol.clone(), t)).collect(),
        movers,
        signals,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::Tick;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-01-02 16:00:00 UTC);

    /// Applies an (open, last, volume-per-tick) pair for each symbol.
    fn book(rows: &[(&str, f64, f64, u64)]) -> Book {
        let mut book = Book::new();
        for &(symbol, open, last, volume) in rows {
            for price in [open, last] {
                book.apply(&Tick {
                    symbol: symbol.into(),
                    price,
                    volume,
                    ts: datetime!(2026-01-02 15:00:00 UTC),
                });
            }
        }
        book
    }

    fn symbols(list: &[Ticker]) -> Vec<&str> {
        list.iter().map(|t| t.symbol.as_str()).collect()
    }

    #[test]
    fn empty_book_has_no_snapshot() {
        assert!(snapshot(&Book::new(), 5, NOW).is_none());
    }

    #[test]
    fn overview_counts_index_and_totals() {
        let b = book(&[
            ("A", 100.0, 110.0, 1), // +10%
            ("B", 50.0, 45.0, 2),   // -10%
            ("C", 20.0, 20.0, 3),   // 0
            ("D", 10.0, 10.5, 4),   // +5%
        ]);
        let o = Overview::from_book(&b, NOW);
        assert_eq!(o.symbols, 4);
        assert_eq!((o.advancers, o.decliners, o.unchanged), (2, 1, 1));
        // 100 * mean(1.1, 0.9, 1.0, 1.05) = 100 * 4.05 / 4
        assert_eq!(o.index, 101.25);
        assert_eq!(o.total_volume, 2 + 4 + 6 + 8);
        // 210 + 190 + 120 + 82 = 602
        assert_eq!(o.total_traded_value, 602.0);
        assert_eq!(o.as_of, NOW);
    }

    #[test]
    fn ticker_fields() {
        let b = book(&[("A", 200.0, 190.0, 10)]);
        let t = Ticker::from_state(b.get("A").unwrap());
        assert_eq!(
            (t.open, t.last, t.change, t.change_pct),
            (200.0, 190.0, -10.0, -5.0)
        );
        assert_eq!(
            (t.day_high, t.day_low, t.vwap, t.volume),
            (200.0, 190.0, 195.0, 20)
        );
    }

    #[test]
    fn ticker_rounds_to_four_decimals() {
        let b = book(&[("A", 3.0, 3.1, 1)]);
        let t = Ticker::from_state(b.get("A").unwrap());
        assert_eq!(t.change_pct, 3.3333);
        assert_eq!(t.change, 0.1);
        assert_eq!(t.vwap, 3.05);
    }

    #[test]
    fn movers_order_ties_and_truncation() {
        let b = book(&[
            ("E", 10.0, 11.0, 5),   // +10%, ties with A
            ("A", 100.0, 110.0, 9), // +10%
            ("B", 50.0, 45.0, 9),   // -10%, volume ties with A
            ("C", 20.0, 20.0, 1),   // 0
            ("D", 10.0, 10.5, 7),   // +5%
        ]);
        let tickers: Vec<Ticker> = b.iter().map(Ticker::from_state).collect();
        let m = Movers::from_tickers(&tickers, 3, NOW);
        assert_eq!(symbols(&m.gainers), vec!["A", "E", "D"]);
        assert_eq!(symbols(&m.losers), vec!["B", "C", "D"]);
        assert_eq!(symbols(&m.most_active), vec!["A", "B", "D"]);
        let all = Movers::from_tickers(&tickers, 10, NOW);
        assert_eq!(all.gainers.len(), 5);
        assert!(Movers::from_tickers(&tickers, 0, NOW).gainers.is_empty());
    }

    #[test]
    fn snapshot_is_complete_and_round_trips() {
        let b = book(&[("MSFT", 400.0, 404.0, 3), ("AAPL", 190.0, 188.1, 2)]);
        let snap = snapshot(&b, 1, NOW).unwrap();
        assert_eq!(snap.overview.symbols, 2);
        assert_eq!(
            snap.tickers.keys().collect::<Vec<_>>(),
            vec!["AAPL", "MSFT"]
        );
        assert_eq!(snap.signals.len(), 2);
        assert!(snap.signals["AAPL"].signals.is_empty());
        assert_eq!(symbols(&snap.movers.gainers), vec!["MSFT"]);
        assert_eq!(symbols(&snap.movers.losers), vec!["AAPL"]);
        let json = serde_json::to_string(&snap).unwrap();
        assert!(json.contains(r#""as_of":"2026-01-02T16:00:00Z""#));
        assert!(json.contains(r#""change_pct":-1.0"#), "{json}");
        let back: Snapshot = serde_json::from_str(&json).unwrap();
        assert_eq!(back, snap);
        // Same book, same bytes.
        assert_eq!(
            serde_json::to_string(&snapshot(&b, 1, NOW).unwrap()).unwrap(),
            json
        );
    }
}
