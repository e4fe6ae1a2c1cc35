//! Fault injection under load: a writer (ingest only), two readers, a real
//! Redis and a real Memcached, requests on both readers all along, and one
//! fault per test — Redis or Memcached killed (SIGKILL) and restarted
//! empty, the readers' pub/sub connections killed by Redis, Redis frozen
//! (SIGSTOP, a network stall rather than a closed socket), the writer
//! killed and replaced.
//!
//! What must hold through each: every answer on a key the readers served
//! before is a 2xx and never an older version than before; while the source
//! of truth is unreachable the answers say they are stale; and after
//! recovery a fresh tick reaches both readers.

mod common;

use cachebridge_dataplane::app::{self, Credentials, Role, Running};
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::keys::{Keys, logical};
use cachebridge_dataplane::metrics::ReasonLabels;
use common::load::{Seen, every_symbol_served, feed, load, price_on};
use common::{Server, client, config, eventually, free_port, redis_conn, tick};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;

/// Requests per reader at most: far more than a scenario needs, but bounded.
const REQUESTS: u64 = 200_000;

/// The servers, the bridge's processes and the traffic through them.
struct Rig {
    redis: Server,
    memcached: Server,
    config: Config,
    writer: Option<Running>,
    ingest: String,
    feeder: JoinHandle<()>,
    readers: Vec<Running>,
    seen: Arc<Mutex<Seen>>,
    loads: Vec<JoinHandle<()>>,
}

impl Rig {
    /// Everything started, every symbol served by both readers, and the
    /// request load running.
    async fn start() -> Rig {
        let (redis, memcached) = (Server::redis(), Server::memcached());
        let config = config(Some(&redis), &[&memcached]);
        let (writer, ingest) = writer(&config).await;
        let feeder = feed(ingest.clone());
        let mut readers = Vec::new();
        let credentials = Credentials::default();
        for _ in 0..2 {
            let reader = app::start(Role::Reader, &config, &credentials);
            readers.push(reader.await.unwrap());
        }
        for r in &readers {
            every_symbol_served(&base(r)).await;
        }
        let seen = Seen::shared();
        let loads = readers
            .iter()
            .enumerate()
            .map(|(i, r)| load(i, base(r), Arc::clone(&seen), REQUESTS))
            .collect();
        let rig = Rig {
            redis,
            memcached,
            config,
            writer: Some(writer),
            ingest,
            feeder,
            readers,
            seen,
            loads,
        };
        rig.answered_more().await;
        rig
    }

    fn stale(&self) -> u64 {
        self.seen.lock().unwrap().stale
    }

    /// Awaits more answers than so far: proof the load goes on.
    async fn answered_more(&self) {
        let before = self.seen.lock().unwrap().ok;
        eventually("answers under load", || async {
            (self.seen.lock().unwrap().ok > before + 50).then_some(())
        })
        .await;
    }

    /// Awaits answers marked stale beyond `before`, while the fault lasts.
    async fn marked_stale(&self, before: u64) {
        eventually(
            "answers marked stale while Redis is unreachable",
            || async { (self.stale() > before).then_some(()) },
        )
        .await;
    }

    /// A tick for a symbol nobody asked about yet must reach both readers.
    async fn fresh_tick_everywhere(&self, price: f64) {
        let sent = client()
            .post(&self.ingest)
            .body(tick("FRESH", price, 1))
            .send()
            .await
            .unwrap();
        assert!(sent.status().is_success(), "ingest: {}", sent.status());
        for r in &self.readers {
            eventually("the fresh tick on every reader", || async {
                (price_on(&base(r), "FRESH").await == Some(price)).then_some(())
            })
            .await;
        }
    }

    /// Stops the traffic and checks what it saw.
    fn verdict(self) -> Seen {
        for task in self.loads.iter().chain([&self.feeder]) {
            task.abort();
        }
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        println!("{} answers, {} marked stale", seen.ok, seen.stale);
        assert!(
            seen.failures.is_empty(),
            "{} failed answers on served keys, first: {:?}",
            seen.failures.len(),
            seen.failures.iter().take(5).collect::<Vec<_>>()
        );
        assert!(
            seen.backwards.is_empty(),
            "versions went back: {:?}",
            seen.backwards
        );
        seen
    }
}

/// A writer serving ingest on a port of its own, and its ingest URL.
async fn writer(config: &Config) -> (Running, String) {
    let mut config = config.clone();
    let port = free_port();
    config.writer.ingest_listen = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let writer = app::start(Role::Writer, &config, &Credentials::default())
        .await
        .unwrap();
    (writer, format!("http://127.0.0.1:{port}/ingest"))
}

fn base(running: &Running) -> String {
    format!("http://{}", running.addr.unwrap())
}

fn gaps(running: &Running, reason: &'static str) -> u64 {
    let labels = ReasonLabels { reason };
    running.metrics.coherence_gaps.get_or_create(&labels).get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_empty() {
    let mut rig = Rig::start().await;
    let stale = rig.stale();
    rig.redis.kill();
    rig.marked_stale(stale).await;
    rig.answered_more().await;
    rig.redis.restart();
    // The writer re-publishes its whole book into the empty store.
    rig.fresh_tick_everywhere(4101.5).await;
    let key = Keys::new(rig.config.key_prefix()).value(&logical::ticker("AAA"));
    let stored: bool = redis::cmd("EXISTS")
        .arg(key)
        .query(&mut redis_conn(&rig.redis))
        .unwrap();
    assert!(stored, "the writer re-published the keys it held");
    rig.verdict();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_killed_and_restarted_empty() {
    let mut rig = Rig::start().await;
    rig.memcached.kill();
    rig.answered_more().await;
    rig.memcached.restart();
    rig.fresh_tick_everywhere(4102.5).await;
    rig.verdict();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_connections_killed() {
    let rig = Rig::start().await;
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query(&mut redis_conn(&rig.redis))
        .unwrap();
    assert!(
        killed >= 2,
        "each reader had a subscription ({killed} killed)"
    );
    for r in &rig.readers {
        eventually("the reader noticed the lost subscription", || async {
            (gaps(r, "disconnect") > 0).then_some(())
        })
        .await;
    }
    rig.answered_more().await;
    rig.fresh_tick_everywhere(4103.5).await;
    rig.verdict();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_then_resumed() {
    let mut rig = Rig::start().await;
    let stale = rig.stale();
    rig.redis.pause();
    rig.marked_stale(stale).await;
    rig.answered_more().await;
    rig.redis.resume();
    rig.fresh_tick_everywhere(4104.5).await;
    rig.verdict();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writer_killed_and_replaced() {
    let mut rig = Rig::start().await;
    // Dropping it aborts its tasks and closes its port, like a crash.
    drop(rig.writer.take());
    rig.feeder.abort();
    for r in &rig.readers {
        eventually("the reader noticed the writer's silence", || async {
            (gaps(r, "silence") > 0).then_some(())
        })
        .await;
    }
    rig.answered_more().await;
    let (writer, ingest) = writer(&rig.config).await;
    rig.writer = Some(writer);
    rig.feeder = feed(ingest.clone());
    rig.ingest = ingest;
    rig.fresh_tick_everywhere(4105.5).await;
    rig.verdict();
}
