//! L2: a pool of Memcached servers shared by every reader replica.
//!
//! Keys are spread over the servers by rendezvous hashing on xxh3, a hash
//! with a published, frozen definition: every process, build and Rust
//! version sends a key to the same server (the memcache crate's default
//! router hashes server names with std's `DefaultHasher`, which Rust does
//! not promise to keep stable). Servers are resolved lazily, so a pool whose
//! DNS names do not exist yet (pods still starting) does not stop a reader.
//!
//! The server list can be changed in place ([`Memcached::resize`]) when the
//! pool grows or shrinks: calls already under way finish on the old
//! connections, later ones use the new list. With rendezvous hashing only
//! the keys whose highest-scoring server changed move: about 1/N of them
//! when one of N servers is added or removed.

use super::TierError;
use bytes::Bytes;
use memcache::exp::{AsyncMemcache, Router, Ttl};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::OnceCell;
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Rendezvous (highest random weight) routing over xxh3.
#[derive(Debug, Clone, Copy, Default)]
pub struct StableRouter;

impl StableRouter {
    /// Index of the server that owns `key`.
    pub fn pick(key: &[u8], servers: &[String]) -> usize {
        let key_hash = xxh3_64(key);
        let mut best = (0, 0u64);
        for (index, server) in servers.iter().enumerate() {
            let score = xxh3_64_with_seed(server.as_bytes(), key_hash);
            if index == 0 || score > best.1 {
                best = (index, score);
            }
        }
        best.0
    }
}

impl Router for StableRouter {
    fn route(&self, key: &[u8], servers: &[String]) -> usize {
        StableRouter::pick(key, servers)
    }
}

/// The Memcached tier: lazily connected, every call bounded by a timeout.
pub struct Memcached {
    pool: RwLock<Arc<Pool>>,
    timeout: Duration,
    ttl: Duration,
}

/// One server list and its (lazily opened) connections.
struct Pool {
    servers: Vec<String>,
    client: OnceCell<AsyncMemcache>,
}

impl Pool {
    fn new(servers: Vec<String>) -> Arc<Pool> {
        Arc::new(Pool {
            servers,
            client: OnceCell::new(),
        })
    }

    async fn client(&self, timeout: Duration) -> Result<&AsyncMemcache, TierError> {
        // Boxed: connecting is a future of kilobytes, done once per pool;
        // inline, it would make every `get` (and each miss future above it,
        // moved on every miss) that large.
        self.client
            .get_or_try_init(|| {
                Box::pin(async {
                    AsyncMemcache::builder()
                        .router(StableRouter)
                        .timeout(timeout)
                        .connect_timeout(timeout)
                        .connect_async(self.servers.iter().map(String::as_str))
                        .await
                })
            })
            .await
            .map_err(|e| TierError::Unavailable(e.to_string()))
    }
}

impl Memcached {
    pub fn new(servers: Vec<String>, timeout: Duration, ttl: Duration) -> Self {
        Memcached {
            pool: RwLock::new(Pool::new(servers)),
            timeout,
            ttl,
        }
    }

    /// The server list in use now.
    pub fn servers(&self) -> Vec<String> {
        self.pool().servers.clone()
    }

    /// Switches to another server list; false if it is the one in use.
    /// Keys stay where the rendezvous hash puts them, so only those whose
    /// server changed miss once (and are backfilled from L3).
    pub fn resize(&self, servers: Vec<String>) -> bool {
        let mut pool = self.pool.write().unwrap_or_else(|p| p.into_inner());
        if pool.servers == servers {
            return false;
        }
        tracing::info!(from = ?pool.servers, to = ?servers, "switching the Memcached pool");
        *pool = Pool::new(servers);
        true
    }

    fn pool(&self) -> Arc<Pool> {
        Arc::clone(&self.pool.read().unwrap_or_else(|p| p.into_inner()))
    }

    pub async fn get(&self, key: &str) -> Result<Option<Bytes>, TierError> {
        let pool = self.pool();
        let client = pool.client(self.timeout).await?;
        // Boxed: the client's `get` is a future of kilobytes; inline, every
        // miss future above it would be that large, and each is moved.
        let value: Option<Vec<u8>> = bounded(self.timeout, Box::pin(client.get(key))).await?;
        Ok(value.map(Bytes::from))
    }

    /// Unconditional store: the writer's path, always the newest version.
    pub async fn set(&self, key: &str, value: &[u8]) -> Result<(), TierError> {
        let pool = self.pool();
        let client = pool.client(self.timeout).await?;
        bounded(self.timeout, client.set(key, value, self.ttl())).await
    }

    /// Unconditional stores of many values, one round trip per server.
    pub async fn set_many(&self, items: &[(&str, &[u8])]) -> Result<(), TierError> {
        let pool = self.pool();
        let client = pool.client(self.timeout).await?;
        bounded(
            self.timeout,
            client.set_many(items.iter().copied(), self.ttl()),
        )
        .await
    }

    /// Store only if absent: the reader's backfill, which must never
    /// overwrite a newer value the writer stored in the meantime.
    pub async fn add(&self, key: &str, value: &[u8]) -> Result<bool, TierError> {
        let pool = self.pool();
        let client = pool.client(self.timeout).await?;
        bounded(self.timeout, client.add(key, value, self.ttl())).await
    }

    /// Drops a value found to be corrupt or outdated.
    pub async fn delete(&self, key: &str) -> Result<(), TierError> {
        let pool = self.pool();
        let client = pool.client(self.timeout).await?;
        // Boxed like `get`'s call: the reader's miss path awaits this.
        bounded(self.timeout, Box::pin(client.delete(key))).await
    }

    fn ttl(&self) -> Ttl {
        Ttl::secs(u32::try_from(self.ttl.as_secs().max(1)).unwrap_or(u32::MAX))
    }
}

async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = memcache::exp::Result<T>>,
) -> Result<T, TierError> {
    match tokio::time::timeout(limit, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(TierError::Unavailable(e.to_string())),
        Err(_) => Err(TierError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn servers(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| format!("memcached-{i}.memcached:11211"))
            .collect()
    }

    #[test]
    fn routing_is_pinned_to_the_hash_definition() {
        // These indices were computed once and must never change: a change
        // would send every key to another server after an upgrade.
        let four = servers(4);
        let picks: Vec<usize> = ["cb:default:local:v:market:overview", "a", "b", "AAPL"]
            .iter()
            .map(|k| StableRouter::pick(k.as_bytes(), &four))
            .collect();
        assert_eq!(picks, PINNED_PICKS);
    }

    #[test]
    fn removing_a_server_moves_only_its_keys_and_load_is_balanced() {
        let four = servers(4);
        let mut three = four.clone();
        three.remove(2);
        let mut counts = [0usize; 4];
        for i in 0..4000 {
            let key = format!("key-{i}");
            let before = StableRouter::pick(key.as_bytes(), &four);
            counts[before] += 1;
            let after = StableRouter::pick(key.as_bytes(), &three);
            if before != 2 {
                assert_eq!(three[after], four[before], "{key} moved needlessly");
            }
        }
        assert!(counts.iter().all(|&c| c > 800), "unbalanced: {counts:?}");
    }

    const PINNED_PICKS: [usize; 4] = [3, 2, 3, 1];
}
