//! The reader's read-through cache: L1 (in-process) → L2 (Memcached) →
//! L3 (Redis, the source of truth), with backfill of the upper tiers.
//!
//! Four rules make it safe and cheap to serve from the fastest tier:
//! - **version floors**: the coherence follower records the newest version
//!   announced for each key; a value older than that is never served from,
//!   or put into, L1, and an outdated L2 value falls through to L3;
//! - **refresh-ahead**: when a key that clients read (it is in L1) gets a
//!   new version, the reader fetches that version into L1 *before* raising
//!   the key's floor, so requests keep hitting L1 across updates instead of
//!   each update costing a miss; keys nobody read here are never pulled in;
//! - **single flight**: concurrent misses on one key share one fetch (moka's
//!   entry API), so a burst of requests costs the lower tiers one look-up
//!   (with L1 off, `--l1-max-bytes 0`, there is no entry to share: each
//!   request asks the tiers below itself, as it would without this cache);
//! - **degrade, never fail**: each remote tier sits behind a timeout and a
//!   circuit breaker; a tier that is down is skipped, and a value that does
//!   not decode is counted and treated as a miss.

pub mod breaker;
pub mod envelope;
pub mod l1;
pub mod l2_memcached;
pub mod l3;

use crate::keys::Keys;
use crate::metrics::{Metrics, Outcome, Tier, TierLabels};
use breaker::Breaker;
use envelope::Envelope;
use futures::StreamExt;
use l1::{Cached, L1};
use l2_memcached::Memcached;
use l3::L3;
use moka::ops::compute::{CompResult, Op};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Why a remote tier call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TierError {
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("timed out")]
    Timeout,
}

/// Keys refreshed at once after a burst of updates (a full snapshot): enough
/// to overlap the round trips, few enough not to flood Redis.
const REFRESH_CONCURRENCY: usize = 32;

/// Floors raised between two yields to the scheduler: a few tens of
/// microseconds of work.
const FLOOR_SLICE: usize = 64;

/// A value found in some tier.
#[derive(Debug, Clone)]
pub struct Lookup {
    pub env: Arc<Envelope>,
    /// The tier that answered this request.
    pub tier: Tier,
    /// A newer version is known but could not be had (see `reload_outdated`):
    /// served as the last resort, never as current.
    pub superseded: bool,
}

/// Why no value could be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Miss {
    /// The source of truth answered: there is no such key (yet).
    #[error("no data for this key")]
    Absent,
    /// The source of truth could not be asked, and no tier above it had the key.
    #[error("the source of truth is unreachable: {0}")]
    Unreachable(String),
}

/// What Memcached had for a key, as `fetch_below_l1` weighs it.
enum FromL2 {
    /// At least the version asked for.
    Current(Envelope),
    /// Older: passed over for Redis's, kept in case Redis cannot answer.
    Older(Envelope),
    /// No value, a corrupt one, or Memcached is down.
    Nothing,
}

/// A remote tier with its circuit breaker.
struct Guarded<T> {
    tier: Tier,
    inner: T,
    breaker: Breaker,
    /// This tier's `cachebridge_breaker_state` series, resolved once: it is
    /// set after every call.
    breaker_gauge: prometheus_client::metrics::gauge::Gauge,
}

impl<T> Guarded<T> {
    fn new(
        tier: Tier,
        inner: T,
        (failures, cooldown): (u32, std::time::Duration),
        metrics: &Metrics,
    ) -> Self {
        Guarded {
            tier,
            inner,
            breaker: Breaker::new(failures, cooldown),
            breaker_gauge: metrics
                .breaker_state
                .get_or_create(&TierLabels { tier })
                .clone(),
        }
    }
}

/// The reader side of the cache.
pub struct TieredCache {
    keys: Keys,
    l1: L1,
    /// L1 holds nothing (`--l1-max-bytes 0`): look-ups skip it, since its
    /// entry API would insert, then evict, a value on every request.
    l1_off: bool,
    l2: Option<Guarded<Arc<Memcached>>>,
    l3: Guarded<Arc<L3>>,
    floors: Mutex<HashMap<String, u64, l1::Hasher>>,
    /// Bumped whenever a floor rises (under the floors' lock, after the
    /// rise): answers built from look-ups stay current while it stands still.
    changes: AtomicU64,
    /// The L3 store's generation (its primary) when last called.
    l3_generation: AtomicU64,
    metrics: Arc<Metrics>,
}

impl TieredCache {
    pub fn new(
        keys: Keys,
        l1: L1,
        l2: Option<Arc<Memcached>>,
        l3: Arc<L3>,
        breakers: (u32, std::time::Duration),
        metrics: Arc<Metrics>,
    ) -> Self {
        TieredCache {
            keys,
            l1_off: l1.policy().max_capacity() == Some(0),
            l1,
            l2: l2.map(|m| Guarded::new(Tier::L2, m, breakers, &metrics)),
            l3: Guarded::new(Tier::L3, l3, breakers, &metrics),
            floors: Mutex::new(HashMap::default()),
            changes: AtomicU64::new(0),
            l3_generation: AtomicU64::new(0),
            metrics,
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn l3(&self) -> &Arc<L3> {
        &self.l3.inner
    }

    pub fn has_l2(&self) -> bool {
        self.l2.is_some()
    }

    /// The Memcached pool, to resize in place (see `Memcached::resize`).
    pub fn l2_pool(&self) -> Option<&Arc<Memcached>> {
        self.l2.as_ref().map(|g| &g.inner)
    }

    /// The value of a logical key from the fastest tier that has a current one.
    pub async fn get(&self, logical: &str) -> Result<Lookup, Miss> {
        let outdated = match self.l1_get(logical).await {
            Ok(found) => return Ok(found),
            Err(outdated) => outdated,
        };
        // Boxed: the lower tiers' futures are kilobytes; inline, they would
        // make every request's future that large to build and move, L1 hits
        // included.
        Box::pin(self.get_below_l1(logical, outdated)).await
    }

    /// L2, then L3; `outdated` is the copy L1 holds, if it holds an old one.
    async fn get_below_l1(
        &self,
        logical: &str,
        outdated: Option<Arc<Envelope>>,
    ) -> Result<Lookup, Miss> {
        if let Some(copy) = outdated {
            // Boxed: rare (refresh-ahead replaces most outdated copies
            // before anyone asks), and it holds a fetch of its own.
            return Ok(Box::pin(self.reload_outdated(logical, copy)).await);
        }
        match self.load(logical).await {
            Ok(first) if first.env.version >= self.floor(logical) => Ok(first),
            // A newer version was announced while we fetched: drop what we
            // got and load once more; L3 already holds the announced version.
            Ok(_) => {
                self.l1.invalidate(logical).await;
                self.load(logical).await
            }
            Err(miss) => Err(miss),
        }
    }

    /// Replaces an L1 copy older than the announced version, once for all
    /// the requests that find it. The copy stays in L1 until then, and
    /// stays if the tiers below cannot give a version at least as new: that
    /// happens after a failover (the new primary may lack the last updates
    /// until the writer re-publishes them, or be away for a moment). It is
    /// then served, marked as superseded (the reader marks it stale), to
    /// every request, instead of an error or a version older than one this
    /// reader already served. Had it been taken out of L1 for the fetch, a
    /// request arriving meanwhile would have found nothing to fall back on.
    async fn reload_outdated(&self, logical: &str, copy: Arc<Envelope>) -> Lookup {
        let floor = self.floor(logical);
        let asked = Instant::now();
        let last_resort = Arc::clone(&copy);
        let outcome = self
            .l1
            .entry_by_ref(logical)
            .and_compute_with(|entry| async move {
                let held = entry.map(|e| e.into_value());
                match held {
                    // Another request loaded it while this one waited.
                    Some(c) if c.env.version >= floor => Op::Nop,
                    // Another request tried, and failed, after this one
                    // asked: its try stands for this one's too.
                    Some(c) if c.failed_at.is_some_and(|at| at >= asked) => Op::Nop,
                    held => {
                        let held = held.unwrap_or_else(|| Cached::new(copy, Tier::L1));
                        Op::Put(self.newest(logical, floor, held).await)
                    }
                }
            })
            .await;
        let (cached, fetched) = match outcome {
            CompResult::Inserted(e) | CompResult::ReplacedWith(e) => (e.into_value(), true),
            CompResult::Unchanged(e) => (e.into_value(), false),
            // Not produced (the copy is always put back), but it is at hand.
            CompResult::StillNone(_) | CompResult::Removed(_) => {
                (Cached::new(last_resort, Tier::L1), false)
            }
        };
        let current = cached.env.version >= floor;
        Lookup {
            tier: if fetched && current {
                cached.origin
            } else {
                Tier::L1
            },
            env: cached.env,
            superseded: !current,
        }
    }

    /// `floor` (or newer) from the tiers below; else the newest of what they
    /// gave and `held`, marked as a failed try.
    async fn newest(&self, logical: &str, floor: u64, held: Cached) -> Cached {
        let newest = match self.fetch_below_l1(logical, floor).await {
            Ok(fetched) if fetched.env.version >= held.env.version => fetched,
            _ => held,
        };
        if newest.env.version >= floor {
            return newest;
        }
        newest.failed_now()
    }

    /// The value from the tiers below, put into L1 (unless it is off);
    /// superseded when only an older one could be had (see
    /// `fetch_below_l1`), which then waits in L1 for `reload_outdated`.
    async fn load(&self, logical: &str) -> Result<Lookup, Miss> {
        let cached = if self.l1_off {
            self.fetch_below_l1(logical, self.floor(logical)).await?
        } else {
            self.load_into_l1(logical).await?
        };
        Ok(Lookup {
            superseded: cached.env.version < self.floor(logical),
            env: cached.env,
            tier: cached.origin,
        })
    }

    /// Fills L1 from the tiers below, once for all concurrent callers.
    async fn load_into_l1(&self, logical: &str) -> Result<Cached, Miss> {
        let cached = self
            .l1
            .entry(logical.to_owned())
            .or_try_insert_with(self.fetch_below_l1(logical, self.floor(logical)))
            .await
            .map_err(|e| (*e).clone())?
            .into_value();
        Ok(cached)
    }

    /// An L1 hit, or why not: `Err(Some(copy))` for a copy older than the
    /// announced version (left in L1: the last resort of every request until
    /// `reload_outdated` replaces it). Not timed: an L1 look-up takes well under a microsecond,
    /// below any histogram bucket, and reading the clock twice would cost
    /// more than it.
    async fn l1_get(&self, logical: &str) -> Result<Lookup, Option<Arc<Envelope>>> {
        let found = if self.l1_off {
            None
        } else {
            self.l1.get(logical).await
        };
        let Some(cached) = found else {
            self.metrics.lookup(Tier::L1, Outcome::miss, None);
            return Err(None);
        };
        if cached.env.version < self.floor(logical) {
            self.metrics.lookup(Tier::L1, Outcome::outdated, None);
            return Err(Some(cached.env));
        }
        self.metrics.lookup(Tier::L1, Outcome::hit, None);
        Ok(Lookup {
            env: cached.env,
            tier: Tier::L1,
            superseded: false,
        })
    }

    /// L2 (if it has `floor` or newer), then L3; runs once per key however
    /// many requests wait on it.
    ///
    /// An L2 value older than `floor` is passed over for L3's, but kept as
    /// the last resort: when Redis cannot be reached (a restart, a failover
    /// under way) it is returned, older than `floor` and marked as a failed
    /// try, and the caller serves it as superseded. Without it, a key that
    /// was not in L1 when a newer version was announced would answer 503
    /// until Redis is back, though a real, only slightly older value is at
    /// hand.
    async fn fetch_below_l1(&self, logical: &str, floor: u64) -> Result<Cached, Miss> {
        let physical = self.keys.value(logical);
        let mut older = None;
        if let Some(l2) = &self.l2 {
            match self.fetch_l2(l2, &physical, floor).await {
                FromL2::Current(env) => return Ok(Cached::new(Arc::new(env), Tier::L2)),
                FromL2::Older(env) => older = Some(env),
                FromL2::Nothing => {}
            }
        }
        match (self.fetch_l3(&physical).await, older) {
            (Ok(env), _) => {
                if let Some(l2) = &self.l2 {
                    self.backfill_l2(l2, physical, &env);
                }
                Ok(Cached::new(Arc::new(env), Tier::L3))
            }
            (Err(Miss::Unreachable(_)), Some(env)) => {
                Ok(Cached::new(Arc::new(env), Tier::L2).failed_now())
            }
            (Err(miss), _) => Err(miss),
        }
    }

    async fn fetch_l2(&self, l2: &Guarded<Arc<Memcached>>, physical: &str, floor: u64) -> FromL2 {
        let Ok(Some(raw)) = self.call(l2, l2.inner.get(physical)).await else {
            return FromL2::Nothing;
        };
        match Envelope::decode(raw) {
            Ok(env) if env.version >= floor => {
                self.metrics.lookup(Tier::L2, Outcome::hit, None);
                FromL2::Current(env)
            }
            Ok(env) => {
                self.metrics.lookup(Tier::L2, Outcome::outdated, None);
                FromL2::Older(env)
            }
            Err(e) => {
                tracing::warn!(key = physical, error = %e, "corrupt value in L2; dropping it");
                self.metrics.lookup(Tier::L2, Outcome::corrupt, None);
                let _ = l2.inner.delete(physical).await;
                FromL2::Nothing
            }
        }
    }

    async fn fetch_l3(&self, physical: &str) -> Result<Envelope, Miss> {
        // A new primary is a new chance: probe it now rather than after the
        // cooldown the old one's failures started.
        let generation = self.l3.inner.generation();
        if self.l3_generation.swap(generation, Ordering::Relaxed) != generation {
            self.l3.breaker.allow_probe();
        }
        let raw = self
            .call(&self.l3, self.l3.inner.get(physical))
            .await
            .map_err(|e| Miss::Unreachable(e.to_string()))?
            .ok_or(Miss::Absent)?;
        match Envelope::decode(raw) {
            Ok(env) => {
                self.metrics.lookup(Tier::L3, Outcome::hit, None);
                Ok(env)
            }
            Err(e) => {
                tracing::warn!(key = physical, error = %e, "corrupt value in L3; serving a miss");
                self.metrics.lookup(Tier::L3, Outcome::corrupt, None);
                Err(Miss::Unreachable(format!(
                    "the stored value is unreadable ({e})"
                )))
            }
        }
    }

    /// Puts an L3 value into L2 without blocking the response. `add` never
    /// overwrites, so a newer value the writer stored meanwhile survives.
    fn backfill_l2(&self, l2: &Guarded<Arc<Memcached>>, physical: String, env: &Envelope) {
        if l2.breaker.state() != breaker::BreakerState::Closed {
            return;
        }
        let memcached = Arc::clone(&l2.inner);
        let bytes = env.encode();
        tokio::spawn(async move {
            if let Err(e) = memcached.add(&physical, &bytes).await {
                tracing::debug!(key = physical, error = %e, "L2 backfill failed");
            }
        });
    }

    /// Calls a remote tier through its breaker, counting misses and errors.
    /// The call is a future not yet polled: nothing is sent when the breaker
    /// says skip.
    async fn call<T, V>(
        &self,
        tier: &Guarded<T>,
        call: impl Future<Output = Result<Option<V>, TierError>>,
    ) -> Result<Option<V>, TierError> {
        let Some(permit) = tier.breaker.try_acquire() else {
            self.metrics.lookup(tier.tier, Outcome::skipped, None);
            self.export_breaker(tier);
            return Err(TierError::Unavailable("circuit breaker open".into()));
        };
        let started = Instant::now();
        let result = call.await;
        tier.breaker.record(permit, result.is_ok());
        self.export_breaker(tier);
        let seconds = Some(elapsed(started));
        match &result {
            // Hits are counted by the caller, once the value has decoded.
            Ok(Some(_)) => self.metrics.fetch_seconds(tier.tier, elapsed(started)),
            Ok(None) => self.metrics.lookup(tier.tier, Outcome::miss, seconds),
            Err(e) => {
                tracing::debug!(tier = tier.tier.as_str(), error = %e, "tier call failed");
                self.metrics.lookup(tier.tier, Outcome::error, seconds);
            }
        }
        result
    }

    fn export_breaker<T>(&self, tier: &Guarded<T>) {
        tier.breaker_gauge.set(tier.breaker.state().as_gauge());
    }

    /// Whether the source of truth answered its last call.
    pub fn l3_healthy(&self) -> bool {
        self.l3.breaker.state() == breaker::BreakerState::Closed
    }

    // ---- coherence hooks -------------------------------------------------

    /// The newest version announced for a key (0 if none heard).
    pub fn floor(&self, logical: &str) -> u64 {
        self.floors_lock().get(logical).copied().unwrap_or(0)
    }

    /// Applies update announcements that arrived together: each key once,
    /// at its newest version. A publish round announces every changed key
    /// (a few hundred), but only the keys clients read here are in L1 and
    /// need a refresh (several at a time); the rest only get their floors
    /// raised, a slice at a time under one lock, with a yield to the
    /// scheduler between slices: done in one go, a round held the worker,
    /// and every request behind it, for a millisecond or two.
    pub async fn announce_all<'a>(&self, notices: impl IntoIterator<Item = (&'a str, u64)>) {
        let mut newest: HashMap<&str, u64> = HashMap::new();
        for (key, version) in notices {
            let v = newest.entry(key).or_insert(0);
            *v = (*v).max(version);
        }
        let (held, unread): (Vec<_>, Vec<_>) = newest
            .into_iter()
            .partition(|(key, _)| self.l1.contains_key(*key));
        for slice in unread.chunks(FLOOR_SLICE) {
            self.raise_floors(slice);
            tokio::task::yield_now().await;
        }
        futures::stream::iter(held)
            .for_each_concurrent(REFRESH_CONCURRENCY, |(key, version)| {
                self.announce(key, version)
            })
            .await;
    }

    /// Applies one update announcement: an older L1 copy is replaced by the
    /// new version, then the floor rises. Until then requests are served the
    /// copy this reader had before it learnt of the update; after, never an
    /// older one as current. If the new version cannot be had (a failover
    /// left the new primary behind), the old copy stays as the last resort
    /// `reload_outdated` serves, marked as superseded.
    pub async fn announce(&self, logical: &str, version: u64) {
        if version <= self.floor(logical) {
            return;
        }
        // `contains_key`, not `get`: it neither counts as a read in L1's
        // popularity estimate nor runs L1's housekeeping on this path.
        // `refresh` leaves a copy that is as new, or gone meanwhile, alone.
        if self.l1.contains_key(logical) {
            // Boxed for the same reason as the miss path in `get`.
            Box::pin(self.refresh(logical, version)).await;
        }
        self.raise_floors(&[(logical, version)]);
    }

    /// Raises the floors of these keys (a floor never goes down).
    fn raise_floors(&self, versions: &[(&str, u64)]) {
        let mut floors = self.floors_lock();
        for &(key, version) in versions {
            let floor = match floors.get_mut(key) {
                Some(floor) => floor,
                None => floors.entry(key.to_owned()).or_insert(0),
            };
            if version > *floor {
                *floor = version;
                self.changes.fetch_add(1, Ordering::Release);
            }
        }
    }

    /// How many times a floor has risen. Read it *before* the look-ups an
    /// answer is built from: while it has not moved, every part of that
    /// answer is still the newest version this reader knows of.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Acquire)
    }

    /// Puts `version` (or newer) of a key into L1 in place of an older
    /// copy, serialized with other refreshes of the key.
    async fn refresh(&self, logical: &str, version: u64) {
        let failed = AtomicBool::new(false);
        let failed_ref = &failed;
        let outcome = self
            .l1
            .entry_by_ref(logical)
            .and_compute_with(|entry| async move {
                match entry {
                    // Already newer, or gone (the next request loads it).
                    Some(e) if e.value().env.version >= version => Op::Nop,
                    None => Op::Nop,
                    Some(_) => match self.fetch_below_l1(logical, version).await {
                        Ok(fresh) if fresh.env.version >= version => Op::Put(fresh),
                        _ => {
                            failed_ref.store(true, Ordering::Relaxed);
                            Op::Nop
                        }
                    },
                }
            })
            .await;
        let reason = match outcome {
            CompResult::ReplacedWith(_) => "refreshed",
            _ if failed.into_inner() => "failed",
            _ => "unchanged",
        };
        self.metrics
            .l1_refreshes
            .get_or_create(&crate::metrics::ReasonLabels { reason })
            .inc();
    }

    /// Drops every L1 entry: the last resort when missed updates cannot be
    /// replayed. Floors stay, they are still true.
    pub fn flush_l1(&self) {
        self.l1.invalidate_all();
    }

    /// Entries in L1, after moka's pending housekeeping (its count lags otherwise).
    pub async fn l1_entries(&self) -> u64 {
        self.l1.run_pending_tasks().await;
        self.l1.entry_count()
    }

    fn floors_lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64, l1::Hasher>> {
        self.floors.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn elapsed(started: Instant) -> f64 {
    started.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn memory_backed() -> TieredCache {
        let keys = Keys::new("t:");
        TieredCache::new(
            keys.clone(),
            l1::build(1 << 20, Duration::from_secs(30)),
            None,
            Arc::new(L3::Memory(l3::memory::MemoryStore::new(keys, 16))),
            (3, Duration::from_secs(1)),
            Arc::new(Metrics::new()),
        )
    }

    /// A cache whose L3 is a Redis nobody listens on: every call fails.
    fn unreachable_l3() -> TieredCache {
        let keys = Keys::new("t:");
        let target = l3::redis::RedisTarget {
            url: "redis://127.0.0.1:1",
            username: None,
            password: None,
        };
        let (timeout, ttl) = (Duration::from_millis(200), Duration::from_secs(60));
        let store = l3::redis::RedisStore::new(target, keys.clone(), timeout, ttl, 16).unwrap();
        TieredCache::new(
            keys,
            l1::build(1 << 20, Duration::from_secs(30)),
            None,
            Arc::new(L3::Redis(Box::new(store))),
            (3, Duration::from_secs(1)),
            Arc::new(Metrics::new()),
        )
    }

    #[tokio::test]
    async fn concurrent_requests_all_get_the_last_resort_copy() {
        let cache = unreachable_l3();
        let copy = Cached::new(Arc::new(Envelope::new(1, 0, "v1")), Tier::L3);
        cache.l1.insert("k".to_owned(), copy).await;
        // Version 2 is announced but cannot be fetched (after a failover,
        // the new primary may lack it): the refresh fails, the copy stays.
        cache.announce("k", 2).await;
        assert_eq!(cache.floor("k"), 2);
        // Every request at once, as a burst after a failover would: each
        // must get the copy, none a miss because another request had taken
        // the copy out of L1 while it tried the tiers below.
        let answers = futures::future::join_all((0..32).map(|_| cache.get("k"))).await;
        for answer in answers {
            let found = answer.expect("the last-resort copy, not a miss");
            assert_eq!((found.env.version, found.superseded), (1, true));
        }
        // And a later request still finds it.
        assert_eq!(cache.get("k").await.unwrap().env.version, 1);
    }

    #[tokio::test]
    async fn a_publish_round_refreshes_what_clients_read_and_nothing_else() {
        let store = Arc::new(L3::Memory(l3::memory::MemoryStore::new(
            Keys::new("t:"),
            16,
        )));
        let cache = TieredCache::new(
            Keys::new("t:"),
            l1::build(1 << 20, Duration::from_secs(30)),
            None,
            store.clone(),
            (3, Duration::from_secs(1)),
            Arc::new(Metrics::new()),
        );
        // More keys than one slice of floors, as a real round announces.
        let keys: Vec<String> = (0..3 * FLOOR_SLICE + 5).map(|i| format!("k{i}")).collect();
        for key in &keys {
            store
                .publish(key, &Envelope::new(1, 0, "v1"))
                .await
                .unwrap();
        }
        cache.get("k7").await.unwrap();
        for key in &keys {
            store
                .publish(key, &Envelope::new(2, 0, "v2"))
                .await
                .unwrap();
        }
        cache
            .announce_all(keys.iter().map(|k| (k.as_str(), 2)))
            .await;
        // Every floor is raised, the one key read here is refreshed ahead
        // of the next request, and no other key was pulled into L1.
        assert!(keys.iter().all(|k| cache.floor(k) == 2));
        assert_eq!(cache.l1.get("k7").await.unwrap().env.version, 2);
        assert_eq!(cache.l1_entries().await, 1);
    }

    #[test]
    fn a_lookup_future_stays_small() {
        let cache = memory_backed();
        // Every request builds and moves this future; the lower tiers' ones
        // (about 14 KiB when they were inline) are boxed behind an L1 miss.
        let size = std::mem::size_of_val(&cache.get("k"));
        assert!(size <= 2048, "TieredCache::get's future is {size} bytes");
    }

    #[test]
    fn a_miss_future_stays_small() {
        let cache = memory_backed();
        // Moved (copied whole) into its box on every L1 miss: with the
        // lower tiers' connect and Memcached calls inline it was 21 KiB in
        // release builds, and copying it was the Redis path's largest cost
        // after the kernel's (perf). They are boxed now: about 4.5 KiB.
        let size = std::mem::size_of_val(&cache.get_below_l1("k", None));
        assert!(size <= 6 * 1024, "the miss path's future is {size} bytes");
    }
}
