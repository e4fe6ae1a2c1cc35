//! Watch caches of the bridges' children: what a reconcile reads instead of
//! the API server.
//!
//! At fleet scale the API server is shared, and a GET per child per
//! reconcile (18 for a minimal bridge, every 30 s) adds up to hundreds of
//! requests a second. The controller already watches every kind it owns
//! (label `app.kubernetes.io/managed-by=cachebridge-operator`, so only its
//! own objects); [`CacheWriters::into_streams`] feeds those watches through
//! reflectors, and the reconcile reads the children from the resulting
//! [`Caches`], like kube-rs controller-rs and the Stackable operators do.
//!
//! Secrets are the exception: watching them needs `list` on every Secret
//! the operator may see, which the chart does not grant (enumerating a
//! cluster's Secrets is too much power for a cache). What the operator last
//! read or wrote of a Secret is remembered in [`SeenSecrets`] instead, and
//! read again from the API at most every [`SECRET_RECHECK`], or after it
//! proved wrong (a password Redis refused).
//!
//! A cache may lag behind the API by a watch event. That is safe here:
//! - a child missing from the cache is applied (server-side apply creates or
//!   patches, so a lagging cache costs one redundant write, never a wrong
//!   one);
//! - a child in the cache that differs is applied; a stale copy again only
//!   costs one idempotent write;
//! - a child the bridge no longer wants is deleted only when the cache holds
//!   it; if it is not cached yet, its creation event triggers a reconcile
//!   that deletes it.
//!
//! Objects are cached as [`Slim`] copies: their metadata (without
//! `managedFields`, which the reconcile never reads) and the rest as compact
//! JSON text. The typed k8s-openapi structs hold every optional field of a
//! pod template inline (a `Volume` alone is kilobytes of `None`s), so a
//! cached Deployment took several times the size of its JSON; at 1000
//! bridges that was most of the operator's memory (operator/BENCHMARKS.md).
//! The reconcile compares JSON anyway, and parses the few workloads whose
//! status it reads when it needs them.

use crate::desired::labels;
use crate::error::Result;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a Secret read from the API is trusted before it is read again.
pub const SECRET_RECHECK: Duration = Duration::from_secs(3600);

/// The read side: one store per child kind.
#[derive(Clone)]
pub struct Caches {
    pub service_accounts: Store<Slim<ServiceAccount>>,
    pub roles: Store<Slim<Role>>,
    pub role_bindings: Store<Slim<RoleBinding>>,
    pub config_maps: Store<Slim<ConfigMap>>,
    pub services: Store<Slim<Service>>,
    pub network_policies: Store<Slim<NetworkPolicy>>,
    pub stateful_sets: Store<Slim<StatefulSet>>,
    pub deployments: Store<Slim<Deployment>>,
    pub pod_disruption_budgets: Store<Slim<PodDisruptionBudget>>,
    pub horizontal_pod_autoscalers: Store<Slim<HorizontalPodAutoscaler>>,
    pub secrets: Arc<SeenSecrets>,
}

/// The write side, fed by the controller's watches (or, in tests and the
/// benchmark, by [`CacheWriters::fill_from`], which plays them).
pub struct CacheWriters {
    pub service_accounts: Writer<Slim<ServiceAccount>>,
    pub roles: Writer<Slim<Role>>,
    pub role_bindings: Writer<Slim<RoleBinding>>,
    pub config_maps: Writer<Slim<ConfigMap>>,
    pub services: Writer<Slim<Service>>,
    pub network_policies: Writer<Slim<NetworkPolicy>>,
    pub stateful_sets: Writer<Slim<StatefulSet>>,
    pub deployments: Writer<Slim<Deployment>>,
    pub pod_disruption_budgets: Writer<Slim<PodDisruptionBudget>>,
    pub horizontal_pod_autoscalers: Writer<Slim<HorizontalPodAutoscaler>>,
}

/// Empty caches and the writers that fill them.
pub fn caches() -> (Caches, CacheWriters) {
    let (service_accounts, w_sa) = reflector::store();
    let (roles, w_role) = reflector::store();
    let (role_bindings, w_rb) = reflector::store();
    let (config_maps, w_cm) = reflector::store();
    let (services, w_svc) = reflector::store();
    let (network_policies, w_np) = reflector::store();
    let (stateful_sets, w_sts) = reflector::store();
    let (deployments, w_deploy) = reflector::store();
    let (pod_disruption_budgets, w_pdb) = reflector::store();
    let (horizontal_pod_autoscalers, w_hpa) = reflector::store();
    let caches = Caches {
        service_accounts,
        roles,
        role_bindings,
        config_maps,
        services,
        network_policies,
        stateful_sets,
        deployments,
        pod_disruption_budgets,
        horizontal_pod_autoscalers,
        secrets: Arc::default(),
    };
    let writers = CacheWriters {
        service_accounts: w_sa,
        roles: w_role,
        role_bindings: w_rb,
        config_maps: w_cm,
        services: w_svc,
        network_policies: w_np,
        stateful_sets: w_sts,
        deployments: w_deploy,
        pod_disruption_budgets: w_pdb,
        horizontal_pod_autoscalers: w_hpa,
    };
    (caches, writers)
}

/// The object `name` in `namespace`, as the cache holds it.
pub fn cached<K>(store: &Store<Slim<K>>, namespace: &str, name: &str) -> Option<Arc<Slim<K>>>
where
    K: Resource<DynamicType = ()>,
{
    store.get(&ObjectRef::new(name).within(namespace))
}

/// A cached child: its metadata, and everything else as compact JSON.
pub struct Slim<K> {
    meta: ObjectMeta,
    /// The object without `metadata`, as JSON text.
    rest: Box<str>,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Slim<K> {
    fn clone(&self) -> Self {
        Slim {
            meta: self.meta.clone(),
            rest: self.rest.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> Debug for Slim<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slim")
            .field("meta", &self.meta)
            .field("rest", &self.rest)
            .finish()
    }
}

impl<K: Resource<DynamicType = ()> + Serialize> Slim<K> {
    /// The cached form of `object`, without its `managedFields`.
    pub fn new(mut object: K) -> Self {
        let mut meta = std::mem::take(object.meta_mut());
        meta.managed_fields = None;
        // Serializing a k8s-openapi object (string keys, no maps with
        // other keys) cannot fail.
        let rest = serde_json::to_string(&object).expect("a Kubernetes object serializes");
        Slim {
            meta,
            rest: rest.into_boxed_str(),
            kind: PhantomData,
        }
    }

    /// The object as JSON, metadata included (what the reconcile compares).
    pub fn to_json(&self) -> serde_json::Result<Value> {
        let mut value: Value = serde_json::from_str(&self.rest)?;
        if let Some(map) = value.as_object_mut() {
            map.insert("metadata".into(), serde_json::to_value(&self.meta)?);
        }
        Ok(value)
    }

    /// The typed object (for the workloads whose status the reconcile reads).
    pub fn object(&self) -> serde_json::Result<K>
    where
        K: DeserializeOwned,
    {
        serde_json::from_value(self.to_json()?)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Slim<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

/// A watch event with its object made [`Slim`].
fn slim_event<K: Resource<DynamicType = ()> + Serialize>(
    event: watcher::Event<K>,
) -> watcher::Event<Slim<K>> {
    use watcher::Event;
    match event {
        Event::Apply(o) => Event::Apply(Slim::new(o)),
        Event::Delete(o) => Event::Delete(Slim::new(o)),
        Event::Init => Event::Init,
        Event::InitApply(o) => Event::InitApply(Slim::new(o)),
        Event::InitDone => Event::InitDone,
    }
}

/// What was last seen of each Secret (`None`: it did not exist), by
/// (namespace, name), and when.
type Seen = HashMap<(String, String), (Instant, Option<Arc<Secret>>)>;

/// Secrets as last read from or written to the API.
#[derive(Default)]
pub struct SeenSecrets(Mutex<Seen>);

impl SeenSecrets {
    /// The Secret as last seen (`Some(None)`: seen absent), unless that is
    /// older than [`SECRET_RECHECK`] or was forgotten (`None`).
    pub fn get(&self, namespace: &str, name: &str) -> Option<Option<Arc<Secret>>> {
        let seen = self.lock();
        let (at, secret) = seen.get(&(namespace.to_string(), name.to_string()))?;
        (at.elapsed() < SECRET_RECHECK).then(|| secret.clone())
    }

    pub fn remember(&self, namespace: &str, name: &str, secret: Option<Secret>) {
        let key = (namespace.to_string(), name.to_string());
        self.lock()
            .insert(key, (Instant::now(), secret.map(Arc::new)));
    }

    /// Drops what was seen, so the next use reads the API.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The label selector of every watch: only the operator's own objects.
pub fn owned_selector() -> String {
    format!("{}={}", labels::MANAGED_BY, labels::MANAGER)
}

impl Caches {
    /// Waits until every cache holds its first complete listing, so the
    /// first reconciles do not mistake "not listed yet" for "absent".
    pub async fn wait_until_ready(&self) {
        // A writer dropped before its first listing (the controller is
        // shutting down) leaves nothing to wait for.
        let _ = tokio::join!(
            self.service_accounts.wait_until_ready(),
            self.roles.wait_until_ready(),
            self.role_bindings.wait_until_ready(),
            self.config_maps.wait_until_ready(),
            self.services.wait_until_ready(),
            self.network_policies.wait_until_ready(),
            self.stateful_sets.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.pod_disruption_budgets.wait_until_ready(),
            self.horizontal_pod_autoscalers.wait_until_ready(),
        );
    }

    /// Objects held, over every kind (for the benchmark and metrics).
    pub fn len(&self) -> usize {
        self.service_accounts.state().len()
            + self.roles.state().len()
            + self.role_bindings.state().len()
            + self.config_maps.state().len()
            + self.services.state().len()
            + self.network_policies.state().len()
            + self.stateful_sets.state().len()
            + self.deployments.state().len()
            + self.pod_disruption_budgets.state().len()
            + self.horizontal_pod_autoscalers.state().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl CacheWriters {
    /// Replaces every cache's content with a listing from the API: what a
    /// watch's (re)list does. Tests and the benchmark use it to play the
    /// watches, which the in-memory API backend does not serve.
    pub async fn fill_from(&mut self, client: &Client, namespace: &str) -> Result<()> {
        fill(&mut self.service_accounts, client, namespace).await?;
        fill(&mut self.roles, client, namespace).await?;
        fill(&mut self.role_bindings, client, namespace).await?;
        fill(&mut self.config_maps, client, namespace).await?;
        fill(&mut self.services, client, namespace).await?;
        fill(&mut self.network_policies, client, namespace).await?;
        fill(&mut self.stateful_sets, client, namespace).await?;
        fill(&mut self.deployments, client, namespace).await?;
        fill(&mut self.pod_disruption_budgets, client, namespace).await?;
        fill(&mut self.horizontal_pod_autoscalers, client, namespace).await
    }
}

async fn fill<K>(writer: &mut Writer<Slim<K>>, client: &Client, namespace: &str) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let listed = api
        .list(&ListParams::default().labels(&owned_selector()))
        .await?;
    writer.apply_watcher_event(&watcher::Event::Init);
    for o in listed.items {
        writer.apply_watcher_event(&watcher::Event::InitApply(Slim::new(o)));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    Ok(())
}

/// A watch of the operator's own objects of kind `K` that keeps `writer`'s
/// cache current; the stream's objects trigger reconciles of their owners.
pub fn watch<K>(
    api: Api<K>,
    writer: Writer<Slim<K>>,
) -> impl futures::Stream<Item = std::result::Result<Slim<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug
        + Send
        + Sync
        + 'static,
{
    use futures::TryStreamExt;
    let config = watcher::Config::default().labels(&owned_selector());
    watcher(api, config)
        .default_backoff()
        .map_ok(slim_event)
        .reflect(writer)
        .touched_objects()
}
