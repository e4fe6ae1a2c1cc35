//! What the operator observed: the `status` of a CacheBridge.
//!
//! The dataplane's `--bridge NAMESPACE/NAME` mode reads its connection
//! settings from here (endpoints, password Secret, ACL user, key prefix), so
//! these field names are a contract between the two binaries.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types, each `True`, `False` or `Unknown` with a reason.
pub mod condition {
    /// Everything below is ready and the status describes the current spec.
    pub const READY: &str = "Ready";
    pub const REDIS_READY: &str = "RedisReady";
    pub const MEMCACHED_READY: &str = "MemcachedReady";
    pub const WRITER_READY: &str = "WriterReady";
    pub const READER_READY: &str = "ReaderReady";
    /// Every condition type, in the order they are reported.
    pub const ALL: [&str; 5] = [
        READY,
        REDIS_READY,
        MEMCACHED_READY,
        WRITER_READY,
        READER_READY,
    ];
}

/// The observed state of a CacheBridge.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheBridgeStatus {
    /// The `metadata.generation` this status describes; until it equals the
    /// current generation the conditions are about an older spec.
    #[serde(default)]
    pub observed_generation: i64,
    /// Ready, RedisReady, MemcachedReady, WriterReady and ReaderReady.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
    /// Where the parts of the bridge are reached.
    #[serde(default)]
    pub endpoints: Endpoints,
    /// The Secret key with the Redis password the dataplane uses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeySelector>,
    /// The Secret key with the bearer token `POST /ingest` requires (source
    /// `Ingest` only): give it to the trading service that sends ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_token_secret: Option<SecretKeySelector>,
    /// The Redis primary as last observed through Sentinel: the pod name for a
    /// managed Redis (like `NAME-redis-1`), `HOST:PORT` for an external one.
    /// Unset when Redis has no Sentinel (or none has answered yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_primary: Option<String>,
    /// The Redis ACL user the dataplane connects as, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_username: Option<String>,
    /// The effective key prefix of this bridge in Redis and Memcached.
    #[serde(default)]
    pub key_prefix: String,
    /// Ready and desired reader replicas, like `2/3`.
    #[serde(default)]
    pub readers: String,
    /// Cache figures averaged over the readers, refreshed every 30 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheFigures>,
}

/// Resolved addresses; never a password.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// `redis://HOST:PORT`, without credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// `HOST:PORT` of every Memcached server, in hash order.
    #[serde(default)]
    pub memcached: Vec<String>,
    /// `http://NAME-reader.NAMESPACE.svc:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reader: Option<String>,
    /// Set when Redis fails over automatically: the Sentinels to ask for the
    /// current primary. Clients must follow these, not `redis`, which then
    /// only reports the primary as last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelEndpoints>,
    /// Seed nodes of an external Redis Cluster (host:port); set when spec.redis.external.cluster is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis_cluster: Option<Vec<String>>,
}

/// How to find the current Redis primary through Sentinel.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SentinelEndpoints {
    /// `HOST:PORT` of every Sentinel.
    #[serde(default)]
    pub servers: Vec<String>,
    /// The name the Sentinels monitor the primary under.
    pub master_name: String,
    /// The Secret key with the password Sentinel asks for, when it asks for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeySelector>,
}

/// A key of a Secret in the bridge's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeySelector {
    pub name: String,
    pub key: String,
}

/// Figures the readers report about the cache.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheFigures {
    /// Share of the readers' lookups answered without going to Redis (from
    /// L1 or Memcached), averaged over the readers, like `98.7%`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hit_ratio: Option<String>,
    /// Age of the newest data the readers serve, as a coarse bucket like
    /// `<1s`, `<10s`, `<1m` or `>=10m` (the staleness budget is a bound too),
    /// so that it changes only when the age really moves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_age: Option<String>,
    /// When the figures last changed meaningfully (RFC 3339). They are read
    /// about every 30 s but written only when the hit ratio moves by 0.1
    /// point or more, the reader count or the data-age bucket changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<String>,
    /// How many readers reported.
    #[serde(default)]
    pub reporting_readers: i32,
}

impl CacheBridgeStatus {
    /// The condition of a type, if reported.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }

    /// Whether a condition is `True`.
    pub fn is_true(&self, type_: &str) -> bool {
        self.condition(type_).is_some_and(|c| c.status == "True")
    }
}
