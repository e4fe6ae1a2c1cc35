//! Against a real `redis-server` (7.x): the ACL user the operator sets up
//! lets the dataplane's own Redis code do all its work inside the bridge's
//! prefix and nothing outside it, and the operator reads the readers' cache
//! figures into `status.cache` as that user. (What that user learns about
//! other bridges on the same server: `tenant_isolation.rs`.)

mod common;

use k8s_openapi::jiff::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use cachebridge_api::v1alpha1::condition::READY;
use cachebridge_dataplane::cache::envelope::Envelope;
use cachebridge_dataplane::cache::l3::redis::{RedisStore, RedisTarget};
use cachebridge_dataplane::keys::Keys;
use cachebridge_operator::desired::redis::acl_rules;
use cachebridge_operator::stats;
use common::*;
use futures::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;
use std::time::Duration;

const PREFIX: &str = "cb:prod:quotes:";
const USER_PASSWORD: &str = "Us3rPassw0rdForTheBridgeAclUser0";
const ADMIN_PASSWORD: &str = "Adm1nPassw0rdForTheDefaultUser00";

/// A Redis configured like the managed one: requirepass plus the bridge's ACL user.
fn acl_redis() -> RedisServer {
    let user_line = format!("cachebridge on >{USER_PASSWORD} {}", acl_rules(PREFIX));
    let mut args = vec!["--requirepass", ADMIN_PASSWORD, "--user"];
    args.extend(user_line.split(' '));
    RedisServer::redis_args(&args)
}

fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::new(
        RedisTarget {
            url: &server.url(),
            username: Some("cachebridge"),
            password: Some(USER_PASSWORD),
        },
        Keys::new(prefix),
        Duration::from_secs(2),
        Duration::from_secs(60),
        100,
    )
    .expect("store")
}

#[tokio::test]
async fn the_acl_user_runs_the_dataplane_inside_its_prefix() {
    let server = acl_redis();
    let store = store(&server, PREFIX);
    let mut updates = store
        .subscribe()
        .await
        .expect("subscribe on the bridge's channel");
    let env = Envelope::new(1_700_000_000_000_000, 1_700_000_000_000, &b"{\"px\":1}"[..]);
    store
        .publish("market:overview", &env)
        .await
        .expect("the publish script (HGET, EXISTS, SET, HSET, INCR, XADD, PUBLISH)");
    assert!(
        store
            .get(&format!("{PREFIX}v:market:overview"))
            .await
            .expect("get")
            .is_some()
    );
    store.heartbeat().await.expect("the heartbeat script");
    assert_eq!(store.current_seq().await.expect("seq"), 1);
    store.replay_after(0).await.expect("XRANGE for replay");
    store
        .report_stats(
            &Keys::new(PREFIX).reader_stats(),
            "r-0",
            "{}",
            Duration::from_secs(60),
        )
        .await
        .expect("HSET and EXPIRE of the reports' hash");
    let first = tokio::time::timeout(Duration::from_secs(5), updates.next())
        .await
        .expect("a message in time");
    assert!(first.is_some(), "the subscriber hears the update");
}

#[tokio::test]
async fn the_acl_user_cannot_touch_another_bridge_or_the_server() {
    let server = acl_redis();
    let other = store(&server, "cb:prod:other:");
    let env = Envelope::new(1, 1, &b"x"[..]);
    let err = other
        .publish("market:overview", &env)
        .await
        .expect_err("another bridge's keys are off limits");
    assert!(
        err.to_string().to_lowercase().contains("perm")
            || err.to_string().contains("No permissions"),
        "{err}"
    );
    assert!(
        other.subscribe().await.is_err(),
        "another bridge's channel is off limits"
    );

    let client = redis::Client::open(format!(
        "redis://cachebridge:{USER_PASSWORD}@127.0.0.1:{}",
        server.port
    ))
    .unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for command in [
        vec!["FLUSHALL"],
        vec!["KEYS", "*"],
        vec!["CONFIG", "GET", "requirepass"],
        vec!["DEL", "cb:prod:quotes:seq"],
    ] {
        let mut cmd = redis::cmd(command[0]);
        for arg in &command[1..] {
            cmd.arg(*arg);
        }
        let result: redis::RedisResult<redis::Value> = cmd.query_async(&mut conn).await;
        assert!(result.is_err(), "{command:?} must be refused");
    }
}

#[tokio::test]
async fn the_acl_user_may_read_the_replication_info_and_wait_for_replicas() {
    // The dataplane's epoch is the primary's replication id; a writer may
    // WAIT for replica acks.
    let server = acl_redis();
    let mut conn = user_conn(&server).await;
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(&mut conn)
        .await
        .expect("INFO replication");
    assert!(info.contains("role:master") && info.contains("master_replid:"));
    let acked: i64 = redis::cmd("WAIT")
        .arg(0)
        .arg(100)
        .query_async(&mut conn)
        .await
        .expect("WAIT");
    assert_eq!(acked, 0, "no replica here");
}

async fn user_conn(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    stats::client(&server.url(), Some("cachebridge"), Some(USER_PASSWORD))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the ACL user logs in")
}

/// Stores `doc` as reader `pod`'s report, the way readers do (into the
/// bridge's hash, as the ACL user), stamped with the reconciles' clock
/// unless it says otherwise.
async fn put_report(server: &RedisServer, pod: &str, mut doc: serde_json::Value) {
    if let Some(fields) = doc.as_object_mut() {
        fields
            .entry("at")
            .or_insert_with(|| json!(clock().to_string()));
    }
    let mut conn = user_conn(server).await;
    let _: () = redis::cmd("HSET")
        .arg(Keys::new(PREFIX).reader_stats())
        .arg(pod)
        .arg(doc.to_string())
        .query_async(&mut conn)
        .await
        .unwrap();
}

/// The pods whose reports are in the bridge's hash, as the admin sees it.
async fn reporting_pods(server: &RedisServer) -> Vec<String> {
    let mut conn = stats::client(&server.url(), None, Some(ADMIN_PASSWORD))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the admin logs in");
    let mut pods: Vec<String> = redis::cmd("HKEYS")
        .arg(Keys::new(PREFIX).reader_stats())
        .query_async(&mut conn)
        .await
        .expect("HKEYS");
    pods.sort();
    pods
}

#[tokio::test]
async fn read_reports_reads_the_bridge_hash_and_prunes_readers_that_are_gone() {
    let server = acl_redis();
    put_report(
        &server,
        "r-0",
        json!({"hitRatio": 0.99, "l1HitRatio": 0.9, "dataAgeSeconds": 0.2, "synced": true}),
    )
    .await;
    put_report(
        &server,
        "r-1",
        json!({"hitRatio": 0.97, "l1HitRatio": null, "dataAgeSeconds": 0.6}),
    )
    .await;
    put_report(&server, "r-2", json!("not a report")).await;
    let two_minutes_ago = clock() - k8s_openapi::jiff::SignedDuration::from_secs(120);
    put_report(
        &server,
        "r-gone",
        json!({"hitRatio": 0.1, "at": two_minutes_ago.to_string()}),
    )
    .await;
    let target = stats::RedisTarget {
        url: server.url(),
        username: Some("cachebridge".into()),
        password: Some(USER_PASSWORD.into()),
    };
    let mut reports = stats::read_reports(&target, PREFIX, clock())
        .await
        .expect("read");
    reports.sort_by(|a, b| a.hit_ratio.partial_cmp(&b.hit_ratio).unwrap());
    assert_eq!(
        reports.len(),
        2,
        "the unreadable and the old reports are left out"
    );
    assert_eq!(reports[1].hit_ratio, Some(0.99));
    assert_eq!(
        reporting_pods(&server).await,
        ["r-0", "r-1"],
        "and deleted from the hash"
    );

    let wrong = stats::RedisTarget {
        password: Some("wrong".into()),
        ..target
    };
    let err = stats::read_reports(&wrong, PREFIX, clock())
        .await
        .unwrap_err();
    assert_eq!(err.metric_label(), "stats");
}

#[tokio::test]
async fn a_ready_bridge_shows_the_readers_figures_in_its_status() {
    let server = acl_redis();
    put_report(
        &server,
        "quotes-reader-a",
        json!({"hitRatio": 0.99, "dataAgeSeconds": 0.3}),
    )
    .await;
    put_report(
        &server,
        "quotes-reader-b",
        json!({"hitRatio": 0.97, "dataAgeSeconds": 0.5}),
    )
    .await;
    let secret = serde_json::to_value(Secret {
        metadata: ObjectMeta {
            name: Some("creds".into()),
            namespace: Some(NS.into()),
            ..Default::default()
        },
        data: Some([("password".to_string(), ByteString(USER_PASSWORD.into()))].into()),
        ..Default::default()
    })
    .unwrap();
    let spec = json!({"redis": {"external": {"url": server.url(), "username": "cachebridge", "passwordSecret": {"name": "creds"}}}});
    let mut h = harness_with_stats(vec![bridge("quotes", spec), secret]).await;
    Arc::get_mut(&mut h.ctx).expect("not shared yet").clock = clock;
    h.reconcile("quotes").await.unwrap();
    assert!(
        h.get("quotes").await.status.unwrap().cache.is_none(),
        "not ready: no figures yet"
    );

    h.set_stateful_set_ready("quotes-memcached", 2).await;
    h.set_deployment_ready("quotes-writer", 1).await;
    h.set_deployment_ready("quotes-reader", 2).await;
    h.reconcile("quotes").await.unwrap();
    let cb = h.get("quotes").await;
    assert_eq!(condition(&cb, READY).0, "True");
    let cache = cb.status.unwrap().cache.expect("figures");
    assert_eq!(cache.hit_ratio.as_deref(), Some("98.0%"));
    assert_eq!(cache.data_age.as_deref(), Some("<1s"));
    assert_eq!(cache.reporting_readers, 2);
    assert!(cache.updated_at.is_some());

    // Fresh figures are not re-read on the next reconcile: nothing is written.
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    assert_eq!(h.writes.take(), Vec::<String>::new());

    // Later, the readers report slightly different figures (0.075 point,
    // which rounds to 98.1 %; same age bucket): they are read, but not
    // worth a status write.
    put_report(
        &server,
        "quotes-reader-a",
        json!({"hitRatio": 0.9915, "dataAgeSeconds": 0.7}),
    )
    .await;
    advance_clock(stats::REFRESH_EVERY);
    h.reconcile("quotes").await.unwrap();
    assert_eq!(h.writes.take(), Vec::<String>::new(), "jitter is not news");
    assert_eq!(
        h.reads.take(),
        Vec::<String>::new(),
        "the password is remembered"
    );

    // A real change (0.5 point) is written, with its own timestamp.
    put_report(
        &server,
        "quotes-reader-a",
        json!({"hitRatio": 1.0, "dataAgeSeconds": 0.7}),
    )
    .await;
    advance_clock(stats::REFRESH_EVERY);
    h.reconcile("quotes").await.unwrap();
    assert_eq!(h.writes.take(), ["patch-status CacheBridge/quotes"]);
    let changed = h.get("quotes").await.status.unwrap().cache.unwrap();
    assert_eq!(changed.hit_ratio.as_deref(), Some("98.5%"));
    assert_ne!(changed.updated_at, cache.updated_at);

    // Data older than the staleness budget (default 30 s) shows at once.
    put_report(
        &server,
        "quotes-reader-a",
        json!({"hitRatio": 1.0, "dataAgeSeconds": 70.0}),
    )
    .await;
    put_report(
        &server,
        "quotes-reader-b",
        json!({"hitRatio": 0.97, "dataAgeSeconds": 70.0}),
    )
    .await;
    advance_clock(stats::REFRESH_EVERY);
    h.reconcile("quotes").await.unwrap();
    let stale = h.get("quotes").await.status.unwrap().cache.unwrap();
    assert_eq!(stale.data_age.as_deref(), Some("<10m"));
}

/// The time as the reconciles see it: now plus what [`advance_clock`] added.
static CLOCK_OFFSET: AtomicI64 = AtomicI64::new(0);

fn clock() -> Timestamp {
    let offset = CLOCK_OFFSET.load(Ordering::SeqCst);
    Timestamp::now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(offset))
        .unwrap()
}

fn advance_clock(by: std::time::Duration) {
    CLOCK_OFFSET.fetch_add(by.as_secs() as i64 + 1, Ordering::SeqCst);
}

/// The managed Redis container's start script, run for real with `sh`: it
/// must write a config Redis accepts, with both passwords from the Secret's
/// files, so the admin and the ACL user can log in. (Paths and the host name
/// are pointed at a temporary directory; nothing else is changed.)
#[tokio::test]
async fn the_start_script_configures_redis_from_the_secret_files() {
    use cachebridge_operator::desired::{self, Settings};
    use cachebridge_operator::render::read_bridge;
    let doc = json!({"apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge", "metadata": {"name": "quotes", "namespace": "prod"}});
    let bridge = cachebridge_operator::validate::validate(&read_bridge(1, doc).unwrap()).unwrap();
    let desired = desired::build(&bridge, &Settings::default()).unwrap();
    let sts = desired.redis.unwrap().stateful_set;
    let script = sts.spec.unwrap().template.spec.unwrap().containers[0]
        .command
        .clone()
        .unwrap()[2]
        .clone();

    let dir = tempfile::tempdir().unwrap();
    let (secret, run, data) = (
        dir.path().join("secret"),
        dir.path().join("run"),
        dir.path().join("data"),
    );
    for d in [&secret, &run, &data] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::write(secret.join("password"), USER_PASSWORD).unwrap();
    std::fs::write(secret.join("admin-password"), ADMIN_PASSWORD).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let script = script
        .replace("/etc/redis-secret", secret.to_str().unwrap())
        .replace("/run/redis", run.to_str().unwrap())
        .replace("dir /data", &format!("dir {}", data.display()))
        .replace("port 6379", &format!("port {port}"))
        .replace("bind * -::*", "bind 127.0.0.1")
        .replace("$(hostname)", "quotes-redis-0");
    let mut child = std::process::Command::new("sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("sh");
    let url = |user: &str, pw: &str| format!("redis://{user}:{pw}@127.0.0.1:{port}");
    // Redis is another process: polling until it accepts the admin is the only way to know it is up.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while redis::Client::open(url("default", ADMIN_PASSWORD))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .is_err()
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "Redis exited: the generated config was refused"
        );
        assert!(
            std::time::Instant::now() < deadline,
            "Redis did not come up from the script"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut user = redis::Client::open(url("cachebridge", USER_PASSWORD))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the ACL user logs in");
    let _: () = redis::cmd("SET")
        .arg(format!("{PREFIX}x"))
        .arg(1)
        .query_async(&mut user)
        .await
        .expect("inside the prefix");
    let outside: redis::RedisResult<()> = redis::cmd("SET")
        .arg("elsewhere")
        .arg(1)
        .query_async(&mut user)
        .await;
    assert!(outside.is_err());
    let _ = child.kill();
    let _ = child.wait();
    // The config file is readable by its owner only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(run.join("redis.conf"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
}

/// Two cluster-enabled nodes, each with the bridge's ACL user, sharing the
/// 16384 slots: a key of one node's slot gets MOVED from the other.
async fn two_node_cluster() -> [RedisServer; 2] {
    let node = || {
        RedisServer::redis_with(|_| {
            let user_line = format!("cachebridge on >{USER_PASSWORD} {}", acl_rules(PREFIX));
            let mut args: Vec<String> = [
                "--requirepass",
                ADMIN_PASSWORD,
                "--cluster-enabled",
                "yes",
                // Chosen, not port + 10000, which may lie above 65535.
                "--cluster-port",
                &cachebridge_testkit::free_port().to_string(),
                "--user",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.extend(user_line.split(' ').map(str::to_string));
            args
        })
    };
    let nodes = [node(), node()];
    let admin = |s: &RedisServer| {
        redis::Client::open(format!("redis://:{ADMIN_PASSWORD}@127.0.0.1:{}", s.port)).unwrap()
    };
    let mut a = admin(&nodes[0])
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut b = admin(&nodes[1])
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg(&["ADDSLOTSRANGE", "0", "8191"])
        .query_async(&mut a)
        .await
        .unwrap();
    let _: () = redis::cmd("CLUSTER")
        .arg(&["ADDSLOTSRANGE", "8192", "16383"])
        .query_async(&mut b)
        .await
        .unwrap();
    let bus_b: String = redis::cmd("CONFIG")
        .arg(&["GET", "cluster-port"])
        .query_async::<Vec<String>>(&mut b)
        .await
        .unwrap()
        .remove(1);
    let _: () = redis::cmd("CLUSTER")
        .arg(&["MEET", "127.0.0.1", &nodes[1].port.to_string(), &bus_b])
        .query_async(&mut a)
        .await
        .unwrap();
    // The nodes gossip on their own; nothing tells us when they agree but asking.
    for conn in [&mut a, &mut b] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(conn)
                .await
                .unwrap();
            if info.contains("cluster_state:ok") && info.contains("cluster_known_nodes:2") {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the cluster did not form: {info}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    nodes
}

#[tokio::test]
async fn figures_are_read_from_the_cluster_node_that_holds_the_bridge_slot() {
    let nodes = two_node_cluster().await;
    let hash = Keys::new(PREFIX).reader_stats();
    let mut any = redis::Client::open(format!(
        "redis://:{ADMIN_PASSWORD}@127.0.0.1:{}",
        nodes[0].port
    ))
    .unwrap()
    .get_multiplexed_async_connection()
    .await
    .unwrap();
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&hash)
        .query_async(&mut any)
        .await
        .unwrap();
    let (owner, other) = if slot < 8192 {
        (&nodes[0], &nodes[1])
    } else {
        (&nodes[1], &nodes[0])
    };
    put_report(
        owner,
        "r-0",
        json!({"hitRatio": 0.99, "dataAgeSeconds": 0.2}),
    )
    .await;

    // The operator knows only a seed, here the node without the slot.
    let target = stats::RedisTarget {
        url: other.url(),
        username: Some("cachebridge".into()),
        password: Some(USER_PASSWORD.into()),
    };
    let reports = stats::read_reports(&target, PREFIX, clock())
        .await
        .expect("MOVED is followed to the node with the slot");
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].hit_ratio, Some(0.99));
}
