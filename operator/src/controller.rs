//! The controller: one `reconcile` that runs the pipeline
//! validate → desired → apply → status, the error policy with per-object
//! exponential backoff, and the kube-runtime `Controller` that watches
//! CacheBridges and the children they own.
//!
//! At fleet scale the API server is shared, so a steady bridge costs it
//! nothing: children are read from the watch caches (see `caches`), a
//! change of a bridge's status alone (our own write, seen by the watch)
//! triggers no reconcile ([`trigger_hash`]), and the status is written only
//! when it changes meaningfully (see `stats::settle`).

use crate::apply;
use crate::caches::{self, CacheWriters, Caches, Slim};
use crate::desired::{self, Settings};
use crate::error::{Error, Result};
use crate::events;
use crate::metrics::Metrics;
use crate::primary;
use crate::probe::{self, Probe, Probes};
use crate::secrets::Secrets;
use crate::stats;
use crate::status;
use crate::validate::{self, Bridge, RedisPlan};
use cachebridge_api::v1alpha1::condition::READY;
use cachebridge_api::v1alpha1::{CacheBridge, CacheBridgeStatus};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often a ready bridge is reconciled even when nothing changes, so its
/// cache figures stay at most this old.
pub const READY_REQUEUE: Duration = Duration::from_secs(30);
/// The safety net for a bridge that is not ready: changes of its children
/// trigger reconciles anyway, this only catches what no watch reports.
pub const NOT_READY_REQUEUE: Duration = Duration::from_secs(300);

/// Everything a reconcile needs besides the resource.
pub struct Context {
    pub client: Client,
    pub settings: Settings,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    /// Read cache figures from Redis (off in tests that have no Redis).
    pub read_stats: bool,
    /// Ask the Sentinels of bridges that have some for the primary (off in
    /// tests that have no Sentinel, and where the operator cannot reach them).
    pub observe_primary: bool,
    /// PING an external Redis before calling it ready (off in tests that
    /// have no Redis, and where the operator cannot reach it).
    pub probe_redis: bool,
    /// The probes' results, kept per bridge (see `probe`).
    pub probes: Probes,
    /// The children as the controller's watches see them.
    pub caches: Caches,
    /// What fills `caches`: taken by [`run`] for its watches, or used by
    /// tests and the benchmark to play them.
    pub cache_writers: Mutex<Option<CacheWriters>>,
    pub secrets: Secrets,
    /// When each bridge's cache figures were last read from Redis.
    pub figures_read: Mutex<HashMap<ObjectRef<CacheBridge>, Timestamp>>,
    /// The time (the benchmark simulates an hour with it).
    pub clock: fn() -> Timestamp,
}

impl Context {
    pub fn new(client: Client, settings: Settings, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: crate::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        let (caches, writers) = caches::caches();
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            secrets: Secrets::new(client.clone(), Arc::clone(&caches.secrets)),
            client,
            settings,
            metrics,
            backoff: Backoff::default(),
            read_stats: true,
            observe_primary: true,
            probe_redis: true,
            probes: Probes::default(),
            caches,
            cache_writers: Mutex::new(Some(writers)),
            figures_read: Mutex::new(HashMap::new()),
            clock: Timestamp::now,
        }
    }

    /// Fills the caches with a listing of `namespace` from the API, as the
    /// watches would (tests and the benchmark: the in-memory API serves no
    /// watches). Does nothing once [`run`] has taken the writers.
    pub async fn fill_caches_from_api(&self, namespace: &str) -> Result<()> {
        let taken = self.writers().take();
        let Some(mut writers) = taken else {
            return Ok(());
        };
        let filled = writers.fill_from(&self.client, namespace).await;
        *self.writers() = Some(writers);
        filled
    }

    /// Empties the caches, tables included (the benchmark measures their
    /// heap with it). Does nothing once [`run`] has taken the writers.
    pub fn empty_caches(&self) {
        if let Some(writers) = self.writers().as_mut() {
            writers.empty();
        }
    }

    fn writers(&self) -> std::sync::MutexGuard<'_, Option<CacheWriters>> {
        self.cache_writers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the figures of `key` are due for a read now; if so, notes the read.
    fn figures_due(&self, key: ObjectRef<CacheBridge>, now: Timestamp) -> bool {
        let mut read = self.figures_read.lock().unwrap_or_else(|p| p.into_inner());
        let due = stats::due(read.get(&key).copied(), now);
        if due {
            read.insert(key, now);
        }
        due
    }
}

/// One reconcile of one CacheBridge: validate → build → apply → status.
pub async fn reconcile(cb: Arc<CacheBridge>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started();
    let result = pipeline(&cb, &ctx).await;
    if result.is_ok() {
        ctx.backoff.reset(&ObjectRef::from_obj(&*cb));
    }
    result
}

async fn pipeline(cb: &CacheBridge, ctx: &Context) -> Result<Action> {
    let namespace = cb.namespace().ok_or(Error::MissingObjectKey("namespace"))?;
    let api: Api<CacheBridge> = Api::namespaced(ctx.client.clone(), &namespace);
    // "Not listed yet" must not read as "absent".
    ctx.caches.wait_until_ready().await;
    let now = (ctx.clock)();
    let old = cb.status.as_ref();

    let bridge = match validate::validate(cb) {
        Ok(bridge) => bridge,
        Err(invalid) => {
            // Touch no child: what runs keeps running until the spec is fixed.
            let generation = cb.metadata.generation.unwrap_or(0);
            let status = status::invalid(generation, &invalid, old, now);
            record_status(ctx, &api, cb, old, &status, None).await?;
            ctx.metrics.record_ready(&namespace, &cb.name_any(), false);
            return Err(Error::InvalidSpec(invalid));
        }
    };
    let desired = desired::build(&bridge, &ctx.settings)?;
    let applied = apply::apply(&ctx.client, &ctx.caches, &bridge, &desired).await?;
    ctx.metrics.record_writes("created", applied.created.len());
    ctx.metrics.record_writes("updated", applied.updated.len());
    ctx.metrics.record_writes("deleted", applied.deleted.len());

    let observed = observe_primary(ctx, &bridge).await;
    let probe = probe_redis(ctx, cb, &bridge, &observed, now).await?;
    let mut status = status::compute(&bridge, &applied, old, None, &observed, &probe, now);
    if ctx.read_stats
        && status.is_true(READY)
        && ctx.figures_due(ObjectRef::from_obj(cb), now)
        && let Some(reports) = read_figures(ctx, &bridge, &status, now).await
    {
        let shown = old.and_then(|o| o.cache.as_ref());
        let budget = bridge.cache.staleness_budget;
        status.cache = Some(stats::settle(shown, &reports, budget, now));
    }
    record_status(ctx, &api, cb, old, &status, Some(&applied)).await?;
    ctx.metrics
        .record_ready(&bridge.namespace, &bridge.name, status.is_true(READY));
    // A failed probe has no watch to end it (the fix is on the Redis server,
    // or in a Secret, which is not watched): try again soon.
    let probe_failed = matches!(probe, Probe::Failed(_));
    Ok(Action::requeue(if status.is_true(READY) || probe_failed {
        READY_REQUEUE
    } else {
        NOT_READY_REQUEUE
    }))
}

/// Writes the status if it changed and emits the events its transitions deserve.
async fn record_status(
    ctx: &Context,
    api: &Api<CacheBridge>,
    cb: &CacheBridge,
    old: Option<&CacheBridgeStatus>,
    status: &CacheBridgeStatus,
    applied: Option<&apply::Applied>,
) -> Result<()> {
    if status::write_if_changed(api, &cb.name_any(), old, status).await? {
        ctx.metrics.record_writes("status", 1);
    }
    events::publish(&ctx.recorder, cb, events::transitions(old, status, applied)).await;
    Ok(())
}

/// The primary as the bridge's Sentinels name it now (when it has some and
/// the operator may talk to them); a failure is logged and counted.
async fn observe_primary(ctx: &Context, b: &Bridge) -> primary::Observation {
    if !ctx.observe_primary {
        return primary::Observation::NotAsked;
    }
    let observed = primary::observe(&ctx.secrets, b).await;
    if let primary::Observation::Unanswered(why) = &observed {
        ctx.metrics.record_error(&Error::Sentinel(why.clone()));
        tracing::warn!(bridge = %b.name, namespace = %b.namespace, error = %why, "Redis primary not observed");
    }
    observed
}

/// The probe of an external Redis, at the URL the status will show (the
/// primary the Sentinels named, if they did); a managed Redis is judged by
/// its pods instead.
async fn probe_redis(
    ctx: &Context,
    cb: &CacheBridge,
    b: &Bridge,
    observed: &primary::Observation,
    now: Timestamp,
) -> Result<Probe> {
    if !ctx.probe_redis || !matches!(b.redis, RedisPlan::External(_)) {
        return Ok(Probe::NotAsked);
    }
    let key = ObjectRef::from_obj(cb);
    if let Some(nodes) = desired::config::cluster_nodes(b) {
        return probe::cluster(&ctx.probes, &ctx.secrets, key, b, &nodes, now).await;
    }
    let (url, _) = status::redis_endpoint(b, cb.status.as_ref(), observed);
    probe::external(&ctx.probes, &ctx.secrets, key, b, url.as_deref(), now).await
}

/// The readers' fresh reports at `now`, or `None` (logged) when Redis
/// cannot be read this time. They are read from the primary as last observed.
async fn read_figures(
    ctx: &Context,
    b: &Bridge,
    status: &CacheBridgeStatus,
    now: Timestamp,
) -> Option<Vec<stats::ReaderReport>> {
    let read = async {
        // A cluster is read from a seed node (MOVED is followed, see `stats`).
        let seed = status
            .endpoints
            .redis_cluster
            .as_ref()
            .and_then(|n| n.first());
        let url = match seed {
            Some(node) => format!("redis://{node}"),
            None => status.endpoints.redis.clone().ok_or_else(|| {
                Error::Stats("no Sentinel has named the Redis primary yet".into())
            })?,
        };
        let target = stats::target(&ctx.secrets, b, url).await?;
        stats::read_reports(&target, &b.key_prefix, now).await
    };
    match read.await {
        Ok(reports) => Some(reports),
        Err(e) => {
            // The password may have changed: read it again next time.
            let (secret, _) = desired::password_secret(b);
            ctx.secrets.forget(&b.namespace, &secret);
            ctx.metrics.record_error(&e);
            tracing::warn!(bridge = %b.name, namespace = %b.namespace, error = %e, "cache figures not refreshed");
            None
        }
    }
}

/// What to do after a failed reconcile. An invalid spec waits for the user
/// to change it; anything else is retried with this object's own backoff.
pub fn error_policy(cb: Arc<CacheBridge>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.record_error(error);
    match error {
        Error::InvalidSpec(_) => Action::await_change(),
        _ => {
            let delay = ctx.backoff.next(&ObjectRef::from_obj(&*cb));
            tracing::warn!(name = %cb.name_any(), namespace = ?cb.namespace(), error = %error, retry_in = ?delay, "reconcile failed");
            Action::requeue(delay)
        }
    }
}

/// Per-object exponential backoff: one failing bridge retries at 1 s, 2 s,
/// 4 s … up to 5 min, without slowing down any other bridge.
pub struct Backoff {
    failures: Mutex<HashMap<ObjectRef<CacheBridge>, u32>>,
    base: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(300))
    }
}

impl Backoff {
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            failures: Mutex::new(HashMap::new()),
            base,
            max,
        }
    }

    /// Counts a failure of `key` and returns how long to wait before retrying it.
    pub fn next(&self, key: &ObjectRef<CacheBridge>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let n = failures.entry(key.clone()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(20));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// Forgets the failures of `key` after it reconciled successfully.
    pub fn reset(&self, key: &ObjectRef<CacheBridge>) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(key);
    }
}

/// Which CacheBridges this operator serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Cluster,
    Namespace(String),
}

impl Scope {
    pub fn api<K>(&self, client: Client) -> Api<K>
    where
        K: Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match self {
            Scope::Cluster => Api::all(client),
            Scope::Namespace(ns) => Api::namespaced(client, ns),
        }
    }
}

/// What about a CacheBridge should trigger a reconcile when it changes: its
/// spec (generation), labels, annotations and deletion, not its status.
/// The operator's own status writes therefore trigger nothing.
pub fn trigger_hash(cb: &CacheBridge) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    let meta = &cb.metadata;
    meta.generation.hash(&mut hasher);
    meta.labels.hash(&mut hasher);
    meta.annotations.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

/// What the bridges' store keeps of a bridge: all but its `managedFields`,
/// which no reconcile reads and which grow with every writer of the object.
pub fn slim_bridge(cb: &mut CacheBridge) {
    cb.metadata.managed_fields = None;
}

/// Runs the controller until `shutdown` resolves.
///
/// Watches (their traffic is not API reads by the reconcile): CacheBridges,
/// and each child kind with the managed-by label (only our own objects),
/// through reflectors into [`Context::caches`].
pub async fn run(
    ctx: Arc<Context>,
    scope: Scope,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let Some(w) = ctx.writers().take() else {
        tracing::error!("the watch caches are already being filled elsewhere");
        return;
    };
    let (bridges, bridge_writer) = reflector::store();
    let bridge_events = watcher(
        scope.api::<CacheBridge>(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .modify(slim_bridge)
    .reflect(bridge_writer)
    .inspect_ok({
        let metrics = Arc::clone(&ctx.metrics);
        move |event| {
            // A deleted bridge is not reconciled: its series goes here.
            if let watcher::Event::Delete(cb) = event {
                metrics.forget_bridge(&cb.namespace().unwrap_or_default(), &cb.name_any());
            }
        }
    })
    .applied_objects()
    .predicate_filter(trigger_hash, Default::default());
    Controller::for_stream(bridge_events, bridges)
        .owns_stream(caches::watch(scope.api::<Slim<StatefulSet>>(client.clone()), w.stateful_sets))
        .owns_stream(caches::watch(scope.api::<Slim<Deployment>>(client.clone()), w.deployments))
        .owns_stream(caches::watch(scope.api::<Slim<Service>>(client.clone()), w.services))
        .owns_stream(caches::watch(scope.api::<Slim<ConfigMap>>(client.clone()), w.config_maps))
        .owns_stream(caches::watch(scope.api::<Slim<NetworkPolicy>>(client.clone()), w.network_policies))
        .owns_stream(caches::watch(
            scope.api::<Slim<PodDisruptionBudget>>(client.clone()),
            w.pod_disruption_budgets,
        ))
        .owns_stream(caches::watch(scope.api::<Slim<ServiceAccount>>(client.clone()), w.service_accounts))
        .owns_stream(caches::watch(scope.api::<Slim<Role>>(client.clone()), w.roles))
        .owns_stream(caches::watch(scope.api::<Slim<RoleBinding>>(client.clone()), w.role_bindings))
        .owns_stream(caches::watch(
            scope.api::<Slim<HorizontalPodAutoscaler>>(client.clone()),
            w.horizontal_pod_autoscalers,
        ))
        // Pods are not watched: a failover shows in the StatefulSets' ready
        // counts (the old primary goes and comes back), which trigger a reconcile.
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => tracing::debug!(name = %object.name, namespace = ?object.namespace, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile did not complete"),
            }
        })
        .await;
}
