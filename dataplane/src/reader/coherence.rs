//! Keeps a reader's L1 coherent with the writer.
//!
//! The writer numbers every update (`seq`) and announces `{key, version,
//! seq}` on a pub/sub channel, plus a heartbeat carrying the latest `seq`.
//! Pub/sub is fire-and-forget, so this follower checks the numbering: a jump
//! in `seq`, a heartbeat ahead of what it applied, a dropped connection, or
//! silence longer than three heartbeats all mean "something may be missed".
//! It then replays the missed updates from the capped stream, and only when
//! the stream no longer holds them does it drop the whole L1.
//!
//! A failover can take numbers away: the promoted replica may lack the last
//! updates, so its sequence is behind what this reader applied, and the
//! writer's next updates reuse numbers already seen. The follower notices by
//! the store's epoch (which changes with the primary) and by a heartbeat or
//! replay below its position, and then rebuilds its position from a snapshot
//! of every key's version instead of waiting for numbers it already passed.
//! Floors stay: a key whose newer version the new primary lost keeps being
//! served from L1 until the writer re-publishes it.

use super::feed::Feed;
use crate::cache::TieredCache;
use crate::cache::l3::{Event, Notice, Replay, Snapshot};
use crate::metrics::{Metrics, ReasonLabels};
use futures::StreamExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};

/// Most updates applied in one go; a longer burst is applied in steps so
/// `applied` keeps moving.
const MAX_BATCH: usize = 256;

/// Shared view of the follower's progress.
pub struct Coherence {
    cache: Arc<TieredCache>,
    metrics: Arc<Metrics>,
    heartbeat: Duration,
    synced: watch::Sender<bool>,
    applied: watch::Sender<u64>,
    /// The epoch the applied position belongs to.
    epoch: Mutex<Option<String>>,
    /// Every applied update, for the live streams.
    feed: Arc<Feed>,
}

/// Why the follower stopped trusting its position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gap {
    Sequence,
    Heartbeat,
    Disconnect,
    Silence,
    /// A heartbeat below what was applied: the store lost updates.
    Behind,
}

impl Gap {
    fn label(self) -> &'static str {
        match self {
            Gap::Sequence => "sequence",
            Gap::Heartbeat => "heartbeat",
            Gap::Disconnect => "disconnect",
            Gap::Silence => "silence",
            Gap::Behind => "behind",
        }
    }
}

impl Coherence {
    pub fn new(cache: Arc<TieredCache>, metrics: Arc<Metrics>, heartbeat: Duration) -> Arc<Self> {
        Arc::new(Coherence {
            cache,
            metrics,
            heartbeat,
            synced: watch::channel(false).0,
            applied: watch::channel(0).0,
            epoch: Mutex::new(None),
            feed: Arc::default(),
        })
    }

    /// The updates applied, in order, as the live streams read them.
    pub fn feed(&self) -> &Arc<Feed> {
        &self.feed
    }

    /// True while every update up to the latest heartbeat has been applied.
    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Changes of [`is_synced`](Self::is_synced), to await instead of polling.
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced.subscribe()
    }

    /// The last sequence applied; tests and benchmarks wait on it.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.subscribe()
    }

    fn last(&self) -> u64 {
        *self.applied.borrow()
    }

    fn set_synced(&self, synced: bool) {
        self.synced
            .send_if_modified(|current| std::mem::replace(current, synced) != synced);
        self.metrics.coherence_synced.set(i64::from(synced));
    }

    /// Follows the writer until the task is dropped.
    pub async fn run(self: Arc<Self>) {
        // A follower restarted on the same cache resumes from its position.
        let mut first = self
            .epoch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none();
        let mut backoff = Duration::from_millis(100);
        // Not synced until it has checked (also when restarted after a stop).
        self.set_synced(false);
        loop {
            let subscription = match self.cache.l3().subscribe().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "cannot subscribe to updates");
                    self.set_synced(false);
                    sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            let caught_up = if first {
                self.start_at_current().await
            } else {
                self.resync().await
            };
            if !caught_up {
                sleep(backoff).await;
                continue;
            }
            first = false;
            self.set_synced(true);
            tracing::info!(seq = self.last(), "following the writer's updates");
            let gap = self.follow(subscription).await;
            self.set_synced(false);
            tracing::warn!(
                reason = gap.label(),
                seq = self.last(),
                "update stream interrupted; resyncing"
            );
        }
    }

    /// A new reader has an empty L1: it only needs to know where it starts.
    async fn start_at_current(&self) -> bool {
        let l3 = self.cache.l3();
        match (l3.epoch().await, l3.current_seq().await) {
            (Ok(epoch), Ok(seq)) => {
                self.set_epoch(epoch);
                self.advance(seq);
                self.feed.reset(self.last());
                true
            }
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(error = %e, "cannot read the update sequence");
                false
            }
        }
    }

    fn set_epoch(&self, epoch: String) {
        *self.epoch.lock().unwrap_or_else(|p| p.into_inner()) = Some(epoch);
    }

    /// Whether the store's history is not the one the position belongs to.
    fn epoch_changed(&self, epoch: &str) -> bool {
        self.epoch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_deref()
            .is_some_and(|known| known != epoch)
    }

    /// Applies events until the connection ends or a gap is detected; a
    /// sequence or heartbeat gap is repaired in place without reconnecting.
    /// Events that arrived together are applied together, so the updated
    /// keys are refreshed in parallel rather than one round trip at a time.
    async fn follow(&self, events: crate::cache::l3::Subscription) -> Gap {
        let mut events = events.ready_chunks(MAX_BATCH);
        let silence = self.heartbeat * 3;
        let mut deadline = Instant::now() + silence;
        loop {
            let batch = tokio::select! {
                batch = events.next() => batch,
                _ = sleep_until(deadline) => return self.count(Gap::Silence),
            };
            deadline = Instant::now() + silence;
            let gap = match batch {
                None => return self.count(Gap::Disconnect),
                Some(batch) => self.on_events(batch).await,
            };
            if let Some(gap) = gap.map(|g| self.count(g)) {
                tracing::info!(
                    reason = gap.label(),
                    seq = self.last(),
                    "gap in updates; replaying"
                );
                if !self.resync().await {
                    return gap;
                }
            }
        }
    }

    /// Every detected gap is counted once, here.
    fn count(&self, gap: Gap) -> Gap {
        let labels = ReasonLabels {
            reason: gap.label(),
        };
        self.metrics.coherence_gaps.get_or_create(&labels).inc();
        gap
    }

    /// A heartbeat ahead of `last` (the position once the pending updates
    /// are applied) means missed updates; one behind usually only predates
    /// a replay, so the store is asked before calling it a loss.
    async fn on_heartbeat(&self, heartbeat: u64, last: u64) -> Option<Gap> {
        if heartbeat > last {
            return Some(Gap::Heartbeat);
        }
        if heartbeat == last {
            return None;
        }
        match self.cache.l3().current_seq().await {
            Ok(current) if current < last => Some(Gap::Behind),
            _ => None,
        }
    }

    /// Applies the updates that continue the sequence, up to the first gap.
    async fn on_events(&self, events: Vec<Event>) -> Option<Gap> {
        let mut next = Vec::new();
        let mut last = self.last();
        let mut gap = None;
        for event in events {
            match event {
                Event::Update(notice) if notice.seq <= last => {}
                Event::Update(notice) if notice.seq == last + 1 => {
                    last = notice.seq;
                    next.push(notice);
                }
                Event::Update(_) => gap = Some(Gap::Sequence),
                Event::Heartbeat { heartbeat } => gap = self.on_heartbeat(heartbeat, last).await,
            }
            if gap.is_some() {
                break;
            }
        }
        self.apply(&next).await;
        gap
    }

    /// Applies updates that continue the sequence, in one go.
    async fn apply(&self, notices: &[Notice]) {
        let Some(last) = notices.last() else {
            return;
        };
        self.cache
            .announce_all(notices.iter().map(|n| (n.key.as_str(), n.version)))
            .await;
        // After the new versions are in place: a stream woken now reads them.
        self.feed
            .push(notices.iter().map(|n| (n.seq, n.key.as_str())));
        self.metrics.coherence_applied.inc_by(notices.len() as u64);
        self.advance(last.seq);
    }

    fn advance(&self, seq: u64) {
        self.applied.send_if_modified(|last| {
            let moved = seq > *last;
            *last = (*last).max(seq);
            moved
        });
        self.metrics
            .coherence_seq
            .set(i64::try_from(self.last()).unwrap_or(i64::MAX));
    }

    /// Moves the position to `seq`, also backwards (a new epoch).
    fn reset(&self, seq: u64) {
        self.applied
            .send_if_modified(|last| std::mem::replace(last, seq) != seq);
        self.metrics
            .coherence_seq
            .set(i64::try_from(seq).unwrap_or(i64::MAX));
    }

    /// Replays what was missed, or flushes L1 when that is impossible; after
    /// a change of history, rebuilds the position from a snapshot.
    async fn resync(&self) -> bool {
        let last = self.last();
        let l3 = self.cache.l3();
        let epoch = match l3.epoch().await {
            Ok(epoch) => epoch,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the store's epoch yet");
                return false;
            }
        };
        if self.epoch_changed(&epoch) {
            tracing::warn!(
                from = last,
                "the Redis primary changed its history (failover or restart)"
            );
            return self.resync_from_snapshot(epoch).await;
        }
        match l3.replay_after(last).await {
            Ok(Replay::Notices(notices)) => {
                for batch in notices.chunks(MAX_BATCH) {
                    self.apply(batch).await;
                }
                self.metrics
                    .coherence_resyncs
                    .get_or_create(&ReasonLabels { reason: "replay" })
                    .inc();
                tracing::info!(
                    from = last,
                    replayed = notices.len(),
                    "replayed missed updates"
                );
                true
            }
            Ok(Replay::Lost { current_seq }) => {
                self.cache.flush_l1();
                self.advance(current_seq);
                self.feed.reset(self.last());
                self.metrics
                    .coherence_resyncs
                    .get_or_create(&ReasonLabels { reason: "flush" })
                    .inc();
                tracing::warn!(
                    from = last,
                    to = current_seq,
                    "missed updates are no longer in the stream; L1 flushed"
                );
                true
            }
            Ok(Replay::Behind { current_seq }) => {
                tracing::warn!(
                    from = last,
                    to = current_seq,
                    "the store is behind this reader: it lost updates"
                );
                self.resync_from_snapshot(epoch).await
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot replay missed updates yet");
                false
            }
        }
    }

    /// Takes every key's current version as announced (floors only rise,
    /// so a version the new primary lost is never served older) and starts
    /// again at the store's position, even below the one applied so far.
    async fn resync_from_snapshot(&self, epoch: String) -> bool {
        let Snapshot { seq, versions } = match self.cache.l3().snapshot().await {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a snapshot of the store yet");
                return false;
            }
        };
        for (key, version) in &versions {
            self.cache.announce(key, *version).await;
        }
        self.reset(seq);
        self.set_epoch(epoch);
        self.feed.reset(seq);
        self.metrics
            .coherence_resyncs
            .get_or_create(&ReasonLabels { reason: "snapshot" })
            .inc();
        tracing::info!(
            seq,
            keys = versions.len(),
            "resynced from a snapshot of the store"
        );
        true
    }
}
