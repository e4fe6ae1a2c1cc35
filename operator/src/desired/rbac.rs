//! The identity of the writer and readers, and what it may read.
//!
//! `--bridge NAMESPACE/NAME` pods read their own CacheBridge and the Redis
//! (and Sentinel) password Secrets through the API; the Role allows exactly that (by name),
//! nothing else. The ServiceAccount does not mount its token by default;
//! only the writer and reader pods opt in.

use super::common::meta;
use super::labels::Component;
use super::names;
use crate::validate::Bridge;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

pub fn service_account(b: &Bridge) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(b, names::dataplane(b), Component::Dataplane),
        automount_service_account_token: Some(false),
        ..Default::default()
    }
}

/// `secrets`: the Secrets the dataplane must read (generated or the user's).
pub fn role(b: &Bridge, secrets: &[String]) -> Role {
    Role {
        metadata: meta(b, names::dataplane(b), Component::Dataplane),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec!["cachebridge.dev".into()]),
                resources: Some(vec!["cachebridges".into()]),
                resource_names: Some(vec![b.name.clone()]),
                verbs: vec!["get".into(), "list".into(), "watch".into()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(vec!["secrets".into()]),
                resource_names: Some(secrets.to_vec()),
                verbs: vec!["get".into(), "watch".into()],
                ..Default::default()
            },
        ]),
    }
}

pub fn role_binding(b: &Bridge) -> RoleBinding {
    RoleBinding {
        metadata: meta(b, names::dataplane(b), Component::Dataplane),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "Role".into(),
            name: names::dataplane(b),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: names::dataplane(b),
            namespace: Some(b.namespace.clone()),
            ..Default::default()
        }]),
    }
}
