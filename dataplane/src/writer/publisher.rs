//! Puts the writer's values into the shared cache, in the order coherence
//! needs: Redis first (only if newer, numbered, announced), then Memcached.
//!
//! When Redis is unreachable nothing is lost but history: the latest value of
//! each key is held back and flushed, oldest key first, once Redis answers
//! again. Memcached failures are held back the same way, because a reader
//! that finds an old value in L2 would otherwise keep serving it until its TTL.
//!
//! Redis replication is asynchronous, so a failover can promote a replica
//! that lacks the last values Redis accepted. The publisher keeps the latest
//! accepted value of every key and, when the store's epoch changes (a new
//! primary, or a restart without data), offers them all again; the store
//! keeps whichever version is newer, so this heals the loss and is harmless
//! where nothing was lost. Optionally each batch waits for replicas to
//! acknowledge it (`WAIT`, see [`ReplicaWait`]).

use crate::cache::TierError;
use crate::cache::breaker::Breaker;
use crate::cache::envelope::Envelope;
use crate::cache::l2_memcached::Memcached;
use crate::cache::l3::{L3, PublishOutcome};
use crate::keys::Keys;
use crate::metrics::{Metrics, ReasonLabels};
use bytes::Bytes;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Hands out versions that only go up, also across writer restarts: the
/// current time in microseconds, or one more than the last, whichever is larger.
#[derive(Debug, Default)]
pub struct VersionClock {
    last: u64,
}

impl VersionClock {
    pub fn next(&mut self, now_micros: u64) -> u64 {
        self.last = now_micros.max(self.last + 1);
        self.last
    }

    /// Moves past a version the store already holds.
    pub fn observe(&mut self, version: u64) {
        self.last = self.last.max(version);
    }
}

/// Values offered to Redis per round trip, at most.
const BATCH: usize = 512;

/// Bytes of values offered to Redis per round trip, at most (plus the value
/// that crosses the bound). Every price history at once is ~3.5 MB: as one
/// script call it held Redis for milliseconds and made the writer hold the
/// whole command, several copies of it, at once; calls of ~256 KiB keep
/// both small.
const BATCH_BYTES: usize = 256 * 1024;

/// What one flush achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FlushReport {
    pub published: usize,
    pub held_back: usize,
}

/// Wait after each batch until this many replicas have it, at most `timeout`.
///
/// The trade-off: every publish cycle takes a replica round trip longer
/// (and up to `timeout` when a replica is slow or gone), in exchange for a
/// smaller window of values a failover can lose. Values are announced
/// before the wait ends and are not taken back when too few replicas answer
/// (that is counted as `unreplicated`): `WAIT` narrows the window, it does
/// not close it. Since the writer re-publishes every key after a failover
/// anyway, what remains at risk without `WAIT` is only a failover that also
/// loses the writer, whose successor publishes every key on its first cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaWait {
    pub replicas: u32,
    pub timeout: Duration,
}

pub struct Publisher {
    keys: Keys,
    l3: Arc<L3>,
    l2: Option<(Arc<Memcached>, Breaker)>,
    metrics: Arc<Metrics>,
    clock: VersionClock,
    /// Latest value per logical key not yet accepted by L3, in first-held order.
    pending_l3: IndexMap<String, Envelope>,
    /// Latest encoded value per physical key not yet stored in L2.
    pending_l2: IndexMap<String, Bytes>,
    /// Latest value L3 accepted per logical key: what a new primary gets.
    latest: HashMap<String, Envelope>,
    /// The store's epoch when last checked, and its connection generation.
    epoch: Option<String>,
    generation: u64,
    /// Check the epoch before the next flush (after a failure, a heartbeat).
    verify: AtomicBool,
    wait: Option<ReplicaWait>,
}

impl Publisher {
    pub fn new(
        keys: Keys,
        l3: Arc<L3>,
        l2: Option<Arc<Memcached>>,
        breaker: (u32, Duration),
        metrics: Arc<Metrics>,
    ) -> Self {
        Publisher {
            keys,
            l3,
            l2: l2.map(|m| (m, Breaker::new(breaker.0, breaker.1))),
            metrics,
            clock: VersionClock::default(),
            pending_l3: IndexMap::new(),
            pending_l2: IndexMap::new(),
            latest: HashMap::new(),
            epoch: None,
            generation: 0,
            verify: AtomicBool::new(true),
            wait: None,
        }
    }

    /// Makes every batch wait for replica acknowledgements (`WAIT`).
    pub fn with_replica_wait(mut self, wait: Option<ReplicaWait>) -> Self {
        self.wait = wait.filter(|w| w.replicas > 0);
        self
    }

    /// Versions and queues new values, then tries to store everything queued.
    pub async fn publish(
        &mut self,
        values: Vec<(String, Bytes)>,
        produced_at_ms: i64,
    ) -> FlushReport {
        let now_micros = u64::try_from(produced_at_ms).unwrap_or(0) * 1000;
        for (logical, payload) in values {
            let version = self.clock.next(now_micros);
            // Re-inserting moves nothing: an older held-back value is replaced
            // in place, so a key never jumps the queue.
            self.pending_l3
                .insert(logical, Envelope::new(version, produced_at_ms, payload));
        }
        self.flush().await
    }

    /// Retries what is held back; called on every cycle even with no new data.
    pub async fn flush(&mut self) -> FlushReport {
        let mut report = FlushReport::default();
        // Each round settles at least every published value of a batch; the
        // bound only guards against another writer racing us forever.
        let bytes: usize = self.pending_l3.values().map(|e| e.payload.len()).sum();
        let rounds = self.pending_l3.len() / BATCH + bytes / BATCH_BYTES + 3;
        for _ in 0..rounds {
            // Also between rounds: the store may have moved to a new primary
            // while sending the last batch.
            self.follow_epoch().await;
            if self.pending_l3.is_empty() {
                break;
            }
            match self.store_batch().await {
                Ok(published) => report.published += published,
                Err(e) => {
                    self.verify.store(true, Ordering::Relaxed);
                    self.count("failed");
                    tracing::warn!(error = %e, held_back = self.pending_l3.len(), "Redis unreachable; holding values back");
                    break;
                }
            }
        }
        self.flush_l2().await;
        report.held_back = self.pending_l3.len();
        let pending = report.held_back + self.pending_l2.len();
        self.metrics
            .writer_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        report
    }

    /// Re-offers every key's latest value when the store's history changed
    /// since the last check: its new primary may lack some of them.
    async fn follow_epoch(&mut self) {
        let generation = self.l3.generation();
        if !self.verify.load(Ordering::Relaxed) && generation == self.generation {
            return;
        }
        let Ok(epoch) = self.l3.epoch().await else {
            // Unreachable: the flush will fail and hold values back; ask again later.
            return;
        };
        self.verify.store(false, Ordering::Relaxed);
        self.generation = generation;
        if self.epoch.as_ref().is_some_and(|known| *known != epoch) {
            self.republish();
        }
        self.epoch = Some(epoch);
    }

    fn republish(&mut self) {
        let mut queued = 0;
        for (logical, env) in &self.latest {
            if !self.pending_l3.contains_key(logical) {
                self.pending_l3.insert(logical.clone(), env.clone());
                queued += 1;
            }
        }
        self.metrics
            .writer_publishes
            .get_or_create(&ReasonLabels {
                reason: "republished",
            })
            .inc_by(queued);
        tracing::warn!(
            keys = queued,
            "the Redis primary changed its history (failover or restart); re-publishing every key"
        );
    }

    /// Offers the oldest held-back values to L3 in one round trip, up to
    /// [`BATCH`] values and about [`BATCH_BYTES`].
    async fn store_batch(&mut self) -> Result<usize, TierError> {
        let mut bytes = 0;
        let batch: Vec<(String, Envelope)> = self
            .pending_l3
            .iter()
            .take(BATCH)
            .take_while(|(_, env)| {
                let room = bytes < BATCH_BYTES;
                bytes += env.payload.len();
                room
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let outcomes = self.l3.publish_many(&batch).await?;
        let mut published = 0;
        for ((logical, env), outcome) in batch.into_iter().zip(outcomes) {
            match outcome {
                PublishOutcome::Published { .. } => {
                    self.count("published");
                    self.pending_l3.shift_remove(&logical);
                    self.pending_l2
                        .insert(self.keys.value(&logical), env.encode());
                    self.latest.insert(logical, env);
                    published += 1;
                }
                // Exactly this version is stored already: a re-publish the
                // new primary did not need.
                PublishOutcome::Outdated { current } if current == env.version => {
                    self.pending_l3.shift_remove(&logical);
                }
                PublishOutcome::Outdated { current } => {
                    // Another writer (or this one before a clock step back)
                    // got further: try again after its version.
                    self.count("outdated");
                    self.clock.observe(current);
                    let version = self.clock.next(0);
                    if let Some(held) = self.pending_l3.get_mut(&logical) {
                        held.version = version;
                    }
                }
            }
        }
        if published > 0 {
            self.await_replicas(published).await;
        }
        Ok(published)
    }

    /// `WAIT` after a batch, if configured; counts what too few replicas have.
    async fn await_replicas(&self, published: usize) {
        let Some(wait) = self.wait else {
            return;
        };
        let acked = self.l3.wait_for_replicas(wait.replicas, wait.timeout).await;
        if acked.as_ref().is_ok_and(|n| *n >= wait.replicas) {
            return;
        }
        tracing::debug!(wanted = wait.replicas, acked = ?acked, "fewer replicas than wanted acknowledged a batch");
        self.metrics
            .writer_publishes
            .get_or_create(&ReasonLabels {
                reason: "unreplicated",
            })
            .inc_by(published as u64);
    }

    async fn flush_l2(&mut self) {
        let Some((memcached, breaker)) = &self.l2 else {
            self.pending_l2.clear();
            return;
        };
        while !self.pending_l2.is_empty() {
            let Some(permit) = breaker.try_acquire() else {
                return;
            };
            let n = self.pending_l2.len().min(BATCH);
            let batch: Vec<(&str, &[u8])> = self
                .pending_l2
                .iter()
                .take(n)
                .map(|(k, v)| (k.as_str(), v.as_ref()))
                .collect();
            let ok = memcached.set_many(&batch).await.is_ok();
            breaker.record(permit, ok);
            if !ok {
                tracing::debug!(
                    held_back = self.pending_l2.len(),
                    "Memcached unreachable; holding values back"
                );
                return;
            }
            self.pending_l2.drain(..n);
        }
    }

    /// Tells readers the latest sequence, so they detect lost announcements;
    /// also makes the next flush check that the store kept its history.
    pub async fn heartbeat(&self) -> Result<u64, TierError> {
        self.verify.store(true, Ordering::Relaxed);
        self.l3.heartbeat().await
    }

    pub fn held_back(&self) -> usize {
        self.pending_l3.len()
    }

    fn count(&self, reason: &'static str) {
        self.metrics
            .writer_publishes
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_only_go_up() {
        let mut clock = VersionClock::default();
        assert_eq!(clock.next(1_000), 1_000);
        assert_eq!(clock.next(1_000), 1_001, "same instant still moves on");
        assert_eq!(
            clock.next(500),
            1_002,
            "a clock step back does not reuse versions"
        );
        clock.observe(5_000);
        assert_eq!(clock.next(2_000), 5_001);
    }
}
