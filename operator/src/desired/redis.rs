//! The managed Redis: a StatefulSet behind a headless Service.
//!
//! With one pod it is the primary; with more, pod 0 is the first primary and
//! the Sentinels (see `sentinel`) promote a replica when the primary fails. The container starts from a tiny shell script that
//! writes `redis.conf` into an in-memory volume from the mounted Secret, so
//! the passwords appear in no argument, no environment variable and no
//! ConfigMap. The config sets `requirepass` for the default user (used by
//! probes and replication) and an ACL user limited to the bridge's key
//! prefix and the commands the dataplane and the operator's stats reader use.

use super::common::{self, meta, mount, pod_meta, requirements, scratch_volume, selector};
use super::labels::Component;
use super::names::{self, ADMIN_PASSWORD_KEY, REDIS_PORT, REDIS_USERNAME};
use super::pod_security::{ApiAccess, restricted};
use super::script::{self, SECRET_DIR};
use crate::validate::{Bridge, Failover};
use cachebridge_api::v1alpha1::ManagedRedis;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSpec, PodTemplateSpec, Probe, SecretVolumeSource, Service, ServicePort, ServiceSpec,
    TCPSocketAction, Volume, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// uid of the `redis` user in the official images.
pub const REDIS_UID: i64 = 999;

/// What the bridge's ACL user may run: exactly what the dataplane (its Lua
/// scripts included: Redis checks commands inside scripts against the
/// caller's ACL) and the operator send, and nothing that tells one bridge
/// about another on a shared server. Keys and channels are confined to the
/// bridge's prefix by [`acl_rules`]; these are the commands, each reviewed
/// for what it shows beyond the bridge's own keys (docs/security.md):
/// - `SCAN`, `KEYS`, `RANDOMKEY`, `DBSIZE`, `PUBSUB` would list or count
///   other bridges' keys and channels: refused. Readers report into one hash
///   per bridge, which the operator reads with `HGETALL`.
/// - `INFO` only with the `replication` section first (`master_replid`, the
///   epoch, and `role`): plain `INFO` or `INFO keyspace` show the server's
///   whole keyspace. (Redis checks only the first argument, so `INFO
///   replication keyspace` passes: key counts per database, never names.)
/// - `ROLE`, `EVAL`, `SCRIPT EXISTS`, `SETEX`: no longer sent by anything.
/// - `CLIENT` only `SETNAME`: `CLIENT LIST` shows every connection's last
///   command.
pub const ACL_COMMANDS: &[&str] = &[
    // Values, versions, sequence (also inside the scripts).
    "+get",
    "+set",
    "+exists",
    "+hget",
    "+hset",
    // The readers' snapshot of every key's version after a failover, and
    // the operator's read of the readers' reports.
    "+hgetall",
    // The operator prunes reports of readers that are gone; the readers
    // refresh the expiry of the reports' hash.
    "+hdel",
    "+expire",
    "+incr",
    "+xadd",
    "+xrange",
    "+publish",
    "+subscribe",
    "+unsubscribe",
    // redis-rs runs scripts by EVALSHA and loads them on NOSCRIPT.
    "+evalsha",
    "+script|load",
    "+ping",
    "+hello",
    "+auth",
    // A URL naming a database (`redis://host/2`).
    "+select",
    // Not `client|setinfo`: Redis 7.0 does not know it (an unknown ACL rule
    // stops the server), and clients ignore a refused SETINFO.
    "+client|setname",
    // The epoch and role: see above.
    "+info|replication",
    // How many replicas took a write.
    "+wait",
];

/// The ACL rule of the bridge's user, without its password.
pub fn acl_rules(key_prefix: &str) -> String {
    format!(
        "resetkeys ~{key_prefix}* resetchannels &{key_prefix}* -@all {}",
        ACL_COMMANDS.join(" ")
    )
}

/// Headless: each pod gets a stable DNS name (what replicas and Sentinels use).
pub fn service(b: &Bridge) -> Service {
    Service {
        metadata: meta(b, names::redis(b), Component::Redis),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(super::labels::selector(b, Component::Redis)),
            // Replicas must resolve the primary before it reports ready.
            publish_not_ready_addresses: Some(true),
            ports: Some(vec![ServicePort {
                name: Some("redis".into()),
                port: REDIS_PORT,
                target_port: Some(IntOrString::String("redis".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn stateful_set(b: &Bridge, redis: &ManagedRedis) -> StatefulSet {
    StatefulSet {
        metadata: meta(b, names::redis(b), Component::Redis),
        spec: Some(StatefulSetSpec {
            replicas: Some(redis.replicas),
            service_name: Some(names::redis(b)),
            selector: selector(b, Component::Redis),
            // The primary first: replicas start by connecting to it.
            pod_management_policy: Some("OrderedReady".into()),
            template: PodTemplateSpec {
                metadata: Some(pod_meta(b, Component::Redis, None)),
                spec: Some(pod(b, redis)),
            },
            volume_claim_templates: redis.persistence.as_ref().map(|p| vec![claim(p)]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn pod(b: &Bridge, redis: &ManagedRedis) -> PodSpec {
    let mut volumes = vec![secret_volume(b), scratch_volume("run", true)];
    if redis.persistence.is_none() {
        volumes.push(scratch_volume_sized("data", &redis.resources));
    }
    let spec = PodSpec {
        containers: vec![container(b, redis)],
        volumes: Some(volumes),
        affinity: b
            .failover
            .is_some()
            .then(|| common::spread(b, Component::Redis)),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    restricted(spec, REDIS_UID, ApiAccess::None)
}

/// The generated password Secret, readable by the redis group only.
pub fn secret_volume(b: &Bridge) -> Volume {
    Volume {
        name: "secret".into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(names::redis_secret(b)),
            default_mode: Some(0o440),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Without persistence the data lives in an emptyDir as large as the memory limit.
fn scratch_volume_sized(name: &str, resources: &cachebridge_api::v1alpha1::Resources) -> Volume {
    let mut volume = scratch_volume(name, false);
    if let Some(dir) = volume.empty_dir.as_mut() {
        dir.size_limit = resources
            .limits
            .as_ref()
            .and_then(|l| l.memory.clone())
            .map(Quantity);
    }
    volume
}

fn container(b: &Bridge, redis: &ManagedRedis) -> Container {
    Container {
        name: "redis".into(),
        image: Some(redis.image.clone()),
        command: Some(vec!["sh".into(), "-c".into(), start_script(b, redis)]),
        ports: Some(vec![ContainerPort {
            name: Some("redis".into()),
            container_port: REDIS_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: Some(requirements(&redis.resources)),
        volume_mounts: Some(vec![
            mount("secret", SECRET_DIR, true),
            mount("run", "/run/redis", false),
            mount("data", "/data", false),
        ]),
        readiness_probe: Some(ping_probe(REDIS_PORT, ADMIN_PASSWORD_KEY)),
        liveness_probe: Some(tcp_probe("redis", 10)),
        // A restarted primary may wait for a failover before it listens.
        startup_probe: b.failover.as_ref().map(|f| Probe {
            failure_threshold: i32::try_from(empty_primary_wait_seconds(f) / 2 + 15).ok(),
            period_seconds: Some(2),
            ..tcp_probe("redis", 0)
        }),
        ..Default::default()
    }
}

/// A TCP probe of a named container port.
pub fn tcp_probe(port: &str, initial_delay: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(port.into()),
            ..Default::default()
        }),
        initial_delay_seconds: (initial_delay > 0).then_some(initial_delay),
        period_seconds: Some(10),
        ..Default::default()
    }
}

/// An exec probe that PINGs a local server, authenticating through
/// `REDISCLI_AUTH` (so the password is not an argument) with the password
/// in Secret key `key`.
pub fn ping_probe(port: i32, key: &str) -> Probe {
    let script = format!(
        "REDISCLI_AUTH=\"$(cat {SECRET_DIR}/{key})\" redis-cli -h 127.0.0.1 -p {port} ping | grep -q PONG"
    );
    Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script]),
        }),
        period_seconds: Some(5),
        timeout_seconds: Some(3),
        ..Default::default()
    }
}

/// Writes redis.conf from the Secret (umask 077, in memory) and execs Redis.
/// Without Sentinel, pod 0 is the primary and the others replicate it. With
/// Sentinel, the pod asks the Sentinels first and follows their primary;
/// pod 0 starts as the primary only when no Sentinel names one (first start).
pub fn start_script(b: &Bridge, redis: &ManagedRedis) -> String {
    let mut lines = vec![
        "bind * -::*".to_string(),
        format!("port {REDIS_PORT}"),
        "dir /data".to_string(),
    ];
    if redis.persistence.is_some() {
        lines.push("appendonly yes".into());
    } else {
        lines.push("appendonly no".into());
        lines.push("save ''".into());
    }
    lines.extend(maxmemory_lines(redis));
    lines.push("requirepass $admin".into());
    lines.push("masterauth $admin".into());
    lines.push(format!(
        "user {REDIS_USERNAME} on >$user {}",
        acl_rules(&b.key_prefix)
    ));
    let primary = names::redis_pod_host(b, 0);
    let (me, role) = match &b.failover {
        None => (
            String::new(),
            format!(
                "case \"$(hostname)\" in\n  *-0) ;;\n  *) echo \"replicaof {primary} {REDIS_PORT}\" >> \"$conf\" ;;\nesac\n"
            ),
        ),
        Some(failover) => {
            // Sentinel tracks replicas by this name, which survives a new pod IP.
            lines.push("replica-announce-ip $me".into());
            (
                format!(
                    "me=\"$(hostname).{}\"\n",
                    names::service_host(b, &names::redis(b))
                ),
                follow_sentinel(b, redis, failover),
            )
        }
    };
    format!(
        "{}conf=/run/redis/redis.conf\n{me}{}{role}exec redis-server \"$conf\"\n",
        script::prelude(),
        script::write_conf(&lines),
    )
}

/// Appends `replicaof` unless this pod is the primary the Sentinels name.
fn follow_sentinel(b: &Bridge, redis: &ManagedRedis, failover: &Failover) -> String {
    let pod0 = names::redis_pod_host(b, 0);
    // Without persistence a restarted primary comes back empty; serving
    // would replicate that emptiness over the replicas. While a healthy
    // replica exists it waits (bounded) for Sentinel to promote one.
    let wait_if_empty = if redis.persistence.is_none() {
        let limit = empty_primary_wait_seconds(failover);
        format!(
            "elif [ \"$primary\" = \"$me\" ]; then\n\
             \x20 waited=0\n\
             \x20 while [ \"$primary\" = \"$me\" ] && [ \"$waited\" -lt {limit} ] && [ \"$(healthy_replicas)\" -gt 0 ]; do\n\
             \x20   sleep 1\n\
             \x20   waited=$((waited + 1))\n\
             \x20   primary=\"$(ask_primary)\"\n\
             \x20 done\n"
        )
    } else {
        String::new()
    };
    format!(
        "{}primary=\"$(ask_primary)\"\n\
         if [ -z \"$primary\" ]; then\n\
         \x20 case \"$(hostname)\" in *-0) ;; *) primary={pod0} ;; esac\n\
         {wait_if_empty}\
         fi\n\
         if [ -n \"$primary\" ] && [ \"$primary\" != \"$me\" ]; then\n\
         \x20 echo \"replicaof $primary {REDIS_PORT}\" >> \"$conf\"\n\
         fi\n",
        script::sentinel_functions(b)
    )
}

/// Long enough for the Sentinels to notice the primary is down and promote
/// a replica even when their first attempt fails: twice `downAfter`, then
/// twice `failoverTimeout` (Sentinel's pause before it tries again), plus
/// ten seconds for the failover itself.
///
/// A first attempt fails on a split vote, or when the elected leader has
/// not yet learned of the replica (each Sentinel learns of replicas only
/// from the primary's `INFO`, every 10 s): `-failover-abort-no-good-slave`.
/// A shorter wait would let the empty pod give up before the retry and
/// serve its emptiness as the primary.
pub fn empty_primary_wait_seconds(failover: &Failover) -> u64 {
    failover.down_after.as_secs() * 2 + failover.failover_timeout.as_secs() * 2 + 10
}

/// Three quarters of the memory limit, evicting only keys with a TTL (the
/// cached values); versions, sequence and stream have none and stay.
fn maxmemory_lines(redis: &ManagedRedis) -> Vec<String> {
    redis
        .resources
        .limits
        .as_ref()
        .and_then(|l| l.memory.as_deref())
        .and_then(common::memory_bytes)
        .map(|bytes| {
            vec![
                format!("maxmemory {}", bytes / 4 * 3),
                "maxmemory-policy volatile-lru".to_string(),
            ]
        })
        .unwrap_or_default()
}

fn claim(persistence: &cachebridge_api::v1alpha1::Persistence) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: persistence.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(persistence.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}
