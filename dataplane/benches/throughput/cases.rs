//! What is measured: the run's settings, the cases, and their targets
//! (issue 7's "done when").

use cachebridge_dataplane::market::{DEFAULT_SYMBOLS, symbol_universe};
use std::time::Duration;

/// How long and how hard each case is loaded.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Keep-alive connections of the load generators.
    pub connections: usize,
    /// Interleaved closed-loop rounds per case and server, and their length.
    pub rounds: usize,
    pub round: Duration,
    /// Unmeasured `wrk` run per server before the rounds.
    pub warmup: Duration,
    /// Interleaved fixed-rate rounds per case and server, their unmeasured
    /// start and their measured length.
    pub half_load_rounds: usize,
    pub half_load_warmup: Duration,
    pub half_load_measure: Duration,
    /// A smoke run: figures not for the record.
    pub quick: bool,
}

impl Settings {
    pub fn from_env() -> Settings {
        if std::env::var_os("CACHEBRIDGE_BENCH_QUICK").is_some() {
            return Settings {
                connections: 32,
                rounds: 1,
                round: Duration::from_secs(1),
                warmup: Duration::from_secs(1),
                half_load_rounds: 1,
                half_load_warmup: Duration::from_millis(200),
                half_load_measure: Duration::from_secs(1),
                quick: true,
            };
        }
        Settings {
            connections: 32,
            rounds: 5,
            round: Duration::from_secs(3),
            warmup: Duration::from_secs(1),
            half_load_rounds: 7,
            half_load_warmup: Duration::from_millis(500),
            half_load_measure: Duration::from_secs(3),
            quick: false,
        }
    }
}

/// Which writer and reader a case runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setup {
    /// The synthetic writer publishing at its defaults; the reader with
    /// its defaults (L1 and Memcached).
    Publishing,
    /// A writer that published once and then only sends heartbeats; the
    /// reader with a long L1 TTL and staleness budget: nothing ever leaves
    /// L1, the pure L1 path.
    Idle,
    /// The synthetic writer publishing; the reader with `--l1-max-bytes 0`
    /// and no Memcached: one Redis `GET` per key and request.
    RedisOnly,
}

/// What the reader is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// Bare axum, the captured answer from memory.
    Static,
    /// Bare axum, the captured answer's body from one Redis `GET`.
    Redis,
}

/// One comparison.
#[derive(Debug, Clone)]
pub struct Case {
    pub key: &'static str,
    pub title: String,
    pub path: String,
    pub setup: Setup,
    pub reference: Reference,
    /// Least reader/reference throughput ratio that meets the target.
    pub min_ratio: f64,
    /// When not empty, requests cycle through these symbols in place of
    /// the path's last segment, so that no two requests in flight ask for
    /// the same key: the reader's single flight cannot merge them.
    pub spread: Vec<String>,
    /// The `Accept-Encoding` every request sends, if any: the compressed
    /// cases (the reference replays the reader's compressed bytes).
    pub accept_encoding: Option<&'static str>,
}

impl Case {
    /// Every path the load asks for, in the order it cycles through them.
    pub fn paths(&self) -> Vec<String> {
        if self.spread.is_empty() {
            return vec![self.path.clone()];
        }
        let stem = &self.path[..=self.path.rfind('/').unwrap_or(0)];
        self.spread.iter().map(|s| format!("{stem}{s}")).collect()
    }
}

/// Reader p99 at half load may be at most this multiple of the reference's.
pub const MAX_P99_RATIO: f64 = 1.5;
/// Least L1 hit ratio under full load with the writer publishing.
pub const MIN_L1_HIT_RATIO: f64 = 0.9999;
/// Symbols named in the `?symbols=` case.
pub const LIST_SYMBOLS: usize = 20;

const TICKER: &str = "/api/v1/market/tickers/AAPL";
/// What Chrome and Firefox send: the reader answers brotli.
const BROWSER_ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// The cases `CACHEBRIDGE_BENCH_CASES` names (keys, comma-separated), or
/// all: for comparing one change quickly. A partial run is not for the
/// record (it would replace the whole section with a few rows).
pub fn selected() -> Vec<Case> {
    let Ok(keys) = std::env::var("CACHEBRIDGE_BENCH_CASES") else {
        return all();
    };
    let keys: Vec<&str> = keys.split(',').map(str::trim).collect();
    all()
        .into_iter()
        .filter(|c| keys.contains(&c.key))
        .collect()
}

/// Every case, grouped by setup in the order they run.
pub fn all() -> Vec<Case> {
    let symbols = symbol_universe(LIST_SYMBOLS).join(",");
    let case = |key, title: &str, path: &str, setup, reference, min_ratio| Case {
        key,
        title: title.to_owned(),
        path: path.to_owned(),
        setup,
        reference,
        min_ratio,
        spread: Vec::new(),
        accept_encoding: None,
    };
    use Reference::{Redis, Static};
    use Setup::{Idle, Publishing, RedisOnly};
    vec![
        case(
            "ticker",
            "L1 hit, one ticker, writer publishing",
            TICKER,
            Publishing,
            Static,
            0.90,
        ),
        case(
            "dashboard",
            "L1 hit, dashboard (3 keys)",
            "/api/v1/dashboard",
            Publishing,
            Static,
            0.85,
        ),
        case(
            "tickers",
            "L1 hit, full ticker list",
            "/api/v1/market/tickers",
            Publishing,
            Static,
            0.85,
        ),
        Case {
            accept_encoding: Some(BROWSER_ACCEPT_ENCODING),
            ..case(
                "tickers_br",
                "L1 hit, full ticker list, compressed (brotli, as browsers ask)",
                "/api/v1/market/tickers",
                Publishing,
                Static,
                0.85,
            )
        },
        case(
            "symbols",
            &format!("L1 hit, ticker list `?symbols=` ({LIST_SYMBOLS} keys)"),
            &format!("/api/v1/market/tickers?symbols={symbols}"),
            Publishing,
            Static,
            0.85,
        ),
        Case {
            spread: symbol_universe(DEFAULT_SYMBOLS),
            ..case(
                "redis",
                "Redis path, tickers of every symbol in turn (L1 off, no Memcached)",
                TICKER,
                RedisOnly,
                Redis,
                0.85,
            )
        },
        case(
            "ticker_idle",
            "L1 hit, one ticker, writer not publishing (pure L1)",
            TICKER,
            Idle,
            Static,
            0.90,
        ),
    ]
}
