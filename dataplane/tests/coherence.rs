//! L1 coherence across reader replicas, against a real Redis: updates reach
//! every reader, and each way of missing them (dropped pub/sub connection,
//! sequence jump, heartbeat ahead, silence, trimmed stream) is detected and
//! repaired.

mod common;

use bytes::Bytes;
use cachebridge_dataplane::app::Tiers;
use cachebridge_dataplane::cache::envelope::Envelope;
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::keys::Keys;
use cachebridge_dataplane::metrics::{Outcome, ReasonLabels, Tier};
use cachebridge_dataplane::reader::Reader;
use cachebridge_dataplane::writer::publisher::Publisher;
use common::{Server, config, publisher, reader, redis_conn, until};
use redis::Commands;
use std::sync::Arc;
use std::time::Duration;

/// A reader with its coherence follower running, synced before it returns.
async fn follower(config: &Config) -> (Reader, tokio::task::JoinHandle<()>) {
    let reader = reader(config);
    let task = tokio::spawn(Arc::clone(&reader.coherence).run());
    until("reader synced", &mut reader.coherence.synced(), |s| *s).await;
    (reader, task)
}

/// Heartbeats are sent by hand in these tests, so silence never interferes.
fn quiet_config(redis: &Server) -> Config {
    let mut config = config(Some(redis), &[]);
    config.coherence.heartbeat_interval = Duration::from_secs(30);
    config
}

/// A writer that published `k` = v1, and one reader following it.
struct Following {
    config: Config,
    keys: Keys,
    writer: Publisher,
    reader: Reader,
    task: tokio::task::JoinHandle<()>,
}

async fn following(redis: &Server) -> Following {
    let config = quiet_config(redis);
    let keys = Keys::new(config.key_prefix());
    let mut writer = publisher(&config);
    publish(&mut writer, "k", "\"v1\"").await;
    let (reader, task) = follower(&config).await;
    Following {
        config,
        keys,
        writer,
        reader,
        task,
    }
}

fn count(reader: &Reader, family: &str, reason: &'static str) -> u64 {
    let labels = ReasonLabels { reason };
    match family {
        "gaps" => reader.metrics.coherence_gaps.get_or_create(&labels).get(),
        _ => reader
            .metrics
            .coherence_resyncs
            .get_or_create(&labels)
            .get(),
    }
}

async fn publish(p: &mut Publisher, key: &str, value: &'static str) {
    let report = p
        .publish(vec![(key.into(), Bytes::from_static(value.as_bytes()))], 0)
        .await;
    assert_eq!(report.published, 1);
}

async fn seq(config: &Config) -> u64 {
    Tiers::connect(config, "probe", false)
        .unwrap()
        .l3
        .current_seq()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_update_reaches_the_l1_of_both_readers() {
    let redis = Server::redis();
    let config = quiet_config(&redis);
    let mut writer = publisher(&config);
    publish(&mut writer, "k", "\"v1\"").await;
    let (a, _ta) = follower(&config).await;
    let (b, _tb) = follower(&config).await;
    for r in [&a, &b] {
        r.cache.get("k").await.unwrap();
        assert_eq!(r.cache.get("k").await.unwrap().tier, Tier::L1, "warm");
    }

    publish(&mut writer, "k", "\"v2\"").await;
    let target = seq(&config).await;
    for r in [&a, &b] {
        until("update applied", &mut r.coherence.applied(), |s| {
            *s >= target
        })
        .await;
        let found = r.cache.get("k").await.unwrap();
        assert_eq!(&found.env.payload[..], b"\"v2\"");
        assert_eq!(
            found.tier,
            Tier::L1,
            "the reader fetched the new version into L1 before applying the update"
        );
        assert_eq!(
            r.metrics.lookup_count(Tier::L1, Outcome::miss),
            1,
            "only the first read missed"
        );
        assert_eq!(r.metrics.lookup_count(Tier::L1, Outcome::outdated), 0);
        assert_eq!(refreshes(r, "refreshed"), 1);
    }
}

fn refreshes(reader: &Reader, reason: &'static str) -> u64 {
    reader
        .metrics
        .l1_refreshes
        .get_or_create(&ReasonLabels { reason })
        .get()
}

#[tokio::test]
async fn keys_nobody_read_here_are_not_pulled_into_l1() {
    let redis = Server::redis();
    let config = quiet_config(&redis);
    let mut writer = publisher(&config);
    publish(&mut writer, "read", "\"r1\"").await;
    publish(&mut writer, "unread", "\"u1\"").await;
    let (r, _t) = follower(&config).await;
    r.cache.get("read").await.unwrap();

    publish(&mut writer, "unread", "\"u2\"").await;
    publish(&mut writer, "read", "\"r2\"").await;
    let target = seq(&config).await;
    until("updates applied", &mut r.coherence.applied(), |s| {
        *s >= target
    })
    .await;
    assert_eq!(
        r.cache.l1_entries().await,
        1,
        "only the key read here is in L1"
    );
    assert_eq!(refreshes(&r, "refreshed"), 1);
    assert_eq!(
        r.metrics.lookup_count(Tier::L3, Outcome::hit),
        2,
        "one fetch for the first read, one for the refresh; none for the unread key"
    );
    // The unread key's floor still rose: its first read gets the new version.
    let unread = r.cache.get("unread").await.unwrap();
    assert_eq!(&unread.env.payload[..], b"\"u2\"");
}

#[tokio::test]
async fn a_killed_pubsub_connection_is_detected_and_missed_updates_replayed() {
    let redis = Server::redis();
    let Following {
        config,
        mut writer,
        reader: r,
        task: _t,
        ..
    } = following(&redis).await;
    r.cache.get("k").await.unwrap();
    let mut synced = r.coherence.synced();

    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut redis_conn(&redis))
        .unwrap();
    assert_eq!(killed, 1);
    // Published while the reader may be disconnected: only replay brings it.
    publish(&mut writer, "k", "\"v2\"").await;
    let target = seq(&config).await;
    until("update applied", &mut r.coherence.applied(), |s| {
        *s >= target
    })
    .await;
    until("resynced", &mut synced, |s| *s).await;

    assert_eq!(count(&r, "gaps", "disconnect"), 1);
    assert!(count(&r, "resyncs", "replay") >= 1);
    assert_eq!(
        count(&r, "resyncs", "flush"),
        0,
        "replay was possible, L1 kept"
    );
    assert_eq!(&r.cache.get("k").await.unwrap().env.payload[..], b"\"v2\"");
}

#[tokio::test]
async fn one_publish_round_is_one_message_and_the_single_form_is_still_read() {
    let redis = Server::redis();
    let Following {
        keys,
        mut writer,
        reader: r,
        task: _t,
        ..
    } = following(&redis).await;
    let mut listener = redis::Client::open(redis.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let mut pubsub = listener.as_pubsub();
    pubsub.subscribe(keys.channel()).unwrap();

    let round: Vec<(String, Bytes)> = ["a", "b", "c"]
        .into_iter()
        .map(|k| (k.to_owned(), Bytes::from_static(b"\"x\"")))
        .collect();
    assert_eq!(writer.publish(round, 0).await.published, 3);
    let message: String = pubsub.get_message().unwrap().get_payload().unwrap();
    let message: serde_json::Value = serde_json::from_str(&message).unwrap();
    let updates = message["updates"].as_array().expect("a batch of updates");
    let announced: Vec<(&str, u64)> = updates
        .iter()
        .map(|u| (u["key"].as_str().unwrap(), u["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(announced, [("a", 2), ("b", 3), ("c", 4)]);
    until("round applied", &mut r.coherence.applied(), |s| *s >= 4).await;
    assert_eq!(count(&r, "gaps", "sequence"), 0);

    // A writer from before the batched form announces one update per message.
    let old = Envelope::new(u64::MAX >> 12, 0, Bytes::from_static(b"\"old\""));
    let mut conn = redis_conn(&redis);
    let _: () = conn.set(keys.value("d"), old.encode().as_ref()).unwrap();
    let seq: u64 = conn.incr(keys.seq(), 1).unwrap();
    let single = format!(r#"{{"key":"d","version":{},"seq":{seq}}}"#, old.version);
    let _: () = conn.publish(keys.channel(), single).unwrap();
    until("single update applied", &mut r.coherence.applied(), |s| {
        *s >= seq
    })
    .await;
    assert_eq!(r.cache.floor("d"), old.version);
    assert_eq!(count(&r, "resyncs", "replay"), 0, "applied, not replayed");
}

#[tokio::test]
async fn a_sequence_jump_is_replayed_from_the_stream() {
    let redis = Server::redis();
    let Following {
        config,
        keys,
        mut writer,
        reader: r,
        task: _t,
    } = following(&redis).await;
    r.cache.get("k").await.unwrap();

    // An update whose announcement was lost: stored and in the stream, never published.
    let lost = Envelope::new(u64::MAX >> 12, 0, Bytes::from_static(b"\"lost\""));
    let mut conn = redis_conn(&redis);
    let _: () = conn
        .set(keys.value("other"), lost.encode().as_ref())
        .unwrap();
    let n: u64 = conn.incr(keys.seq(), 1).unwrap();
    let _: String = redis::cmd("XADD")
        .arg(keys.stream())
        .arg(format!("{n}-0"))
        .arg("key")
        .arg("other")
        .arg("version")
        .arg(lost.version)
        .query(&mut conn)
        .unwrap();
    publish(&mut writer, "k", "\"v2\"").await;
    let target = seq(&config).await;
    until("update applied", &mut r.coherence.applied(), |s| {
        *s >= target
    })
    .await;

    assert_eq!(count(&r, "gaps", "sequence"), 1);
    assert_eq!(count(&r, "resyncs", "replay"), 1);
    assert_eq!(
        r.cache.floor("other"),
        lost.version,
        "the lost notice was replayed"
    );
    assert_eq!(&r.cache.get("k").await.unwrap().env.payload[..], b"\"v2\"");
}

#[tokio::test]
async fn a_heartbeat_ahead_with_a_trimmed_stream_flushes_l1() {
    let redis = Server::redis();
    let Following {
        config,
        keys,
        reader: r,
        task: _t,
        ..
    } = following(&redis).await;
    r.cache.get("k").await.unwrap();
    assert_eq!(r.cache.l1_entries().await, 1);

    // A newer value whose announcement was lost and whose stream entry is
    // gone: nothing can be replayed, so only a flush is safe.
    let newer = Envelope::new(u64::MAX >> 12, 0, Bytes::from_static(b"\"v2\""));
    let mut conn = redis_conn(&redis);
    let _: () = conn.set(keys.value("k"), newer.encode().as_ref()).unwrap();
    let _: u64 = conn.incr(keys.seq(), 1).unwrap();
    let _: u64 = redis::cmd("XTRIM")
        .arg(keys.stream())
        .arg("MAXLEN")
        .arg(0)
        .query(&mut conn)
        .unwrap();
    let beat = Tiers::connect(&config, "probe", false)
        .unwrap()
        .l3
        .heartbeat()
        .await
        .unwrap();
    until("flushed and moved on", &mut r.coherence.applied(), |s| {
        *s >= beat
    })
    .await;

    assert_eq!(count(&r, "gaps", "heartbeat"), 1);
    assert_eq!(count(&r, "resyncs", "flush"), 1);
    let found = r.cache.get("k").await.unwrap();
    assert_eq!(
        (found.tier, &found.env.payload[..]),
        (Tier::L3, &b"\"v2\""[..])
    );
}

#[tokio::test]
async fn silence_longer_than_three_heartbeats_is_a_gap() {
    let redis = Server::redis();
    let mut config = config(Some(&redis), &[]);
    config.coherence.heartbeat_interval = Duration::from_millis(50);
    let (r, _t) = follower(&config).await;
    // No writer sends heartbeats: the reader must notice and stop vouching.
    until("unsynced", &mut r.coherence.synced(), |s| !*s).await;
    assert!(count(&r, "gaps", "silence") >= 1);
}
