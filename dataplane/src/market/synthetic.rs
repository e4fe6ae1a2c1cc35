//! The built-in synthetic market feed, used when no replay file or HTTP
//! ingest is configured (demos, load tests, CI).
//!
//! Seeded with ChaCha8 (a documented, platform-independent stream) rather
//! than `StdRng`/`thread_rng`, whose algorithms may change between rand
//! releases: the same seed must replay the same market everywhere.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use time::OffsetDateTime;

use super::rounding::round_dp;
use super::tick::Tick;

/// Size of the built-in ticker list and the default universe.
pub const DEFAULT_SYMBOLS: usize = 175;

/// Lowest price the feed will ever emit; keeps prices strictly positive.
pub const PRICE_FLOOR: f64 = 0.01;
/// Ordinary per-tick moves are uniform in ±0.2%.
const SMALL_MOVE: f64 = 0.002;
/// Occasional jumps are uniform in ±2%.
const JUMP_MOVE: f64 = 0.02;
/// Probability that a tick is a jump rather than an ordinary move.
const JUMP_PROBABILITY: f64 = 0.02;
/// Starting prices are drawn uniformly from this range.
const START_PRICE: std::ops::Range<f64> = 10.0..500.0;
/// Per-tick volume range (inclusive).
const VOLUME: std::ops::RangeInclusive<u64> = 1..=1000;

/// Large-cap US equity tickers, used in this fixed order.
const TICKERS: [&str; DEFAULT_SYMBOLS] = [
    "AAPL", "MSFT", "NVDA", "AMZN", "GOOGL", "META", "BRK.B", "TSLA", "AVGO", "JPM", "LLY", "V",
    "UNH", "XOM", "MA", "JNJ", "PG", "HD", "COST", "ABBV", "WMT", "MRK", "NFLX", "CVX", "KO",
    "ADBE", "PEP", "CRM", "BAC", "AMD", "TMO", "ORCL", "LIN", "ACN", "MCD", "CSCO", "ABT", "WFC",
    "DHR", "INTU", "DIS", "QCOM", "TXN", "VZ", "CAT", "AMGN", "IBM", "PM", "NEE", "GE", "CMCSA",
    "PFE", "UNP", "SPGI", "NOW", "HON", "ISRG", "AMAT", "LOW", "RTX", "GS", "UBER", "COP", "T",
    "BKNG", "ELV", "PLD", "BLK", "SYK", "MS", "TJX", "VRTX", "MDT", "AXP", "LRCX", "PGR", "CB",
    "REGN", "ADI", "SCHW", "MMC", "C", "BSX", "ETN", "LMT", "CI", "PANW", "MU", "ADP", "KLAC",
    "SNPS", "DE", "BMY", "CDNS", "GILD", "SBUX", "MDLZ", "AMT", "ZTS", "SO", "FI", "BX", "CME",
    "MO", "ICE", "DUK", "SHW", "EQIX", "CL", "TGT", "MCK", "ITW", "SLB", "PYPL", "CVS", "APH",
    "EOG", "BDX", "NOC", "WM", "USB", "PNC", "CSX", "ABNB", "MPC", "HCA", "FDX", "ORLY", "MAR",
    "PSX", "EMR", "GD", "APD", "ROP", "NSC", "AJG", "TT", "PH", "ECL", "FCX", "MMM", "AON", "CARR",
    "MSI", "WELL", "ADSK", "PCAR", "NXPI", "TFC", "AZO", "COF", "HLT", "SRE", "AIG", "MET", "CPRT",
    "GM", "TRV", "DLR", "KMB", "OKE", "PSA", "ROST", "MCHP", "F", "AFL", "JCI", "ALL", "PAYX", "O",
    "KDP", "EW", "DXCM", "TEL", "IDXX",
];

/// The first `n` symbols of the built-in list; beyond 175, generated names
/// `SYN176`, `SYN177`, … keep every symbol distinct and valid.
pub fn symbol_universe(n: usize) -> Vec<String> {
    let listed = TICKERS.iter().take(n).map(|s| (*s).to_owned());
    let generated = (TICKERS.len() + 1..=n).map(|i| format!("SYN{i}"));
    listed.chain(generated).collect()
}

/// A deterministic random-walk tick generator.
#[derive(Debug, Clone)]
pub struct SyntheticFeed {
    rng: ChaCha8Rng,
    symbols: Vec<String>,
    /// Unrounded internal prices, parallel to `symbols`; emitted prices are
    /// rounded to cents so rounding error never accumulates in the walk.
    prices: Vec<f64>,
}

impl SyntheticFeed {
    /// Creates a feed over `symbols` (taken as given, assumed valid). An empty
    /// list falls back to the default universe so the feed can always tick.
    pub fn new(seed: u64, symbols: Vec<String>) -> Self {
        let symbols = if symbols.is_empty() {
            symbol_universe(DEFAULT_SYMBOLS)
        } else {
            symbols
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let prices = symbols
            .iter()
            .map(|_| round_dp(rng.random_range(START_PRICE), 2))
            .collect();
        Self {
            rng,
            symbols,
            prices,
        }
    }

    pub fn symbols(&self) -> &[String] {
        &self.symbols
    }

    /// Picks a random symbol, moves its price one step and returns the tick.
    /// One opening trade per symbol at its starting price, so the market
    /// views cover the whole universe from the first publish on.
    pub fn opening(&mut self, ts: OffsetDateTime) -> Vec<Tick> {
        (0..self.symbols.len())
            .map(|index| Tick {
                symbol: self.symbols[index].clone(),
                price: round_dp(self.prices[index], 2).max(PRICE_FLOOR),
                volume: self.rng.random_range(VOLUME),
                ts,
            })
            .collect()
    }

    pub fn next_tick(&mut self, ts: OffsetDateTime) -> Tick {
        let index = self.rng.random_range(0..self.symbols.len());
        let bound = if self.rng.random_bool(JUMP_PROBABILITY) {
            JUMP_MOVE
        } else {
            SMALL_MOVE
        };
        let step = self.rng.random_range(-bound..=bound);
        let price = (self.prices[index] * (1.0 + step)).max(PRICE_FLOOR);
        self.prices[index] = price;
        Tick {
            symbol: self.symbols[index].clone(),
            price: round_dp(price, 2).max(PRICE_FLOOR),
            volume: self.rng.random_range(VOLUME),
            ts,
        }
    }

    /// `n` consecutive ticks, all stamped `ts`.
    pub fn next_batch(&mut self, n: usize, ts: OffsetDateTime) -> Vec<Tick> {
        (0..n).map(|_| self.next_tick(ts)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_covers_every_symbol_once() {
        let mut feed = SyntheticFeed::new(3, symbol_universe(DEFAULT_SYMBOLS));
        let ticks = feed.opening(OffsetDateTime::UNIX_EPOCH);
        let symbols: std::collections::BTreeSet<_> =
            ticks.iter().map(|t| t.symbol.as_str()).collect();
        assert_eq!(
            (ticks.len(), symbols.len()),
            (DEFAULT_SYMBOLS, DEFAULT_SYMBOLS)
        );
        assert!(ticks.iter().all(|t| t.price >= PRICE_FLOOR));
    }
    use crate::market::tick::validate_symbol;
    use std::collections::BTreeSet;
    use time::macros::datetime;

    const TS: OffsetDateTime = datetime!(2026-01-02 15:00:00 UTC);

    fn run(seed: u64) -> Vec<Tick> {
        let mut feed = SyntheticFeed::new(seed, symbol_universe(DEFAULT_SYMBOLS));
        let mut ticks = feed.next_batch(500, TS);
        ticks.extend((0..500).map(|_| feed.next_tick(TS)));
        ticks
    }

    #[test]
    fn same_seed_same_ticks() {
        let a = run(42);
        assert_eq!(a.len(), 1000);
        assert_eq!(a, run(42));
    }

    #[test]
    fn different_seeds_differ() {
        let a = run(1);
        let b = run(2);
        assert_ne!(a, b);
        // Not just one tick: the streams should be broadly different.
        let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
        assert!(same < 10, "{same} identical ticks");
    }

    #[test]
    fn universe_has_175_distinct_valid_symbols() {
        let u = symbol_universe(DEFAULT_SYMBOLS);
        assert_eq!(u.len(), 175);
        assert_eq!(u.iter().collect::<BTreeSet<_>>().len(), 175);
        for s in &u {
            assert_eq!(validate_symbol(s).as_ref(), Ok(s), "{s}");
        }
        assert_eq!(&u[..3], ["AAPL", "MSFT", "NVDA"]);
    }

    #[test]
    fn universe_truncates_and_extends() {
        assert!(symbol_universe(0).is_empty());
        assert_eq!(symbol_universe(2), vec!["AAPL", "MSFT"]);
        let big = symbol_universe(177);
        assert_eq!(big.len(), 177);
        assert_eq!(&big[175..], ["SYN176", "SYN177"]);
        assert_eq!(big.iter().collect::<BTreeSet<_>>().len(), 177);
    }

    #[test]
    fn prices_stay_positive_over_100k_ticks() {
        let mut feed = SyntheticFeed::new(7, symbol_universe(DEFAULT_SYMBOLS));
        let mut seen = BTreeSet::new();
        for _ in 0..100_000 {
            let t = feed.next_tick(TS);
            assert!(t.price.is_finite() && t.price >= PRICE_FLOOR, "{t:?}");
            assert!(VOLUME.contains(&t.volume), "{t:?}");
            seen.insert(t.symbol);
        }
        assert_eq!(seen.len(), DEFAULT_SYMBOLS);
    }

    #[test]
    fn moves_are_small_and_start_prices_in_range() {
        let mut feed = SyntheticFeed::new(3, vec!["ONE".into()]);
        let start = feed.prices[0];
        assert!(START_PRICE.contains(&start));
        let mut prev = start;
        for t in feed.next_batch(1000, TS) {
            assert_eq!(t.symbol, "ONE");
            assert_eq!(t.ts, TS);
            // ≤ 2% jump plus half a cent of rounding on each side.
            assert!(
                (t.price - prev).abs() <= prev * JUMP_MOVE + 0.01,
                "{prev} -> {}",
                t.price
            );
            prev = t.price;
        }
    }

    #[test]
    fn empty_symbol_list_falls_back_to_default_universe() {
        let mut feed = SyntheticFeed::new(0, Vec::new());
        assert_eq!(feed.symbols().len(), DEFAULT_SYMBOLS);
        assert!(TICKERS.contains(&feed.next_tick(TS).symbol.as_str()));
    }
}
