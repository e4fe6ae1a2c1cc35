//! The updates this reader applied, in order, for its live streams.
//!
//! The coherence follower appends every update it applies (its sequence
//! number and key) after the new version is in place, and wakes the streams.
//! Each stream keeps only a position in this one shared log and reads what
//! came after it when its client can take more: a fast client gets every
//! update, a slow one reads a longer stretch at once and sends each key only
//! at its newest version. The log is bounded; a stream whose position has
//! been trimmed away (or that belongs to an earlier history, see
//! [`Feed::reset`]) cannot know what it missed and sends the current value of
//! every key it follows instead. So memory does not grow with slow clients,
//! and no client is ever sent an older version after a newer one.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// Updates kept: several seconds of a busy writer (a full cycle is a few
/// hundred keys), and bytes per entry, not per value.
pub const CAPACITY: usize = 16_384;

/// Where a stream stands in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Bumped whenever positions before it lose their meaning.
    pub generation: u64,
    /// The last update sequence covered.
    pub seq: u64,
}

/// What [`Feed::since`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Since {
    /// Every update after the position was visited; this is the new position.
    Read(Position),
    /// What came after the position is unknown (trimmed, or another
    /// history); the current position, to continue from once the current
    /// values are sent.
    Lost(Position),
}

struct Log {
    /// Allocated whole and touched at start, and never grown: the reader's
    /// memory does not creep up while the log fills.
    entries: VecDeque<(u64, Arc<str>)>,
    at: Position,
    /// One shared name per key, so an entry allocates nothing.
    names: HashMap<Box<str>, Arc<str>>,
}

impl Log {
    fn name(&mut self, key: &str) -> Arc<str> {
        if let Some(name) = self.names.get(key) {
            return Arc::clone(name);
        }
        let name: Arc<str> = Arc::from(key);
        self.names.insert(key.into(), Arc::clone(&name));
        name
    }
}

/// The shared log, and the signal that it moved.
pub struct Feed {
    log: Mutex<Log>,
    moved: watch::Sender<u64>,
}

impl Default for Feed {
    fn default() -> Self {
        let mut entries = VecDeque::with_capacity(CAPACITY);
        let none: Arc<str> = Arc::from("");
        entries.extend((0..CAPACITY).map(|_| (0, Arc::clone(&none))));
        entries.clear();
        Feed {
            log: Mutex::new(Log {
                entries,
                at: Position {
                    generation: 0,
                    seq: 0,
                },
                names: HashMap::new(),
            }),
            moved: watch::channel(0).0,
        }
    }
}

impl Feed {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log> {
        // Plain data; a panic cannot leave it half-written.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends updates that continue the sequence, then wakes the streams.
    pub fn push<'a>(&self, updates: impl IntoIterator<Item = (u64, &'a str)>) {
        {
            let mut log = self.lock();
            for (seq, key) in updates {
                if log.entries.len() == CAPACITY {
                    log.entries.pop_front();
                }
                let name = log.name(key);
                log.entries.push_back((seq, name));
                log.at.seq = log.at.seq.max(seq);
            }
        }
        self.wake();
    }

    /// Starts a new history at `seq`: the follower's position jumped (a
    /// fresh start, missed updates no longer replayable, a new Redis
    /// primary), so what a stream read before cannot be continued.
    pub fn reset(&self, seq: u64) {
        {
            let mut log = self.lock();
            log.entries.clear();
            log.at = Position {
                generation: log.at.generation + 1,
                seq,
            };
        }
        self.wake();
    }

    fn wake(&self) {
        self.moved.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Resolves when the log changes after the last `borrow_and_update`.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.moved.subscribe()
    }

    /// The current position.
    pub fn position(&self) -> Position {
        self.lock().at
    }

    /// Visits the updates after `from`, oldest first, if the log holds all
    /// of them.
    pub fn since(&self, from: Position, mut visit: impl FnMut(u64, &Arc<str>)) -> Since {
        let log = self.lock();
        let at = log.at;
        if from.generation != at.generation || from.seq > at.seq {
            return Since::Lost(at);
        }
        if from.seq == at.seq {
            return Since::Read(at);
        }
        // Entries run without a hole up to `at.seq`; the first must follow `from`.
        match log.entries.front() {
            Some((first, _)) if *first <= from.seq + 1 => {}
            _ => return Since::Lost(at),
        }
        let start = log.entries.partition_point(|(seq, _)| *seq <= from.seq);
        for (seq, key) in log.entries.range(start..) {
            visit(*seq, key);
        }
        Since::Read(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(feed: &Feed, from: Position) -> (Vec<(u64, String)>, Since) {
        let mut seen = Vec::new();
        let since = feed.since(from, |seq, key| seen.push((seq, key.to_string())));
        (seen, since)
    }

    #[test]
    fn streams_read_what_follows_their_position() {
        let feed = Feed::default();
        feed.reset(10);
        let start = feed.position();
        assert_eq!(start.seq, 10);
        feed.push([(11, "a"), (12, "b")]);
        feed.push([(13, "a")]);
        let (seen, since) = read(&feed, start);
        assert_eq!(seen, [(11, "a".into()), (12, "b".into()), (13, "a".into())]);
        let Since::Read(now) = since else {
            panic!("all of it is held")
        };
        assert_eq!(now.seq, 13);
        let (seen, _) = read(&feed, Position { seq: 12, ..start });
        assert_eq!(seen, [(13, "a".into())]);
        assert_eq!(read(&feed, now).0, []);
    }

    #[test]
    fn a_trimmed_position_or_an_earlier_history_is_lost() {
        let feed = Feed::default();
        feed.reset(0);
        let start = feed.position();
        feed.push((1..=CAPACITY as u64 + 5).map(|seq| (seq, "k")));
        assert!(matches!(read(&feed, start).1, Since::Lost(_)));
        let kept = Position { seq: 5, ..start };
        assert_eq!(read(&feed, kept).0.len(), CAPACITY);
        // A position ahead of the log (another reader's, another epoch's).
        let ahead = Position {
            seq: CAPACITY as u64 + 99,
            ..start
        };
        assert!(matches!(read(&feed, ahead).1, Since::Lost(_)));
        feed.reset(3);
        assert!(matches!(read(&feed, kept).1, Since::Lost(at) if at.seq == 3));
    }

    #[tokio::test]
    async fn changes_wake_subscribers() {
        let feed = Feed::default();
        let mut moved = feed.subscribe();
        moved.borrow_and_update();
        feed.push([(1, "k")]);
        moved.changed().await.unwrap();
        assert!(!moved.has_changed().unwrap());
    }
}
