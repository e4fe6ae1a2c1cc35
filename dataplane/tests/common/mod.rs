//! Test harness of the dataplane: the real servers of `cachebridge-testkit`,
//! plus helpers to build dataplane configs against them and to await
//! conditions.

#![allow(dead_code)]

pub mod load;
pub mod sse;

use cachebridge_dataplane::app::{self, Credentials, Tiers, build_reader};
use cachebridge_dataplane::config::{Config, Source};
use cachebridge_dataplane::metrics::Metrics;
use cachebridge_dataplane::reader::Reader;
use cachebridge_dataplane::writer::publisher::Publisher;
pub use cachebridge_testkit::cluster::RedisCluster;
pub use cachebridge_testkit::sentinel::{self, SentinelGroup};
pub use cachebridge_testkit::{PATIENCE, Server, free_port};
use std::sync::Arc;
use std::time::Duration;

/// A config for these servers with test-friendly, fast timings.
pub fn config(redis: Option<&Server>, memcached: &[&Server]) -> Config {
    let mut config = Config::default();
    config.bridge.namespace = "test".into();
    config.bridge.name = format!("b{}", free_port());
    config.redis.url = redis.map(Server::url);
    config.memcached.servers = memcached.iter().map(|m| m.addr()).collect();
    config.reader.listen = "127.0.0.1:0".parse().unwrap();
    config.writer.source = Source::None;
    config.writer.publish_interval = Duration::from_millis(50);
    config.coherence.heartbeat_interval = Duration::from_millis(100);
    config.cache.tier_timeout = Duration::from_millis(200);
    config.cache.breaker_cooldown = Duration::from_millis(200);
    config
}

/// Awaits a condition checked by `probe`, failing the test after [`PATIENCE`].
/// Used only where the event is visible to another process (HTTP), not as
/// a substitute for awaiting an in-process signal.
pub async fn eventually<F, Fut, T>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits a watch channel reaching a state.
pub async fn until<T: Clone>(
    what: &str,
    rx: &mut tokio::sync::watch::Receiver<T>,
    ok: impl Fn(&T) -> bool,
) -> T {
    tokio::time::timeout(PATIENCE, rx.wait_for(|v| ok(v)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("sender alive")
        .clone()
}

/// A synchronous Redis connection for poking at the server directly.
pub fn redis_conn(server: &Server) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// NDJSON for one tick.
pub fn tick(symbol: &str, price: f64, volume: u64) -> String {
    format!(
        r#"{{"symbol":"{symbol}","price":{price},"volume":{volume},"ts":"2026-01-02T15:04:05Z"}}"#
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A writer's publisher over the config's tiers.
pub fn publisher(config: &Config) -> Publisher {
    let tiers = Tiers::connect(config, "test writer", false).unwrap();
    let breaker = (3, Duration::from_millis(200));
    Publisher::new(
        tiers.keys,
        tiers.l3,
        tiers.l2,
        breaker,
        Arc::new(Metrics::new()),
    )
}

/// A reader over the config's tiers; its coherence follower is not started.
pub fn reader(config: &Config) -> Reader {
    let tiers = Tiers::connect(config, "test reader", false).unwrap();
    build_reader(config, tiers, Arc::new(Metrics::new()))
}

/// Sentinel mode against a [`SentinelGroup`]: its Sentinels, master name
/// and the dataplane's ACL user (passwords are in [`sentinel_credentials`]).
pub fn sentinel_config(group: &SentinelGroup) -> Config {
    let mut config = config(None, &[]);
    config.redis.sentinel = group.sentinel_addrs();
    config.redis.master = Some(sentinel::MASTER.into());
    config.redis.username = Some(sentinel::CLIENT_USER.into());
    config
}

/// Cluster mode against a [`RedisCluster`]: every node as a seed, and the
/// dataplane's ACL user (its password is in [`cluster_credentials`]).
pub fn cluster_config(cluster: &RedisCluster) -> Config {
    let mut config = config(None, &[]);
    config.redis.cluster = cluster.seeds();
    config.redis.username = Some(sentinel::CLIENT_USER.into());
    config
}

pub fn cluster_credentials() -> Credentials {
    Credentials {
        redis_password: Some(sentinel::CLIENT_PASSWORD.into()),
        sentinel_password: None,
    }
}

pub fn sentinel_credentials() -> Credentials {
    Credentials {
        redis_password: Some(sentinel::CLIENT_PASSWORD.into()),
        sentinel_password: Some(sentinel::SENTINEL_PASSWORD.into()),
    }
}

/// A connection to one Redis of a group as its `default` (admin) user.
pub fn admin_conn(port: u16) -> redis::Connection {
    let url = format!("redis://:{}@127.0.0.1:{port}", sentinel::ADMIN_PASSWORD);
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

/// The primary's port as a quorum of the Sentinels names it, once all
/// answering Sentinels agree.
pub fn named_primary(group: &SentinelGroup) -> Option<u16> {
    let mut named = Vec::new();
    for addr in group.sentinel_addrs() {
        let url = format!("redis://:{}@{addr}", sentinel::SENTINEL_PASSWORD);
        let Ok(mut conn) = redis::Client::open(url).unwrap().get_connection() else {
            continue;
        };
        let reply: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(sentinel::MASTER)
            .query(&mut conn)
            .ok()?;
        named.push(reply?.1);
    }
    let first = *named.first()?;
    named.iter().all(|p| *p == first).then_some(first)
}

/// `INFO replication` of one Redis, if it answers.
pub fn replication(port: u16) -> Option<String> {
    let url = format!("redis://:{}@127.0.0.1:{port}", sentinel::ADMIN_PASSWORD);
    let mut conn = redis::Client::open(url).ok()?.get_connection().ok()?;
    redis::cmd("INFO").arg("replication").query(&mut conn).ok()
}

/// Awaits the group at rest and returns its primary: the Sentinels agree
/// on one, it answers as a primary, and every other running Redis replicates
/// from it with the link up.
///
/// Tests ask for this state instead of assuming that the first promotion
/// after a kill sticks: Sentinel 7.0 with `down-after-milliseconds` 1000 can
/// mistake a primary it has just switched to for down and fail over once
/// more (seen in the Sentinels' logs: `+sdown master` one period after
/// `+switch-master`, then an instant `+odown` on its peers' stale votes).
/// The dataplane must follow any number of moves, so the tests allow them.
pub async fn settled(group: &mut SentinelGroup) -> u16 {
    let others: Vec<u16> = group
        .redis
        .iter_mut()
        .filter_map(|s| s.is_running().then_some(s.port))
        .collect();
    let group = &*group;
    eventually("the Sentinel group at rest", || async {
        let primary = named_primary(group)?;
        replication(primary)?
            .contains("role:master")
            .then_some(())?;
        let replicas: Vec<u16> = others.iter().copied().filter(|p| *p != primary).collect();
        let linked = |port: u16| {
            replication(port).is_some_and(|i| {
                i.contains("master_link_status:up") && i.contains(&format!("master_port:{primary}"))
            })
        };
        replicas.iter().all(|p| linked(*p)).then_some(())?;
        let n = replicas.len();
        // `WAIT` blocks: keep it off the runtime's workers.
        let acked = tokio::task::spawn_blocking(move || caught_up(primary, n));
        acked.await.unwrap().then_some(primary)
    })
    .await
}

/// Whether `replicas` replicas acknowledge everything the primary has
/// written so far (a write of our own, then `WAIT`). A replica's link is up
/// as soon as its first sync loads, but after a diskless sync the primary
/// streams later writes only once the replica acknowledges (about once a
/// second): a link cut before that loses them.
fn caught_up(primary: u16, replicas: usize) -> bool {
    let Ok(mut conn) = redis::Client::open(format!(
        "redis://:{}@127.0.0.1:{primary}",
        sentinel::ADMIN_PASSWORD
    ))
    .and_then(|c| c.get_connection()) else {
        return false;
    };
    let marked = redis::cmd("SET").arg("test:settled").arg(1).exec(&mut conn);
    let acked: redis::RedisResult<usize> =
        redis::cmd("WAIT").arg(replicas).arg(1500).query(&mut conn);
    marked.is_ok() && acked.is_ok_and(|n| n >= replicas)
}

/// A process of the real binary, killed when the test ends, passed or not.
pub struct Proc(pub std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A writer (its ingest on a free port, its source `config`'s) and two
/// readers started as the binary starts them; also the ingest URL.
pub async fn writer_and_two_readers(
    mut config: Config,
    credentials: &Credentials,
) -> (Config, app::Running, String, Vec<app::Running>) {
    let ingest_port = free_port();
    config.writer.ingest_listen = Some(format!("127.0.0.1:{ingest_port}").parse().unwrap());
    let writer = app::start(app::Role::Writer, &config, credentials)
        .await
        .unwrap();
    let mut readers = Vec::new();
    for _ in 0..2 {
        readers.push(
            app::start(app::Role::Reader, &config, credentials)
                .await
                .unwrap(),
        );
    }
    let ingest = format!("http://127.0.0.1:{ingest_port}/ingest");
    (config, writer, ingest, readers)
}
