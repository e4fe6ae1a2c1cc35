//! One-second OHLCV bars of a symbol's recent trading, for price charts.
//!
//! Each symbol keeps the bars of the last [`WINDOW_SECS`] seconds of its
//! own tick time (the newest tick's `ts`, not the writer's clock, so a
//! replayed file draws the same chart). Seconds without a tick have no bar:
//! a chart draws a gap rather than an invented price. Late ticks go into
//! their own second's bar while it is inside the window, so the bars agree
//! with the ticks whatever order they arrived in.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::rounding::{PRICE_DP, round_dp};

/// Seconds of history kept and published per symbol.
pub const WINDOW_SECS: i64 = 300;

/// One second of trading. Short field names: a full history is 300 of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Bar {
    /// Start of the second, Unix seconds.
    pub t: i64,
    pub o: f64,
    pub h: f64,
    pub l: f64,
    pub c: f64,
    pub v: u64,
    /// `ts` of the ticks `o` and `c` came from, in nanoseconds: a late tick
    /// opens or closes the bar only if it is earlier or later than them.
    #[serde(skip)]
    first_ns: i64,
    #[serde(skip)]
    last_ns: i64,
}

impl Bar {
    fn new(t: i64, price: f64, volume: u64, ts_ns: i64) -> Self {
        Bar {
            t,
            o: price,
            h: price,
            l: price,
            c: price,
            v: volume,
            first_ns: ts_ns,
            last_ns: ts_ns,
        }
    }

    fn add(&mut self, price: f64, volume: u64, ts_ns: i64) {
        if ts_ns < self.first_ns {
            self.o = price;
            self.first_ns = ts_ns;
        }
        if ts_ns >= self.last_ns {
            self.c = price;
            self.last_ns = ts_ns;
        }
        self.h = self.h.max(price);
        self.l = self.l.min(price);
        self.v = self.v.saturating_add(volume);
    }

    fn rounded(&self) -> Bar {
        Bar {
            o: round_dp(self.o, PRICE_DP),
            h: round_dp(self.h, PRICE_DP),
            l: round_dp(self.l, PRICE_DP),
            c: round_dp(self.c, PRICE_DP),
            ..*self
        }
    }
}

/// A symbol's bars, oldest first, at most one per second of the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Bars {
    bars: VecDeque<Bar>,
}

impl Bars {
    /// Adds a tick at `ts` (Unix nanoseconds) to its second's bar.
    pub fn record(&mut self, ts_ns: i128, price: f64, volume: u64) {
        // Nanoseconds fit an i64 until 2262; ticks are checked to be near now.
        let ts_ns = i64::try_from(ts_ns).unwrap_or(i64::MAX);
        let t = ts_ns.div_euclid(1_000_000_000);
        let newest = self.bars.back().map_or(t, |b| b.t.max(t));
        if t <= newest - WINDOW_SECS {
            return; // Too late to be drawn.
        }
        let at = self.bars.partition_point(|b| b.t < t);
        match self.bars.get_mut(at) {
            Some(bar) if bar.t == t => bar.add(price, volume, ts_ns),
            _ => self.bars.insert(at, Bar::new(t, price, volume, ts_ns)),
        }
        while self
            .bars
            .front()
            .is_some_and(|b| b.t <= newest - WINDOW_SECS)
        {
            self.bars.pop_front();
        }
    }

    pub fn len(&self) -> usize {
        self.bars.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }

    /// The bars as published, prices rounded like every other price.
    pub fn published(&self) -> Vec<Bar> {
        self.bars.iter().map(Bar::rounded).collect()
    }
}

/// The published value of `market:history:{SYMBOL}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct History {
    pub symbol: String,
    /// Seconds per bar.
    pub interval_s: u32,
    /// Oldest first.
    pub bars: Vec<Bar>,
}

impl History {
    pub fn of(symbol: &str, bars: &Bars) -> Self {
        History {
            symbol: symbol.to_owned(),
            interval_s: 1,
            bars: bars.published(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i128 = 1_000_000_000;
    const T0: i128 = 1_767_366_000 * S;

    fn ohlcv(b: &Bar) -> (i64, f64, f64, f64, f64, u64) {
        (b.t, b.o, b.h, b.l, b.c, b.v)
    }

    #[test]
    fn ticks_of_one_second_make_one_bar() {
        let mut bars = Bars::default();
        bars.record(T0, 10.0, 1);
        bars.record(T0 + S / 2, 12.0, 2);
        bars.record(T0 + S / 4, 9.0, 3);
        bars.record(T0 + S, 11.0, 4);
        let out = bars.published();
        let t = (T0 / S) as i64;
        assert_eq!(ohlcv(&out[0]), (t, 10.0, 12.0, 9.0, 12.0, 6));
        assert_eq!(ohlcv(&out[1]), (t + 1, 11.0, 11.0, 11.0, 11.0, 4));
    }

    #[test]
    fn late_ticks_land_in_their_own_second_and_in_order() {
        let mut bars = Bars::default();
        bars.record(T0 + 5 * S, 50.0, 1);
        bars.record(T0 + 2 * S, 20.0, 1);
        bars.record(T0 + 5 * S - 1, 49.0, 1); // earlier in second 4
        bars.record(T0 + 5 * S + S / 2, 51.0, 1);
        bars.record(T0 + 5 * S + S / 4, 48.0, 1); // late inside second 5
        let out = bars.published();
        let t: Vec<i64> = out.iter().map(|b| b.t - (T0 / S) as i64).collect();
        assert_eq!(t, vec![2, 4, 5]);
        let last = out[2];
        assert_eq!((last.o, last.c, last.l, last.h), (50.0, 51.0, 48.0, 51.0));
    }

    #[test]
    fn the_window_keeps_the_last_300_seconds() {
        let mut bars = Bars::default();
        for i in 0..400 {
            bars.record(T0 + i * S, 1.0 + i as f64, 1);
        }
        let out = bars.published();
        assert_eq!(out.len(), WINDOW_SECS as usize);
        assert_eq!(out[0].t, (T0 / S) as i64 + 100);
        // A tick older than the window is left out.
        bars.record(T0 + 50 * S, 7.0, 1);
        assert_eq!(bars.published(), out);
        // A jump ahead drops everything the new window does not cover.
        bars.record(T0 + 1_000 * S, 2.0, 1);
        assert_eq!(bars.len(), 1);
    }

    #[test]
    fn history_serializes_compactly() {
        let mut bars = Bars::default();
        bars.record(T0, 1.234_567, 5);
        let json = serde_json::to_string(&History::of("X", &bars)).unwrap();
        assert_eq!(
            json,
            format!(
                r#"{{"symbol":"X","interval_s":1,"bars":[{{"t":{},"o":1.2346,"h":1.2346,"l":1.2346,"c":1.2346,"v":5}}]}}"#,
                T0 / S
            )
        );
    }
}
