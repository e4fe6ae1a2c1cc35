//! Labels and annotations the operator puts on what it builds.
//!
//! Selector labels are a subset that never changes for the life of a child
//! (Deployment and StatefulSet selectors are immutable); the rest may.

use crate::validate::Bridge;
use std::collections::BTreeMap;

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const PART_OF: &str = "app.kubernetes.io/part-of";
/// Hash of the dataplane config on writer and reader pod templates: a new
/// config changes the template, so Kubernetes rolls the pods.
pub const CONFIG_HASH: &str = "cachebridge.dev/config-hash";
/// Hash of everything the operator last applied to a child; see `apply`.
pub const APPLIED_HASH: &str = "cachebridge.dev/applied-hash";
/// On the generated Secret: which keys the operator generated.
pub const GENERATED_KEYS: &str = "cachebridge.dev/generated-keys";

pub const MANAGER: &str = "cachebridge-operator";

/// The parts of a bridge, each its own `app.kubernetes.io/component`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Redis,
    /// The Sentinels watching a replicated managed Redis.
    Sentinel,
    Memcached,
    Writer,
    Reader,
    /// Objects shared by writer and readers (ServiceAccount, Role, ConfigMap).
    Dataplane,
}

impl Component {
    pub fn as_str(self) -> &'static str {
        match self {
            Component::Redis => "redis",
            Component::Sentinel => "sentinel",
            Component::Memcached => "memcached",
            Component::Writer => "writer",
            Component::Reader => "reader",
            Component::Dataplane => "dataplane",
        }
    }
}

/// Labels that select one component's pods of one bridge.
pub fn selector(b: &Bridge, component: Component) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_string(), "cachebridge".to_string()),
        (INSTANCE.to_string(), b.name.clone()),
        (COMPONENT.to_string(), component.as_str().to_string()),
    ])
}

/// Every label of a child object: the selector plus ownership.
pub fn labels(b: &Bridge, component: Component) -> BTreeMap<String, String> {
    let mut labels = selector(b, component);
    labels.insert(MANAGED_BY.to_string(), MANAGER.to_string());
    labels.insert(PART_OF.to_string(), "cachebridge".to_string());
    labels
}

/// Labels of one bridge's children, whatever the component: for listing.
pub fn bridge_selector(name: &str) -> String {
    format!("{NAME}=cachebridge,{INSTANCE}={name},{MANAGED_BY}={MANAGER}")
}
