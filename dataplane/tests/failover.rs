//! Sentinel mode on real processes: three `redis-server`, three
//! `redis-sentinel` (see `cachebridge_testkit::sentinel`), a writer and
//! readers, and the primary killed with SIGKILL while they work.
//!
//! What must hold: no reader ever answers with an error, data is marked
//! stale while the readers cannot vouch for it, no reader ever answers a
//! key with an older version than it answered before, and afterwards the
//! writer publishes to the new primary and fresh data reaches every reader.

mod common;

use bytes::Bytes;
use cachebridge_dataplane::app::{self, Running, Tiers};
use cachebridge_dataplane::cache::l3::L3;
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::metrics::Metrics;
use cachebridge_dataplane::reader::Reader;
use cachebridge_dataplane::writer::publisher::Publisher;
use cachebridge_testkit::sentinel::Timing;
use common::load::{Seen, every_symbol_served, feed, load, price_on};
use common::{
    SentinelGroup, client, eventually, replication, sentinel_config, sentinel_credentials, settled,
    tick, until,
};
use std::sync::Arc;
use std::time::Duration;

fn reader_of(running: &Running) -> &Reader {
    running.reader.as_ref().expect("a reader")
}

async fn synced(running: &Running) {
    until(
        "reader synced",
        &mut reader_of(running).coherence.synced(),
        |s| *s,
    )
    .await;
}

/// A writer (ingest only) and two readers in Sentinel mode.
async fn bridge(group: &SentinelGroup) -> (Config, Running, String, Vec<Running>) {
    common::writer_and_two_readers(sentinel_config(group), &sentinel_credentials()).await
}

fn base(running: &Running) -> String {
    format!("http://{}", running.addr.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_and_writer_follow_a_killed_primary_without_errors_or_going_back() {
    let mut group = SentinelGroup::start(Timing::fast());
    let (config, _writer, ingest, readers) = bridge(&group).await;
    let feeder = feed(ingest.clone());
    for r in &readers {
        synced(r).await;
        every_symbol_served(&base(r)).await;
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

    let old = settled(&mut group).await;
    let stale_before = seen.lock().unwrap().stale;
    group.redis_on(old).kill();
    let new = settled(&mut group).await;

    // The writer publishes to the new primary: a fresh tick reaches both readers.
    for r in &readers {
        synced(r).await;
    }
    let fresh = tick("FRESH", 4242.5, 1);
    client().post(&ingest).body(fresh).send().await.unwrap();
    for r in &readers {
        eventually("the fresh tick on every reader", || async {
            (price_on(&base(r), "FRESH").await == Some(4242.5)).then_some(())
        })
        .await;
    }
    let mut conn = common::admin_conn(new);
    let seq: u64 = redis::cmd("GET")
        .arg(cachebridge_dataplane::keys::Keys::new(config.key_prefix()).seq())
        .query(&mut conn)
        .unwrap();
    assert!(seq > 0, "the writer published to the new primary");

    for task in loads.iter().chain([&feeder]) {
        task.abort();
    }
    {
        let seen = seen.lock().unwrap();
        assert!(
            seen.failures.is_empty(),
            "errors during failover: {:?}",
            seen.failures
        );
        assert!(
            seen.backwards.is_empty(),
            "versions went back: {:?}",
            seen.backwards
        );
        assert!(
            seen.stale > stale_before,
            "answers during the failover are marked stale"
        );
    }

    // The killed process comes back as a replica of the current primary.
    // Sentinel converts it only once it has seen it answer again, at its own
    // INFO period, which on a loaded machine can exceed the usual patience.
    group.redis_on(old).restart();
    let deadline = tokio::time::Instant::now() + 3 * common::PATIENCE;
    loop {
        let info = replication(old).unwrap_or_default();
        let primary = common::named_primary(&group).filter(|p| *p != old);
        let follows = primary.is_some_and(|p| info.contains(&format!("master_port:{p}")));
        if info.contains("role:slave") && follows {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for the old primary to become a replica: {info}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A publisher and a reader over the same Sentinel-mode tiers, built by
/// hand so the test decides when the reader follows updates.
fn publisher(config: &Config) -> Publisher {
    let tiers = Tiers::connect_with(config, &sentinel_credentials(), "test writer", false).unwrap();
    Publisher::new(
        tiers.keys,
        tiers.l3,
        None,
        (3, Duration::from_millis(200)),
        Arc::new(Metrics::new()),
    )
}

fn reader(config: &Config) -> Reader {
    let tiers = Tiers::connect_with(config, &sentinel_credentials(), "test reader", false).unwrap();
    app::build_reader(config, tiers, Arc::new(Metrics::new()))
}

fn value(v: &str) -> Bytes {
    Bytes::from(format!("\"{v}\""))
}

/// Publishes until the store takes it (the primary may be moving).
async fn publish(p: &mut Publisher, key: &str, v: &str) {
    let now = i64::try_from(std::time::UNIX_EPOCH.elapsed().unwrap().as_millis()).unwrap();
    let mut report = p.publish(vec![(key.into(), value(v))], now).await;
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    while report.held_back > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{key}={v} never published"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        report = p.flush().await;
    }
}

async fn served(r: &Reader, key: &str) -> String {
    let found = r.cache.get(key).await.expect("served");
    String::from_utf8(found.env.payload.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_cut_off_during_a_failover_with_lost_writes_resyncs_by_epoch() {
    let mut group = SentinelGroup::start(Timing::fast());
    let config = sentinel_config(&group);
    let mut writer = publisher(&config);
    for i in 0..10 {
        publish(&mut writer, &format!("k{i}"), "v1").await;
    }
    let r = reader(&config);
    let follower = tokio::spawn(Arc::clone(&r.coherence).run());
    until("reader synced", &mut r.coherence.synced(), |s| *s).await;
    for i in 0..10 {
        assert_eq!(served(&r, &format!("k{i}")).await, "\"v1\"");
    }

    // Replicas stop receiving writes: what follows is lost in a failover.
    let old = settled(&mut group).await;
    let mut admin = common::admin_conn(old);
    redis::cmd("ACL")
        .arg("SETUSER")
        .arg(common::sentinel::REPLICATION_USER)
        .arg("off")
        .exec(&mut admin)
        .unwrap();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("replica")
        .exec(&mut admin)
        .unwrap();
    publish(&mut writer, "k0", "v2").await;
    let applied = until("the lost write applied", &mut r.coherence.applied(), |s| {
        *s >= 11
    })
    .await;
    assert_eq!(served(&r, "k0").await, "\"v2\"");

    // The reader is cut off from updates; the primary dies.
    follower.abort();
    group.redis_on(old).kill();
    let new = settled(&mut group).await;
    let keys = cachebridge_dataplane::keys::Keys::new(config.key_prefix());
    let behind: Option<u64> = redis::cmd("GET")
        .arg(keys.seq())
        .query(&mut common::admin_conn(new))
        .unwrap();
    // A missing counter is 0, as the store reads it.
    let behind = behind.unwrap_or(0);
    assert!(
        behind < applied,
        "the new primary lacks the lost write ({behind} < {applied})"
    );
    // Never older than what this reader served, though the new primary holds v1.
    assert_eq!(served(&r, "k0").await, "\"v2\"");

    // The writer's next value gets a number the reader already passed; the
    // lost write comes back behind it, re-published.
    publish(&mut writer, "k1", "v3").await;
    // The writer flushes on every cycle; should Sentinel move the primary
    // once more (see `settled`), a later cycle re-publishes there.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    let new = loop {
        let new = settled(&mut group).await;
        let after: Option<u64> = redis::cmd("GET")
            .arg(keys.seq())
            .query(&mut common::admin_conn(new))
            .unwrap();
        let after = after.unwrap_or(0);
        if after > applied {
            break new;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the re-publish moved the sequence past the reader ({after})"
        );
        writer.flush().await;
    };
    let stored: Vec<u8> = redis::cmd("GET")
        .arg(keys.value("k0"))
        .query(&mut common::admin_conn(new))
        .unwrap();
    let stored = cachebridge_dataplane::cache::envelope::Envelope::decode(stored.into()).unwrap();
    assert_eq!(
        &stored.payload[..],
        b"\"v2\"",
        "the writer re-published the lost write"
    );

    // Back online, the reader sees the new epoch and does not skip k1's update.
    let _follower = tokio::spawn(Arc::clone(&r.coherence).run());
    let snapshots = || {
        r.metrics
            .coherence_resyncs
            .get_or_create(&cachebridge_dataplane::metrics::ReasonLabels { reason: "snapshot" })
            .get()
    };
    eventually("resynced from a snapshot of the new primary", || async {
        (snapshots() == 1 && r.coherence.is_synced()).then_some(())
    })
    .await;
    assert_eq!(served(&r, "k1").await, "\"v3\"");
    assert_eq!(served(&r, "k0").await, "\"v2\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_failovers_in_a_row() {
    let mut group = SentinelGroup::start(Timing::fast());
    let config = sentinel_config(&group);
    let mut writer = publisher(&config);
    let r = reader(&config);
    let _follower = tokio::spawn(Arc::clone(&r.coherence).run());
    until("reader synced", &mut r.coherence.synced(), |s| *s).await;
    let l3: Arc<L3> = Arc::clone(r.cache.l3());

    for round in 1..=2 {
        // Every replica left follows the current primary before it dies.
        let primary = settled(&mut group).await;
        publish(&mut writer, "k", &format!("before-{round}")).await;
        group.redis_on(primary).kill();
        settled(&mut group).await;

        let fresh = format!("after-{round}");
        publish(&mut writer, "k", &fresh).await;
        eventually("the fresh value on the reader", || async {
            (r.coherence.is_synced() && served(&r, "k").await == format!("\"{fresh}\""))
                .then_some(())
        })
        .await;
    }
    // Sentinel may add a move of its own (see `common::settled`).
    let generation = l3.generation();
    assert!(
        generation >= 3,
        "found the primary, then moved twice: {generation}"
    );
}
