//! The writer's built-in tick sources: the synthetic feed and file replay.
//!
//! Both apply ticks straight into the shared book; publishing is the publish
//! loop's job, so a source never waits on Redis.

use super::{SharedBook, lock};
use crate::market::bars::WINDOW_SECS;
use crate::market::synthetic::{SyntheticFeed, symbol_universe};
use crate::market::tick::{Tick, parse_file};
use crate::metrics::Metrics;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;

/// Batches per second of the synthetic feed: smooth enough, cheap enough.
const SYNTHETIC_BATCHES_PER_SEC: u32 = 50;

/// Feeds `tick_rate` seeded random-walk ticks per second, forever.
pub async fn synthetic(
    book: SharedBook,
    seed: u64,
    symbols: usize,
    tick_rate: u32,
    metrics: Arc<Metrics>,
) {
    let mut feed = SyntheticFeed::new(seed, symbol_universe(symbols));
    let batches = SYNTHETIC_BATCHES_PER_SEC.min(tick_rate).max(1);
    let per_batch = (tick_rate / batches).max(1) as usize;
    // The market has been trading for a while when the writer starts: charts
    // are full from the first publish, and the writer's memory holds a whole
    // price history from the start instead of growing for five minutes.
    let now = OffsetDateTime::now_utc();
    let opened = now - time::Duration::seconds(WINDOW_SECS);
    apply(&book, &feed.opening(opened), &metrics);
    for second in 1..WINDOW_SECS {
        let ts = opened + time::Duration::seconds(second);
        for _ in 0..batches {
            apply(&book, &feed.next_batch(per_batch, ts), &metrics);
        }
        // A few hundred ticks at a time: the runtime (one thread in `local`
        // tests) keeps serving meanwhile.
        tokio::task::yield_now().await;
    }
    let mut every = tokio::time::interval(Duration::from_secs(1) / batches);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let ticks = feed.next_batch(per_batch, OffsetDateTime::now_utc());
        apply(&book, &ticks, &metrics);
    }
}

/// Why a replay could not start.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read replay file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("replay file {path}, {source}")]
    Parse {
        path: String,
        source: crate::market::tick::TickError,
    },
}

/// Loads and checks a whole replay file up front, so a bad line is reported
/// before anything is published.
pub fn load_replay(path: &Path) -> Result<Vec<Tick>, ReplayError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ReplayError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_file(&shown, &text).map_err(|source| ReplayError::Parse {
        path: shown,
        source,
    })
}

/// Replays ticks in file order. With `speed` > 0 the gaps between the
/// file's timestamps are kept (divided by `speed`); with 0 all at once.
/// Returns when the file ends: the source is done, the writer is not — it
/// keeps publishing the last values and taking `POST /ingest`.
pub async fn replay(book: SharedBook, ticks: Vec<Tick>, speed: f64, metrics: Arc<Metrics>) {
    let total = ticks.len();
    let mut previous: Option<OffsetDateTime> = None;
    for tick in ticks {
        if let (Some(prev), true) = (previous, speed > 0.0) {
            let gap = (tick.ts - prev).as_seconds_f64().max(0.0) / speed;
            if gap > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(gap.min(3600.0))).await;
            }
        }
        previous = Some(tick.ts);
        apply(&book, std::slice::from_ref(&tick), &metrics);
    }
    tracing::info!(
        ticks = total,
        "replay finished; the last values stay published"
    );
}

pub fn apply(book: &SharedBook, ticks: &[Tick], metrics: &Metrics) {
    let mut book = lock(book);
    for tick in ticks {
        book.apply(tick);
    }
    metrics.writer_ticks.inc_by(ticks.len() as u64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_sample_files_replay() {
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples");
        let ndjson = load_replay(&samples.join("ticks.ndjson")).unwrap();
        let csv = load_replay(&samples.join("ticks.csv")).unwrap();
        assert_eq!(ndjson.len(), 240);
        assert_eq!(ndjson, csv, "the two formats carry the same ticks");
    }

    #[test]
    fn a_bad_replay_file_is_reported_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.csv");
        std::fs::write(
            &path,
            "symbol,price,volume,ts\nAAPL,abc,1,2026-01-02T15:04:05Z\n",
        )
        .unwrap();
        let err = load_replay(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("price"), "{err}");
        assert!(
            load_replay(&dir.path().join("missing.ndjson"))
                .unwrap_err()
                .to_string()
                .contains("cannot read")
        );
    }
}
