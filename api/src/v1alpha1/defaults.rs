//! Default values of the spec, in one place.
//!
//! serde fills them in when a field is missing and schemars writes the same
//! values into the CRD schema (so the apiserver stores them and `kubectl
//! explain` shows them): one source for both, they cannot disagree.

use super::spec::*;

/// The dataplane image that matches this version of the API and operator
/// (the operator's default for bridges that set no image).
pub const DATAPLANE_IMAGE: &str =
    concat!("ghcr.io/cachebridge/dataplane:", env!("CARGO_PKG_VERSION"));
/// Redis 7 is the first version with the `&channel` ACL patterns the bridge's user needs.
pub const REDIS_IMAGE: &str = "redis:7.4-alpine";
pub const MEMCACHED_IMAGE: &str = "memcached:1.6-alpine";
/// The Secret key that holds a password when a reference names no key.
pub const PASSWORD_KEY: &str = "password";

pub fn redis_image() -> String {
    REDIS_IMAGE.into()
}

pub fn memcached_image() -> String {
    MEMCACHED_IMAGE.into()
}

pub fn password_key() -> String {
    PASSWORD_KEY.into()
}

pub fn one() -> i32 {
    1
}

pub fn two() -> i32 {
    2
}

pub fn persistence_size() -> String {
    "1Gi".into()
}

pub fn memcached_memory_mb() -> i32 {
    64
}

pub fn memcached_cpu() -> String {
    "50m".into()
}

pub fn cpu() -> String {
    "100m".into()
}

pub fn memory() -> String {
    "128Mi".into()
}

pub fn l1_max_mb() -> i32 {
    64
}

pub fn l1_ttl() -> String {
    "30s".into()
}

pub fn l2_ttl() -> String {
    "5m".into()
}

pub fn l3_ttl() -> String {
    "24h".into()
}

pub fn staleness_budget() -> String {
    "10s".into()
}

pub fn publish_interval() -> String {
    "250ms".into()
}

pub fn seed() -> i64 {
    42
}

pub fn tick_rate() -> i32 {
    500
}

pub fn symbols() -> i32 {
    175
}

pub fn replay_key() -> String {
    "ticks.ndjson".into()
}

pub fn replay_speed() -> f64 {
    1.0
}

/// The readers' autoscaler aims at 70% of their CPU request: headroom for
/// a burst while new readers start.
pub fn target_cpu_utilization() -> i32 {
    70
}

pub fn reader_port() -> i32 {
    8080
}

fn resources(cpu: &str, memory: &str, memory_limit: &str) -> Resources {
    Resources {
        requests: ResourceAmounts {
            cpu: cpu.into(),
            memory: memory.into(),
        },
        limits: Some(ResourceLimits {
            cpu: None,
            memory: Some(memory_limit.into()),
        }),
    }
}

/// Redis holds every value of the bridge; its limit leaves room for copy-on-write during saves.
pub fn redis_resources() -> Resources {
    resources("100m", "128Mi", "512Mi")
}

/// Sentinel is a small process: a few connections and the state of one primary.
pub fn sentinel_resources() -> Resources {
    resources("50m", "32Mi", "64Mi")
}

pub fn sentinel_down_after() -> String {
    "5s".into()
}

pub fn sentinel_failover_timeout() -> String {
    "60s".into()
}

pub fn writer_resources() -> Resources {
    resources("100m", "64Mi", "256Mi")
}

/// Readers hold the L1 (64 MiB by default) plus HTTP buffers.
pub fn reader_resources() -> Resources {
    resources("100m", "128Mi", "256Mi")
}

impl Default for RedisSpec {
    fn default() -> Self {
        RedisSpec {
            managed: Some(ManagedRedis::default()),
            external: None,
        }
    }
}

impl Default for ManagedRedis {
    fn default() -> Self {
        ManagedRedis {
            image: redis_image(),
            replicas: one(),
            sentinel: SentinelSettings::default(),
            resources: redis_resources(),
            persistence: None,
        }
    }
}

impl Default for SentinelSettings {
    fn default() -> Self {
        SentinelSettings {
            down_after: sentinel_down_after(),
            failover_timeout: sentinel_failover_timeout(),
            resources: sentinel_resources(),
        }
    }
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence {
            size: persistence_size(),
            storage_class_name: None,
        }
    }
}

impl Default for MemcachedSpec {
    fn default() -> Self {
        MemcachedSpec {
            managed: Some(ManagedMemcached::default()),
            external: None,
        }
    }
}

impl Default for ManagedMemcached {
    fn default() -> Self {
        ManagedMemcached {
            image: memcached_image(),
            replicas: two(),
            memory_mb: memcached_memory_mb(),
            cpu: memcached_cpu(),
        }
    }
}

impl Default for CacheSpec {
    fn default() -> Self {
        CacheSpec {
            l1_max_mb: l1_max_mb(),
            l1_ttl: l1_ttl(),
            l2_ttl: l2_ttl(),
            l3_ttl: l3_ttl(),
            staleness_budget: staleness_budget(),
            key_prefix: None,
        }
    }
}

impl Default for WriterSpec {
    fn default() -> Self {
        WriterSpec {
            image: None,
            source: SourceSpec::default(),
            publish_interval: publish_interval(),
            resources: writer_resources(),
        }
    }
}

impl Default for SourceSpec {
    fn default() -> Self {
        SourceSpec {
            type_: SourceType::Synthetic,
            seed: seed(),
            tick_rate: tick_rate(),
            symbols: symbols(),
            replay: None,
            ingest: None,
        }
    }
}

impl Default for ReaderSpec {
    fn default() -> Self {
        ReaderSpec {
            image: None,
            replicas: two(),
            port: reader_port(),
            service_type: ServiceType::ClusterIP,
            resources: reader_resources(),
            autoscaling: None,
            cors_allowed_origins: Vec::new(),
        }
    }
}

impl Default for Resources {
    fn default() -> Self {
        resources("100m", "128Mi", "256Mi")
    }
}

impl Default for ResourceAmounts {
    fn default() -> Self {
        ResourceAmounts {
            cpu: cpu(),
            memory: memory(),
        }
    }
}
