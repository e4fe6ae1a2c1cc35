//! Stage 3 of a reconcile: make the cluster hold the desired children.
//!
//! Every child is server-side applied with one field manager
//! ([`crate::FIELD_MANAGER`]), forcing ownership of the fields it sets. A
//! write happens only when the live object differs, so a second reconcile
//! of an unchanged bridge writes nothing (no self-inflicted watch events,
//! no reconcile storm). "Differs" is two checks:
//! - the `cachebridge.dev/applied-hash` annotation on the live object is the
//!   hash of what we would apply now: catches changes of the desired object,
//!   including fields we stopped setting (SSA then removes them);
//! - every field we set has the same value live: catches drift, such as
//!   someone scaling our Deployment by hand.
//!
//! Children the bridge no longer wants (see [`Desired::unwanted`]) are
//! deleted, but only if they carry this bridge's owner reference.
//!
//! The live objects come from the controller's watch caches ([`Caches`]),
//! not from the API: a reconcile of a bridge whose children are as wanted
//! makes no API request at all. The one API read left is documented at
//! [`ensure_secret`] (a password Secret missing from the cache).

use crate::FIELD_MANAGER;
use crate::caches::{Caches, SeenSecrets, Slim, cached};
use crate::desired::labels::APPLIED_HASH;
use crate::desired::secret::generated_keys;
use crate::desired::{Child, ChildKey, Desired, Kind};
use crate::error::{Error, Result};
use crate::validate::Bridge;
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Debug;

/// What apply did and what it saw: status is computed from this alone.
#[derive(Debug, Default)]
pub struct Applied {
    /// Live StatefulSets by name, after the apply.
    pub stateful_sets: BTreeMap<String, StatefulSet>,
    /// Live Deployments by name, after the apply.
    pub deployments: BTreeMap<String, Deployment>,
    /// Children created (they did not exist before).
    pub created: Vec<ChildKey>,
    /// Children patched because they differed.
    pub updated: Vec<ChildKey>,
    /// Unwanted children deleted.
    pub deleted: Vec<ChildKey>,
}

impl Applied {
    /// API writes made (for the "second reconcile writes nothing" guarantee and the benchmark).
    pub fn writes(&self) -> usize {
        self.created.len() + self.updated.len() + self.deleted.len()
    }
}

/// Applies every desired child and deletes the unwanted ones.
pub async fn apply(
    client: &Client,
    caches: &Caches,
    b: &Bridge,
    desired: &Desired,
) -> Result<Applied> {
    let mut applied = Applied::default();
    let at = Cluster { client, caches };
    for child in desired.children() {
        apply_child(&at, &b.namespace, child, &mut applied).await?;
    }
    for key in desired.unwanted(b) {
        delete_if_owned(&at, b, &key, &mut applied).await?;
    }
    Ok(applied)
}

async fn apply_child(
    at: &Cluster<'_>,
    ns: &str,
    child: Child<'_>,
    applied: &mut Applied,
) -> Result<()> {
    let key = child.key();
    let (c, k) = (at.caches, at.client);
    let outcome = match child {
        Child::ServiceAccount(o) => {
            ensure(
                Api::<ServiceAccount>::namespaced(k.clone(), ns),
                &c.service_accounts,
                o,
            )
            .await?
            .1
        }
        Child::Role(o) => {
            ensure(Api::<Role>::namespaced(k.clone(), ns), &c.roles, o)
                .await?
                .1
        }
        Child::RoleBinding(o) => {
            ensure(
                Api::<RoleBinding>::namespaced(k.clone(), ns),
                &c.role_bindings,
                o,
            )
            .await?
            .1
        }
        Child::ConfigMap(o) => {
            ensure(
                Api::<ConfigMap>::namespaced(k.clone(), ns),
                &c.config_maps,
                o,
            )
            .await?
            .1
        }
        Child::Secret(o) => {
            ensure_secret(Api::<Secret>::namespaced(k.clone(), ns), &c.secrets, o).await?
        }
        Child::Service(o) => {
            ensure(Api::<Service>::namespaced(k.clone(), ns), &c.services, o)
                .await?
                .1
        }
        Child::NetworkPolicy(o) => {
            ensure(
                Api::<NetworkPolicy>::namespaced(k.clone(), ns),
                &c.network_policies,
                o,
            )
            .await?
            .1
        }
        Child::PodDisruptionBudget(o) => {
            ensure(
                Api::<PodDisruptionBudget>::namespaced(k.clone(), ns),
                &c.pod_disruption_budgets,
                o,
            )
            .await?
            .1
        }
        Child::StatefulSet(o) => {
            let (live, outcome) = ensure_stateful_set(
                Api::<StatefulSet>::namespaced(k.clone(), ns),
                &c.stateful_sets,
                o,
            )
            .await?;
            applied.stateful_sets.insert(key.name.clone(), live);
            outcome
        }
        Child::HorizontalPodAutoscaler(o) => {
            ensure(
                Api::<HorizontalPodAutoscaler>::namespaced(k.clone(), ns),
                &c.horizontal_pod_autoscalers,
                o,
            )
            .await?
            .1
        }
        Child::Deployment(o) => {
            let api = Api::<Deployment>::namespaced(k.clone(), ns);
            hand_over_replicas(&api, &c.deployments, o).await?;
            let (live, outcome) = ensure(api, &c.deployments, o).await?;
            applied.deployments.insert(key.name.clone(), live);
            outcome
        }
    };
    match outcome {
        Outcome::Created => applied.created.push(key),
        Outcome::Updated => applied.updated.push(key),
        Outcome::Unchanged => {}
    }
    Ok(())
}

/// Where children are written (the API) and read (the watch caches).
struct Cluster<'a> {
    client: &'a Client,
    caches: &'a Caches,
}

/// What [`ensure`] had to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created,
    Updated,
    Unchanged,
}

/// Server-side applies `desired` unless the cached live object already
/// matches it.
pub async fn ensure<K>(api: Api<K>, cache: &Store<Slim<K>>, desired: &K) -> Result<(K, Outcome)>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = desired.name_any();
    let body = with_hash(typed_json(desired)?);
    let live = cached(cache, &namespace_of(desired), &name);
    if let Some(live) = &live
        && up_to_date(&live.to_json()?, &body)
    {
        return Ok((live.object()?, Outcome::Unchanged));
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api.patch(&name, &params, &Patch::Apply(&body)).await?;
    let outcome = if live.is_some() {
        Outcome::Updated
    } else {
        Outcome::Created
    };
    Ok((written, outcome))
}

/// The field manager that keeps a Deployment's `replicas` while its
/// ownership passes from the operator to a HorizontalPodAutoscaler.
pub const HANDOVER_MANAGER: &str = "cachebridge-operator-handover";

/// Before the operator stops setting a live Deployment's `replicas` (the
/// bridge turned autoscaling on), another manager takes the field over at
/// its current value. Without it, server-side apply would remove a field
/// that no manager owns any more, and the Deployment would fall back to
/// one replica until the HPA scales it up again. The HPA then changes it
/// like any owner would. Done only while the cached Deployment still has a
/// count and the desired one none, i.e. only when the apply would release
/// the field (each later change of the Deployment repeats it, one small
/// write, harmless: the same value). A conflict means another manager (the
/// HPA) set a different value since, so the handover is not needed.
async fn hand_over_replicas(
    api: &Api<Deployment>,
    cache: &Store<Slim<Deployment>>,
    desired: &Deployment,
) -> Result<()> {
    if desired.spec.as_ref().and_then(|s| s.replicas).is_some() {
        return Ok(());
    }
    let name = desired.name_any();
    let Some(live) = cached(cache, &namespace_of(desired), &name) else {
        return Ok(());
    };
    let live = live.to_json()?;
    let Some(replicas) = live.pointer("/spec/replicas").cloned() else {
        return Ok(());
    };
    if !up_to_date(&live, &with_hash(typed_json(desired)?)) {
        let body = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace_of(desired)},
            "spec": {"replicas": replicas},
        });
        match api
            .patch(
                &name,
                &PatchParams::apply(HANDOVER_MANAGER),
                &Patch::Apply(&body),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A StatefulSet, replaced when the change touches a field Kubernetes will
/// not update in place (volumeClaimTemplates when persistence is switched
/// on, for instance). The old one is deleted with `Orphan` propagation, so
/// its pods keep serving until the new StatefulSet adopts and rolls them.
async fn ensure_stateful_set(
    api: Api<StatefulSet>,
    cache: &Store<Slim<StatefulSet>>,
    desired: &StatefulSet,
) -> Result<(StatefulSet, Outcome)> {
    match ensure(api.clone(), cache, desired).await {
        Err(Error::Kube(kube::Error::Api(e)))
            if e.code == 422 && e.message.contains("updates to statefulset spec") =>
        {
            let name = desired.name_any();
            tracing::info!(
                name,
                "replacing a StatefulSet: the change is not allowed in place"
            );
            api.delete(&name, &DeleteParams::orphan()).await?;
            let params = PatchParams::apply(FIELD_MANAGER).force();
            let body = with_hash(typed_json(desired)?);
            let live = api.patch(&name, &params, &Patch::Apply(&body)).await?;
            Ok((live, Outcome::Updated))
        }
        other => other,
    }
}

/// A generated Secret: created once with fresh values for the keys it
/// names, then only its metadata is kept current (the data goes back
/// unchanged, read afresh: SSA would drop fields the manager stops sending,
/// and a mutable Secret, the ingest token, may have been rotated since it
/// was last seen). An existing Secret without the keys was made by someone
/// else: the operator will not overwrite a value that may be in use.
///
/// API read: Secrets are not watched (see `caches`), so the live Secret is
/// as last seen, read again with one GET at most every
/// [`crate::caches::SECRET_RECHECK`] (and at the first reconcile). Its
/// absence is never taken from memory: it would mean new passwords.
async fn ensure_secret(api: Api<Secret>, seen: &SeenSecrets, desired: &Secret) -> Result<Outcome> {
    let name = desired.name_any();
    let ns = namespace_of(desired);
    let mut body = with_hash(typed_json(desired)?);
    let live = match seen.get(&ns, &name) {
        Some(Some(live)) => Some((*live).clone()),
        _ => api.get_opt(&name).await?,
    };
    let keys = generated_keys(desired);
    let (data, outcome) = match live {
        Some(live) => {
            let data = live.data.clone().unwrap_or_default();
            if let Some(missing) = keys.iter().find(|k| !data.contains_key(*k)) {
                return Err(Error::ForeignSecret {
                    name,
                    missing: missing.clone(),
                });
            }
            if up_to_date(&serde_json::to_value(&live)?, &body) {
                seen.remember(&ns, &name, Some(live));
                return Ok(Outcome::Unchanged);
            }
            let fresh = api.get_opt(&name).await?.and_then(|s| s.data);
            (fresh.unwrap_or(data), Outcome::Updated)
        }
        None => (generated_values(&keys), Outcome::Created),
    };
    body["data"] = serde_json::to_value(data)?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let written = api.patch(&name, &params, &Patch::Apply(&body)).await?;
    seen.remember(&ns, &name, Some(written));
    Ok(outcome)
}

fn generated_values(keys: &[String]) -> BTreeMap<String, ByteString> {
    keys.iter()
        .map(|k| (k.clone(), ByteString(generate_password().into_bytes())))
        .collect()
}

/// 32 random alphanumeric characters (~190 bits) from the OS-seeded CSPRNG.
/// Alphanumeric only: the passwords are written into redis.conf by a shell script.
pub fn generate_password() -> String {
    use rand::Rng;
    rand::rng()
        .sample_iter(rand::distr::Alphanumeric)
        .take(32)
        .map(char::from)
        .collect()
}

/// Deletes a child the bridge no longer wants, if the cache holds it and it is ours.
async fn delete_if_owned(
    at: &Cluster<'_>,
    b: &Bridge,
    key: &ChildKey,
    applied: &mut Applied,
) -> Result<()> {
    let ns = &b.namespace;
    let (c, k, name) = (at.caches, at.client, &key.name);
    let deleted = match key.kind {
        Kind::ServiceAccount => {
            delete_owned(
                Api::<ServiceAccount>::namespaced(k.clone(), ns),
                &c.service_accounts,
                b,
                name,
            )
            .await?
        }
        Kind::Role => {
            delete_owned(Api::<Role>::namespaced(k.clone(), ns), &c.roles, b, name).await?
        }
        Kind::RoleBinding => {
            delete_owned(
                Api::<RoleBinding>::namespaced(k.clone(), ns),
                &c.role_bindings,
                b,
                name,
            )
            .await?
        }
        Kind::ConfigMap => {
            delete_owned(
                Api::<ConfigMap>::namespaced(k.clone(), ns),
                &c.config_maps,
                b,
                name,
            )
            .await?
        }
        Kind::Secret => {
            delete_seen_secret(
                Api::<Secret>::namespaced(k.clone(), ns),
                &c.secrets,
                b,
                name,
            )
            .await?
        }
        Kind::Service => {
            delete_owned(
                Api::<Service>::namespaced(k.clone(), ns),
                &c.services,
                b,
                name,
            )
            .await?
        }
        Kind::NetworkPolicy => {
            delete_owned(
                Api::<NetworkPolicy>::namespaced(k.clone(), ns),
                &c.network_policies,
                b,
                name,
            )
            .await?
        }
        Kind::StatefulSet => {
            delete_owned(
                Api::<StatefulSet>::namespaced(k.clone(), ns),
                &c.stateful_sets,
                b,
                name,
            )
            .await?
        }
        Kind::Deployment => {
            delete_owned(
                Api::<Deployment>::namespaced(k.clone(), ns),
                &c.deployments,
                b,
                name,
            )
            .await?
        }
        Kind::HorizontalPodAutoscaler => {
            delete_owned(
                Api::<HorizontalPodAutoscaler>::namespaced(k.clone(), ns),
                &c.horizontal_pod_autoscalers,
                b,
                name,
            )
            .await?
        }
        Kind::PodDisruptionBudget => {
            delete_owned(
                Api::<PodDisruptionBudget>::namespaced(k.clone(), ns),
                &c.pod_disruption_budgets,
                b,
                name,
            )
            .await?
        }
    };
    if deleted {
        applied.deleted.push(key.clone());
    }
    Ok(())
}

async fn delete_owned<K>(
    api: Api<K>,
    cache: &Store<Slim<K>>,
    b: &Bridge,
    name: &str,
) -> Result<bool>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let Some(live) = cached(cache, &b.namespace, name) else {
        return Ok(false);
    };
    delete_if_ours(&api, b, name, &*live).await
}

async fn delete_if_ours<K, L>(api: &Api<K>, b: &Bridge, name: &str, live: &L) -> Result<bool>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
    L: Resource,
{
    let ours = live.owner_references().iter().any(|o| o.uid == b.owner.uid);
    if !ours {
        tracing::warn!(name, "not deleting an object this bridge does not own");
        return Ok(false);
    }
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        // Gone in the meantime: the goal is reached.
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// [`delete_owned`] for a Secret, which is not watched: it is looked up as
/// last seen, and read from the API at most every
/// [`crate::caches::SECRET_RECHECK`] (an external-Redis bridge does not
/// look for its old generated Secret on every reconcile).
async fn delete_seen_secret(
    api: Api<Secret>,
    seen: &SeenSecrets,
    b: &Bridge,
    name: &str,
) -> Result<bool> {
    let live = match seen.get(&b.namespace, name) {
        Some(live) => live.map(|s| (*s).clone()),
        None => api.get_opt(name).await?,
    };
    seen.remember(&b.namespace, name, None);
    let Some(live) = live else {
        return Ok(false);
    };
    delete_if_ours(&api, b, name, &live).await
}

fn namespace_of<K: Resource>(o: &K) -> String {
    o.meta().namespace.clone().unwrap_or_default()
}

/// The object as JSON with `apiVersion` and `kind`, as server-side apply needs.
fn typed_json<K: Resource<DynamicType = ()> + Serialize>(o: &K) -> Result<Value> {
    let mut value = serde_json::to_value(o)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), K::api_version(&()).into());
        map.insert("kind".into(), K::kind(&()).into());
    }
    Ok(value)
}

/// Adds the applied-hash annotation, computed over everything else.
fn with_hash(mut body: Value) -> Value {
    let hash = format!(
        "{:016x}",
        xxhash_rust::xxh3::xxh3_64(body.to_string().as_bytes())
    );
    if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations.as_object_mut() {
            map.insert(APPLIED_HASH.into(), hash.into());
        }
    }
    body
}

/// Whether the live object carries the same applied hash and every field of `body`.
pub fn up_to_date(live: &Value, body: &Value) -> bool {
    let hash = |v: &Value| {
        v.pointer("/metadata/annotations")
            .and_then(|a| a.get(APPLIED_HASH))
            .cloned()
    };
    hash(live).is_some() && hash(live) == hash(body) && is_subset(body, live)
}

/// Whether every field set in `desired` has the same value in `live`.
///
/// Arrays must match element by element. A desired empty value (`null`,
/// `false`, `[]`, `{}`) matches a missing live field: the apiserver drops
/// such values when it stores an object.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(d), Value::Object(l)) => d.iter().all(|(k, dv)| match l.get(k) {
            Some(lv) => is_subset(dv, lv),
            None => is_empty(dv),
        }),
        (Value::Array(d), Value::Array(l)) => {
            d.len() == l.len() && d.iter().zip(l).all(|(dv, lv)| is_subset(dv, lv))
        }
        (Value::Number(d), Value::Number(l)) => d.as_f64() == l.as_f64(),
        (d, l) => d == l,
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_ignores_server_added_fields_and_dropped_empties() {
        let desired =
            json!({"spec": {"replicas": 2, "ports": [{"port": 80}], "readOnly": false, "x": []}});
        let live = json!({"spec": {"replicas": 2, "ports": [{"port": 80, "protocol": "TCP"}], "clusterIP": "10.0.0.1"}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn subset_sees_drift_and_missing_items() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 5, "ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": []}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"ports": [{"port": 80}]}})
        ));
    }

    #[test]
    fn up_to_date_needs_the_same_hash() {
        let body = with_hash(json!({"metadata": {"name": "a"}, "data": {"k": "v"}}));
        assert!(up_to_date(&body, &body));
        let changed = with_hash(json!({"metadata": {"name": "a"}, "data": {"k": "w"}}));
        assert!(!up_to_date(&body, &changed));
        let unannotated = json!({"metadata": {"name": "a"}, "data": {"k": "v"}});
        assert!(!up_to_date(&unannotated, &body));
    }

    #[test]
    fn passwords_are_long_random_and_shell_safe() {
        let (a, b) = (generate_password(), generate_password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
