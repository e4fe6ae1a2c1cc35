//! The managed Memcached: a StatefulSet behind a headless Service.
//!
//! The dataplane spreads keys over the servers by a stable hash of their
//! addresses, so each server needs an address that survives restarts: the
//! per-pod DNS names of a headless Service (`NAME-memcached-0.NAME-memcached.NS.svc`).

use super::common::{meta, pod_meta, selector};
use super::labels::{self, Component};
use super::names::{self, MEMCACHED_PORT};
use super::pod_security::{ApiAccess, restricted};
use crate::validate::Bridge;
use cachebridge_api::v1alpha1::ManagedMemcached;
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, Service,
    ServicePort, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// uid of the `memcache` user in the official images.
pub const MEMCACHED_UID: i64 = 11211;

pub fn service(b: &Bridge) -> Service {
    Service {
        metadata: meta(b, names::memcached(b), Component::Memcached),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(labels::selector(b, Component::Memcached)),
            ports: Some(vec![ServicePort {
                name: Some("memcached".into()),
                port: MEMCACHED_PORT,
                target_port: Some(IntOrString::String("memcached".into())),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn stateful_set(b: &Bridge, memcached: &ManagedMemcached) -> StatefulSet {
    StatefulSet {
        metadata: meta(b, names::memcached(b), Component::Memcached),
        spec: Some(StatefulSetSpec {
            replicas: Some(memcached.replicas),
            service_name: Some(names::memcached(b)),
            selector: selector(b, Component::Memcached),
            // Servers are independent: start and replace them all at once.
            pod_management_policy: Some("Parallel".into()),
            template: PodTemplateSpec {
                metadata: Some(pod_meta(b, Component::Memcached, None)),
                spec: Some(restricted(
                    PodSpec {
                        containers: vec![container(memcached)],
                        ..Default::default()
                    },
                    MEMCACHED_UID,
                    ApiAccess::None,
                )),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container(memcached: &ManagedMemcached) -> Container {
    let probe = |initial_delay| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String("memcached".into()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(initial_delay),
        period_seconds: Some(10),
        ..Default::default()
    };
    Container {
        name: "memcached".into(),
        image: Some(memcached.image.clone()),
        command: Some(vec!["memcached".into()]),
        args: Some(vec![
            "-p".into(),
            MEMCACHED_PORT.to_string(),
            "-m".into(),
            memcached.memory_mb.to_string(),
            // No UDP: it is an amplification vector and the dataplane uses TCP.
            "-U".into(),
            "0".into(),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("memcached".into()),
            container_port: MEMCACHED_PORT,
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        resources: Some(resources(memcached)),
        readiness_probe: Some(probe(0)),
        liveness_probe: Some(probe(10)),
        ..Default::default()
    }
}

/// Item memory plus headroom for connections and the hash table; request
/// equals limit, so the kernel never reclaims a cache it promised.
pub fn resources(memcached: &ManagedMemcached) -> ResourceRequirements {
    let memory = Quantity(format!("{}Mi", container_memory_mb(memcached.memory_mb)));
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(memcached.cpu.clone())),
            ("memory".to_string(), memory.clone()),
        ])),
        limits: Some(BTreeMap::from([("memory".to_string(), memory)])),
        ..Default::default()
    }
}

pub fn container_memory_mb(item_memory_mb: i32) -> i32 {
    item_memory_mb + 32 + item_memory_mb / 10
}
