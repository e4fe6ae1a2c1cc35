//! The dataplane's config file, and the ConfigMap that carries it.
//!
//! The file is `cachebridge_dataplane::config::Config` itself, serialized:
//! the operator cannot write a field the dataplane does not know. It never
//! holds a password; the pods read that from the Secret named in the status.

use super::common::meta;
use super::labels::Component;
use super::names::{self, CONFIG_KEY, INGEST_PORT, WRITER_STATUS_PORT};
use crate::validate::{Bridge, MemcachedPlan, RedisPlan};
use cachebridge_api::v1alpha1::{SecretKeySelector, SentinelEndpoints, SourceType};
use cachebridge_dataplane::config::{
    BridgeRef, CacheConfig, Config, MemcachedConfig, ReaderConfig, RedisConfig, Source,
    WriterConfig,
};
use k8s_openapi::api::core::v1::ConfigMap;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the replay ConfigMap is mounted in the writer.
pub const REPLAY_DIR: &str = "/etc/cachebridge/replay";

/// The dataplane config for this bridge.
pub fn dataplane_config(b: &Bridge) -> Config {
    Config {
        bridge: BridgeRef {
            namespace: b.namespace.clone(),
            name: b.name.clone(),
        },
        key_prefix: Some(b.key_prefix.clone()),
        redis: redis_config(b),
        memcached: MemcachedConfig {
            servers: memcached_servers(b),
        },
        cache: CacheConfig {
            l1_max_bytes: b.cache.l1_max_mb * 1024 * 1024,
            l1_ttl: b.cache.l1_ttl,
            l2_ttl: b.cache.l2_ttl,
            l3_ttl: b.cache.l3_ttl,
            staleness_budget: b.cache.staleness_budget,
            ..CacheConfig::default()
        },
        coherence: Default::default(),
        writer: writer_config(b),
        reader: ReaderConfig {
            listen: listen_all(b.reader.port),
            cors_allowed_origins: b.reader.cors_allowed_origins.clone(),
            ..ReaderConfig::default()
        },
        // The dataplane's defaults, written out so `kubectl get cm` shows them.
        http: Default::default(),
    }
}

/// The Redis URL clients start from (never with credentials): the managed
/// Redis's first primary, the external URL, or none for an external Redis
/// found through Sentinel (only the Sentinels know where it is) or a Redis
/// Cluster (clients start from its seed nodes, `cluster_nodes`).
pub fn redis_url(b: &Bridge) -> Option<String> {
    match &b.redis {
        RedisPlan::Managed(_) => Some(names::managed_redis_url(b)),
        RedisPlan::External(external) => external.url.clone(),
    }
}

/// The Sentinels clients ask for the primary, when Redis fails over.
pub fn sentinel_endpoints(b: &Bridge) -> Option<SentinelEndpoints> {
    match &b.redis {
        RedisPlan::Managed(_) => b.failover.as_ref().map(|_| SentinelEndpoints {
            servers: names::managed_sentinel_servers(b),
            master_name: names::sentinel_master(b),
            // The managed Sentinels' default user has the dataplane's password.
            password_secret: Some(SecretKeySelector {
                name: names::redis_secret(b),
                key: names::PASSWORD_KEY.to_string(),
            }),
        }),
        RedisPlan::External(external) => external.sentinel.as_ref().map(|s| SentinelEndpoints {
            servers: s.servers.clone(),
            master_name: s.master_name.clone(),
            password_secret: s.password_secret.as_ref().map(|p| SecretKeySelector {
                name: p.name.clone(),
                key: p.key.clone(),
            }),
        }),
    }
}

/// Seed nodes of an external Redis Cluster, when the bridge uses one.
pub fn cluster_nodes(b: &Bridge) -> Option<Vec<String>> {
    match &b.redis {
        RedisPlan::Managed(_) => None,
        RedisPlan::External(external) => external.cluster.as_ref().map(|c| c.nodes.clone()),
    }
}

/// The ACL user clients connect as, if any.
pub fn redis_username(b: &Bridge) -> Option<String> {
    match &b.redis {
        RedisPlan::Managed(_) => Some(names::REDIS_USERNAME.to_string()),
        RedisPlan::External(external) => external.username.clone(),
    }
}

/// Memcached servers in hash order.
pub fn memcached_servers(b: &Bridge) -> Vec<String> {
    match &b.memcached {
        MemcachedPlan::Managed(m) => names::managed_memcached_servers(b, m.replicas),
        MemcachedPlan::External(e) => e.servers.clone(),
    }
}

fn redis_config(b: &Bridge) -> RedisConfig {
    RedisConfig {
        url: redis_url(b),
        password_file: None,
        username: redis_username(b),
        ..RedisConfig::default()
    }
}

fn writer_config(b: &Bridge) -> WriterConfig {
    let source = &b.writer.source;
    WriterConfig {
        source: match (source.type_, &source.replay) {
            (SourceType::Synthetic, _) => Source::Synthetic,
            (SourceType::Replay, Some(replay)) => {
                Source::Replay(PathBuf::from(REPLAY_DIR).join(&replay.key))
            }
            // Validation guarantees Replay comes with a file; Ingest has no built-in source.
            (SourceType::Replay, None) | (SourceType::Ingest, _) => Source::None,
        },
        ingest_listen: (source.type_ == SourceType::Ingest).then(|| listen_all(INGEST_PORT)),
        // Probed by the kubelet: WriterReady follows whether Redis takes the values.
        status_listen: Some(listen_all(WRITER_STATUS_PORT)),
        seed: u64::try_from(source.seed).unwrap_or_default(),
        tick_rate: u32::try_from(source.tick_rate).unwrap_or(1),
        symbols: usize::try_from(source.symbols).unwrap_or(1),
        publish_interval: b.publish_interval,
        replay_speed: source.replay.as_ref().map_or(1.0, |r| r.speed),
        ..WriterConfig::default()
    }
}

fn listen_all(port: i32) -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], u16::try_from(port).unwrap_or(8080)))
}

/// `NAME-dataplane` with `config.yaml`.
pub fn config_map(b: &Bridge, yaml: &str) -> ConfigMap {
    ConfigMap {
        metadata: meta(b, names::dataplane(b), Component::Dataplane),
        data: Some(BTreeMap::from([(CONFIG_KEY.to_string(), yaml.to_string())])),
        ..Default::default()
    }
}

/// A short, stable fingerprint of the config: on the pod templates it makes
/// a config change roll the pods.
pub fn config_hash(yaml: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(yaml.as_bytes()))
}
