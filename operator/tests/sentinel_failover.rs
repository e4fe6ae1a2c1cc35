//! The managed Redis with Sentinel, on real processes: the operator's own
//! Redis and Sentinel start scripts (from a built StatefulSet, run with
//! `sh`) bring up two Redis pods and three Sentinels; the operator's
//! primary lookup names the primary; a killed primary is failed over; the
//! old primary restarted at once (empty, before Sentinel noticed) waits for
//! the failover and rejoins as a replica instead of wiping the data.
//!
//! Also: a bridge on an external Redis given by Sentinel servers reports the
//! primary a real Sentinel names, and keeps it when the Sentinel is gone.
//!
//! Each "pod" gets its own loopback address (127.0.0.x, all on one port),
//! standing in for the stable per-pod DNS names of a cluster; besides that
//! the scripts only have their paths and the service names pointed here.

mod common;

use cachebridge_operator::desired::{self, Settings};
use cachebridge_operator::primary::{self, Primary, SentinelTarget};
use cachebridge_operator::render::read_bridge;
use cachebridge_testkit::PATIENCE;
use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::json;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const USER_PASSWORD: &str = "Us3rPassw0rdForTheBridgeAclUser0";
const ADMIN_PASSWORD: &str = "Adm1nPassw0rdForTheDefaultUser00";
const REDIS_IPS: [&str; 2] = ["127.0.0.110", "127.0.0.111"];
const SENTINEL_IPS: [&str; 3] = ["127.0.0.120", "127.0.0.121", "127.0.0.122"];

/// A port free on every address the test uses.
fn shared_free_port() -> u16 {
    'search: loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        for ip in REDIS_IPS.iter().chain(&SENTINEL_IPS) {
            if TcpListener::bind((*ip, port)).is_err() {
                continue 'search;
            }
        }
        return port;
    }
}

fn script_of(sts: &StatefulSet) -> String {
    sts.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .command
        .clone()
        .unwrap()[2]
        .clone()
}

/// One "cluster": the scripts, a shared secret dir, ports and processes.
struct Cluster {
    dir: tempfile::TempDir,
    redis_script: String,
    sentinel_script: String,
    redis_port: u16,
    sentinel_port: u16,
    redis: Vec<Option<Child>>,
    sentinels: Vec<Child>,
}

impl Cluster {
    /// `downAfter: 2s`, not 1s: at 1 s a Sentinel can mark a just-promoted
    /// primary down before its first PING to it (sent after 1 s) is
    /// answered, and fail over a second time, to the pod that has only just
    /// rejoined, empty (docs/redis-ha.md, "Sentinel fails over twice").
    fn new() -> Cluster {
        let doc = json!({"apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge",
            "metadata": {"name": "quotes", "namespace": "prod"},
            "spec": {"redis": {"managed": {"replicas": 2, "sentinel": {"downAfter": "2s", "failoverTimeout": "10s"}}}}});
        let bridge =
            cachebridge_operator::validate::validate(&read_bridge(1, doc).unwrap()).unwrap();
        let desired = desired::build(&bridge, &Settings::default()).unwrap();
        let redis = desired.redis.unwrap();
        let failover = redis.failover.expect("replicas 2 bring Sentinels");
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::create_dir(&secret).unwrap();
        std::fs::write(secret.join("password"), USER_PASSWORD).unwrap();
        std::fs::write(secret.join("admin-password"), ADMIN_PASSWORD).unwrap();
        Cluster {
            redis_script: script_of(&redis.stateful_set),
            sentinel_script: script_of(&failover.sentinel_stateful_set),
            redis_port: shared_free_port(),
            sentinel_port: shared_free_port(),
            redis: vec![None, None],
            sentinels: Vec::new(),
            dir,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The cluster's names and ports, as seen from this machine.
    fn localize(&self, script: &str) -> String {
        script
            .replace("/etc/redis-secret", self.path("secret").to_str().unwrap())
            .replace("quotes-sentinel.prod.svc", SENTINEL_IPS[0])
            .replace("quotes-redis-0.quotes-redis.prod.svc", REDIS_IPS[0])
            .replace("26379", &self.sentinel_port.to_string())
            .replace("6379", &self.redis_port.to_string())
    }

    /// Runs the Redis start script as pod `i` (empty data, like a new pod).
    fn start_redis(&mut self, i: usize) {
        let run = self.path(&format!("run-{i}"));
        let data = self.path(&format!("data-{i}"));
        for d in [&run, &data] {
            let _ = std::fs::remove_dir_all(d);
            std::fs::create_dir(d).unwrap();
        }
        let script = self
            .localize(&self.redis_script)
            .replace("/run/redis", run.to_str().unwrap())
            .replace("dir /data", &format!("dir {}", data.display()))
            .replace("bind * -::*", &format!("bind {}", REDIS_IPS[i]))
            .replace(
                "me=\"$(hostname).quotes-redis.prod.svc\"",
                &format!("me={}", REDIS_IPS[i]),
            )
            .replace("$(hostname)", &format!("quotes-redis-{i}"));
        let log = self.path(&format!("redis-{i}.log"));
        self.redis[i] = Some(spawn(&script, &log));
    }

    fn kill_redis(&mut self, i: usize) {
        if let Some(mut child) = self.redis[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn start_sentinel(&mut self, j: usize) {
        let run = self.path(&format!("sentinel-{j}"));
        std::fs::create_dir_all(&run).unwrap();
        let script = self
            .localize(&self.sentinel_script)
            .replace("/run/sentinel", run.to_str().unwrap())
            .replace("bind * -::*", &format!("bind {}", SENTINEL_IPS[j]))
            .replace(
                "me=\"$(hostname).quotes-sentinel-headless.prod.svc\"",
                &format!("me={}", SENTINEL_IPS[j]),
            );
        let log = self.path(&format!("sentinel-{j}.log"));
        self.sentinels.push(spawn(&script, &log));
    }

    fn sentinel_target(&self, password: &str) -> SentinelTarget {
        SentinelTarget {
            servers: SENTINEL_IPS
                .iter()
                .map(|ip| format!("{ip}:{}", self.sentinel_port))
                .collect(),
            master_name: "quotes".into(),
            password: Some(password.into()),
        }
    }

    fn sentinel_url(&self, j: usize) -> String {
        format!(
            "redis://:{USER_PASSWORD}@{}:{}",
            SENTINEL_IPS[j], self.sentinel_port
        )
    }

    /// How many replicas Sentinel `j` sees up and connected (flags just
    /// `slave`), as the Redis start script counts them.
    async fn healthy_replicas(&self, j: usize) -> usize {
        let ask = async {
            let client = redis::Client::open(self.sentinel_url(j)).ok()?;
            let mut conn = client.get_multiplexed_async_connection().await.ok()?;
            let replicas: Vec<std::collections::HashMap<String, String>> = redis::cmd("SENTINEL")
                .arg("REPLICAS")
                .arg("quotes")
                .query_async(&mut conn)
                .await
                .ok()?;
            Some(
                replicas
                    .iter()
                    .filter(|r| r.get("flags").map(String::as_str) == Some("slave"))
                    .count(),
            )
        };
        ask.await.unwrap_or(0)
    }

    /// What the servers said, for a failed run: the only record of what
    /// the Sentinels decided and when.
    fn print_logs(&self) {
        let names = (0..2)
            .map(|i| format!("redis-{i}.log"))
            .chain((0..3).map(|j| format!("sentinel-{j}.log")));
        for name in names {
            let text = std::fs::read_to_string(self.path(&name)).unwrap_or_default();
            eprintln!("----- {name} -----\n{text}");
        }
    }

    fn redis_url(&self, i: usize) -> String {
        format!(
            "redis://default:{ADMIN_PASSWORD}@{}:{}",
            REDIS_IPS[i], self.redis_port
        )
    }

    /// `ROLE` of pod `i`: ("master", None) or ("slave", Some(primary host)).
    async fn role(&self, i: usize) -> Option<(String, Option<String>)> {
        let client = redis::Client::open(self.redis_url(i)).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        let role: Vec<redis::Value> = redis::cmd("ROLE").query_async(&mut conn).await.ok()?;
        let text = |v: &redis::Value| redis::from_redis_value::<String>(v.clone()).ok();
        let kind = text(role.first()?)?;
        let primary = (kind == "slave")
            .then(|| role.get(1).and_then(text))
            .flatten();
        Some((kind, primary))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.redis.iter_mut().flatten().chain(&mut self.sentinels) {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            self.print_logs();
        }
    }
}

/// Runs `script` with `sh`, its output appended to `log`.
fn spawn(script: &str, log: &std::path::Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new("sh")
        .args(["-c", script])
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("sh")
}

/// Polls `probe` until it returns `Some`: the servers are other processes,
/// and these are the only ways to learn what they decided.
async fn eventually<T, F, Fut>(what: &str, patience: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn set(url: &str, key: &str, value: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    redis::cmd("SET")
        .arg(key)
        .arg(value)
        .query_async(&mut conn)
        .await
}

async fn get(url: &str, key: &str) -> Option<String> {
    let client = redis::Client::open(url).ok()?;
    let mut conn = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .ok()?
}

#[tokio::test]
async fn sentinels_fail_over_and_a_restarted_primary_rejoins_as_a_replica() {
    let mut cluster = Cluster::new();
    // First start: no Sentinel answers yet, so pod 0 is the primary and pod 1 replicates it.
    cluster.start_redis(0);
    cluster.start_redis(1);
    for j in 0..3 {
        cluster.start_sentinel(j);
    }
    let user = cluster.sentinel_target(USER_PASSWORD);
    let first = eventually("the Sentinels to name a primary", PATIENCE, || async {
        primary::ask(&user).await.ok()
    })
    .await;
    assert_eq!(
        first,
        Primary {
            host: REDIS_IPS[0].into(),
            port: cluster.redis_port
        }
    );
    assert_eq!(
        first.url(),
        format!("redis://{}:{}", REDIS_IPS[0], cluster.redis_port)
    );
    let replica = eventually("pod 1 to replicate pod 0", PATIENCE, || async {
        cluster
            .role(1)
            .await
            .filter(|(_, p)| p.as_deref() == Some(REDIS_IPS[0]))
    })
    .await;
    assert_eq!(replica.0, "slave");
    // Every Sentinel must know the replica, connected, before the test
    // kills the primary: each learns of replicas only from the primary's
    // INFO (every 10 s), an elected leader that never saw it aborts with
    // `-failover-abort-no-good-slave`, and the restarted pod waits only
    // while the Sentinels see a healthy replica. A cluster a minute old is
    // past this point; one ten seconds old is not.
    for j in 0..3 {
        eventually(
            "every Sentinel to see a healthy replica",
            PATIENCE * 2,
            || async { (cluster.healthy_replicas(j).await > 0).then_some(()) },
        )
        .await;
    }

    // The clients' user may ask, not steer.
    let client = redis::Client::open(cluster.sentinel_url(0)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for forbidden in [
        vec!["SENTINEL", "FAILOVER", "quotes"],
        vec!["SENTINEL", "REMOVE", "quotes"],
        vec!["ACL", "SETUSER", "x", "on"],
    ] {
        let mut cmd = redis::cmd(forbidden[0]);
        for arg in &forbidden[1..] {
            cmd.arg(*arg);
        }
        let refused: redis::RedisResult<redis::Value> = cmd.query_async(&mut conn).await;
        assert!(
            refused.is_err(),
            "{forbidden:?} must be refused to the default user"
        );
    }
    let wrong = primary::ask(&cluster.sentinel_target("wrong"))
        .await
        .unwrap_err();
    assert_eq!(wrong.metric_label(), "sentinel");

    // Data on the primary reaches the replica.
    set(&cluster.redis_url(0), "cb:prod:quotes:k", "v1")
        .await
        .unwrap();
    eventually("the value to replicate", PATIENCE, || async {
        get(&cluster.redis_url(1), "cb:prod:quotes:k")
            .await
            .filter(|v| v == "v1")
    })
    .await;

    // The primary dies and comes back at once, empty, before any Sentinel
    // noticed: it must not serve as primary (its emptiness would replicate).
    cluster.kill_redis(0);
    cluster.start_redis(0);
    // Sentinel's first attempt may fail (a split vote) and the retry comes
    // 2 × failoverTimeout (20 s) later; the pod's wait (34 s) covers that.
    let promoted = eventually("a failover to pod 1", PATIENCE * 3, || async {
        primary::ask(&user)
            .await
            .ok()
            .filter(|p| p.host == REDIS_IPS[1])
    })
    .await;
    assert_eq!(promoted.port, cluster.redis_port);
    let rejoined = eventually(
        "pod 0 to rejoin as a replica of pod 1",
        PATIENCE * 2,
        || async {
            cluster
                .role(0)
                .await
                .filter(|(kind, p)| kind == "slave" && p.as_deref() == Some(REDIS_IPS[1]))
        },
    )
    .await;
    assert_eq!(rejoined.0, "slave");
    assert_eq!(
        cluster.role(1).await.map(|r| r.0).as_deref(),
        Some("master")
    );
    assert_eq!(
        get(&cluster.redis_url(1), "cb:prod:quotes:k")
            .await
            .as_deref(),
        Some("v1"),
        "the promoted replica kept the data"
    );
    eventually(
        "pod 0 to receive the data from the new primary",
        PATIENCE,
        || async {
            get(&cluster.redis_url(0), "cb:prod:quotes:k")
                .await
                .filter(|v| v == "v1")
        },
    )
    .await;
}

/// A `redis-sentinel` watching `primary_port` on 127.0.0.1 (quorum 1),
/// asking clients for `password`; killed on drop.
struct LocalSentinel {
    port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

impl LocalSentinel {
    fn start(primary_port: u16, primary_password: &str, password: &str) -> LocalSentinel {
        let dir = tempfile::tempdir().unwrap();
        let port = cachebridge_testkit::free_port();
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\nrequirepass {password}\n\
                 sentinel monitor mymaster 127.0.0.1 {primary_port} 1\n\
                 sentinel auth-pass mymaster {primary_password}\n"
            ),
        )
        .unwrap();
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-sentinel (Debian package redis-sentinel)");
        LocalSentinel {
            port,
            child,
            _dir: dir,
        }
    }
}

impl Drop for LocalSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn secret(name: &str, password: &str) -> serde_json::Value {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    serde_json::to_value(Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(common::NS.into()),
            ..Default::default()
        },
        data: Some([("password".to_string(), ByteString(password.into()))].into()),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn an_external_redis_by_sentinel_reports_the_primary_the_sentinel_names() {
    use common::*;
    let redis = RedisServer::redis_with_password(ADMIN_PASSWORD);
    let mut sentinel = LocalSentinel::start(redis.port, ADMIN_PASSWORD, USER_PASSWORD);
    let spec = json!({"redis": {"external": {
        "sentinel": {"servers": [format!("127.0.0.1:{}", sentinel.port)], "masterName": "mymaster",
                     "passwordSecret": {"name": "sentinel-creds"}},
        "passwordSecret": {"name": "redis-creds"}}}});
    let h = harness_with_stats(vec![
        bridge("quotes", spec),
        secret("redis-creds", ADMIN_PASSWORD),
        secret("sentinel-creds", USER_PASSWORD),
    ])
    .await;
    // The Sentinel is another process: reconcile until it answers.
    let status = eventually("the status to name the primary", PATIENCE, || async {
        h.reconcile("quotes").await.ok()?;
        h.get("quotes")
            .await
            .status
            .filter(|s| s.redis_primary.is_some())
    })
    .await;
    let primary = format!("127.0.0.1:{}", redis.port);
    assert_eq!(status.redis_primary.as_deref(), Some(primary.as_str()));
    assert_eq!(
        status.endpoints.redis.as_deref(),
        Some(format!("redis://{primary}").as_str())
    );
    let endpoints = status.endpoints.sentinel.as_ref().unwrap();
    assert_eq!(endpoints.master_name, "mymaster");
    assert_eq!(endpoints.servers, [format!("127.0.0.1:{}", sentinel.port)]);
    assert_eq!(
        endpoints.password_secret.as_ref().unwrap().name,
        "sentinel-creds"
    );
    assert_eq!(status.password_secret.as_ref().unwrap().name, "redis-creds");
    assert!(
        h.stateful_set("quotes-sentinel").await.is_none(),
        "no managed Sentinels"
    );
    // The dataplane may read both Secrets, and nothing else.
    let role = kube::Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(h.client.clone(), NS)
        .get("quotes-dataplane")
        .await
        .unwrap();
    assert_eq!(
        role.rules.unwrap()[1].resource_names.as_deref(),
        Some(&["redis-creds".to_string(), "sentinel-creds".to_string()][..])
    );

    // The Sentinel goes away: the status keeps the primary last observed.
    let _ = sentinel.child.kill();
    let _ = sentinel.child.wait();
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    let kept = h.get("quotes").await.status.unwrap();
    assert_eq!(kept.redis_primary.as_deref(), Some(primary.as_str()));
    assert_eq!(kept.endpoints.redis, status.endpoints.redis);
    assert!(
        h.writes
            .take()
            .iter()
            .all(|w| !w.starts_with("patch-status")),
        "nothing new to report"
    );
}
