//! The writer: the trading-service side of the bridge.
//!
//! Ticks arrive from one source (the synthetic feed, a replayed file, or
//! nothing built in) and, optionally, from `POST /ingest`. They update one
//! shared order book; every publish interval the market views are computed
//! from it and the values that changed — or that have not been re-published
//! for half the staleness budget — go to the publisher, which stores them in
//! Redis and Memcached.

pub mod ingest;
pub mod openapi;
pub mod publisher;
pub mod sources;
pub mod status;
pub mod token;

use crate::config::Config;
use crate::keys::logical;
use crate::market::bars::History;
use crate::market::book::Book;
use crate::market::views::{self, Snapshot};
use bytes::Bytes;
use publisher::Publisher;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use tokio::sync::watch;

/// The book every source writes into; short critical sections only.
pub type SharedBook = Arc<Mutex<Book>>;

pub fn new_book() -> SharedBook {
    Arc::new(Mutex::new(Book::default()))
}

/// Locks the book; a panic elsewhere cannot leave a tick half-applied, so a
/// poisoned lock is still safe to use.
pub fn lock(book: &SharedBook) -> std::sync::MutexGuard<'_, Book> {
    book.lock().unwrap_or_else(|p| p.into_inner())
}

/// How often at most a symbol's price history is re-published while it
/// trades: its bars are one second long, so a faster cadence would only
/// re-send the same bars with the newest one half built.
pub const HISTORY_EVERY: Duration = Duration::from_secs(1);

/// Decides which values to (re)publish each cycle.
pub struct Cycle {
    movers: usize,
    refresh: Duration,
    last: HashMap<String, (u64, Instant)>,
    /// Per history key: the symbol's tick count when last published, and when.
    histories: HashMap<String, (u64, Instant)>,
}

impl Cycle {
    pub fn new(config: &Config) -> Self {
        Cycle {
            movers: config.writer.movers,
            refresh: config.cache.staleness_budget / 2,
            last: HashMap::new(),
            histories: HashMap::new(),
        }
    }

    /// The values that changed since they were last published, or that are
    /// due for a refresh so their age never exceeds the staleness budget.
    pub fn due(&mut self, book: &Book) -> Vec<(String, Bytes)> {
        self.due_at(book, Instant::now())
    }

    fn due_at(&mut self, book: &Book, at: Instant) -> Vec<(String, Bytes)> {
        let Some(snapshot) = book
            .last_update()
            .and_then(|as_of| views::snapshot(book, self.movers, as_of))
        else {
            return Vec::new();
        };
        let mut due: Vec<(String, Bytes)> = payloads(&snapshot)
            .into_iter()
            .filter(|(key, payload)| {
                let hash = xxhash_rust::xxh3::xxh3_64(payload);
                match self.last.get(key) {
                    Some(&(h, when)) if h == hash && at.duration_since(when) < self.refresh => {
                        false
                    }
                    _ => {
                        self.last.insert(key.clone(), (hash, at));
                        true
                    }
                }
            })
            .collect();
        due.extend(self.due_histories(book, at));
        due
    }

    /// Price histories of symbols that traded since theirs was last
    /// published (at most every [`HISTORY_EVERY`]), or that are due for a
    /// refresh. Judged by the tick count, so a history is serialized only
    /// when it is sent: all of them are a few MiB.
    fn due_histories(&mut self, book: &Book, at: Instant) -> Vec<(String, Bytes)> {
        let mut out = Vec::new();
        for state in book.iter() {
            let key = logical::history(&state.symbol);
            let due = self.histories.get(&key).is_none_or(|&(ticks, when)| {
                let since = at.duration_since(when);
                (ticks != state.ticks && since >= HISTORY_EVERY) || since >= self.refresh
            });
            if due {
                let payload = json(&History::of(&state.symbol, &state.bars));
                self.histories.insert(key.clone(), (state.ticks, at));
                out.push((key, payload));
            }
        }
        out
    }
}

/// Every published value of a snapshot, serialized once.
pub fn payloads(snapshot: &Snapshot) -> Vec<(String, Bytes)> {
    let mut out = Vec::with_capacity(4 + 2 * snapshot.tickers.len());
    out.push((logical::OVERVIEW.to_owned(), json(&snapshot.overview)));
    let tickers: Vec<_> = snapshot.tickers.values().collect();
    out.push((logical::TICKERS.to_owned(), json(&tickers)));
    out.push((logical::MOVERS.to_owned(), json(&snapshot.movers)));
    let signals: Vec<_> = snapshot.signals.values().collect();
    out.push((logical::SIGNALS.to_owned(), json(&signals)));
    for (symbol, ticker) in &snapshot.tickers {
        out.push((logical::ticker(symbol), json(ticker)));
    }
    for (symbol, signals) in &snapshot.signals {
        out.push((logical::signal(symbol), json(signals)));
    }
    out
}

fn json<T: serde::Serialize + ?Sized>(value: &T) -> Bytes {
    // Serializing plain structs of numbers and strings cannot fail.
    Bytes::from(serde_json::to_vec(value).expect("market views serialize"))
}

/// Runs the publish and heartbeat loop until the task is dropped, telling
/// `healthy` whether Redis took everything (see [`status`]).
pub async fn publish_loop(
    book: SharedBook,
    mut publisher: Publisher,
    config: Config,
    healthy: watch::Sender<bool>,
) {
    let mut cycle = Cycle::new(&config);
    let mut publish = tokio::time::interval(config.writer.publish_interval);
    publish.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heartbeat = tokio::time::interval(config.coherence.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = publish.tick() => {
                let now = OffsetDateTime::now_utc();
                let due = cycle.due(&lock(&book));
                let produced_at_ms = i64::try_from(now.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
                let report = publisher.publish(due, produced_at_ms).await;
                healthy.send_replace(report.held_back == 0);
                tracing::trace!(published = report.published, held_back = report.held_back, "publish cycle");
            }
            _ = heartbeat.tick() => {
                let sent = publisher.heartbeat().await;
                if let Err(e) = &sent {
                    tracing::debug!(error = %e, "heartbeat not sent");
                }
                healthy.send_replace(sent.is_ok() && publisher.held_back() == 0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::market::tick::parse_ndjson;

    fn book(lines: &str) -> Book {
        let mut book = Book::default();
        for tick in parse_ndjson(lines).unwrap() {
            book.apply(&tick);
        }
        book
    }

    const A: &str = r#"{"symbol":"AAA","price":10,"volume":5,"ts":"2026-01-02T15:00:00Z"}"#;
    const B: &str = r#"{"symbol":"BBB","price":20,"volume":5,"ts":"2026-01-02T15:00:01Z"}"#;

    #[test]
    fn only_changed_or_due_values_are_published() {
        let mut cycle = Cycle::new(&Config::default());
        let t0 = Instant::now();
        assert!(
            cycle.due_at(&Book::default(), t0).is_empty(),
            "nothing is fabricated for an empty book"
        );
        let one = book(A);
        let first: Vec<String> = cycle.due_at(&one, t0).into_iter().map(|(k, _)| k).collect();
        assert!(
            first.contains(&"market:ticker:AAA".to_string())
                && first.contains(&"market:overview".to_string())
                && first.contains(&"market:history:AAA".to_string())
        );
        assert!(
            cycle.due_at(&one, t0 + Duration::from_secs(1)).is_empty(),
            "unchanged: nothing to send"
        );

        let two = book(&format!("{A}\n{B}"));
        let changed: Vec<String> = cycle
            .due_at(&two, t0 + Duration::from_secs(2))
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert!(changed.contains(&"market:ticker:BBB".to_string()));
        assert!(changed.contains(&"market:history:BBB".to_string()));
        assert!(
            !changed.contains(&"market:ticker:AAA".to_string())
                && !changed.contains(&"market:history:AAA".to_string()),
            "AAA did not change"
        );

        // A symbol that keeps trading gets its history at most every second.
        let three = book(&format!("{A}\n{B}\n{B}"));
        let soon = cycle.due_at(&three, t0 + Duration::from_millis(2_500));
        assert!(soon.iter().any(|(k, _)| k == "market:ticker:BBB"));
        assert!(!soon.iter().any(|(k, _)| k == "market:history:BBB"));
        let later = cycle.due_at(&three, t0 + Duration::from_millis(3_000));
        assert!(later.iter().any(|(k, _)| k == "market:history:BBB"));

        // Half the staleness budget later everything is refreshed.
        let later = t0 + Config::default().cache.staleness_budget + Duration::from_secs(3);
        assert_eq!(
            cycle.due_at(&three, later).len(),
            payloads(&views::snapshot(&three, 10, three.last_update().unwrap()).unwrap()).len()
                + three.len(),
            "every value and every history"
        );
    }
}
