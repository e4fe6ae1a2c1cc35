//! The managed Redis: a StatefulSet behind a headless Service.
//!
//! Pod 0 is the primary every client uses (by its stable DNS name); further
//! pods replicate it. The container starts from a tiny shell script that
//! writes `redis.conf` into an in-memory volume from the mounted Secret, so
//! the passwords appear in no argument, no environment variable and no
//! ConfigMap. The config sets `requirepass` for the default user (used by
//! probes and replication) and an ACL user limited to the bridge's key
//! prefix and the commands the dataplane and the operator's stats reader use.

use super::common::{self, meta, mount, pod_meta, requirements, scratch_volume, selector};
use super::labels::Component;
use super::names::{self, ADMIN_PASSWORD_KEY, PASSWORD_KEY, REDIS_PORT, REDIS_USERNAME};
use super::pod_security::{ApiAccess, restricted};
use crate::validate::Bridge;
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
const SECRET_DIR: &str = "/etc/redis-secret";

/// What the bridge's ACL user may run: exactly what the dataplane (its Lua
/// scripts included: Redis checks commands inside scripts against the
/// caller's ACL) and the operator's stats reader send. Everything else,
/// `KEYS`, `FLUSHALL`, `CONFIG`, `DEBUG` among them, is refused.
pub const ACL_COMMANDS: &[&str] = &[
    "+get",
    "+set",
    // redis-rs `set_ex` (the readers' stats documents) sends SETEX.
    "+setex",
    "+exists",
    "+hget",
    "+hset",
    "+incr",
    "+xadd",
    "+xrange",
    "+publish",
    "+subscribe",
    "+unsubscribe",
    "+evalsha",
    "+eval",
    "+script|load",
    "+script|exists",
    "+scan",
    "+ping",
    "+hello",
    "+auth",
    "+select",
    // Not `client|setinfo`: Redis 7.0 does not know it (an unknown ACL rule
    // stops the server), and clients ignore a refused SETINFO.
    "+client|setname",
    "+info",
];

/// The ACL rule of the bridge's user, without its password.
pub fn acl_rules(key_prefix: &str) -> String {
    format!(
        "resetkeys ~{key_prefix}* resetchannels &{key_prefix}* -@all {}",
        ACL_COMMANDS.join(" ")
    )
}

/// Headless: each pod gets a stable DNS name; pod 0 is the primary.
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
    let mut volumes = vec![
        Volume {
            name: "secret".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(names::redis_secret(b)),
                // Readable by the redis group only.
                default_mode: Some(0o440),
                ..Default::default()
            }),
            ..Default::default()
        },
        scratch_volume("run", true),
    ];
    if redis.persistence.is_none() {
        volumes.push(scratch_volume_sized("data", &redis.resources));
    }
    let spec = PodSpec {
        containers: vec![container(b, redis)],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(30),
        ..Default::default()
    };
    restricted(spec, REDIS_UID, ApiAccess::None)
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
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), ping_script()]),
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(3),
            ..Default::default()
        }),
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::String("redis".into()),
                ..Default::default()
            }),
            initial_delay_seconds: Some(10),
            period_seconds: Some(10),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Authenticates through `REDISCLI_AUTH`, so the password is not an argument.
fn ping_script() -> String {
    format!(
        "REDISCLI_AUTH=\"$(cat {SECRET_DIR}/{ADMIN_PASSWORD_KEY})\" redis-cli -h 127.0.0.1 -p {REDIS_PORT} ping | grep -q PONG"
    )
}

/// Writes redis.conf from the Secret (umask 077, in memory) and execs Redis.
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
    let quoted: Vec<String> = lines.iter().map(|l| format!("  \"{l}\" \\")).collect();
    let primary = format!(
        "{}-0.{}",
        names::redis(b),
        names::service_host(b, &names::redis(b))
    );
    format!(
        "set -eu\n\
         umask 077\n\
         admin=\"$(cat {SECRET_DIR}/{ADMIN_PASSWORD_KEY})\"\n\
         user=\"$(cat {SECRET_DIR}/{PASSWORD_KEY})\"\n\
         conf=/run/redis/redis.conf\n\
         printf '%s\\n' \\\n{}\n  > \"$conf\"\n\
         case \"$(hostname)\" in\n  *-0) ;;\n  *) echo \"replicaof {primary} {REDIS_PORT}\" >> \"$conf\" ;;\nesac\n\
         exec redis-server \"$conf\"\n",
        quoted.join("\n")
    )
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
