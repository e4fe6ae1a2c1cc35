//! The Sentinels of a replicated managed Redis: automatic failover.
//!
//! Three Sentinel pods (a StatefulSet, so each has a stable DNS name through
//! a headless Service) watch the Redis primary; two must agree it is down
//! (the quorum) and a majority must elect the one that promotes a replica.
//! Three is the smallest count that survives losing one Sentinel; more would
//! only add pods, as each bridge has its own small Redis.
//!
//! The operator never moves the primary itself: Sentinel chooses it, the
//! operator only asks who it is (see `crate::sentinel`) and reports it.
//!
//! Each Sentinel writes its config from the Secret at start, like Redis:
//! - it monitors the primary the other Sentinels name now, or pod 0 of
//!   Redis on the very first start;
//! - names, not IPs, everywhere (`resolve-hostnames`, `announce-hostnames`),
//!   so a rescheduled pod is the same instance to every Sentinel;
//! - ACL: the default user (the dataplane's password, no username) may only
//!   ask who the primary is and listen to events; the Sentinels talk to each
//!   other as [`SENTINEL_ADMIN_USER`] and to Redis as its admin, both with the
//!   admin password.
//!
//! The config lives in the pod template (the script), so a changed setting
//! rolls the Sentinels like a changed image does.

use super::common::{meta, mount, pod_meta, requirements, scratch_volume, selector, spread};
use super::labels::{self, Component};
use super::names::{
    self, PASSWORD_KEY, REDIS_PORT, SENTINEL_ADMIN_USER, SENTINEL_PORT, SENTINEL_QUORUM,
    SENTINEL_REPLICAS,
};
use super::pod_security::{ApiAccess, restricted};
use super::redis::{REDIS_UID, ping_probe, secret_volume, tcp_probe};
use super::script::{self, SECRET_DIR};
use crate::validate::{Bridge, Failover};
use cachebridge_api::v1alpha1::ManagedRedis;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodSpec, PodTemplateSpec, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// What the default user may do on a Sentinel: connect, find the primary
/// and its replicas, and hear `+switch-master`. Not `SENTINEL FAILOVER`,
/// `SET`, `REMOVE`, `MONITOR`, `CONFIG`, nor `ACL`.
pub const CLIENT_ACL: &str = "allchannels -@all +@connection -@dangerous +ping +info +role \
+subscribe +psubscribe +unsubscribe +punsubscribe \
+sentinel|get-master-addr-by-name +sentinel|master +sentinel|masters \
+sentinel|replicas +sentinel|slaves +sentinel|sentinels +sentinel|myid";

/// How long a starting Sentinel waits for the primary to answer before it
/// gives up (and the kubelet starts it again).
const PRIMARY_WAIT_SECONDS: u32 = 30;

/// The client Service: ready Sentinels only, so a starting one never asks itself.
pub fn service(b: &Bridge) -> Service {
    sentinel_service(b, names::sentinel(b), false)
}

/// The headless Service: per-pod DNS names, published before the pods are
/// ready (Sentinels must resolve each other while they start).
pub fn headless_service(b: &Bridge) -> Service {
    sentinel_service(b, names::sentinel_headless(b), true)
}

fn sentinel_service(b: &Bridge, name: String, headless: bool) -> Service {
    Service {
        metadata: meta(b, name, Component::Sentinel),
        spec: Some(ServiceSpec {
            cluster_ip: headless.then(|| "None".to_string()),
            publish_not_ready_addresses: headless.then_some(true),
            selector: Some(labels::selector(b, Component::Sentinel)),
            ports: Some(vec![ServicePort {
                name: Some("sentinel".into()),
                port: SENTINEL_PORT,
                target_port: Some(IntOrString::String("sentinel".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn stateful_set(b: &Bridge, redis: &ManagedRedis, failover: &Failover) -> StatefulSet {
    let spec = PodSpec {
        containers: vec![container(b, redis, failover)],
        volumes: Some(vec![secret_volume(b), scratch_volume("run", true)]),
        affinity: Some(spread(b, Component::Sentinel)),
        termination_grace_period_seconds: Some(10),
        ..Default::default()
    };
    StatefulSet {
        metadata: meta(b, names::sentinel(b), Component::Sentinel),
        spec: Some(StatefulSetSpec {
            replicas: Some(SENTINEL_REPLICAS),
            service_name: Some(names::sentinel_headless(b)),
            selector: selector(b, Component::Sentinel),
            // Independent peers: start and replace them all at once.
            pod_management_policy: Some("Parallel".into()),
            template: PodTemplateSpec {
                metadata: Some(pod_meta(b, Component::Sentinel, None)),
                spec: Some(restricted(spec, REDIS_UID, ApiAccess::None)),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(b: &Bridge, redis: &ManagedRedis, failover: &Failover) -> Container {
    Container {
        name: "sentinel".into(),
        // Sentinel ships with Redis: one image, one version to keep current.
        image: Some(redis.image.clone()),
        command: Some(vec!["sh".into(), "-c".into(), start_script(b, failover)]),
        ports: Some(vec![ContainerPort {
            name: Some("sentinel".into()),
            container_port: SENTINEL_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: Some(requirements(&failover.resources)),
        volume_mounts: Some(vec![
            mount("secret", SECRET_DIR, true),
            mount("run", "/run/sentinel", false),
        ]),
        readiness_probe: Some(ping_probe(SENTINEL_PORT, PASSWORD_KEY)),
        liveness_probe: Some(tcp_probe("sentinel", 10)),
        ..Default::default()
    }
}

/// Writes sentinel.conf from the Secret (in memory; Sentinel rewrites it as
/// it learns replicas and peers) and execs Sentinel.
pub fn start_script(b: &Bridge, failover: &Failover) -> String {
    let master = names::sentinel_master(b);
    let lines = vec![
        "bind * -::*".to_string(),
        format!("port {SENTINEL_PORT}"),
        "dir /run/sentinel".to_string(),
        "sentinel resolve-hostnames yes".to_string(),
        "sentinel announce-hostnames yes".to_string(),
        "sentinel announce-ip $me".to_string(),
        format!("sentinel announce-port {SENTINEL_PORT}"),
        format!("user default on >$user {CLIENT_ACL}"),
        format!("user {SENTINEL_ADMIN_USER} on >$admin allchannels +@all"),
        format!("sentinel sentinel-user {SENTINEL_ADMIN_USER}"),
        "sentinel sentinel-pass $admin".to_string(),
        format!("sentinel monitor {master} $primary {REDIS_PORT} {SENTINEL_QUORUM}"),
        format!("sentinel auth-pass {master} $admin"),
        format!(
            "sentinel down-after-milliseconds {master} {}",
            failover.down_after.as_millis()
        ),
        format!(
            "sentinel failover-timeout {master} {}",
            failover.failover_timeout.as_millis()
        ),
        format!("sentinel parallel-syncs {master} 1"),
    ];
    // A Sentinel whose primary's name does not resolve at start monitors
    // nothing (it only logs it): on a first start, wait for Redis pod 0.
    format!(
        "{}conf=/run/sentinel/sentinel.conf\n\
         me=\"$(hostname).{}\"\n\
         {}primary=\"$(ask_primary)\"\n\
         [ -n \"$primary\" ] || primary={}\n\
         waited=0\n\
         until REDISCLI_AUTH=\"$admin\" timeout 3 redis-cli -h \"$primary\" -p {REDIS_PORT} ping >/dev/null 2>&1; do\n\
         \x20 [ \"$waited\" -lt {PRIMARY_WAIT_SECONDS} ] || {{ echo \"the primary $primary does not answer\" >&2; exit 1; }}\n\
         \x20 sleep 1\n\
         \x20 waited=$((waited + 1))\n\
         done\n\
         {}exec redis-sentinel \"$conf\"\n",
        script::prelude(),
        names::service_host(b, &names::sentinel_headless(b)),
        script::sentinel_functions(b),
        names::redis_pod_host(b, 0),
        script::write_conf(&lines),
    )
}
