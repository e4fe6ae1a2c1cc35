//! Test harness: an in-memory Kubernetes API (kube-fake-client) that logs
//! every write and counts every read, a Context on it, helpers that play
//! the workload controllers (setting ready replicas) and the controller's
//! watches (filling its caches before each reconcile), and a real
//! `redis-server` process.

#![allow(dead_code)]

use cachebridge_api::CacheBridge;
use cachebridge_operator::controller::{self, Context};
use cachebridge_operator::desired::Settings;
use cachebridge_operator::metrics::Metrics;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use kube_fake_client::{ClientBuilder, interceptor};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

pub const NS: &str = "prod";

/// Every write the API received, as `verb kind/name` (kind when the body says it).
#[derive(Clone, Default)]
pub struct WriteLog(Arc<Mutex<Vec<String>>>);

impl WriteLog {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

fn describe(verb: &str, body: Option<&Value>, name: &str) -> String {
    let kind = body
        .and_then(|b| b.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("?");
    format!("{verb} {kind}/{name}")
}

/// The in-memory backend does not know that a StatefulSet's
/// volumeClaimTemplates cannot change; this answers like the apiserver does.
fn refuse_immutable_stateful_set_changes(
    c: &interceptor::PatchContext,
) -> kube_fake_client::Result<Option<Value>> {
    if c.patch.get("kind").and_then(Value::as_str) != Some("StatefulSet") {
        return Ok(None);
    }
    let Ok(existing) = c.client.get::<StatefulSet>(c.namespace, c.name) else {
        return Ok(None);
    };
    let stored =
        serde_json::to_value(existing.spec.and_then(|s| s.volume_claim_templates)).unwrap();
    let wanted = c
        .patch
        .pointer("/spec/volumeClaimTemplates")
        .cloned()
        .unwrap_or(Value::Null);
    if stored != wanted {
        return Err(kube_fake_client::Error::ValidationFailed {
            kind: "StatefulSet".into(),
            errors: vec![format!(
                "StatefulSet.apps {:?} is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
                c.name
            )],
        });
    }
    Ok(None)
}

/// Every read the API received, as `verb kind` (the watches the harness
/// plays are not counted: they are listed before [`Harness::reconcile`]
/// clears the log).
#[derive(Clone, Default)]
pub struct ReadLog(Arc<Mutex<Vec<String>>>);

impl ReadLog {
    fn push(&self, entry: String) {
        self.0.lock().unwrap().push(entry);
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub struct Harness {
    pub client: Client,
    pub writes: WriteLog,
    pub reads: ReadLog,
    pub ctx: Arc<Context>,
}

/// A fake API holding `objects`, with CacheBridge (and workload) status
/// subresources; cache figures are not read and an external Redis is not
/// probed (no Redis behind the bridges).
pub async fn harness(objects: Vec<Value>) -> Harness {
    harness_reading_stats(objects, false).await
}

/// Like [`harness`], reading cache figures from the bridges' Redis and
/// probing an external one.
pub async fn harness_with_stats(objects: Vec<Value>) -> Harness {
    harness_reading_stats(objects, true).await
}

async fn harness_reading_stats(objects: Vec<Value>, read_stats: bool) -> Harness {
    let writes = WriteLog::default();
    let (w1, w2, w3, w4, w5) = (
        writes.clone(),
        writes.clone(),
        writes.clone(),
        writes.clone(),
        writes.clone(),
    );
    let reads = ReadLog::default();
    let (r1, r2) = (reads.clone(), reads.clone());
    let funcs = interceptor::Funcs::new()
        .get(move |c| {
            r1.push(format!("get {}", c.name));
            Ok(None)
        })
        .list(move |c| {
            r2.push(format!("list in {:?}", c.namespace));
            Ok(None)
        })
        .create(move |c| {
            let name = c
                .object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            w1.push(describe("create", Some(c.object), name));
            Ok(None)
        })
        .patch(move |c| {
            w2.push(describe("patch", Some(c.patch), c.name));
            refuse_immutable_stateful_set_changes(&c)
        })
        .patch_status(move |c| {
            w3.push(describe("patch-status", Some(c.patch), c.name));
            Ok(None)
        })
        .replace(move |c| {
            w4.push(describe("replace", Some(c.object), c.name));
            Ok(None)
        })
        .delete(move |c| {
            w5.push(format!("delete {}", c.name));
            Ok(None)
        });
    let client = ClientBuilder::new()
        .with_resource::<CacheBridge>()
        .with_status_subresource::<CacheBridge>()
        .with_status_subresource::<Deployment>()
        .with_status_subresource::<StatefulSet>()
        .with_runtime_objects(objects)
        .with_interceptor_funcs(funcs)
        .with_return_managed_fields()
        .build()
        .await
        .expect("fake client");
    let mut ctx = Context::new(
        client.clone(),
        Settings::default(),
        Arc::new(Metrics::new()),
    );
    ctx.read_stats = read_stats;
    ctx.probe_redis = read_stats;
    Harness {
        client,
        writes,
        reads,
        ctx: Arc::new(ctx),
    }
}

/// A CacheBridge as the apiserver would hold it after `kubectl apply`.
pub fn bridge(name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "cachebridge.dev/v1alpha1",
        "kind": "CacheBridge",
        "metadata": {"name": name, "namespace": NS, "uid": format!("uid-{name}"), "generation": 1},
        "spec": spec,
    })
}

impl Harness {
    pub fn bridges(&self) -> Api<CacheBridge> {
        Api::namespaced(self.client.clone(), NS)
    }

    pub async fn get(&self, name: &str) -> CacheBridge {
        self.bridges().get(name).await.expect("the bridge exists")
    }

    /// Reconciles the bridge as stored now (what the controller would
    /// pass), with caches that hold what the API holds (what the watches
    /// would have delivered by then). Reads before the reconcile are cleared
    /// from [`Harness::reads`].
    pub async fn reconcile(&self, name: &str) -> cachebridge_operator::Result<Action> {
        self.sync_caches().await;
        let cb = self.get(name).await;
        self.reads.take();
        controller::reconcile(Arc::new(cb), Arc::clone(&self.ctx)).await
    }

    /// Plays the controller's watches: the caches now hold what the API holds.
    pub async fn sync_caches(&self) {
        self.ctx
            .fill_caches_from_api(NS)
            .await
            .expect("list the children");
    }

    /// Changes the spec like `kubectl apply` would: merge, generation + 1.
    pub async fn change_spec(&self, name: &str, spec: Value) {
        let mut cb = self.get(name).await;
        let mut current = serde_json::to_value(&cb.spec).unwrap();
        json_merge(&mut current, &spec);
        cb.spec = serde_json::from_value(current).unwrap();
        cb.metadata.managed_fields = None;
        self.bridges()
            .replace(name, &PostParams::default(), &cb)
            .await
            .expect("replace");
    }

    pub async fn deployment(&self, name: &str) -> Option<Deployment> {
        Api::<Deployment>::namespaced(self.client.clone(), NS)
            .get_opt(name)
            .await
            .unwrap()
    }

    pub async fn stateful_set(&self, name: &str) -> Option<StatefulSet> {
        Api::<StatefulSet>::namespaced(self.client.clone(), NS)
            .get_opt(name)
            .await
            .unwrap()
    }

    /// Plays the Deployment controller: `ready` pods of the current generation.
    pub async fn set_deployment_ready(&self, name: &str, ready: i32) {
        let d = self.deployment(name).await.expect("deployment");
        let status = json!({"status": {"observedGeneration": d.metadata.generation, "replicas": ready, "readyReplicas": ready, "updatedReplicas": ready}});
        Api::<Deployment>::namespaced(self.client.clone(), NS)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("deployment status");
    }

    /// Plays the StatefulSet controller.
    pub async fn set_stateful_set_ready(&self, name: &str, ready: i32) {
        let s = self.stateful_set(name).await.expect("statefulset");
        let status = json!({"status": {"observedGeneration": s.metadata.generation, "replicas": ready, "readyReplicas": ready}});
        Api::<StatefulSet>::namespaced(self.client.clone(), NS)
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .expect("statefulset status");
    }

    /// Every workload of a default bridge fully ready.
    pub async fn make_all_ready(&self, name: &str) {
        self.set_stateful_set_ready(&format!("{name}-redis"), 1)
            .await;
        self.set_stateful_set_ready(&format!("{name}-memcached"), 2)
            .await;
        self.set_deployment_ready(&format!("{name}-writer"), 1)
            .await;
        self.set_deployment_ready(&format!("{name}-reader"), 2)
            .await;
    }

    /// Events about `name`, as (reason, note).
    pub async fn events(&self, name: &str) -> Vec<(String, String)> {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), NS);
        events
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
            .collect()
    }
}

pub fn json_merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    json_merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        (t, p) => *t = p.clone(),
    }
}

pub fn condition<'a>(cb: &'a CacheBridge, type_: &str) -> (&'a str, &'a str) {
    let c = cb
        .status
        .as_ref()
        .and_then(|s| s.condition(type_))
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.as_str(), c.reason.as_str())
}

pub fn owner_uid<K: Resource>(o: &K) -> String {
    o.meta().owner_references.as_ref().unwrap()[0].uid.clone()
}

/// A `redis-server` on a free loopback port; killed on drop.
#[allow(unused_imports)] // used by some test binaries only
pub use cachebridge_testkit::Server as RedisServer;
