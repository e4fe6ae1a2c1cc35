//! Names and addresses of every child object, derived from the bridge's name.
//!
//! One module so the builders, the deleter and the status agree on them, and
//! so the dataplane contract (`NAME-dataplane`, per-pod Memcached DNS names)
//! is written down once.

use crate::validate::Bridge;

pub const REDIS_PORT: i32 = 6379;
pub const SENTINEL_PORT: i32 = 26379;
/// Sentinel pods of a replicated managed Redis: three, so two agree (the
/// quorum) and a failover still has a majority while one is down.
pub const SENTINEL_REPLICAS: i32 = 3;
pub const SENTINEL_QUORUM: i32 = 2;
/// The Sentinel ACL user the Sentinels use among themselves (admin password);
/// clients use the default user, limited to reading who the primary is.
pub const SENTINEL_ADMIN_USER: &str = "sentinel-admin";
pub const MEMCACHED_PORT: i32 = 11211;
/// Where the writer listens for `POST /ingest` when the source is `Ingest`.
pub const INGEST_PORT: i32 = 9090;
/// The writer's `/healthz`, `/readyz` and `/metrics`.
pub const WRITER_STATUS_PORT: i32 = 8081;
/// The Redis ACL user the dataplane connects as.
pub const REDIS_USERNAME: &str = "cachebridge";
/// Keys of the generated password Secret.
pub const PASSWORD_KEY: &str = "password";
pub const ADMIN_PASSWORD_KEY: &str = "admin-password";
/// Key of the dataplane config in its ConfigMap, and where pods mount it.
/// Key of the ingest token in its Secret, and where the writer finds it.
pub const INGEST_TOKEN_KEY: &str = "token";
pub const INGEST_TOKEN_DIR: &str = "/var/run/cachebridge/ingest";
pub const CONFIG_KEY: &str = "config.yaml";
pub const CONFIG_DIR: &str = "/etc/cachebridge";
pub const CONFIG_PATH: &str = "/etc/cachebridge/config.yaml";

pub fn redis(b: &Bridge) -> String {
    format!("{}-redis", b.name)
}

/// The Sentinels' client Service (ready pods only), which clients and the
/// Redis start script ask for the primary.
pub fn sentinel(b: &Bridge) -> String {
    format!("{}-sentinel", b.name)
}

/// The Sentinels' headless Service: a stable DNS name per Sentinel pod.
pub fn sentinel_headless(b: &Bridge) -> String {
    format!("{}-sentinel-headless", b.name)
}

/// The name the managed Sentinels monitor the primary under: the bridge's.
pub fn sentinel_master(b: &Bridge) -> String {
    b.name.clone()
}

/// The stable DNS name of Redis pod `ordinal`; Redis announces it to
/// Sentinel, so a pod whose IP changes is still the same instance.
pub fn redis_pod_host(b: &Bridge, ordinal: i32) -> String {
    let redis = redis(b);
    format!("{redis}-{ordinal}.{}", service_host(b, &redis))
}

/// `HOST:PORT` of every managed Sentinel, by pod DNS name.
pub fn managed_sentinel_servers(b: &Bridge) -> Vec<String> {
    let headless = sentinel_headless(b);
    let host = service_host(b, &headless);
    (0..SENTINEL_REPLICAS)
        .map(|i| format!("{}-{i}.{host}:{SENTINEL_PORT}", sentinel(b)))
        .collect()
}

/// The generated Secret holding the ingest bearer token (source `Ingest`).
pub fn ingest_secret(b: &Bridge) -> String {
    format!("{}-ingest-token", b.name)
}

/// The generated Secret holding the Redis passwords.
pub fn redis_secret(b: &Bridge) -> String {
    format!("{}-redis-password", b.name)
}

pub fn memcached(b: &Bridge) -> String {
    format!("{}-memcached", b.name)
}

pub fn writer(b: &Bridge) -> String {
    format!("{}-writer", b.name)
}

pub fn reader(b: &Bridge) -> String {
    format!("{}-reader", b.name)
}

/// ServiceAccount, Role, RoleBinding and ConfigMap of the writer and readers.
pub fn dataplane(b: &Bridge) -> String {
    format!("{}-dataplane", b.name)
}

/// `NAME.NAMESPACE.svc`, resolvable from any namespace of the cluster.
pub fn service_host(b: &Bridge, service: &str) -> String {
    format!("{service}.{}.svc", b.namespace)
}

/// The managed Redis primary: pod 0 of the StatefulSet, by its stable DNS name.
pub fn managed_redis_url(b: &Bridge) -> String {
    format!("redis://{}:{REDIS_PORT}", redis_pod_host(b, 0))
}

/// Stable per-pod addresses of the managed Memcached servers, in ordinal
/// order: the dataplane hashes keys over this list, so it must not reorder.
pub fn managed_memcached_servers(b: &Bridge, replicas: i32) -> Vec<String> {
    let memcached = memcached(b);
    let host = service_host(b, &memcached);
    (0..replicas)
        .map(|i| format!("{memcached}-{i}.{host}:{MEMCACHED_PORT}"))
        .collect()
}

pub fn reader_url(b: &Bridge) -> String {
    format!("http://{}:{}", service_host(b, &reader(b)), b.reader.port)
}
