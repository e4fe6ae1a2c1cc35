//! The embedded in-memory L3 used by `local` when no Redis is given.
//!
//! Same contract as the Redis store (only-if-newer, sequence numbers,
//! announcements, a capped replay log), so `local` exercises exactly the
//! writer and reader code that runs in a cluster.

use super::{Event, Notice, PublishOutcome, Replay, Snapshot, Subscription};
use crate::cache::envelope::Envelope;
use crate::keys::Keys;
use bytes::Bytes;
use futures::StreamExt;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;

/// The embedded store never loses its history while the process lives.
pub const EPOCH: &str = "memory";

pub struct MemoryStore {
    keys: Keys,
    max_log: usize,
    state: Mutex<State>,
    events: broadcast::Sender<Event>,
}

#[derive(Default)]
struct State {
    values: HashMap<String, Bytes>,
    versions: HashMap<String, u64>,
    seq: u64,
    log: VecDeque<Notice>,
}

impl MemoryStore {
    pub fn new(keys: Keys, max_log: usize) -> Self {
        let (events, _) = broadcast::channel(4096);
        MemoryStore {
            keys,
            max_log: max_log.max(1),
            state: Mutex::new(State::default()),
            events,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.state().values.get(key).cloned()
    }

    pub fn publish(&self, logical: &str, env: &Envelope) -> PublishOutcome {
        let mut state = self.state();
        let current = state.versions.get(logical).copied().unwrap_or(0);
        if env.version <= current {
            return PublishOutcome::Outdated { current };
        }
        state.values.insert(self.keys.value(logical), env.encode());
        state.versions.insert(logical.to_owned(), env.version);
        state.seq += 1;
        let notice = Notice {
            key: logical.to_owned(),
            version: env.version,
            seq: state.seq,
        };
        state.log.push_back(notice.clone());
        if state.log.len() > self.max_log {
            state.log.pop_front();
        }
        // Sent under the lock so announcements leave in sequence order.
        let _ = self.events.send(Event::Update(notice));
        PublishOutcome::Published { seq: state.seq }
    }

    pub fn heartbeat(&self) -> u64 {
        let state = self.state();
        let _ = self.events.send(Event::Heartbeat {
            heartbeat: state.seq,
        });
        state.seq
    }

    pub fn current_seq(&self) -> u64 {
        self.state().seq
    }

    pub fn replay_after(&self, seq: u64) -> Replay {
        let state = self.state();
        let missed: Vec<Notice> = state.log.iter().filter(|n| n.seq > seq).cloned().collect();
        super::replay_of(seq, missed, state.seq)
    }

    pub fn snapshot(&self) -> Snapshot {
        let state = self.state();
        Snapshot {
            seq: state.seq,
            versions: state
                .versions
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect(),
        }
    }

    /// A subscriber that falls too far behind sees its stream end, exactly
    /// like a dropped Redis connection, and resyncs.
    pub fn subscribe(&self) -> Subscription {
        BroadcastStream::new(self.events.subscribe())
            .take_while(|item| std::future::ready(item.is_ok()))
            .filter_map(|item| std::future::ready(item.ok()))
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(version: u64) -> Envelope {
        Envelope::new(version, 0, Bytes::from_static(b"{}"))
    }

    #[test]
    fn only_newer_versions_are_stored_and_sequenced() {
        let store = MemoryStore::new(Keys::new("p:"), 10);
        assert_eq!(
            store.publish("k", &env(2)),
            PublishOutcome::Published { seq: 1 }
        );
        assert_eq!(
            store.publish("k", &env(1)),
            PublishOutcome::Outdated { current: 2 }
        );
        assert_eq!(
            store.publish("k", &env(2)),
            PublishOutcome::Outdated { current: 2 }
        );
        assert_eq!(
            store.publish("j", &env(1)),
            PublishOutcome::Published { seq: 2 }
        );
        let stored = Envelope::decode(store.get("p:v:k").unwrap()).unwrap();
        assert_eq!(stored.version, 2);
    }

    #[test]
    fn replay_reports_loss_once_the_log_is_trimmed() {
        let store = MemoryStore::new(Keys::new("p:"), 2);
        for v in 1..=4 {
            store.publish("k", &env(v));
        }
        assert_eq!(store.replay_after(4), Replay::Notices(vec![]));
        match store.replay_after(2) {
            Replay::Notices(n) => assert_eq!(n.iter().map(|n| n.seq).collect::<Vec<_>>(), [3, 4]),
            other => panic!("{other:?}"),
        }
        assert_eq!(store.replay_after(1), Replay::Lost { current_seq: 4 });
        assert_eq!(store.replay_after(9), Replay::Behind { current_seq: 4 });
    }
}
