//! Small pieces every builder shares: object metadata, resources, volumes.

use super::labels::{self, Component};
use crate::validate::Bridge;
use cachebridge_api::v1alpha1::Resources;
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, EmptyDirVolumeSource, PodAffinityTerm, PodAntiAffinity,
    ResourceRequirements, SecretVolumeSource, Volume, VolumeMount, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use std::collections::BTreeMap;

/// Metadata of a child: its name, the bridge's namespace, labels and owner.
pub fn meta(b: &Bridge, name: String, component: Component) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: Some(b.namespace.clone()),
        labels: Some(labels::labels(b, component)),
        owner_references: Some(vec![b.owner.clone()]),
        ..Default::default()
    }
}

/// Metadata of a pod template: labels only (pods are owned by their controller).
pub fn pod_meta(
    b: &Bridge,
    component: Component,
    annotations: Option<BTreeMap<String, String>>,
) -> ObjectMeta {
    ObjectMeta {
        labels: Some(labels::labels(b, component)),
        annotations,
        ..Default::default()
    }
}

pub fn selector(b: &Bridge, component: Component) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels::selector(b, component)),
        ..Default::default()
    }
}

/// Prefer one pod of `component` per node: a failover needs the primary,
/// a replica and a Sentinel majority not to share one node's fate. Only
/// preferred, so a one-node cluster still schedules them.
pub fn spread(b: &Bridge, component: Component) -> Affinity {
    Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(selector(b, component)),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..Default::default()
                    },
                },
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The spec's resources as Kubernetes requirements; requests are always set.
pub fn requirements(resources: &Resources) -> ResourceRequirements {
    let mut limits = BTreeMap::new();
    if let Some(l) = &resources.limits {
        if let Some(cpu) = &l.cpu {
            limits.insert("cpu".to_string(), Quantity(cpu.clone()));
        }
        if let Some(memory) = &l.memory {
            limits.insert("memory".to_string(), Quantity(memory.clone()));
        }
    }
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_string(), Quantity(resources.requests.cpu.clone())),
            (
                "memory".to_string(),
                Quantity(resources.requests.memory.clone()),
            ),
        ])),
        limits: (!limits.is_empty()).then_some(limits),
        ..Default::default()
    }
}

/// A small writable directory on a read-only root filesystem.
pub fn scratch_volume(name: &str, in_memory: bool) -> Volume {
    Volume {
        name: name.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: in_memory.then(|| "Memory".to_string()),
            size_limit: Some(Quantity("16Mi".into())),
        }),
        ..Default::default()
    }
}

pub fn config_map_volume(name: &str, config_map: String) -> Volume {
    Volume {
        name: name.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: config_map,
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn secret_volume(name: &str, secret: String) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            ..Default::default()
        }),
        ..Default::default()
    }
}

pub fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        // `false` is the default; the apiserver drops it, so we never send it.
        read_only: read_only.then_some(true),
        ..Default::default()
    }
}

/// Parses a memory quantity (`512Mi`, `1G`, `1048576`) into bytes; `None`
/// for forms the builders do not need to understand.
pub fn memory_bytes(quantity: &str) -> Option<u64> {
    const SUFFIXES: [(&str, u64); 8] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
    ];
    let (number, factor) = SUFFIXES
        .iter()
        .find_map(|(suffix, factor)| quantity.strip_suffix(suffix).map(|n| (n, *factor)))
        .unwrap_or((quantity, 1));
    number.parse::<u64>().ok()?.checked_mul(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_quantities_parse_to_bytes() {
        assert_eq!(memory_bytes("512Mi"), Some(512 << 20));
        assert_eq!(memory_bytes("1G"), Some(1_000_000_000));
        assert_eq!(memory_bytes("4096"), Some(4096));
        assert_eq!(memory_bytes("1.5Gi"), None);
    }
}
