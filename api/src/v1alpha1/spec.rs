//! What a user asks for: the `spec` of a CacheBridge.
//!
//! Every field has a doc comment (it becomes the `kubectl explain` text) and a
//! default, so the smallest valid CacheBridge is a name and nothing else. Rules
//! the OpenAPI schema cannot say (one of managed/external, quantity and
//! duration formats, cross-field limits) are CEL rules next to the field they
//! guard; the apiserver enforces them and the operator re-checks them
//! client-side, so `render -f` rejects what `kubectl apply` would.

use super::defaults;
use super::status::CacheBridgeStatus;
use kube::CustomResource;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A Go/Kubernetes duration like `250ms`, `30s`, `5m`, `1h30m` (CEL `duration()` syntax).
pub const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// The desired bridge. Every field has a default: `spec: {}` (or no spec at
/// all) gives a managed Redis, two Memcached servers, a synthetic-feed writer
/// and two readers. The operator runs (or connects to) the servers, the
/// writer and the readers, and reports their readiness and the cache's hit
/// ratio and data age in `status`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "cachebridge.dev",
    version = "v1alpha1",
    kind = "CacheBridge",
    plural = "cachebridges",
    shortname = "cb",
    category = "cachebridge",
    namespaced,
    status = "CacheBridgeStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "A shared cache bridge: Redis (L3), Memcached (L2), a market-data writer and web readers with a coherent in-memory L1.",
    validation = Rule::new("size(self.metadata.name) <= 40").message("the name must be at most 40 characters: child objects such as NAME-memcached-headless must stay valid DNS labels"),
    printcolumn(name = "Ready", type_ = "string", json_path = r#".status.conditions[?(@.type=="Ready")].status"#, description = "Whether every part of the bridge is ready"),
    printcolumn(name = "Redis", type_ = "string", json_path = r#".status.conditions[?(@.type=="RedisReady")].reason"#, description = "Redis (L3) readiness reason"),
    printcolumn(name = "Primary", type_ = "string", json_path = ".status.redisPrimary", description = "The Redis primary as last observed through Sentinel", priority = 1),
    printcolumn(name = "Memcached", type_ = "string", json_path = r#".status.conditions[?(@.type=="MemcachedReady")].reason"#, description = "Memcached (L2) readiness reason"),
    printcolumn(name = "Readers", type_ = "string", json_path = ".status.readers", description = "Ready/desired reader replicas"),
    printcolumn(name = "Hit ratio", type_ = "string", json_path = ".status.cache.hitRatio", description = "Share of reader lookups answered without going to Redis (L1 or Memcached), averaged over readers"),
    printcolumn(name = "Data age", type_ = "string", json_path = ".status.cache.dataAge", description = "Age of the data readers serve, averaged over readers"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp")
)]
#[serde(rename_all = "camelCase")]
pub struct CacheBridgeSpec {
    /// Redis, the source of truth (L3): run by the operator (`managed`, the
    /// default) or an existing server (`external`).
    #[serde(default)]
    pub redis: RedisSpec,
    /// Memcached, the shared L2: run by the operator (`managed`, the default)
    /// or existing servers (`external`).
    #[serde(default)]
    pub memcached: MemcachedSpec,
    /// Sizes and lifetimes of the cache tiers.
    #[serde(default)]
    pub cache: CacheSpec,
    /// The writer: the one process that ingests ticks and publishes market views.
    #[serde(default)]
    pub writer: WriterSpec,
    /// The readers: web servers answering from L1, then Memcached, then Redis.
    #[serde(default)]
    pub reader: ReaderSpec,
}

/// Where Redis comes from. Exactly one of `managed` and `external`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("set exactly one of redis.managed and redis.external"))]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// A Redis run by the operator, with a generated password and an ACL user
    /// limited to this bridge's keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedRedis>,
    /// An existing Redis the bridge connects to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalRedis>,
}

/// A Redis run by the operator as a StatefulSet.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedRedis {
    /// Container image of Redis (7.x: the ACL rules need Redis 7).
    #[serde(default = "defaults::redis_image")]
    #[schemars(length(min = 1, max = 255))]
    pub image: String,
    /// Redis pods. `1`: a single Redis, no failover (while it restarts the
    /// writer cannot publish and readers serve what they hold, marked stale).
    /// `2` or more: one primary and replicas, watched by three Sentinels that
    /// promote a replica when the primary fails; pod 0 is only the first primary.
    #[serde(default = "defaults::one")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: i32,
    /// Sentinel settings, used when `replicas` is 2 or more.
    #[serde(default)]
    pub sentinel: SentinelSettings,
    /// CPU and memory of each Redis container.
    #[serde(default = "defaults::redis_resources")]
    pub resources: Resources,
    /// Keep the data on a PersistentVolume. Without it the data lives in the
    /// pod and a restarted Redis starts empty (the writer republishes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence: Option<Persistence>,
}

/// The Sentinels the operator runs next to a replicated Redis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("duration(self.failoverTimeout) > duration(self.downAfter)").message("redis.managed.sentinel.failoverTimeout must be longer than downAfter"))]
#[serde(rename_all = "camelCase")]
pub struct SentinelSettings {
    /// How long the primary must be unreachable before a Sentinel considers
    /// it down (`down-after-milliseconds`). Shorter fails over sooner, but a
    /// slow network or a long pause may then cause a needless failover; 2s
    /// or more also avoids a second failover right after the first.
    #[serde(default = "defaults::sentinel_down_after")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('1s') && duration(self) <= duration('10m')").message("redis.managed.sentinel.downAfter must be between 1s and 10m"))]
    pub down_after: String,
    /// How long a failover may take before another Sentinel retries it
    /// (`failover-timeout`); a failed attempt is retried after twice this.
    /// Without persistence, a restarted primary waits up to
    /// 2 × downAfter + 2 × failoverTimeout + 10s for a replica's promotion.
    #[serde(default = "defaults::sentinel_failover_timeout")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10s') && duration(self) <= duration('1h')").message("redis.managed.sentinel.failoverTimeout must be between 10s and 1h"))]
    pub failover_timeout: String,
    /// CPU and memory of each Sentinel container.
    #[serde(default = "defaults::sentinel_resources")]
    pub resources: Resources,
}

/// A PersistentVolumeClaim per Redis pod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Persistence {
    /// Size of each volume, a Kubernetes quantity like `1Gi`.
    #[serde(default = "defaults::persistence_size")]
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).compareTo(quantity('64Mi')) >= 0").message("persistence.size must be a quantity of at least 64Mi, like 1Gi"))]
    pub size: String,
    /// StorageClass of the volumes; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub storage_class_name: Option<String>,
}

/// An existing Redis, reached by URL, through its Sentinels, or as a Redis Cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.url) ? 1 : 0) + (has(self.sentinel) ? 1 : 0) + (has(self.cluster) ? 1 : 0) == 1").message("set exactly one of redis.external.url, redis.external.sentinel and redis.external.cluster"))]
#[serde(rename_all = "camelCase")]
pub struct ExternalRedis {
    /// `redis://HOST:PORT[/DB]` or `rediss://…` for TLS, without a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.startsWith('redis://') || self.startsWith('rediss://')").message("redis.external.url must start with redis:// or rediss://"))]
    #[x_kube(validation = Rule::new("!self.contains('@')").message("put no credentials in redis.external.url: use redis.external.passwordSecret"))]
    #[schemars(length(min = 9, max = 512))]
    pub url: Option<String>,
    /// A Redis with automatic failover: the Sentinels that know its primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<ExternalSentinel>,
    /// A Redis Cluster: the bridge's keys share one hash slot (a hash tag
    /// in the key prefix), and clients follow the cluster's slot map.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ExternalCluster>,
    /// The Secret key holding the Redis password. Readers and the writer may
    /// read this Secret (and the Sentinel's, if any), nothing else.
    pub password_secret: SecretKeyRef,
    /// An ACL user name; the default user when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub username: Option<String>,
}

/// Sentinels of an existing Redis.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSentinel {
    /// `HOST:PORT` of every Sentinel (plain TCP).
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[A-Za-z0-9.-]+:[0-9]{1,5}$'))").message("every redis.external.sentinel.servers entry must be HOST:PORT"))]
    #[schemars(length(min = 1, max = 16), inner(length(min = 3, max = 260)))]
    pub servers: Vec<String>,
    /// The name the Sentinels monitor the primary under (`sentinel monitor NAME …`).
    #[schemars(length(min = 1, max = 128), regex(pattern = r"^[A-Za-z0-9._-]+$"))]
    pub master_name: String,
    /// The Secret key with the password the Sentinels ask for (as the default
    /// user); unset when they ask for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyRef>,
}

/// Seed nodes of an existing Redis Cluster. Every node must know the
/// bridge's ACL user (`username`, `passwordSecret`): clients follow MOVED
/// and ASK redirects to any node.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalCluster {
    /// `HOST:PORT` of some of the cluster's nodes (plain TCP); clients learn
    /// the others from them. Name more than one: a client starts only while
    /// one of these answers.
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[A-Za-z0-9.-]+:[0-9]{1,5}$'))").message("every redis.external.cluster.nodes entry must be HOST:PORT"))]
    #[schemars(length(min = 1, max = 16), inner(length(min = 3, max = 260)))]
    pub nodes: Vec<String>,
}

/// A key of a Secret in the bridge's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key inside the Secret.
    #[serde(default = "defaults::password_key")]
    #[schemars(length(min = 1, max = 253))]
    pub key: String,
}

/// Where Memcached comes from. Exactly one of `managed` and `external`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.managed) != has(self.external)").message("set exactly one of memcached.managed and memcached.external"))]
#[serde(rename_all = "camelCase")]
pub struct MemcachedSpec {
    /// Memcached servers run by the operator, one stable address per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub managed: Option<ManagedMemcached>,
    /// Existing Memcached servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalMemcached>,
}

/// Memcached run by the operator as a StatefulSet behind a headless Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ManagedMemcached {
    /// Container image of Memcached.
    #[serde(default = "defaults::memcached_image")]
    #[schemars(length(min = 1, max = 255))]
    pub image: String,
    /// Memcached servers. Keys are spread over them by a stable hash, so
    /// changing this moves part of the keys (they refill from Redis).
    #[serde(default = "defaults::two")]
    #[schemars(range(min = 1, max = 32))]
    pub replicas: i32,
    /// Item memory of each server in MiB (`memcached -m`). The container's
    /// memory request and limit add headroom for connections on top.
    #[serde(default = "defaults::memcached_memory_mb")]
    #[schemars(range(min = 16, max = 65536))]
    pub memory_mb: i32,
    /// CPU request of each server, a Kubernetes quantity.
    #[serde(default = "defaults::memcached_cpu")]
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self)").message("memcached.managed.cpu must be a quantity like 100m"))]
    pub cpu: String,
}

/// Existing Memcached servers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalMemcached {
    /// `HOST:PORT` of every server.
    #[x_kube(validation = Rule::new("self.all(s, s.matches('^[A-Za-z0-9.-]+:[0-9]{1,5}$'))").message("every memcached.external.servers entry must be HOST:PORT"))]
    #[schemars(length(min = 1, max = 64), inner(length(min = 3, max = 260)))]
    pub servers: Vec<String>,
}

/// Sizes and lifetimes of the cache tiers.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("duration(self.l1Ttl) <= duration(self.l3Ttl)").message("cache.l1Ttl must not exceed cache.l3Ttl: L1 may not outlive the source of truth"))]
#[x_kube(validation = Rule::new("duration(self.l1Ttl) > duration('0s') && duration(self.l2Ttl) > duration('0s') && duration(self.l3Ttl) > duration('0s') && duration(self.stalenessBudget) > duration('0s')").message("cache TTLs and the staleness budget must be above zero"))]
#[serde(rename_all = "camelCase")]
pub struct CacheSpec {
    /// Upper bound of each reader's in-memory L1, in MiB of cached payload.
    #[serde(default = "defaults::l1_max_mb")]
    #[schemars(range(min = 1, max = 65536))]
    pub l1_max_mb: i32,
    /// L1 time-to-live (a safety net: coherence messages evict first).
    #[serde(default = "defaults::l1_ttl")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"), length(max = 32))]
    pub l1_ttl: String,
    /// Memcached (L2) time-to-live.
    #[serde(default = "defaults::l2_ttl")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"), length(max = 32))]
    pub l2_ttl: String,
    /// Redis (L3) time-to-live.
    #[serde(default = "defaults::l3_ttl")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"), length(max = 32))]
    pub l3_ttl: String,
    /// Data older than this is still served, but marked stale.
    #[serde(default = "defaults::staleness_budget")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"), length(max = 32))]
    pub staleness_budget: String,
    /// Prefix of every key of this bridge in Redis and Memcached; default
    /// `cb:{namespace}:{name}:`. The managed Redis ACL user may touch only
    /// keys and channels with this prefix, so it may hold letters, digits and
    /// `: _ . / { } -` but no glob characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 100), regex(pattern = r"^[A-Za-z0-9:_./{}-]+$"))]
    pub key_prefix: Option<String>,
}

/// The writer Deployment (always one replica: one writer orders all updates).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WriterSpec {
    /// Container image of the dataplane. Unset: the operator's own dataplane
    /// image (its `--dataplane-image`, by default
    /// `ghcr.io/cachebridge/dataplane:<operator version>`), so upgrading the
    /// operator upgrades every bridge that does not pin an image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub image: Option<String>,
    /// Where ticks come from.
    #[serde(default)]
    pub source: SourceSpec,
    /// How often market views are computed and published.
    #[serde(default = "defaults::publish_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(ms|s|m|h))+$"), length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('10ms')").message("writer.publishInterval must be at least 10ms"))]
    pub publish_interval: String,
    /// CPU and memory of the writer container.
    #[serde(default = "defaults::writer_resources")]
    pub resources: Resources,
}

/// The writer's tick source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.type != 'Replay' || has(self.replay)").message("writer.source.type Replay needs writer.source.replay"))]
#[x_kube(validation = Rule::new("self.type == 'Ingest' || !has(self.ingest)").message("writer.source.ingest is only for writer.source.type Ingest"))]
#[serde(rename_all = "camelCase")]
pub struct SourceSpec {
    /// `Synthetic`: a seeded random walk; `Replay`: a tick file from a
    /// ConfigMap; `Ingest`: only ticks POSTed to the writer's `/ingest` on port 9090.
    #[serde(default, rename = "type")]
    pub type_: SourceType,
    /// Seed of the synthetic feed: the same seed gives the same ticks.
    #[serde(default = "defaults::seed")]
    #[schemars(range(min = 0))]
    pub seed: i64,
    /// Synthetic ticks per second.
    #[serde(default = "defaults::tick_rate")]
    #[schemars(range(min = 1, max = 100000))]
    pub tick_rate: i32,
    /// Number of synthetic symbols.
    #[serde(default = "defaults::symbols")]
    #[schemars(range(min = 1, max = 10000))]
    pub symbols: i32,
    /// The tick file for `Replay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<ReplaySource>,
    /// Who may reach `POST /ingest` (type `Ingest` only). Unset or an empty
    /// `from`: nobody, the writer's NetworkPolicy admits no client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest: Option<IngestAccess>,
}

/// The clients of the writer's ingest port. Each also needs the bearer token
/// from the Secret named in `status.ingestTokenSecret`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IngestAccess {
    /// Pods admitted to the ingest port; each entry admits the pods its
    /// selectors match, nothing more.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub from: Vec<IngestPeer>,
}

/// Pods by their labels, in this namespace or in namespaces by their labels
/// (both given: those pods in those namespaces). Selectors match labels
/// exactly and must name at least one label: an empty selector would admit
/// every pod (or namespace), which is what this field exists to prevent.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("has(self.podSelector) || has(self.namespaceSelector)").message("every writer.source.ingest.from entry needs podSelector or namespaceSelector"))]
#[serde(rename_all = "camelCase")]
pub struct IngestPeer {
    /// Labels the admitted pods carry (`matchLabels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("writer.source.ingest.from podSelector must name at least one label: an empty one admits every pod"))]
    pub pod_selector: Option<BTreeMap<String, String>>,
    /// Labels of the namespaces the admitted pods run in (`matchLabels`),
    /// like `kubernetes.io/metadata.name: trading`. Unset: the bridge's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("size(self) > 0").message("writer.source.ingest.from namespaceSelector must name at least one label: an empty one admits every namespace"))]
    pub namespace_selector: Option<BTreeMap<String, String>>,
}

/// Kinds of tick source.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SourceType {
    #[default]
    Synthetic,
    Replay,
    Ingest,
}

/// An NDJSON or CSV tick file kept in a ConfigMap.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplaySource {
    /// Name of the ConfigMap in the bridge's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub config_map: String,
    /// Key of the file in the ConfigMap; its extension (`.ndjson`, `.csv`) picks the format.
    #[serde(default = "defaults::replay_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
    /// Pace: `1` follows the file's timestamps, `0` replays at once.
    #[serde(default = "defaults::replay_speed")]
    #[schemars(range(min = 0.0, max = 1000.0))]
    pub speed: f64,
}

/// The reader Deployment and its Service.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReaderSpec {
    /// Container image of the dataplane. Unset: the operator's own dataplane
    /// image, like `writer.image`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 255))]
    pub image: Option<String>,
    /// Reader pods. A PodDisruptionBudget keeps at least one available
    /// during voluntary disruptions when there are two or more.
    #[serde(default = "defaults::two")]
    #[schemars(range(min = 1, max = 100))]
    pub replicas: i32,
    /// HTTP port of the readers and their Service (unprivileged: the pods run as non-root).
    #[serde(default = "defaults::reader_port")]
    #[schemars(range(min = 1024, max = 65535))]
    #[x_kube(validation = Rule::new("self != 9090").message("reader.port 9090 is reserved for the writer's ingest port"))]
    pub port: i32,
    /// Type of the reader Service.
    #[serde(default)]
    pub service_type: ServiceType,
    /// CPU and memory of each reader container (the L1 lives in this memory).
    #[serde(default = "defaults::reader_resources")]
    pub resources: Resources,
    /// Origins whose web pages may call the reader API from a browser (CORS), e.g.
    /// `https://app.example.com`; `*` allows any. Empty (the default): no other origin.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(validation = Rule::new("self.all(o, o == '*' || o.matches('^https?://[A-Za-z0-9._:-]+$'))").message("every reader.corsAllowedOrigins entry must be * or http(s)://host[:port], without a path"))]
    #[schemars(length(max = 32), inner(length(min = 1, max = 260)))]
    pub cors_allowed_origins: Vec<String>,
    /// Scale the readers on CPU with a HorizontalPodAutoscaler
    /// (`autoscaling/v2`) between `minReplicas` and `maxReplicas`. When set,
    /// `replicas` is ignored: the operator leaves the Deployment's replica
    /// count to the autoscaler. CPU utilisation is relative to the CPU
    /// request in `resources`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<ReaderAutoscaling>,
}

/// The readers' HorizontalPodAutoscaler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("reader.autoscaling.minReplicas must not exceed maxReplicas"))]
#[serde(rename_all = "camelCase")]
pub struct ReaderAutoscaling {
    /// Fewest reader pods, at least 1. Two or more keep a reader serving
    /// while another restarts.
    #[serde(default = "defaults::two")]
    #[schemars(range(min = 1, max = 100))]
    pub min_replicas: i32,
    /// Most reader pods, at most 100 (like `replicas`): every reader holds
    /// a Redis connection and a coherence subscription.
    #[schemars(range(min = 1, max = 100))]
    pub max_replicas: i32,
    /// Average CPU utilisation the autoscaler aims for, in percent of each
    /// reader's CPU request.
    #[serde(
        default = "defaults::target_cpu_utilization",
        rename = "targetCPUUtilizationPercentage"
    )]
    #[schemars(range(min = 10, max = 100))]
    pub target_cpu_utilization_percentage: i32,
    /// How fast to scale up and down (`spec.behavior` of the
    /// HorizontalPodAutoscaler); Kubernetes' defaults when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<ScalingBehavior>,
}

/// Scale-up and scale-down rules of the readers' autoscaler.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingBehavior {
    /// How fast readers are added; Kubernetes' default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_up: Option<ScalingRules>,
    /// How fast readers are removed; Kubernetes' default (a 5-minute
    /// stabilization window) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down: Option<ScalingRules>,
}

/// One direction of scaling (`HPAScalingRules`).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingRules {
    /// Seconds of past recommendations considered, to avoid flapping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub stabilization_window_seconds: Option<i32>,
    /// Which policy wins when several allow a change: `Max` (the default),
    /// `Min`, or `Disabled` (never scale in this direction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select_policy: Option<SelectPolicy>,
    /// Limits on the change per period.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub policies: Vec<ScalingPolicy>,
}

/// `Max`, `Min` or `Disabled`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SelectPolicy {
    Max,
    Min,
    Disabled,
}

/// At most `value` pods (or percent of the current count) per `periodSeconds`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScalingPolicy {
    /// `Pods` or `Percent`.
    #[serde(rename = "type")]
    pub type_: ScalingPolicyType,
    /// Pods, or percent of the current count.
    #[schemars(range(min = 1, max = 1000))]
    pub value: i32,
    /// The period the limit applies to, in seconds.
    #[schemars(range(min = 1, max = 1800))]
    pub period_seconds: i32,
}

/// Kinds of scaling policy.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScalingPolicyType {
    Pods,
    Percent,
}

/// Kubernetes Service types the reader Service may have.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceType {
    #[default]
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// CPU and memory of one container.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.limits) || !has(self.limits.memory) || quantity(self.limits.memory).compareTo(quantity(self.requests.memory)) >= 0").message("the memory limit must not be below the memory request"))]
#[x_kube(validation = Rule::new("!has(self.limits) || !has(self.limits.cpu) || quantity(self.limits.cpu).compareTo(quantity(self.requests.cpu)) >= 0").message("the CPU limit must not be below the CPU request"))]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    /// What the scheduler reserves for the container.
    #[serde(default)]
    pub requests: ResourceAmounts,
    /// Caps. A container above its memory limit is killed; unset means no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
}

/// A CPU and memory amount.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceAmounts {
    /// CPU, a Kubernetes quantity like `100m`.
    #[serde(default = "defaults::cpu")]
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).compareTo(quantity('1m')) >= 0").message("cpu must be a quantity of at least 1m, like 100m"))]
    pub cpu: String,
    /// Memory, a Kubernetes quantity like `128Mi`.
    #[serde(default = "defaults::memory")]
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).compareTo(quantity('16Mi')) >= 0").message("memory must be a quantity of at least 16Mi, like 128Mi"))]
    pub memory: String,
}

/// Optional CPU and memory caps.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLimits {
    /// CPU cap, a quantity; unset leaves CPU uncapped (throttling hurts latency).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self)").message("limits.cpu must be a quantity like 500m"))]
    pub cpu: Option<String>,
    /// Memory cap, a quantity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("isQuantity(self)").message("limits.memory must be a quantity like 256Mi"))]
    pub memory: Option<String>,
}
