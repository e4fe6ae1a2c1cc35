//! A Memcached pool resized under a reader, on real processes: the reader
//! switches its L2 to the new server list in place (`Memcached::resize`,
//! which `Running::resize_memcached` — the call `--bridge` mode makes when
//! the status lists other servers — applies to every pool of a process) and
//! keeps its L1, Redis connection and coherence position.
//!
//! What must hold: with the rendezvous hash only the keys whose server
//! changed miss L2 — exactly those, about a quarter when a fourth server
//! joins three (or one of four leaves) — each costs one Redis read that
//! backfills its new server, and nothing more follows. Each pass reads every
//! key once with L1 emptied first, so every read reaches L2. Under a
//! concurrent load, a moved key may be read from Redis by each client that
//! asks for it before its backfill lands — a few reads per moved key, once.

mod common;

use bytes::Bytes;
use cachebridge_dataplane::app::{self, Credentials, Role};
use cachebridge_dataplane::cache::l2_memcached::{Memcached, StableRouter};
use cachebridge_dataplane::keys::Keys;
use cachebridge_dataplane::metrics::{Outcome, Tier};
use cachebridge_dataplane::reader::Reader;
use common::{Server, config, eventually, publisher, reader};
use std::time::Duration;

const KEYS: usize = 400;

fn logical(i: usize) -> String {
    format!("market:ticker:S{i}")
}

/// L2 misses and Redis reads of one pass over every key, L1 emptied first.
async fn pass(reader: &Reader) -> (u64, u64) {
    let counts = || {
        (
            reader.metrics.lookup_count(Tier::L2, Outcome::miss),
            reader.metrics.lookup_count(Tier::L3, Outcome::hit),
        )
    };
    let before = counts();
    reader.cache.flush_l1();
    for i in 0..KEYS {
        reader.cache.get(&logical(i)).await.expect("served");
    }
    let after = counts();
    (after.0 - before.0, after.1 - before.1)
}

/// The keys whose Memcached server differs between two server lists.
fn moving(keys: &Keys, from: &[String], to: &[String]) -> Vec<String> {
    (0..KEYS)
        .map(|i| keys.value(&logical(i)))
        .filter(|k| {
            from[StableRouter::pick(k.as_bytes(), from)] != to[StableRouter::pick(k.as_bytes(), to)]
        })
        .collect()
}

/// Awaits the backfill of every moved key on its new server (the backfill
/// runs beside the response).
async fn backfilled(servers: &[String], moved: &[String]) {
    let l2 = Memcached::new(
        servers.to_vec(),
        Duration::from_secs(1),
        Duration::from_secs(60),
    );
    for key in moved {
        eventually("the moved key backfilled", || async {
            l2.get(key).await.ok().flatten().map(|_| ())
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_and_shrinking_the_pool_moves_only_the_rehashed_keys_once() {
    let redis = Server::redis();
    let pool: Vec<Server> = (0..4).map(|_| Server::memcached()).collect();
    let addrs: Vec<String> = pool.iter().map(Server::addr).collect();
    let three = addrs[..3].to_vec();
    let mut config = config(Some(&redis), &pool[..3].iter().collect::<Vec<_>>());
    config.cache.l2_ttl = Duration::from_secs(600);
    let keys = Keys::new(config.key_prefix());

    // The writer stores every key in Redis and in the three-server pool.
    let values = (0..KEYS)
        .map(|i| (logical(i), Bytes::from(format!("{{\"n\":{i}}}"))))
        .collect();
    let report = publisher(&config).publish(values, 1_000).await;
    assert_eq!(report.held_back, 0);

    // A reader without background tasks, so that only the passes count.
    let reader = reader(&config);
    let l2 = reader.cache.l2_pool().expect("an L2");
    assert_eq!(pass(&reader).await, (0, 0), "every key is in L2 at first");

    // Grow: 3 → 4 servers.
    let moved = moving(&keys, &three, &addrs);
    assert!(l2.resize(addrs.clone()));
    assert!(!l2.resize(addrs.clone()), "the same list is no change");
    assert_eq!(l2.servers(), addrs);
    let burst = pass(&reader).await;
    assert_eq!(burst, (moved.len() as u64, moved.len() as u64));
    backfilled(&addrs, &moved).await;
    assert_eq!(pass(&reader).await, (0, 0), "nothing more after the burst");
    let grown = moved.len() as f64 / KEYS as f64;
    assert!(
        (0.15..0.35).contains(&grown),
        "about a quarter moved: {grown}"
    );

    // Shrink: one of the first three leaves (its keys move to the others).
    let shrunk_to = addrs[1..].to_vec();
    let moved_back = moving(&keys, &addrs, &shrunk_to);
    assert!(l2.resize(shrunk_to.clone()));
    let shrink_burst = pass(&reader).await;
    assert_eq!(
        shrink_burst,
        (moved_back.len() as u64, moved_back.len() as u64)
    );
    backfilled(&shrunk_to, &moved_back).await;
    assert_eq!(pass(&reader).await, (0, 0), "nothing more after the burst");
    let shrunk = moved_back.len() as f64 / KEYS as f64;
    assert!(
        (0.15..0.35).contains(&shrunk),
        "about a quarter moved: {shrunk}"
    );

    eprintln!(
        "{KEYS} keys: 3→4 servers: {} L2 misses, {} Redis reads once ({:.1}%), then 0; \
         4→3 servers: {} L2 misses, {} Redis reads once ({:.1}%), then 0",
        burst.0,
        burst.1,
        grown * 100.0,
        shrink_burst.0,
        shrink_burst.1,
        shrunk * 100.0
    );
}

/// Readers asking for every key over and over, each in its own order, until
/// told to stop; they answer how many reads they made, and panic on a failed one.
fn load(
    reader: &Reader,
    clients: usize,
) -> (
    tokio::sync::watch::Sender<bool>,
    Vec<tokio::task::JoinHandle<u64>>,
) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let tasks = (0..clients)
        .map(|c| {
            let (reader, stopped) = (reader.clone(), stopped.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                while !*stopped.borrow() {
                    for i in (0..KEYS).map(|i| (i * 7 + c * 101) % KEYS) {
                        reader
                            .cache
                            .get(&logical(i))
                            .await
                            .expect("served under load");
                        reads += 1;
                    }
                }
                reads
            })
        })
        .collect();
    (stop, tasks)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_the_pool_under_load_costs_each_moved_key_a_few_redis_reads_and_no_error() {
    const CLIENTS: usize = 4;
    let redis = Server::redis();
    let pool: Vec<Server> = (0..4).map(|_| Server::memcached()).collect();
    let addrs: Vec<String> = pool.iter().map(Server::addr).collect();
    let mut config = config(Some(&redis), &pool[..3].iter().collect::<Vec<_>>());
    config.cache.l2_ttl = Duration::from_secs(600);
    // No L1: every read of the load reaches L2, as a reader's misses would.
    config.cache.l1_max_bytes = 0;
    let keys = Keys::new(config.key_prefix());
    let values = (0..KEYS)
        .map(|i| (logical(i), Bytes::from(format!("{{\"n\":{i}}}"))))
        .collect();
    assert_eq!(publisher(&config).publish(values, 1_000).await.held_back, 0);
    let reader = reader(&config);
    let redis_reads = || reader.metrics.lookup_count(Tier::L3, Outcome::hit);

    let (stop, clients) = load(&reader, CLIENTS);
    let moved = moving(&keys, &addrs[..3], &addrs);
    let before = redis_reads();
    assert!(reader.cache.l2_pool().unwrap().resize(addrs.clone()));
    backfilled(&addrs, &moved).await;
    // A lap's worth of reads after the backfill, so that reads which had
    // missed L2 before it are done; then another, which must all hit L2.
    let lap = |from: u64| {
        let reader = reader.clone();
        async move {
            eventually("a lap of every client's worth of L2 hits", || async {
                let hits = reader.metrics.lookup_count(Tier::L2, Outcome::hit);
                (hits >= from + (CLIENTS * KEYS) as u64).then_some(hits)
            })
            .await
        }
    };
    let l2_hits = || reader.metrics.lookup_count(Tier::L2, Outcome::hit);
    lap(l2_hits()).await;
    let settled = redis_reads();
    let laps = lap(l2_hits()).await;
    stop.send(true).unwrap();
    let mut reads = 0;
    for client in clients {
        reads += client.await.expect("no read failed");
    }
    let during = settled - before;
    let after = redis_reads() - settled;
    let moved = moved.len() as u64;
    assert!(
        (moved..=moved * CLIENTS as u64).contains(&during),
        "each moved key read from Redis at least once, at most once per client: {during} for {moved}"
    );
    assert_eq!(
        after, 0,
        "nothing from Redis once the moved keys are backfilled"
    );
    eprintln!(
        "{KEYS} keys, {CLIENTS} clients, {reads} reads: 3→4 servers under load moved {moved} keys, \
         {during} Redis reads ({:.2} per moved key), then 0 (L2 hits so far: {laps})",
        during as f64 / moved as f64
    );
}

#[tokio::test]
async fn a_running_process_switches_every_pool_it_has() {
    let redis = Server::redis();
    let pool: Vec<Server> = (0..2).map(|_| Server::memcached()).collect();
    let config = config(Some(&redis), &[&pool[0]]);
    let both: Vec<String> = pool.iter().map(Server::addr).collect();
    // `local` has two pools (the writer's and the reader's): both switch.
    let local = app::start(Role::Local, &config, &Credentials::default())
        .await
        .unwrap();
    assert!(local.has_memcached());
    assert!(local.resize_memcached(&both));
    assert!(
        !local.resize_memcached(&both),
        "already switched, all of them"
    );
    let reader = local.reader.as_ref().unwrap();
    assert_eq!(reader.cache.l2_pool().unwrap().servers(), both);
    local.stop().await;
}
