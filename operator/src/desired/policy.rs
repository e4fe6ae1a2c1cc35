//! Who may disrupt or reach the bridge's pods.
//!
//! - PodDisruptionBudgets let voluntary disruptions (drains, upgrades)
//!   take down one reader, one Redis pod, one Sentinel at a time, never more.
//! - NetworkPolicies: only this bridge's writer and readers (and the
//!   operator, which reads cache figures) reach its Redis and Sentinels
//!   (Redis and Sentinel pods also reach each other); only its writer
//!   and readers reach its Memcached; the readers' HTTP port is open; the
//!   writer's ingest port admits only the pods `writer.source.ingest.from`
//!   names (nobody when it names none, or the source is not `Ingest`), and
//!   its metrics port the scrapers the operator was told of
//!   (`--metrics-scrapers`).
//!
//! Egress is left open: the pods need DNS and the API server, whose
//! addresses differ from cluster to cluster.

use super::Settings;
use super::common::{meta, selector};
use super::dataplane;
use super::labels::{Component, NAME};
use super::names::{
    self, INGEST_PORT, MEMCACHED_PORT, REDIS_PORT, SENTINEL_PORT, WRITER_STATUS_PORT,
};
use crate::validate::Bridge;
use cachebridge_api::v1alpha1::IngestPeer;
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
    NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use std::collections::BTreeMap;

/// At most one reader down by choice, whatever the replica count; with a
/// single reader a drain may still proceed (it cannot be helped).
pub fn reader_pdb(b: &Bridge) -> PodDisruptionBudget {
    one_at_a_time(b, names::reader(b), Component::Reader)
}

/// A replicated Redis loses at most one pod to a drain: the primary or a
/// replica, never both, so there is always a copy to fail over to.
pub fn redis_pdb(b: &Bridge) -> PodDisruptionBudget {
    one_at_a_time(b, names::redis(b), Component::Redis)
}

/// At most one Sentinel down by choice: the other two still make the quorum.
pub fn sentinel_pdb(b: &Bridge) -> PodDisruptionBudget {
    one_at_a_time(b, names::sentinel(b), Component::Sentinel)
}

fn one_at_a_time(b: &Bridge, name: String, component: Component) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: meta(b, name, component),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(selector(b, component)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The managed Redis: its own pods (replication), writer, readers, the
/// operator and, when there are Sentinels, the Sentinels.
pub fn redis(b: &Bridge, settings: &Settings) -> NetworkPolicy {
    let mut peers = vec![
        pods_of(b, Component::Writer),
        pods_of(b, Component::Reader),
        pods_of(b, Component::Redis),
        operator(settings),
    ];
    if b.failover.is_some() {
        peers.push(pods_of(b, Component::Sentinel));
    }
    policy(
        b,
        names::redis(b),
        Component::Redis,
        Some(peers),
        REDIS_PORT,
    )
}

/// The Sentinels: each other (votes), the Redis pods (their start script
/// asks who the primary is), writer and readers (they follow the primary)
/// and the operator (it reports the primary).
pub fn sentinel(b: &Bridge, settings: &Settings) -> NetworkPolicy {
    let peers = vec![
        pods_of(b, Component::Writer),
        pods_of(b, Component::Reader),
        pods_of(b, Component::Redis),
        pods_of(b, Component::Sentinel),
        operator(settings),
    ];
    policy(
        b,
        names::sentinel(b),
        Component::Sentinel,
        Some(peers),
        SENTINEL_PORT,
    )
}

pub fn memcached(b: &Bridge) -> NetworkPolicy {
    let peers = vec![pods_of(b, Component::Writer), pods_of(b, Component::Reader)];
    policy(
        b,
        names::memcached(b),
        Component::Memcached,
        Some(peers),
        MEMCACHED_PORT,
    )
}

/// Readers serve the web: their port is open to all, nothing else is.
pub fn reader(b: &Bridge) -> NetworkPolicy {
    policy(b, names::reader(b), Component::Reader, None, b.reader.port)
}

/// The writer's ingest port admits only the pods the user named in
/// `writer.source.ingest.from`; its metrics port only the scrapers the
/// operator was told of.
pub fn writer(b: &Bridge, settings: &Settings) -> NetworkPolicy {
    let peers: Vec<NetworkPolicyPeer> = b
        .writer
        .source
        .ingest
        .iter()
        .flat_map(|i| &i.from)
        .map(ingest_peer)
        .collect();
    let mut np = policy(
        b,
        names::writer(b),
        Component::Writer,
        Some(peers.clone()),
        INGEST_PORT,
    );
    let Some(spec) = np.spec.as_mut() else {
        return np;
    };
    let mut rules = spec.ingress.take().unwrap_or_default();
    if !dataplane::ingests(b) || peers.is_empty() {
        // No ingest rule (an empty `from` would instead admit everyone):
        // without scrapers, every inbound connection is refused.
        rules.clear();
    }
    if !settings.metrics_scrapers.is_empty() {
        rules.push(rule(
            Some(settings.metrics_scrapers.clone()),
            WRITER_STATUS_PORT,
        ));
    }
    spec.ingress = (!rules.is_empty()).then_some(rules);
    np
}

/// One named client of ingest, as a NetworkPolicy peer. A peer with only a
/// pod selector means pods of the bridge's namespace, as in a NetworkPolicy.
fn ingest_peer(peer: &IngestPeer) -> NetworkPolicyPeer {
    let labels = |m: &Option<BTreeMap<String, String>>| {
        m.as_ref().map(|m| LabelSelector {
            match_labels: Some(m.clone()),
            ..Default::default()
        })
    };
    NetworkPolicyPeer {
        pod_selector: labels(&peer.pod_selector),
        namespace_selector: labels(&peer.namespace_selector),
        ..Default::default()
    }
}

fn policy(
    b: &Bridge,
    name: String,
    component: Component,
    from: Option<Vec<NetworkPolicyPeer>>,
    port: i32,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: meta(b, name, component),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(b, component)),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![rule(from, port)]),
            ..Default::default()
        }),
    }
}

fn rule(from: Option<Vec<NetworkPolicyPeer>>, port: i32) -> NetworkPolicyIngressRule {
    NetworkPolicyIngressRule {
        from,
        ports: Some(vec![NetworkPolicyPort {
            port: Some(IntOrString::Int(port)),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
    }
}

fn pods_of(b: &Bridge, component: Component) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(selector(b, component)),
        ..Default::default()
    }
}

/// The operator's pods, in the operator's namespace.
fn operator(settings: &Settings) -> NetworkPolicyPeer {
    let labels = |k: &str, v: &str| LabelSelector {
        match_labels: Some(BTreeMap::from([(k.to_string(), v.to_string())])),
        ..Default::default()
    };
    NetworkPolicyPeer {
        namespace_selector: Some(labels(
            "kubernetes.io/metadata.name",
            &settings.operator_namespace,
        )),
        pod_selector: Some(labels(NAME, OPERATOR_POD_LABEL)),
        ..Default::default()
    }
}

/// `app.kubernetes.io/name` of the operator's own pods.
pub const OPERATOR_POD_LABEL: &str = "cachebridge-operator";
