//! Redis Cluster as L3 on real processes: three `redis-server
//! --cluster-enabled yes` primaries joined by `redis-cli --cluster create`
//! (see `cachebridge_testkit::cluster`), a writer and two readers on it, and
//! the bridge's hash slot moved to another node while they work, with the
//! cluster's own resharding protocol (keys migrate ten at a time, so clients
//! meet `ASK`, `TRYAGAIN` and then `MOVED`).
//!
//! What must hold: every key of the bridge lives in one slot on one node;
//! no reader ever answers with an error or an older version than before;
//! afterwards the writer publishes on the new node and fresh data reaches
//! every reader. The dataplane logs in as an ACL user that exists on every
//! node, so its use on the new node proves it works there too.

mod common;

use cachebridge_dataplane::app::Running;
use cachebridge_dataplane::cache::l3::cluster::slot_of;
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::keys::Keys;
use cachebridge_dataplane::metrics::ReasonLabels;
use cachebridge_testkit::cluster::admin;
use common::load::{Seen, every_symbol_served, feed, load, price_on};
use common::{RedisCluster, client, cluster_config, cluster_credentials, eventually, tick, until};
use std::sync::Arc;
use std::time::Duration;

fn base(running: &Running) -> String {
    format!("http://{}", running.addr.unwrap())
}

async fn synced(running: &Running) {
    let reader = running.reader.as_ref().expect("a reader");
    until("reader synced", &mut reader.coherence.synced(), |s| *s).await;
}

/// A writer (ingest only) and two readers in cluster mode.
async fn bridge(cluster: &RedisCluster) -> (Config, Running, String, Vec<Running>) {
    common::writer_and_two_readers(cluster_config(cluster), &cluster_credentials()).await
}

/// Keys starting with `prefix` on the node on `port`.
fn keys_on(port: u16, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut admin(port))
        .unwrap()
}

fn seq_on(port: u16, keys: &Keys) -> u64 {
    redis::cmd("GET")
        .arg(keys.seq())
        .query::<Option<u64>>(&mut admin(port))
        .unwrap()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_and_readers_follow_a_resharded_slot_without_errors() {
    let cluster = RedisCluster::start(3);
    let (config, writer, ingest, readers) = bridge(&cluster).await;
    let prefix = config.key_prefix();
    assert!(prefix.starts_with('{'), "cluster mode tags {prefix:?}");
    let keys = Keys::new(prefix.clone());
    let slot = slot_of(keys.seq().as_bytes());

    let feeder = feed(ingest.clone());
    for r in &readers {
        synced(r).await;
        every_symbol_served(&base(r)).await;
    }

    // One slot, one node: the bridge's keys are all on the slot's owner.
    let from = cluster.owner_of(slot);
    let ours = keys_on(from, &prefix);
    assert!(
        ours.len() > 3,
        "value keys, versions, seq, stream: {ours:?}"
    );
    assert!(ours.iter().all(|k| slot_of(k.as_bytes()) == slot));
    for node in &cluster.nodes {
        if node.port != from {
            assert_eq!(keys_on(node.port, &prefix), Vec::<String>::new());
        }
    }

    let seen = Seen::shared();
    let loads: Vec<_> = readers
        .iter()
        .enumerate()
        .map(|(i, r)| load(i, base(r), Arc::clone(&seen), u64::MAX))
        .collect();
    eventually("load running", || async {
        (seen.lock().unwrap().ok > 50).then_some(())
    })
    .await;

    // Move the slot to another node, three keys at a time, pacing the
    // batches so the writer and readers work while the keys are split.
    let to = cluster
        .nodes
        .iter()
        .map(|n| n.port)
        .find(|p| *p != from)
        .unwrap();
    let seq_before = seq_on(from, &keys);
    let answered_before = seen.lock().unwrap().ok;
    let moved = {
        let cluster = &cluster;
        tokio::task::block_in_place(|| {
            cluster.migrate_slot(slot, from, to, 3, || {
                std::thread::sleep(Duration::from_millis(100))
            })
        })
    };
    let answered_during = seen.lock().unwrap().ok - answered_before;
    assert!(
        answered_during > 0,
        "the readers answered while the slot moved"
    );
    assert!(moved >= ours.len(), "moved {moved} keys");
    assert_eq!(cluster.owner_of(slot), to);

    // The writer publishes on the new node: a fresh tick reaches both readers.
    let fresh = tick("FRESH", 4242.5, 1);
    client().post(&ingest).body(fresh).send().await.unwrap();
    for r in &readers {
        eventually("the fresh tick on every reader", || async {
            (price_on(&base(r), "FRESH").await == Some(4242.5)).then_some(())
        })
        .await;
        synced(r).await;
    }
    assert!(seq_on(to, &keys) > seq_before, "published on the new node");
    assert_eq!(keys_on(from, &prefix), Vec::<String>::new());

    for task in loads.iter().chain([&feeder]) {
        task.abort();
    }
    let seen = seen.lock().unwrap();
    assert!(
        seen.failures.is_empty(),
        "errors while the slot moved: {:?}",
        seen.failures
    );
    assert!(
        seen.backwards.is_empty(),
        "versions went back: {:?}",
        seen.backwards
    );
    let failed = writer
        .metrics
        .writer_publishes
        .get_or_create(&ReasonLabels { reason: "failed" })
        .get();
    eprintln!(
        "slot {slot} moved from :{from} to :{to} ({moved} keys): {answered_during} answers during the move, \
         {} in all, {} marked stale; writer batches held back and retried: {failed}",
        seen.ok, seen.stale
    );
}
