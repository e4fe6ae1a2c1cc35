//! L3: the source of truth, and the channel that keeps reader L1s coherent.
//!
//! Two implementations behind one enum: Redis for real deployments, and an
//! embedded in-memory store so `local` runs with no server at all. Both give
//! the same guarantees, which is why one set of writer and reader code
//! serves both:
//! - a value is replaced only by a newer version;
//! - every accepted update gets the next sequence number and is announced as
//!   `{key, version, seq}` on a pub/sub channel (the updates of one publish
//!   round in one message) and in a capped stream;
//! - a reader that missed announcements can replay them from the stream, or
//!   learns that it cannot (the stream was trimmed past its position);
//! - an epoch names the store's history: when it changes (a replica took
//!   over, or the server restarted without its data), sequence numbers may
//!   repeat or go back, and readers rebuild their position from a snapshot.

pub mod cluster;
pub mod memory;
pub mod redis;
pub mod sentinel;

use super::TierError;
use crate::cache::envelope::Envelope;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

/// One accepted update, in coherence order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The logical key (without prefix), e.g. `market:ticker:AAPL`.
    pub key: String,
    pub version: u64,
    pub seq: u64,
}

/// What readers act on, one update or heartbeat at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Event {
    Update(Notice),
    /// The writer's periodic "the latest sequence is `heartbeat`".
    Heartbeat {
        heartbeat: u64,
    },
}

/// What the writer sends on the channel: every update of one publish round
/// in one message, so a reader parses one message per round rather than one
/// per key (a round is a few hundred keys), or a heartbeat. The one-update
/// form that writers before the batched form sent is still read, so readers
/// can be upgraded before or after their writer.
///
/// Read through [`Wire`], not as an untagged enum: serde's untagged
/// decoding buffers the whole message into generic values first, which cost
/// a reader ~40k instructions per announced key (callgrind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged, try_from = "Wire")]
pub enum Message {
    Updates { updates: Vec<Notice> },
    Update(Notice),
    Heartbeat { heartbeat: u64 },
}

/// Every field a message may have, decoded in one pass.
#[derive(Deserialize)]
struct Wire {
    updates: Option<Vec<Notice>>,
    key: Option<String>,
    version: Option<u64>,
    seq: Option<u64>,
    heartbeat: Option<u64>,
}

impl TryFrom<Wire> for Message {
    type Error = &'static str;

    /// The first form the fields make, in the order the enum lists them.
    fn try_from(wire: Wire) -> Result<Self, Self::Error> {
        match wire {
            Wire {
                updates: Some(updates),
                ..
            } => Ok(Message::Updates { updates }),
            Wire {
                key: Some(key),
                version: Some(version),
                seq: Some(seq),
                ..
            } => Ok(Message::Update(Notice { key, version, seq })),
            Wire {
                heartbeat: Some(heartbeat),
                ..
            } => Ok(Message::Heartbeat { heartbeat }),
            _ => Err("neither updates, an update nor a heartbeat"),
        }
    }
}

impl Message {
    /// The message's events, in the order the store numbered them.
    pub fn into_events(self) -> Vec<Event> {
        match self {
            Message::Updates { updates } => updates.into_iter().map(Event::Update).collect(),
            Message::Update(notice) => vec![Event::Update(notice)],
            Message::Heartbeat { heartbeat } => vec![Event::Heartbeat { heartbeat }],
        }
    }
}

/// Result of offering a version to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishOutcome {
    Published {
        seq: u64,
    },
    /// The store already holds this version or a newer one.
    Outdated {
        current: u64,
    },
}

/// What a reader gets when it asks for the updates it missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Every update after the given sequence, in order (maybe none).
    Notices(Vec<Notice>),
    /// Some of them are gone from the stream; the reader must drop its L1.
    Lost { current_seq: u64 },
    /// The store is at a lower sequence than asked about: it lost updates
    /// (a failover to a replica that lacked them, or a restart).
    Behind { current_seq: u64 },
}

/// Judges a replay: `notices` are what the stream holds after `seq`, up to
/// the store's `current_seq`.
pub fn replay_of(seq: u64, notices: Vec<Notice>, current_seq: u64) -> Replay {
    if current_seq < seq {
        return Replay::Behind { current_seq };
    }
    let complete = match notices.first() {
        Some(first) => first.seq == seq + 1 && notices.len() as u64 == current_seq - seq,
        None => current_seq == seq,
    };
    if complete {
        Replay::Notices(notices)
    } else {
        Replay::Lost { current_seq }
    }
}

/// The store's position and the version of every key, at one instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub seq: u64,
    pub versions: Vec<(String, u64)>,
}

/// Events until the connection ends; the end itself means "you may have
/// missed something".
pub type Subscription = BoxStream<'static, Event>;

/// The source-of-truth store.
pub enum L3 {
    // Boxed: the TLS-capable client is several times larger than the embedded store.
    Redis(Box<redis::RedisStore>),
    Memory(memory::MemoryStore),
}

impl L3 {
    pub fn name(&self) -> &'static str {
        match self {
            L3::Redis(_) => "redis",
            L3::Memory(_) => "memory",
        }
    }

    /// Raw stored bytes of a physical key.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, TierError> {
        match self {
            L3::Redis(s) => s.get(key).await,
            L3::Memory(s) => Ok(s.get(key)),
        }
    }

    /// Stores `env` under the logical key if it is newer, and announces it.
    pub async fn publish(
        &self,
        logical: &str,
        env: &Envelope,
    ) -> Result<PublishOutcome, TierError> {
        match self {
            L3::Redis(s) => s.publish(logical, env).await,
            L3::Memory(s) => Ok(s.publish(logical, env)),
        }
    }

    /// Offers many values at once (one round trip on Redis), in order.
    pub async fn publish_many(
        &self,
        items: &[(String, Envelope)],
    ) -> Result<Vec<PublishOutcome>, TierError> {
        match self {
            L3::Redis(s) => s.publish_many(items).await,
            L3::Memory(s) => Ok(items
                .iter()
                .map(|(logical, env)| s.publish(logical, env))
                .collect()),
        }
    }

    /// Announces the latest sequence, so readers notice silent losses.
    pub async fn heartbeat(&self) -> Result<u64, TierError> {
        match self {
            L3::Redis(s) => s.heartbeat().await,
            L3::Memory(s) => Ok(s.heartbeat()),
        }
    }

    pub async fn current_seq(&self) -> Result<u64, TierError> {
        match self {
            L3::Redis(s) => s.current_seq().await,
            L3::Memory(s) => Ok(s.current_seq()),
        }
    }

    /// The updates after `seq`, or word that they cannot all be had.
    pub async fn replay_after(&self, seq: u64) -> Result<Replay, TierError> {
        match self {
            L3::Redis(s) => s.replay_after(seq).await,
            L3::Memory(s) => Ok(s.replay_after(seq)),
        }
    }

    /// Names the store's history; see the module documentation.
    pub async fn epoch(&self) -> Result<String, TierError> {
        match self {
            L3::Redis(s) => s.epoch().await,
            L3::Memory(_) => Ok(memory::EPOCH.to_owned()),
        }
    }

    /// The position and every key's version, read atomically.
    pub async fn snapshot(&self) -> Result<Snapshot, TierError> {
        match self {
            L3::Redis(s) => s.snapshot().await,
            L3::Memory(s) => Ok(s.snapshot()),
        }
    }

    /// Moves on whenever the store switches to another server (Sentinel).
    pub fn generation(&self) -> u64 {
        match self {
            L3::Redis(s) => s.generation(),
            L3::Memory(_) => 0,
        }
    }

    /// How many replicas hold every write sent so far, waiting up to
    /// `timeout` for `replicas` of them. The embedded store has none.
    pub async fn wait_for_replicas(
        &self,
        replicas: u32,
        timeout: std::time::Duration,
    ) -> Result<u32, TierError> {
        match self {
            L3::Redis(s) => s.wait_for_replicas(replicas, timeout).await,
            L3::Memory(_) => Ok(0),
        }
    }

    pub async fn subscribe(&self) -> Result<Subscription, TierError> {
        match self {
            L3::Redis(s) => s.subscribe().await,
            L3::Memory(s) => Ok(s.subscribe()),
        }
    }

    /// Stores this process's figures (a small JSON document) as field
    /// `instance` of the hash `hash`, which expires `ttl` after the last
    /// report of any instance. The embedded store keeps nothing: no one
    /// outside this process could read it.
    pub async fn report_stats(
        &self,
        hash: &str,
        instance: &str,
        json: &str,
        ttl: std::time::Duration,
    ) -> Result<(), TierError> {
        match self {
            L3::Redis(s) => s.report_stats(hash, instance, json, ttl).await,
            L3::Memory(_) => Ok(()),
        }
    }
}
