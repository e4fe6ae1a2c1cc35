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
//! Objects are cached as [`Slim`] copies: a few typed metadata fields and
//! the rest as compact JSON text, which is what the reconcile compares
//! anyway (`apply::up_to_date` works on JSON); the two workload kinds whose
//! status it reads are parsed back when needed (2–3 objects per reconcile).
//! They are made straight from the API's JSON, listings and watch events
//! alike: a typed k8s-openapi object holds every optional field of a pod
//! template inline (a `Volume` alone is kilobytes of `None`s), so typed
//! copies, even briefly, were most of the operator's memory at 1000 bridges
//! (operator/BENCHMARKS.md). A Slim copy also leaves out what no reconcile
//! reads: `managedFields` (often as large as the object), the uid and
//! creation time, `apiVersion` and `kind` (constants of the kind), and the
//! `status` of every kind but the workloads; and it packs the labels and
//! annotations every child repeats into a byte each ([`pack`]).
//!
//! Listings are paged ([`PAGE_SIZE`] objects, as kube's watcher does), and a
//! re-list after the first replaces cached objects one by one rather than
//! building a second cache and swapping it in ([`CacheWriter`]): a re-list
//! never holds two copies of a cache.

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
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
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
    pub service_accounts: CacheWriter<ServiceAccount>,
    pub roles: CacheWriter<Role>,
    pub role_bindings: CacheWriter<RoleBinding>,
    pub config_maps: CacheWriter<ConfigMap>,
    pub services: CacheWriter<Service>,
    pub network_policies: CacheWriter<NetworkPolicy>,
    pub stateful_sets: CacheWriter<StatefulSet>,
    pub deployments: CacheWriter<Deployment>,
    pub pod_disruption_budgets: CacheWriter<PodDisruptionBudget>,
    pub horizontal_pod_autoscalers: CacheWriter<HorizontalPodAutoscaler>,
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
        service_accounts: CacheWriter::new(w_sa),
        roles: CacheWriter::new(w_role),
        role_bindings: CacheWriter::new(w_rb),
        config_maps: CacheWriter::new(w_cm),
        services: CacheWriter::new(w_svc),
        network_policies: CacheWriter::new(w_np),
        stateful_sets: CacheWriter::new(w_sts),
        deployments: CacheWriter::new(w_deploy),
        pod_disruption_budgets: CacheWriter::new(w_pdb),
        horizontal_pod_autoscalers: CacheWriter::new(w_hpa),
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

/// A cached child, made straight from the API's JSON (see the module's doc).
///
/// `meta` holds only what kube's watcher, reflector and controller read
/// (name, namespace, resourceVersion, generation, ownerReferences): its
/// labels and annotations are in `rest`, so read them from [`Slim::to_json`].
pub struct Slim<K> {
    meta: ObjectMeta,
    /// The rest of the object as compact JSON text ([`pack`]ed), without [`UNREAD_META`],
    /// `apiVersion` and `kind`, and without `status` unless the reconcile
    /// reads it ([`reads_status`]).
    rest: Box<str>,
    kind: PhantomData<fn() -> K>,
}

/// The metadata fields kept typed in [`Slim::meta`].
const TYPED_META: [&str; 5] = [
    "name",
    "namespace",
    "resourceVersion",
    "generation",
    "ownerReferences",
];

/// Metadata no reconcile reads or compares (it never sets them), left out
/// of [`Slim`] copies: `managedFields` is often as large as the object.
const UNREAD_META: [&str; 4] = ["managedFields", "creationTimestamp", "uid", "selfLink"];

/// Whether the reconcile reads the status of `kind`: only the workloads,
/// whose ready replicas make the bridge's conditions.
pub fn reads_status(kind: &str) -> bool {
    matches!(kind, "StatefulSet" | "Deployment")
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

impl<K: Resource<DynamicType = ()>> Slim<K> {
    /// The cached form of `object`, the API's JSON of a `K`.
    pub fn from_json(object: Value) -> serde_json::Result<Self> {
        let Value::Object(mut rest) = object else {
            return Err(serde::de::Error::custom(
                "a Kubernetes object is a JSON object",
            ));
        };
        let mut metadata = match rest.remove("metadata") {
            Some(Value::Object(m)) => m,
            _ => Map::new(),
        };
        for unread in UNREAD_META {
            metadata.remove(unread);
        }
        let typed: Map<String, Value> = TYPED_META
            .iter()
            .filter_map(|k| metadata.remove_entry(*k))
            .collect();
        let meta: ObjectMeta = serde_json::from_value(Value::Object(typed))?;
        rest.remove("apiVersion");
        rest.remove("kind");
        if !reads_status(&K::kind(&())) {
            rest.remove("status");
        }
        if !metadata.is_empty() {
            rest.insert("metadata".into(), Value::Object(metadata));
        }
        Ok(Slim {
            meta,
            rest: pack(&serde_json::to_string(&rest)?).into_boxed_str(),
            kind: PhantomData,
        })
    }

    /// The object as JSON, with its metadata, `apiVersion` and `kind` (what
    /// the reconcile compares).
    pub fn to_json(&self) -> serde_json::Result<Value> {
        let mut object: Map<String, Value> = serde_json::from_str(&unpack(&self.rest))?;
        let Value::Object(typed) = serde_json::to_value(&self.meta)? else {
            return Err(serde::de::Error::custom("metadata is a JSON object"));
        };
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(metadata) = metadata.as_object_mut() {
            metadata.extend(typed);
        }
        object.insert("apiVersion".into(), K::api_version(&()).into());
        object.insert("kind".into(), K::kind(&()).into());
        Ok(Value::Object(object))
    }

    /// The typed object (for the workloads whose status the reconcile reads).
    pub fn object(&self) -> serde_json::Result<K>
    where
        K: DeserializeOwned,
    {
        serde_json::from_value(self.to_json()?)
    }
}

/// What every child the operator writes repeats, in the order [`pack`]
/// replaces them (longest first where one contains another): its own
/// labels and annotations, a few hundred bytes of each cached object.
const PACKED: [&str; 11] = [
    r#""app.kubernetes.io/managed-by":"cachebridge-operator""#,
    r#""app.kubernetes.io/name":"cachebridge""#,
    r#""app.kubernetes.io/part-of":"cachebridge""#,
    r#""app.kubernetes.io/component":""#,
    r#""app.kubernetes.io/instance":""#,
    r#""cachebridge.dev/applied-hash":""#,
    r#""cachebridge.dev/config-hash":""#,
    r#""annotations":{"#,
    r#""matchLabels":{"#,
    r#""labels":{"#,
    "cachebridge",
];

/// `json` with each [`PACKED`] string replaced by one control byte (1, 2,
/// …). JSON text never holds a raw control byte (serde_json escapes them
/// inside strings), so [`unpack`] restores it exactly.
fn pack(json: &str) -> String {
    PACKED
        .iter()
        .zip(1u8..)
        .fold(json.to_string(), |text, (s, code)| {
            text.replace(s, char::from(code).encode_utf8(&mut [0; 1]))
        })
}

/// The JSON text [`pack`] was given.
fn unpack(packed: &str) -> Cow<'_, str> {
    if !packed
        .bytes()
        .any(|b| (1..=PACKED.len() as u8).contains(&b))
    {
        return Cow::Borrowed(packed);
    }
    let mut text = String::with_capacity(packed.len() * 2);
    for c in packed.chars() {
        match PACKED.get((c as usize).wrapping_sub(1)) {
            Some(s) => text.push_str(s),
            None => text.push(c),
        }
    }
    Cow::Owned(text)
}

/// Listings and watch events are read straight into [`Slim`] copies: no
/// typed `K` is built on the way.
impl<'de, K: Resource<DynamicType = ()>> Deserialize<'de> for Slim<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Slim::from_json(Value::deserialize(d)?).map_err(serde::de::Error::custom)
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

/// One kind's cache writer. The first listing fills the empty cache as
/// kube's reflector does; a later re-list (a watch that lost its place,
/// or a test playing the watch again) replaces objects one by one and then
/// drops the ones it did not list, instead of buffering a second copy of
/// the whole cache and swapping it in.
pub struct CacheWriter<K: Resource<DynamicType = ()> + 'static> {
    writer: Writer<Slim<K>>,
    /// Whether the first listing is complete.
    listed: bool,
    /// What the re-list under way has listed so far.
    relisting: Option<HashSet<ObjectRef<Slim<K>>>>,
}

impl<K: Resource<DynamicType = ()> + 'static> CacheWriter<K> {
    fn new(writer: Writer<Slim<K>>) -> Self {
        CacheWriter {
            writer,
            listed: false,
            relisting: None,
        }
    }

    /// Applies one watch event to the cache and hands it on.
    pub fn apply(&mut self, event: watcher::Event<Slim<K>>) -> watcher::Event<Slim<K>> {
        use watcher::Event;
        match (event, self.relisting.as_mut()) {
            (Event::Init, _) if self.listed => {
                self.relisting = Some(HashSet::new());
                Event::Init
            }
            (Event::InitApply(o), Some(seen)) => {
                seen.insert(ObjectRef::from_obj(&o));
                let applied = Event::Apply(o);
                self.writer.apply_watcher_event(&applied);
                let Event::Apply(o) = applied else {
                    unreachable!("built above")
                };
                Event::InitApply(o)
            }
            (Event::InitDone, Some(_)) => {
                let seen = self.relisting.take().unwrap_or_default();
                self.drop_unlisted(&seen);
                Event::InitDone
            }
            (event, _) => {
                self.writer.apply_watcher_event(&event);
                self.listed |= matches!(event, Event::InitDone);
                event
            }
        }
    }

    /// Ends a re-list: what it did not list is gone.
    fn drop_unlisted(&mut self, seen: &HashSet<ObjectRef<Slim<K>>>) {
        let gone: Vec<Arc<Slim<K>>> = self
            .writer
            .as_reader()
            .state()
            .into_iter()
            .filter(|o| !seen.contains(&ObjectRef::from_obj(&**o)))
            .collect();
        for o in gone {
            self.writer
                .apply_watcher_event(&watcher::Event::Delete((*o).clone()));
        }
    }

    /// Empties the cache and frees its table (kube's buffered restart with
    /// an empty listing).
    fn empty(&mut self) {
        self.writer.apply_watcher_event(&watcher::Event::Init);
        self.writer.apply_watcher_event(&watcher::Event::InitDone);
        self.relisting = None;
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

    /// Remembers `secret` as seen now, without its `managedFields` (nothing
    /// reads them, and they are often as large as the Secret).
    pub fn remember(&self, namespace: &str, name: &str, secret: Option<Secret>) {
        let key = (namespace.to_string(), name.to_string());
        let secret = secret.map(|mut s| {
            s.metadata.managed_fields = None;
            Arc::new(s)
        });
        self.lock().insert(key, (Instant::now(), secret));
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

/// Objects per listing page: what kube's watcher asks for by default.
pub const PAGE_SIZE: u32 = 500;

impl CacheWriters {
    /// Replaces every cache's content with a listing from the API: what a
    /// watch's (re)list does, page by page. Tests and the benchmark use it
    /// to play the watches, which the in-memory API backend does not serve.
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

    /// Empties every cache, tables included (the benchmark measures the
    /// caches' heap with it).
    pub fn empty(&mut self) {
        self.service_accounts.empty();
        self.roles.empty();
        self.role_bindings.empty();
        self.config_maps.empty();
        self.services.empty();
        self.network_policies.empty();
        self.stateful_sets.empty();
        self.deployments.empty();
        self.pod_disruption_budgets.empty();
        self.horizontal_pod_autoscalers.empty();
    }
}

/// One listing of the operator's own objects of kind `K`, page by page
/// into `writer`, as a watch's (re)list.
async fn fill<K>(writer: &mut CacheWriter<K>, client: &Client, namespace: &str) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope> + 'static,
{
    let api: Api<Slim<K>> = Api::namespaced(client.clone(), namespace);
    let params = ListParams::default().labels(&owned_selector());
    writer.apply(watcher::Event::Init);
    for_each_listed(&api, params, |o| {
        writer.apply(watcher::Event::InitApply(o));
    })
    .await?;
    writer.apply(watcher::Event::InitDone);
    Ok(())
}

/// Lists what `params` selects [`PAGE_SIZE`] objects at a time, as kube's
/// watcher does, handing each object to `each` as its page arrives: only
/// one page is ever held.
pub async fn for_each_listed<K>(
    api: &Api<K>,
    params: ListParams,
    mut each: impl FnMut(K),
) -> kube::Result<()>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let mut params = params.limit(PAGE_SIZE);
    loop {
        let page = api.list(&params).await?;
        page.items.into_iter().for_each(&mut each);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(()),
        }
    }
}

/// A watch of the operator's own objects of kind `K` that keeps `writer`'s
/// cache current; the stream's objects trigger reconciles of their owners.
/// It reads the API's objects straight into [`Slim`] copies.
pub fn watch<K>(
    api: Api<Slim<K>>,
    mut writer: CacheWriter<K>,
) -> impl futures::Stream<Item = std::result::Result<Slim<K>, watcher::Error>> + Send + 'static
where
    K: Resource<DynamicType = ()> + Send + Sync + 'static,
{
    use futures::TryStreamExt;
    let config = watcher::Config::default()
        .labels(&owned_selector())
        .page_size(PAGE_SIZE);
    watcher(api, config)
        .default_backoff()
        .map_ok(move |event| writer.apply(event))
        .touched_objects()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::ResourceExt;
    use serde_json::json;

    fn deployment(name: &str, replicas: i32) -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": name, "namespace": "ns", "resourceVersion": "7", "generation": 2,
                "uid": "u1", "labels": {"a": "b"}, "annotations": {"h": "1"},
                "ownerReferences": [{"apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge", "name": "cb", "uid": "o1"}],
                "managedFields": [{"manager": "x", "operation": "Apply", "fieldsV1": {"f:spec": {}}}],
            },
            "spec": {"replicas": replicas},
            "status": {"readyReplicas": replicas},
        })
    }

    #[test]
    fn slim_keeps_what_the_reconcile_reads() {
        let slim = Slim::<Deployment>::from_json(deployment("d", 2)).unwrap();
        assert_eq!(slim.owner_references().len(), 1);
        assert_eq!(slim.meta().resource_version.as_deref(), Some("7"));
        assert!(slim.meta().labels.is_none(), "labels live in the JSON text");
        let json = slim.to_json().unwrap();
        assert_eq!(json["apiVersion"], "apps/v1");
        assert_eq!(json["kind"], "Deployment");
        assert_eq!(json["metadata"]["labels"]["a"], "b");
        assert_eq!(json["metadata"]["annotations"]["h"], "1");
        assert_eq!(json["metadata"]["generation"], 2);
        assert!(json["metadata"].get("managedFields").is_none());
        let typed = slim.object().unwrap();
        assert_eq!(typed.status.unwrap().ready_replicas, Some(2));
        assert_eq!(typed.metadata.generation, Some(2));
    }

    #[test]
    fn slim_drops_the_status_no_reconcile_reads() {
        let mut service = deployment("s", 1);
        service["apiVersion"] = "v1".into();
        service["kind"] = "Service".into();
        service["status"] = json!({"loadBalancer": {}});
        let json = Slim::<Service>::from_json(service)
            .unwrap()
            .to_json()
            .unwrap();
        assert!(json.get("status").is_none());
        assert_eq!(json["spec"]["replicas"], 1);
    }

    #[test]
    fn slim_is_read_from_a_listing_without_kind() {
        // A listing's items carry no apiVersion and kind.
        let mut item = deployment("d", 3);
        item.as_object_mut().unwrap().remove("kind");
        let slim: Slim<Deployment> = serde_json::from_value(item).unwrap();
        assert_eq!(slim.to_json().unwrap()["kind"], "Deployment");
    }

    #[test]
    fn packing_restores_the_json_exactly() {
        let json = deployment("b1-reader", 2).to_string();
        let labelled = r#"{"metadata":{"labels":{"app.kubernetes.io/managed-by":"cachebridge-operator","app.kubernetes.io/instance":"b1"}},"x":"tab\there \u0001"}"#;
        for text in [json.as_str(), labelled, "", "{}"] {
            assert_eq!(unpack(&pack(text)), text);
        }
        assert!(pack(labelled).len() < labelled.len() / 2);
    }

    fn slim(name: &str, replicas: i32) -> Slim<Deployment> {
        Slim::from_json(deployment(name, replicas)).unwrap()
    }

    fn listing(writer: &mut CacheWriter<Deployment>, objects: Vec<Slim<Deployment>>) {
        writer.apply(watcher::Event::Init);
        for o in objects {
            writer.apply(watcher::Event::InitApply(o));
        }
        writer.apply(watcher::Event::InitDone);
    }

    fn replicas(store: &Store<Slim<Deployment>>, name: &str) -> Option<Value> {
        let live = cached(store, "ns", name)?.to_json().unwrap();
        Some(live["spec"]["replicas"].clone())
    }

    #[test]
    fn a_relist_replaces_in_place_and_drops_what_it_did_not_list() {
        let (store, writer) = reflector::store();
        let mut writer = CacheWriter::new(writer);
        listing(&mut writer, vec![slim("a", 1), slim("b", 1)]);
        assert_eq!(store.state().len(), 2);

        writer.apply(watcher::Event::Init);
        writer.apply(watcher::Event::InitApply(slim("a", 5)));
        // Mid-re-list the cache is the old one, updated where listed: never two copies.
        assert_eq!(replicas(&store, "a"), Some(json!(5)));
        assert_eq!(replicas(&store, "b"), Some(json!(1)));
        writer.apply(watcher::Event::InitApply(slim("c", 1)));
        writer.apply(watcher::Event::InitDone);
        assert_eq!(replicas(&store, "b"), None, "not listed again: gone");
        assert_eq!(store.state().len(), 2);

        writer.empty();
        assert!(store.state().is_empty());
    }

    #[test]
    fn the_first_listing_makes_the_cache_ready() {
        use futures::FutureExt;
        let (store, writer) = reflector::store();
        let mut writer = CacheWriter::new(writer);
        writer.apply(watcher::Event::Init);
        writer.apply(watcher::Event::InitApply(slim("a", 1)));
        assert!(store.wait_until_ready().now_or_never().is_none());
        writer.apply(watcher::Event::InitDone);
        assert!(matches!(
            store.wait_until_ready().now_or_never(),
            Some(Ok(()))
        ));
        writer.apply(watcher::Event::Apply(slim("a", 3)));
        assert_eq!(replicas(&store, "a"), Some(json!(3)));
        writer.apply(watcher::Event::Delete(slim("a", 3)));
        assert!(store.state().is_empty());
    }
}
