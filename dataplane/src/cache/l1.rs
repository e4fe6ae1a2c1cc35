//! L1: each reader's in-process cache (moka).
//!
//! Bounded by bytes, not entries, because a ticker and the full ticker list
//! differ in size by two orders of magnitude. Entries expire after a TTL
//! with ±10% jitter so replicas started together do not all miss at once;
//! the TTL is only a safety net, coherence messages invalidate entries.

use super::envelope::Envelope;
use crate::metrics::Tier;
use moka::Expiry;
use moka::future::Cache;
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A value in L1, with the tier it was fetched from.
#[derive(Debug, Clone)]
pub struct Cached {
    pub env: Arc<Envelope>,
    pub origin: Tier,
    /// When fetching the announced version in its place last failed, for a
    /// copy that is outdated (see `TieredCache::reload_outdated`).
    pub failed_at: Option<Instant>,
}

impl Cached {
    pub fn new(env: Arc<Envelope>, origin: Tier) -> Self {
        Cached {
            env,
            origin,
            failed_at: None,
        }
    }

    /// This copy, recorded as what a fetch of a newer version got instead.
    pub fn failed_now(self) -> Self {
        Cached {
            failed_at: Some(Instant::now()),
            ..self
        }
    }
}

struct JitteredTtl(Duration);

impl Expiry<String, Cached> for JitteredTtl {
    fn expire_after_create(
        &self,
        _key: &String,
        _value: &Cached,
        _now: Instant,
    ) -> Option<Duration> {
        let factor = rand::rng().random_range(0.9..=1.1);
        Some(self.0.mul_f64(factor))
    }
}

/// The hasher of L1 and of the version floors: the key of every request is
/// hashed with it, so it is the fast one (seeded per map, so keys a client
/// chooses cannot be aimed at one bucket across processes).
pub type Hasher = foldhash::fast::RandomState;

pub type L1 = Cache<String, Cached, Hasher>;

pub fn build(max_bytes: u64, ttl: Duration) -> L1 {
    Cache::builder()
        .max_capacity(max_bytes)
        .weigher(|key: &String, value: &Cached| {
            value
                .env
                .weight()
                .saturating_add(u32::try_from(key.len()).unwrap_or(u32::MAX))
        })
        .expire_after(JitteredTtl(ttl))
        .build_with_hasher(Hasher::default())
}
