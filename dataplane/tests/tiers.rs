//! The tiered cache against real Redis and Memcached: read-through and
//! backfill, version monotonicity, single flight, per-tier accounting,
//! corrupt values and tiers going down.

mod common;

use bytes::Bytes;
use cachebridge_dataplane::app::Tiers;
use cachebridge_dataplane::cache::envelope::Envelope;
use cachebridge_dataplane::cache::l2_memcached::Memcached;
use cachebridge_dataplane::cache::l3::PublishOutcome;
use cachebridge_dataplane::cache::{Miss, TieredCache};
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::keys::Keys;
use cachebridge_dataplane::metrics::{Outcome, Tier};
use common::{Server, config, eventually, publisher, reader};
use redis::Commands;
use std::sync::Arc;
use std::time::Duration;

fn memcached_of(config: &Config) -> Memcached {
    Memcached::new(
        config.memcached.servers.clone(),
        Duration::from_secs(1),
        Duration::from_secs(60),
    )
}

async fn l2_value(config: &Config, logical: &str) -> Option<Envelope> {
    let physical = Keys::new(config.key_prefix()).value(logical);
    let raw = memcached_of(config).get(&physical).await.unwrap()?;
    Envelope::decode(raw).ok()
}

fn payload(text: &'static str) -> Bytes {
    Bytes::from_static(text.as_bytes())
}

#[tokio::test]
async fn read_through_fills_l2_and_l1_and_counts_each_tier() {
    let (redis, memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    // Only Redis has the value: publish with a writer that has no L2.
    let mut no_l2 = config.clone();
    no_l2.memcached.servers.clear();
    publisher(&no_l2)
        .publish(vec![("k".into(), payload("{\"n\":1}"))], 1_000)
        .await;

    let first = reader(&config);
    let found = first.cache.get("k").await.unwrap();
    assert_eq!(found.tier, Tier::L3);
    assert_eq!(&found.env.payload[..], b"{\"n\":1}");
    // The backfill of L2 runs beside the response; await it.
    let version = found.env.version;
    eventually("L2 backfill", || async {
        l2_value(&config, "k")
            .await
            .filter(|e| e.version == version)
    })
    .await;

    assert_eq!(first.cache.get("k").await.unwrap().tier, Tier::L1);
    let second = reader(&config);
    assert_eq!(
        second.cache.get("k").await.unwrap().tier,
        Tier::L2,
        "a fresh reader finds it in Memcached"
    );
    assert_eq!(second.cache.get("k").await.unwrap().tier, Tier::L1);

    let m = &first.metrics;
    assert_eq!(m.lookup_count(Tier::L1, Outcome::miss), 1);
    assert_eq!(m.lookup_count(Tier::L1, Outcome::hit), 1);
    assert_eq!(m.lookup_count(Tier::L2, Outcome::miss), 1);
    assert_eq!(m.lookup_count(Tier::L3, Outcome::hit), 1);
    assert_eq!(second.metrics.lookup_count(Tier::L2, Outcome::hit), 1);
    assert_eq!(second.metrics.lookup_count(Tier::L3, Outcome::hit), 0);
}

#[tokio::test]
async fn no_tier_replaces_a_newer_version_with_an_older_one() {
    let (redis, memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    let tiers = Tiers::connect(&config, "test", false).unwrap();
    let newer = Envelope::new(500, 1, payload("\"new\""));
    let older = Envelope::new(300, 1, payload("\"old\""));
    assert!(matches!(
        tiers.l3.publish("k", &newer).await.unwrap(),
        PublishOutcome::Published { .. }
    ));
    assert_eq!(
        tiers.l3.publish("k", &older).await.unwrap(),
        PublishOutcome::Outdated { current: 500 }
    );
    assert_eq!(
        tiers.l3.publish("k", &newer).await.unwrap(),
        PublishOutcome::Outdated { current: 500 }
    );

    // An outdated copy in Memcached: a reader that heard of version 500
    // refuses it, goes to Redis, and its L1 never holds the old one.
    let physical = tiers.keys.value("k");
    let l2 = memcached_of(&config);
    l2.set(&physical, &older.encode()).await.unwrap();
    let r = reader(&config);
    r.cache.announce("k", 500).await;
    let found = r.cache.get("k").await.unwrap();
    assert_eq!((found.tier, found.env.version), (Tier::L3, 500));
    assert_eq!(r.metrics.lookup_count(Tier::L2, Outcome::outdated), 1);
    // The reader's backfill uses add, so it never overwrote anything either.
    assert!(
        !l2.add(&physical, &older.encode()).await.unwrap(),
        "add must not replace"
    );

    // The writer's publisher moves past a version the store already holds.
    let mut p = publisher(&config);
    let report = p
        .publish(vec![("k".into(), payload("\"newest\""))], 0)
        .await;
    assert_eq!(report.published, 1);
    let raw: Vec<u8> = common::redis_conn(&redis).get(&physical).unwrap();
    assert!(Envelope::decode(raw.into()).unwrap().version > 500);
}

#[tokio::test]
async fn concurrent_misses_on_one_key_cost_one_fetch() {
    let redis = Server::redis();
    let config = config(Some(&redis), &[]);
    publisher(&config)
        .publish(vec![("hot".into(), payload("[1,2,3]"))], 1_000)
        .await;
    let r = reader(&config);
    let cache: Arc<TieredCache> = Arc::clone(&r.cache);
    let lookups = (0..64).map(|_| {
        let cache = Arc::clone(&cache);
        tokio::spawn(async move { cache.get("hot").await.map(|l| l.env.version) })
    });
    let versions: Vec<u64> = futures::future::join_all(lookups)
        .await
        .into_iter()
        .map(|j| j.unwrap().unwrap())
        .collect();
    assert!(versions.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(
        r.metrics.lookup_count(Tier::L3, Outcome::hit),
        1,
        "one fetch for 64 concurrent misses"
    );
}

#[tokio::test]
async fn corrupt_values_are_misses_with_a_metric_not_panics() {
    let (redis, memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    let keys = Keys::new(config.key_prefix());
    publisher(&config)
        .publish(vec![("good".into(), payload("{}"))], 1_000)
        .await;

    // Garbage in Memcached: skipped, and the good value comes from Redis.
    memcached_of(&config)
        .set(&keys.value("good"), b"garbage")
        .await
        .unwrap();
    let r = reader(&config);
    assert_eq!(r.cache.get("good").await.unwrap().tier, Tier::L3);
    assert_eq!(r.metrics.lookup_count(Tier::L2, Outcome::corrupt), 1);

    // Garbage in Redis, the source of truth: a miss that says why.
    let _: () = common::redis_conn(&redis)
        .set(keys.value("bad"), "CB\x01 torn write")
        .unwrap();
    match r.cache.get("bad").await {
        Err(Miss::Unreachable(why)) => assert!(why.contains("unreadable"), "{why}"),
        other => panic!("expected a miss, got {other:?}"),
    }
    assert_eq!(r.metrics.lookup_count(Tier::L3, Outcome::corrupt), 1);
}

#[tokio::test]
async fn memcached_down_is_served_from_redis_and_then_skipped() {
    let (redis, mut memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    let keys: Vec<String> = (0..5).map(|i| format!("k{i}")).collect();
    let values = keys.iter().map(|k| (k.clone(), payload("1"))).collect();
    publisher(&config).publish(values, 1_000).await;
    memcached.kill();

    let r = reader(&config);
    for key in &keys {
        assert_eq!(r.cache.get(key).await.unwrap().tier, Tier::L3, "{key}");
    }
    // Three failures open the breaker; later look-ups do not even try.
    assert_eq!(r.metrics.lookup_count(Tier::L2, Outcome::error), 3);
    assert_eq!(r.metrics.lookup_count(Tier::L2, Outcome::skipped), 2);
}

#[tokio::test]
async fn redis_down_is_served_from_l1_and_l2_and_absent_data_says_unreachable() {
    let (mut redis, memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    publisher(&config)
        .publish(
            vec![("a".into(), payload("1")), ("b".into(), payload("2"))],
            1_000,
        )
        .await;
    let warm = reader(&config);
    assert_eq!(warm.cache.get("a").await.unwrap().tier, Tier::L2);
    redis.kill();

    assert_eq!(warm.cache.get("a").await.unwrap().tier, Tier::L1);
    let cold = reader(&config);
    assert_eq!(cold.cache.get("b").await.unwrap().tier, Tier::L2);
    match cold.cache.get("never-written").await {
        Err(Miss::Unreachable(_)) => {}
        other => panic!("expected unreachable, got {other:?}"),
    }
}

/// After a Redis restart the writer re-publishes every key under new
/// versions; a reader that hears of them while Redis is away again, for a
/// key it did not hold in L1, has only Memcached's older value. It serves
/// that, marked superseded, instead of a 503 (seen in the soak).
#[tokio::test]
async fn redis_down_after_a_newer_version_is_announced_serves_the_older_l2_value_as_superseded() {
    let (mut redis, memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    publisher(&config)
        .publish(vec![("a".into(), payload("1"))], 1_000)
        .await;
    let in_l2 = l2_value(&config, "a").await.expect("the writer filled L2");
    let cold = reader(&config);
    cold.cache.announce("a", in_l2.version + 1).await;
    redis.kill();

    for _ in 0..2 {
        let found = cold
            .cache
            .get("a")
            .await
            .expect("the older value, not a miss");
        assert!(
            found.superseded,
            "served as the last resort, never as current"
        );
        assert_eq!(found.env.version, in_l2.version);
        assert_eq!(found.env.payload, in_l2.payload);
    }
    assert!(cold.metrics.lookup_count(Tier::L2, Outcome::outdated) >= 1);
    // A key Memcached never had is still honestly unreachable.
    assert!(matches!(
        cold.cache.get("b").await,
        Err(Miss::Unreachable(_))
    ));
}

#[tokio::test]
async fn the_writer_holds_values_while_redis_is_down_and_flushes_them_after() {
    let (mut redis, memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    let mut writer = publisher(&config);
    redis.kill();
    let first = writer
        .publish(
            vec![("a".into(), payload("1")), ("b".into(), payload("1"))],
            1_000,
        )
        .await;
    assert_eq!((first.published, first.held_back), (0, 2));
    // A newer value of a held-back key replaces it; only the latest is kept.
    let second = writer
        .publish(vec![("a".into(), payload("2"))], 2_000)
        .await;
    assert_eq!(second.held_back, 2);

    redis.restart();
    // The connection manager reconnects on the next call; the breaker-free
    // publisher simply retries on its next cycle.
    let deadline = tokio::time::Instant::now() + common::PATIENCE;
    let flushed = loop {
        let report = writer.flush().await;
        if report.held_back == 0 {
            break report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "values still held back: {report:?}"
        );
        // The writer's publish loop retries on its next cycle; so does the test.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(flushed.published, 2);
    let r = reader(&config);
    let a = r.cache.get("a").await.unwrap();
    assert_eq!(
        &a.env.payload[..],
        b"2",
        "the latest value of a, not the first"
    );
    assert_eq!(&r.cache.get("b").await.unwrap().env.payload[..], b"1");
}

#[tokio::test]
async fn a_large_batch_is_published_in_order_and_survives_a_script_flush() {
    let (redis, memcached) = (Server::redis(), Server::memcached());
    let config = config(Some(&redis), &[&memcached]);
    let mut writer = publisher(&config);
    let values: Vec<(String, Bytes)> = (0..1200)
        .map(|i| (format!("k{i}"), Bytes::from(format!("{i}"))))
        .collect();
    let report = writer.publish(values, 1_000).await;
    assert_eq!((report.published, report.held_back), (1200, 0));

    // A restarted (or flushed) Redis forgets the script; the writer reloads it.
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query(&mut common::redis_conn(&redis))
        .unwrap();
    assert_eq!(
        writer
            .publish(vec![("k0".into(), payload("\"again\""))], 2_000)
            .await
            .published,
        1
    );

    let tiers = Tiers::connect(&config, "probe", false).unwrap();
    assert_eq!(
        tiers.l3.current_seq().await.unwrap(),
        1201,
        "one sequence number per accepted value"
    );
    let r = reader(&config);
    assert_eq!(
        &r.cache.get("k1199").await.unwrap().env.payload[..],
        b"1199"
    );
    let k0 = r.cache.get("k0").await.unwrap();
    assert_eq!(
        (k0.tier, &k0.env.payload[..]),
        (Tier::L2, &b"\"again\""[..]),
        "Memcached got the batch too"
    );
}

/// A reader added to a running bridge (the autoscaler's new replica) starts
/// with an empty L1; its first reads are served by the shared Memcached, so
/// scaling out costs Redis nothing, and the next reads are its own L1's.
#[tokio::test]
async fn a_new_reader_warms_from_memcached_without_reading_redis() {
    const KEYS: usize = 300;
    let redis = Server::redis();
    let memcached = Server::memcached();
    let config = config(Some(&redis), &[&memcached]);
    let values = (0..KEYS)
        .map(|i| {
            (
                format!("market:ticker:S{i}"),
                Bytes::from(format!("{{\"n\":{i}}}")),
            )
        })
        .collect();
    assert_eq!(publisher(&config).publish(values, 1_000).await.held_back, 0);

    let joined = reader(&config);
    for _pass in 0..2 {
        for i in 0..KEYS {
            joined
                .cache
                .get(&format!("market:ticker:S{i}"))
                .await
                .unwrap();
        }
    }
    let count = |tier, outcome| joined.metrics.lookup_count(tier, outcome);
    assert_eq!(count(Tier::L3, Outcome::hit), 0, "no Redis read to warm up");
    assert_eq!(count(Tier::L2, Outcome::hit), KEYS as u64, "the first pass");
    assert_eq!(
        count(Tier::L1, Outcome::hit),
        KEYS as u64,
        "the second pass"
    );
}

/// Large values (price histories) are offered in calls of about 256 KiB, not
/// all in one script call that would hold Redis and the writer's memory.
#[tokio::test]
async fn large_values_are_published_in_calls_of_bounded_size() {
    let redis = Server::redis();
    let config = config(Some(&redis), &[]);
    let mut writer = publisher(&config);
    let big = Bytes::from(vec![b'7'; 64 * 1024]);
    let values: Vec<(String, Bytes)> = (0..40).map(|i| (format!("h{i}"), big.clone())).collect();
    let report = writer.publish(values, 1_000).await;
    assert_eq!((report.published, report.held_back), (40, 0));

    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut common::redis_conn(&redis))
        .unwrap();
    let calls: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .expect("the publish script was called");
    // 2.5 MiB in calls of at most 256 KiB plus one 64 KiB value: 8 to 10
    // calls, and the first one once more (Redis did not know the script yet).
    assert!((9..=11).contains(&calls), "{calls} script calls");
}

#[tokio::test]
async fn with_l1_off_every_read_asks_the_tiers_below_and_sees_each_new_version() {
    let redis = Server::redis();
    let mut config = config(Some(&redis), &[]);
    config.cache.l1_max_bytes = 0;
    let mut writer = publisher(&config);
    writer
        .publish(vec![("k".into(), payload("{\"n\":1}"))], 1_000)
        .await;
    let r = reader(&config);
    for _ in 0..3 {
        let found = r.cache.get("k").await.unwrap();
        assert_eq!(found.tier, Tier::L3, "nothing is kept in L1");
        assert_eq!(&found.env.payload[..], b"{\"n\":1}");
    }
    // No coherence follower runs here: only a read that asks Redis itself
    // can see the new version at once.
    writer
        .publish(vec![("k".into(), payload("{\"n\":2}"))], 2_000)
        .await;
    assert_eq!(
        &r.cache.get("k").await.unwrap().env.payload[..],
        b"{\"n\":2}"
    );

    let m = &r.metrics;
    assert_eq!(m.lookup_count(Tier::L1, Outcome::miss), 4);
    assert_eq!(m.lookup_count(Tier::L1, Outcome::hit), 0);
    assert_eq!(m.lookup_count(Tier::L3, Outcome::hit), 4);
    assert_eq!(r.cache.l1_entries().await, 0);
}
