//! Per-symbol running state for the current session, built by folding ticks
//! as they arrive. Views and signals are derived from this, never from raw
//! ticks, so publishing cost is independent of tick volume.
//!
//! Ticks may arrive late (out of `ts` order). Prices that describe a moment
//! (`open`, `last`, the signal history) follow the ticks' own timestamps, so a
//! late tick cannot move the last price backwards; totals (volume, VWAP,
//! high/low) count every tick whenever it arrives.

use std::collections::{BTreeMap, VecDeque};

use time::OffsetDateTime;

use super::bars::Bars;
use super::tick::{Tick, validate_price};

/// How many recent prices each symbol keeps for signal computation. Enough
/// for SMA20 plus a previous point, and for RSI14, with headroom.
pub const HISTORY_CAP: usize = 64;

/// Running session statistics for one symbol.
#[derive(Debug, Clone, PartialEq)]
pub struct SymbolState {
    pub symbol: String,
    /// Price of the earliest tick by `ts`.
    pub open: f64,
    /// Price of the newest tick by `ts` (on equal `ts`, the later arrival).
    pub last: f64,
    pub high: f64,
    pub low: f64,
    pub volume: u64,
    /// Sum of price × volume, for VWAP.
    pub traded_value: f64,
    /// Sum of volume as a float: the VWAP divisor. Unlike `volume` it cannot
    /// saturate, so VWAP stays a true average however much has traded.
    traded_volume: f64,
    /// Number of ticks applied.
    pub ticks: u64,
    /// Latest tick timestamp seen (max, not last-arrived).
    pub updated: OffsetDateTime,
    /// `ts` of the tick `open` came from.
    opened: OffsetDateTime,
    /// Recent (ts, price) pairs in `ts` order.
    history: VecDeque<(OffsetDateTime, f64)>,
    /// One-second OHLCV bars of the last minutes, for charts.
    pub bars: Bars,
}

impl SymbolState {
    fn new(tick: &Tick) -> Self {
        let mut history = VecDeque::with_capacity(HISTORY_CAP);
        history.push_back((tick.ts, tick.price));
        let mut bars = Bars::default();
        bars.record(tick.ts.unix_timestamp_nanos(), tick.price, tick.volume);
        Self {
            symbol: tick.symbol.clone(),
            open: tick.price,
            last: tick.price,
            high: tick.price,
            low: tick.price,
            volume: tick.volume,
            traded_value: tick.price * tick.volume as f64,
            traded_volume: tick.volume as f64,
            ticks: 1,
            updated: tick.ts,
            opened: tick.ts,
            history,
            bars,
        }
    }

    fn apply(&mut self, tick: &Tick) {
        if tick.ts >= self.updated {
            self.last = tick.price;
            self.updated = tick.ts;
        }
        if tick.ts < self.opened {
            self.open = tick.price;
            self.opened = tick.ts;
        }
        self.high = self.high.max(tick.price);
        self.low = self.low.min(tick.price);
        // Prices and volumes are bounded (see `tick.rs`), so these float sums
        // stay finite for far more ticks than a session can hold; the integer
        // counters saturate rather than wrap.
        self.volume = self.volume.saturating_add(tick.volume);
        self.traded_value += tick.price * tick.volume as f64;
        self.traded_volume += tick.volume as f64;
        self.ticks = self.ticks.saturating_add(1);
        self.record(tick);
        self.bars
            .record(tick.ts.unix_timestamp_nanos(), tick.price, tick.volume);
    }

    /// Puts the tick's price into the history at its place in time. A late
    /// tick older than the whole of a full window has no place in it.
    fn record(&mut self, tick: &Tick) {
        let mut at = self.history.partition_point(|(ts, _)| *ts <= tick.ts);
        if self.history.len() == HISTORY_CAP {
            if at == 0 {
                return;
            }
            self.history.pop_front();
            at -= 1;
        }
        self.history.insert(at, (tick.ts, tick.price));
    }

    /// Volume-weighted average price; falls back to `last` before any volume
    /// has traded so the value is always a meaningful price.
    pub fn vwap(&self) -> f64 {
        if self.traded_volume == 0.0 {
            self.last
        } else {
            self.traded_value / self.traded_volume
        }
    }

    /// The most recent prices in `ts` order, oldest first, at most [`HISTORY_CAP`].
    pub fn prices(&self) -> Vec<f64> {
        self.history.iter().map(|&(_, price)| price).collect()
    }
}

/// All symbols' state, keyed and iterated in symbol order for determinism.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Book {
    states: BTreeMap<String, SymbolState>,
}

impl Book {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies a tick (see the module comment for late ticks). Returns
    /// `false` and changes nothing if the price is outside the accepted
    /// range — parsers already enforce that, this just keeps hand-built ticks
    /// from poisoning state.
    pub fn apply(&mut self, tick: &Tick) -> bool {
        if validate_price(tick.price).is_err() {
            return false;
        }
        match self.states.get_mut(&tick.symbol) {
            Some(state) => state.apply(tick),
            None => {
                self.states
                    .insert(tick.symbol.clone(), SymbolState::new(tick));
            }
        }
        true
    }

    /// Applies every tick in order; returns how many were applied.
    pub fn apply_all<'a>(&mut self, ticks: impl IntoIterator<Item = &'a Tick>) -> usize {
        ticks.into_iter().filter(|t| self.apply(t)).count()
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Symbols in ascending order.
    pub fn symbols(&self) -> impl Iterator<Item = &str> + '_ {
        self.states.keys().map(String::as_str)
    }

    pub fn get(&self, symbol: &str) -> Option<&SymbolState> {
        self.states.get(symbol)
    }

    /// States in ascending symbol order.
    pub fn iter(&self) -> impl Iterator<Item = &SymbolState> + '_ {
        self.states.values()
    }

    /// Time of the newest tick: what the market views are "as of". Using it
    /// instead of the clock keeps a view byte-identical while no tick
    /// arrives, so the writer does not re-publish (and invalidate every
    /// reader's L1) just because time passed.
    pub fn last_update(&self) -> Option<OffsetDateTime> {
        self.states.values().map(|s| s.updated).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-02 15:00:00 UTC);

    fn tick(symbol: &str, price: f64, volume: u64, secs: i64) -> Tick {
        Tick {
            symbol: symbol.into(),
            price,
            volume,
            ts: T0 + Duration::seconds(secs),
        }
    }

    #[test]
    fn tracks_ohlc_volume_and_vwap() {
        let mut book = Book::new();
        let ticks = [
            tick("AAPL", 100.0, 10, 0),
            tick("AAPL", 102.0, 30, 1),
            tick("AAPL", 99.0, 20, 2),
            tick("AAPL", 101.0, 40, 3),
        ];
        assert_eq!(book.apply_all(&ticks), 4);
        let s = book.get("AAPL").unwrap();
        assert_eq!((s.open, s.last, s.high, s.low), (100.0, 101.0, 102.0, 99.0));
        assert_eq!(s.volume, 100);
        // 100*10 + 102*30 + 99*20 + 101*40 = 1000 + 3060 + 1980 + 4040 = 10080
        assert_eq!(s.traded_value, 10080.0);
        assert!((s.vwap() - 100.8).abs() < 1e-12);
        assert_eq!(s.ticks, 4);
        assert_eq!(s.updated, T0 + Duration::seconds(3));
        assert_eq!(s.prices(), vec![100.0, 102.0, 99.0, 101.0]);
    }

    #[test]
    fn vwap_falls_back_to_last_without_volume() {
        let mut book = Book::new();
        book.apply(&tick("X", 5.0, 0, 0));
        book.apply(&tick("X", 6.0, 0, 1));
        assert_eq!(book.get("X").unwrap().vwap(), 6.0);
    }

    #[test]
    fn a_late_tick_counts_toward_totals_but_not_last() {
        // The case: 10:00:02 at 100, then a late 10:00:01 at 50.
        let mut book = Book::new();
        book.apply(&tick("OOO", 100.0, 10, 2));
        book.apply(&tick("OOO", 50.0, 30, 1));
        let s = book.get("OOO").unwrap();
        assert_eq!(s.last, 100.0, "last comes from the newest tick by ts");
        assert_eq!(s.updated, T0 + Duration::seconds(2));
        assert_eq!(s.open, 50.0, "the earliest tick by ts opened the session");
        assert_eq!((s.high, s.low, s.volume, s.ticks), (100.0, 50.0, 40, 2));
        assert_eq!(s.vwap(), (100.0 * 10.0 + 50.0 * 30.0) / 40.0);
        assert_eq!(s.prices(), vec![50.0, 100.0], "history in time order");
    }

    #[test]
    fn equal_timestamps_take_the_later_arrival() {
        let mut book = Book::new();
        book.apply(&tick("X", 5.0, 1, 3));
        book.apply(&tick("X", 6.0, 1, 3));
        let s = book.get("X").unwrap();
        assert_eq!((s.open, s.last), (5.0, 6.0));
        assert_eq!(s.prices(), vec![5.0, 6.0]);
    }

    #[test]
    fn a_late_tick_older_than_a_full_history_stays_out_of_it() {
        let mut book = Book::new();
        for i in 0..HISTORY_CAP as i64 {
            book.apply(&tick("X", 10.0 + i as f64, 1, 10 + i));
        }
        book.apply(&tick("X", 1.0, 1, 0));
        let prices = book.get("X").unwrap().prices();
        assert_eq!(prices.len(), HISTORY_CAP);
        assert_eq!(prices[0], 10.0);
        // One inside the window replaces the oldest and lands in its place.
        book.apply(&tick("X", 2.0, 1, 11));
        let prices = book.get("X").unwrap().prices();
        assert_eq!(prices.len(), HISTORY_CAP);
        assert_eq!(&prices[..3], &[11.0, 2.0, 12.0]);
    }

    #[test]
    fn aggregates_do_not_overflow() {
        // Two trades at 1.0 of u64::MAX each: volume saturates, but VWAP is
        // still the average price (it came out 2.0 when the sum wrapped).
        let mut book = Book::new();
        book.apply(&tick("X", 1.0, u64::MAX, 0));
        book.apply(&tick("X", 1.0, u64::MAX, 1));
        let s = book.get("X").unwrap();
        assert_eq!(s.volume, u64::MAX);
        assert_eq!(s.vwap(), 1.0);
        assert!(s.traded_value.is_finite());
    }

    #[test]
    fn history_is_bounded_and_keeps_newest() {
        let mut book = Book::new();
        for i in 0..(HISTORY_CAP as u64 + 10) {
            book.apply(&tick("X", 1.0 + i as f64, 1, i as i64));
        }
        let h = book.get("X").unwrap().prices();
        assert_eq!(h.len(), HISTORY_CAP);
        assert_eq!(h.first(), Some(&11.0));
        assert_eq!(h.last(), Some(&(HISTORY_CAP as f64 + 10.0)));
    }

    #[test]
    fn symbols_sorted_and_invalid_prices_ignored() {
        let mut book = Book::new();
        assert!(book.is_empty());
        book.apply(&tick("MSFT", 1.0, 1, 0));
        book.apply(&tick("AAPL", 1.0, 1, 0));
        assert!(!book.apply(&tick("BAD", f64::NAN, 1, 0)));
        assert!(!book.apply(&tick("AAPL", 0.0, 1, 0)));
        assert_eq!(book.len(), 2);
        assert_eq!(book.symbols().collect::<Vec<_>>(), vec!["AAPL", "MSFT"]);
        assert_eq!(book.get("AAPL").unwrap().ticks, 1);
        assert!(book.get("BAD").is_none());
    }
}
