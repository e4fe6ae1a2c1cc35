//! Market domain logic for CacheBridge: parsing ticks, keeping per-symbol
//! state, deriving signals and building the JSON views the writer publishes.
//!
//! Everything here is pure and deterministic (no clocks, no I/O, seeded
//! randomness only) so the writer, the reader and the tests agree exactly.

pub mod bars;
pub mod book;
pub mod rfc3339;
pub mod rounding;
pub mod signals;
pub mod synthetic;
pub mod tick;
pub mod views;

pub use bars::{Bar, Bars, History};
pub use book::{Book, HISTORY_CAP, SymbolState};
pub use signals::{Direction, Signal, SignalKind, SymbolSignals};
pub use synthetic::{DEFAULT_SYMBOLS, SyntheticFeed, symbol_universe};
pub use tick::{Tick, TickError, parse_csv, parse_file, parse_ndjson, validate_symbol};
pub use views::{Movers, Overview, Snapshot, Ticker, snapshot};
