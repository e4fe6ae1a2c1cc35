//! Simple technical signals derived from each symbol's recent price history:
//! a moving-average crossover (trend) and RSI (momentum exhaustion).
//!
//! Signals are advisory decoration on the published views; they must be
//! cheap, deterministic and silent (absent) when there is not enough data.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::book::SymbolState;
use super::rounding::{PRICE_DP, round_dp};

/// Fast SMA window used by [`for_symbol`].
pub const FAST_SMA: usize = 5;
/// Slow SMA window used by [`for_symbol`].
pub const SLOW_SMA: usize = 20;
/// RSI look-back used by [`for_symbol`].
pub const RSI_PERIOD: usize = 14;
/// RSI at or below this is oversold (bullish).
pub const RSI_OVERSOLD: f64 = 30.0;
/// RSI at or above this is overbought (bearish).
pub const RSI_OVERBOUGHT: f64 = 70.0;

/// Spreads smaller than this (in %) count as "equal": summing identical
/// prices over different windows can differ in the last bit.
const SPREAD_EPSILON_PCT: f64 = 1e-9;

/// `ma_crossover`: SMA(5) against SMA(20); `rsi`: RSI(14).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SignalKind {
    MaCrossover,
    Rsi,
}

/// Where a signal points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Bullish,
    Bearish,
    Neutral,
}

/// One signal of one symbol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Signal {
    pub kind: SignalKind,
    pub direction: Direction,
    /// 0.0..=1.0, how strongly the signal points in `direction`.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub strength: f64,
    /// RSI value, or the fast−slow SMA spread in % of the slow SMA.
    pub value: f64,
    /// Short human-readable explanation, e.g. "SMA5 crossed above SMA20".
    pub detail: String,
    /// When the signal was computed (the symbol's last tick).
    #[serde(with = "crate::market::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub at: OffsetDateTime,
}

/// A symbol's signals; empty until its price history is long enough.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SymbolSignals {
    pub symbol: String,
    pub signals: Vec<Signal>,
}

/// Compares a fast and a slow simple moving average of the latest prices.
///
/// Bullish when fast > slow, bearish when below; the detail says "crossed"
/// when the relationship differs from the previous price point. `value` is
/// the spread in % of the slow SMA and strength is `min(1, |spread%| / 1%)`.
/// Returns `None` with fewer than `slow` prices, when `fast` is 0 or not
/// shorter than `slow`, or when the window holds non-positive/non-finite prices.
pub fn ma_crossover(
    prices: &[f64],
    fast: usize,
    slow: usize,
    at: OffsetDateTime,
) -> Option<Signal> {
    if fast == 0 || fast >= slow || prices.len() < slow {
        return None;
    }
    let now = spread_pct(prices, fast, slow)?;
    let prev = if prices.len() > slow {
        spread_pct(&prices[..prices.len() - 1], fast, slow)
    } else {
        None
    };
    let direction = direction_of(now);
    let crossed =
        prev.is_some_and(|p| direction != Direction::Neutral && direction_of(p) != direction);
    let relation = match direction {
        Direction::Bullish => "above",
        Direction::Bearish => "below",
        Direction::Neutral => "level with",
    };
    let verb = if crossed { "crossed " } else { "" };
    Some(Signal {
        kind: SignalKind::MaCrossover,
        direction,
        strength: round_dp(now.abs().min(1.0), PRICE_DP),
        value: round_dp(now, PRICE_DP),
        detail: format!("SMA{fast} {verb}{relation} SMA{slow}"),
        at,
    })
}

/// Relative Strength Index over the last `period` price changes.
///
/// Uses the simple-average (Cutler) form, `100 × gains / (gains + losses)`,
/// rather than Wilder's smoothing: Wilder's value depends on how far back the
/// series starts, and our history is a bounded sliding window, so Cutler's
/// keeps the result a pure function of the last `period + 1` prices.
/// All gains → 100, all losses → 0, flat → 50.
///
/// Below 30 is oversold (bullish), above 70 overbought (bearish). Strength is
/// the distance beyond the threshold scaled to the remaining range, so RSI 0
/// or 100 gives 1.0, and neutral readings give 0.0.
/// Returns `None` with fewer than `period + 1` prices or `period == 0`.
pub fn rsi(prices: &[f64], period: usize, at: OffsetDateTime) -> Option<Signal> {
    if period == 0 || prices.len() <= period {
        return None;
    }
    let window = &prices[prices.len() - period - 1..];
    if !window.iter().all(|p| p.is_finite()) {
        return None;
    }
    let (gains, losses) = window
        .windows(2)
        .map(|w| w[1] - w[0])
        .fold(
            (0.0, 0.0),
            |(g, l), d| if d > 0.0 { (g + d, l) } else { (g, l - d) },
        );
    let value = if gains + losses == 0.0 {
        50.0
    } else {
        100.0 * gains / (gains + losses)
    };
    let (direction, strength, label) = if value < RSI_OVERSOLD {
        (
            Direction::Bullish,
            (RSI_OVERSOLD - value) / RSI_OVERSOLD,
            "oversold",
        )
    } else if value > RSI_OVERBOUGHT {
        (
            Direction::Bearish,
            (value - RSI_OVERBOUGHT) / (100.0 - RSI_OVERBOUGHT),
            "overbought",
        )
    } else {
        (Direction::Neutral, 0.0, "neutral")
    };
    let value = round_dp(value, PRICE_DP);
    Some(Signal {
        kind: SignalKind::Rsi,
        direction,
        strength: round_dp(strength.clamp(0.0, 1.0), PRICE_DP),
        value,
        detail: format!("RSI{period} {value:.1} {label}"),
        at,
    })
}

/// The standard signal set for one symbol (SMA5/SMA20 crossover and RSI14),
/// including only the signals its history is long enough for.
pub fn for_symbol(state: &SymbolState, at: OffsetDateTime) -> SymbolSignals {
    let prices = state.prices();
    let signals = [
        ma_crossover(&prices, FAST_SMA, SLOW_SMA, at),
        rsi(&prices, RSI_PERIOD, at),
    ];
    SymbolSignals {
        symbol: state.symbol.clone(),
        signals: signals.into_iter().flatten().collect(),
    }
}

/// Mean of the last `n` values (caller guarantees `n <= values.len()`, `n > 0`).
fn sma_tail(values: &[f64], n: usize) -> f64 {
    values[values.len() - n..].iter().sum::<f64>() / n as f64
}

/// Fast−slow spread in % of slow, or `None` if the window is unusable.
fn spread_pct(prices: &[f64], fast: usize, slow: usize) -> Option<f64> {
    let window = &prices[prices.len() - slow..];
    if !window.iter().all(|p| p.is_finite() && *p > 0.0) {
        return None;
    }
    let slow_avg = sma_tail(window, slow);
    let fast_avg = sma_tail(window, fast);
    let spread = 100.0 * (fast_avg - slow_avg) / slow_avg;
    Some(if spread.abs() < SPREAD_EPSILON_PCT {
        0.0
    } else {
        spread
    })
}

fn direction_of(spread: f64) -> Direction {
    if spread > 0.0 {
        Direction::Bullish
    } else if spread < 0.0 {
        Direction::Bearish
    } else {
        Direction::Neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::{Book, Tick};
    use time::macros::datetime;

    const AT: OffsetDateTime = datetime!(2026-01-02 15:00:00 UTC);

    #[test]
    fn rsi_strictly_rising_is_100_overbought() {
        let prices: Vec<f64> = (1..=15).map(f64::from).collect();
        let s = rsi(&prices, 14, AT).unwrap();
        assert_eq!(s.value, 100.0);
        assert_eq!(s.direction, Direction::Bearish);
        assert_eq!(s.strength, 1.0);
        assert_eq!(s.kind, SignalKind::Rsi);
        assert_eq!(s.detail, "RSI14 100.0 overbought");
    }

    #[test]
    fn rsi_strictly_falling_is_0_oversold() {
        let prices: Vec<f64> = (1..=15).rev().map(f64::from).collect();
        let s = rsi(&prices, 14, AT).unwrap();
        assert_eq!(s.value, 0.0);
        assert_eq!(s.direction, Direction::Bullish);
        assert_eq!(s.strength, 1.0);
    }

    #[test]
    fn rsi_flat_is_50_neutral() {
        let s = rsi(&[7.0; 15], 14, AT).unwrap();
        assert_eq!(
            (s.value, s.direction, s.strength),
            (50.0, Direction::Neutral, 0.0)
        );
    }

    #[test]
    fn rsi_hand_computed() {
        // Changes +1, -0.5, +1: gains 2, losses 0.5 → 100 * 2 / 2.5 = 80.
        let s = rsi(&[10.0, 11.0, 10.5, 11.5], 3, AT).unwrap();
        assert_eq!(s.value, 80.0);
        assert_eq!(s.direction, Direction::Bearish);
        assert_eq!(s.strength, 0.3333); // (80 - 70) / 30
        // Only the last `period` changes count: the early +5 is ignored,
        // leaving -0.5 and -1 → no gains → 0.
        assert_eq!(rsi(&[5.0, 10.0, 9.5, 8.5], 2, AT).unwrap().value, 0.0);
        // Changes +1, -2 → 100 * 1 / 3.
        let s = rsi(&[5.0, 6.0, 4.0], 2, AT).unwrap();
        assert_eq!(s.value, 33.3333);
        assert_eq!(s.direction, Direction::Neutral);
        // Changes -3, +1 → 25: oversold with strength (30 - 25) / 30.
        let s = rsi(&[9.0, 6.0, 7.0], 2, AT).unwrap();
        assert_eq!(
            (s.value, s.direction, s.strength),
            (25.0, Direction::Bullish, 0.1667)
        );
    }

    #[test]
    fn rsi_needs_period_plus_one_prices() {
        assert!(rsi(&[1.0; 14], 14, AT).is_none());
        assert!(rsi(&[1.0; 15], 14, AT).is_some());
        assert!(rsi(&[1.0; 5], 0, AT).is_none());
        assert!(rsi(&[1.0; 5], usize::MAX, AT).is_none());
        assert!(ma_crossover(&[1.0; 5], 1, usize::MAX, AT).is_none());
        assert!(rsi(&[1.0, f64::NAN, 2.0], 2, AT).is_none());
    }

    #[test]
    fn crossover_detects_cross_above_then_holds() {
        // [3,2,1]: fast(2)=1.5 < slow(3)=2. Adding 4: fast=2.5 > slow=7/3.
        let s = ma_crossover(&[3.0, 2.0, 1.0, 4.0], 2, 3, AT).unwrap();
        assert_eq!(s.direction, Direction::Bullish);
        assert_eq!(s.detail, "SMA2 crossed above SMA3");
        assert_eq!(s.value, 7.1429); // 100 * (2.5 - 7/3) / (7/3)
        assert_eq!(s.strength, 1.0);
        assert_eq!(s.kind, SignalKind::MaCrossover);
        // Next point still above: no "crossed".
        let s = ma_crossover(&[3.0, 2.0, 1.0, 4.0, 5.0], 2, 3, AT).unwrap();
        assert_eq!(s.detail, "SMA2 above SMA3");
    }

    #[test]
    fn crossover_detects_cross_below_and_scales_strength() {
        // [10,10,10]: level. Then 9.97: fast=9.985, slow=9.99 → -0.05005%.
        let s = ma_crossover(&[10.0, 10.0, 10.0, 9.97], 2, 3, AT).unwrap();
        assert_eq!(s.direction, Direction::Bearish);
        assert_eq!(s.detail, "SMA2 crossed below SMA3");
        assert_eq!(s.value, -0.0501);
        assert_eq!(s.strength, 0.0501);
    }

    #[test]
    fn crossover_without_previous_point_never_says_crossed() {
        let s = ma_crossover(&[1.0, 2.0, 3.0], 2, 3, AT).unwrap();
        assert_eq!(s.detail, "SMA2 above SMA3");
        let s = ma_crossover(&[0.1; 20], 5, 20, AT).unwrap();
        assert_eq!(
            (s.direction, s.value, s.strength),
            (Direction::Neutral, 0.0, 0.0)
        );
        assert_eq!(s.detail, "SMA5 level with SMA20");
    }

    #[test]
    fn crossover_needs_slow_prices_and_sane_windows() {
        assert!(ma_crossover(&[1.0; 19], 5, 20, AT).is_none());
        assert!(ma_crossover(&[1.0; 20], 5, 20, AT).is_some());
        assert!(ma_crossover(&[1.0; 20], 0, 20, AT).is_none());
        assert!(ma_crossover(&[1.0; 20], 20, 20, AT).is_none());
        assert!(ma_crossover(&[1.0, 0.0, 1.0], 1, 3, AT).is_none());
    }

    #[test]
    fn for_symbol_includes_only_signals_with_enough_data() {
        let mut book = Book::new();
        let mut kinds_after = |n: usize| {
            let mut seen = book.get("X").map_or(0, |s| s.ticks);
            while seen < n as u64 {
                book.apply(&tick(100.0 + seen as f64));
                seen += 1;
            }
            let out = for_symbol(book.get("X").unwrap(), AT);
            assert_eq!(out.symbol, "X");
            out.signals.iter().map(|s| s.kind).collect::<Vec<_>>()
        };
        // 14 prices: not enough for RSI14 (needs 15) nor SMA20 (needs 20).
        assert_eq!(kinds_after(14), vec![]);
        assert_eq!(kinds_after(15), vec![SignalKind::Rsi]);
        assert_eq!(kinds_after(19), vec![SignalKind::Rsi]);
        assert_eq!(
            kinds_after(20),
            vec![SignalKind::MaCrossover, SignalKind::Rsi]
        );
    }

    #[test]
    fn serializes_snake_case() {
        let s = rsi(&[1.0, 2.0], 1, AT).unwrap();
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["kind"], "rsi");
        assert_eq!(json["direction"], "bearish");
        assert_eq!(json["at"], "2026-01-02T15:00:00Z");
        let m = ma_crossover(&[1.0, 2.0, 3.0], 2, 3, AT).unwrap();
        assert_eq!(serde_json::to_value(&m).unwrap()["kind"], "ma_crossover");
        let back: Signal = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);
    }

    fn tick(price: f64) -> Tick {
        Tick {
            symbol: "X".into(),
            price,
            volume: 1,
            ts: AT,
        }
    }
}
