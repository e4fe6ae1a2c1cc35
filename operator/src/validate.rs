//! Stage 1 of a reconcile: is this CacheBridge something we can build?
//!
//! Pure: a CacheBridge goes in, a [`Bridge`] (every choice resolved, every
//! duration parsed) or an [`InvalidSpec`] comes out. No client, no clock, so
//! it is tested as a plain function and `render -f` uses it unchanged.

use crate::schema_check;
use cachebridge_api::v1alpha1::{
    CacheBridge, CacheSpec, ExternalMemcached, ExternalRedis, ManagedMemcached, ManagedRedis,
    ReaderSpec, Resources, WriterSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Resource;
use std::time::Duration;

/// A CacheBridge that passed validation, with its choices made explicit.
#[derive(Debug, Clone, PartialEq)]
pub struct Bridge {
    pub name: String,
    pub namespace: String,
    /// Points every child back at the CacheBridge (garbage collection, watches).
    pub owner: OwnerReference,
    pub generation: i64,
    /// The effective key prefix (the spec's or `cb:{namespace}:{name}:`).
    pub key_prefix: String,
    pub redis: RedisPlan,
    /// Set when the managed Redis has replicas: Sentinels fail it over.
    pub failover: Option<Failover>,
    pub memcached: MemcachedPlan,
    pub cache: CacheTimes,
    pub writer: WriterSpec,
    pub publish_interval: Duration,
    pub reader: ReaderSpec,
}

/// Redis: run by us, or somebody else's.
#[derive(Debug, Clone, PartialEq)]
pub enum RedisPlan {
    Managed(ManagedRedis),
    External(ExternalRedis),
}

/// Automatic failover of a managed Redis, with its durations parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failover {
    pub down_after: Duration,
    pub failover_timeout: Duration,
    pub resources: Resources,
}

/// Memcached: run by us, or somebody else's.
#[derive(Debug, Clone, PartialEq)]
pub enum MemcachedPlan {
    Managed(ManagedMemcached),
    External(ExternalMemcached),
}

/// The cache section with its durations parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheTimes {
    pub l1_max_mb: u64,
    pub l1_ttl: Duration,
    pub l2_ttl: Duration,
    pub l3_ttl: Duration,
    pub staleness_budget: Duration,
}

/// Why a CacheBridge cannot be built, in words a user can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .problems.join("; "))]
pub struct InvalidSpec {
    /// Every problem found, each naming its field.
    pub problems: Vec<String>,
}

impl InvalidSpec {
    fn one(problem: impl Into<String>) -> Self {
        InvalidSpec {
            problems: vec![problem.into()],
        }
    }
}

/// Checks the resource against the CRD schema and its CEL rules, then
/// resolves it into a [`Bridge`].
pub fn validate(cb: &CacheBridge) -> Result<Bridge, InvalidSpec> {
    let name = cb
        .metadata
        .name
        .clone()
        .ok_or_else(|| InvalidSpec::one("metadata.name is missing"))?;
    let namespace = cb
        .metadata
        .namespace
        .clone()
        .ok_or_else(|| InvalidSpec::one("metadata.namespace is missing"))?;
    check_schema(cb)?;
    let owner = owner_reference(cb)?;
    let spec = &cb.spec;
    let bridge = Bridge {
        key_prefix: key_prefix(cb),
        redis: redis_plan(spec)?,
        failover: failover(spec)?,
        memcached: memcached_plan(spec)?,
        cache: cache_times(&spec.cache)?,
        publish_interval: duration("spec.writer.publishInterval", &spec.writer.publish_interval)?,
        writer: spec.writer.clone(),
        reader: spec.reader.clone(),
        generation: cb.metadata.generation.unwrap_or(0),
        owner,
        name,
        namespace,
    };
    // The dataplane checks its own config the same way at start; a bridge it
    // would refuse must fail here, visibly, not in a crash-looping pod.
    crate::desired::config::dataplane_config(&bridge)
        .validate()
        .map_err(|e| InvalidSpec::one(format!("the dataplane would refuse this config: {e}")))?;
    Ok(bridge)
}

fn check_schema(cb: &CacheBridge) -> Result<(), InvalidSpec> {
    let object = serde_json::to_value(cb).map_err(|e| InvalidSpec::one(e.to_string()))?;
    let violations = schema_check::check(&object);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(InvalidSpec {
            problems: violations.iter().map(ToString::to_string).collect(),
        })
    }
}

fn owner_reference(cb: &CacheBridge) -> Result<OwnerReference, InvalidSpec> {
    // `controller_owner_ref` needs the uid the apiserver assigns; `render`
    // fills a placeholder in for files that never saw an apiserver.
    cb.controller_owner_ref(&())
        .map(|mut owner| {
            owner.block_owner_deletion = Some(true);
            owner
        })
        .ok_or_else(|| InvalidSpec::one("metadata.uid is missing"))
}

fn redis_plan(spec: &cachebridge_api::CacheBridgeSpec) -> Result<RedisPlan, InvalidSpec> {
    match (&spec.redis.managed, &spec.redis.external) {
        (Some(managed), None) => Ok(RedisPlan::Managed(managed.clone())),
        (None, Some(external)) => Ok(RedisPlan::External(external.clone())),
        _ => Err(InvalidSpec::one(
            "spec.redis: set exactly one of redis.managed and redis.external",
        )),
    }
}

/// Two or more managed Redis pods fail over; one cannot (there is nothing to promote).
fn failover(spec: &cachebridge_api::CacheBridgeSpec) -> Result<Option<Failover>, InvalidSpec> {
    let Some(managed) = spec.redis.managed.as_ref().filter(|m| m.replicas >= 2) else {
        return Ok(None);
    };
    let sentinel = &managed.sentinel;
    Ok(Some(Failover {
        down_after: duration(
            "spec.redis.managed.sentinel.downAfter",
            &sentinel.down_after,
        )?,
        failover_timeout: duration(
            "spec.redis.managed.sentinel.failoverTimeout",
            &sentinel.failover_timeout,
        )?,
        resources: sentinel.resources.clone(),
    }))
}

fn memcached_plan(spec: &cachebridge_api::CacheBridgeSpec) -> Result<MemcachedPlan, InvalidSpec> {
    match (&spec.memcached.managed, &spec.memcached.external) {
        (Some(managed), None) => Ok(MemcachedPlan::Managed(managed.clone())),
        (None, Some(external)) => Ok(MemcachedPlan::External(external.clone())),
        _ => Err(InvalidSpec::one(
            "spec.memcached: set exactly one of memcached.managed and memcached.external",
        )),
    }
}

fn cache_times(cache: &CacheSpec) -> Result<CacheTimes, InvalidSpec> {
    Ok(CacheTimes {
        l1_max_mb: u64::try_from(cache.l1_max_mb).unwrap_or(0),
        l1_ttl: duration("spec.cache.l1Ttl", &cache.l1_ttl)?,
        l2_ttl: duration("spec.cache.l2Ttl", &cache.l2_ttl)?,
        l3_ttl: duration("spec.cache.l3Ttl", &cache.l3_ttl)?,
        staleness_budget: duration("spec.cache.stalenessBudget", &cache.staleness_budget)?,
    })
}

/// Parses a duration the schema already shaped (`1h30m`, `250ms`).
pub fn duration(field: &str, text: &str) -> Result<Duration, InvalidSpec> {
    humantime::parse_duration(text).map_err(|e| {
        InvalidSpec::one(format!(
            "{field}: {text:?} is not a duration like 30s or 1h30m ({e})"
        ))
    })
}

/// The bridge's key prefix as the dataplane will use it: on a Redis Cluster
/// it carries a hash tag (`{cb:ns:name}:`), so that the status, the
/// ConfigMap and the operator's own reads of the readers' figures name the
/// same keys as the writer and readers, all in one slot.
fn key_prefix(cb: &CacheBridge) -> String {
    let prefix = cb.key_prefix();
    let on_cluster = cb
        .spec
        .redis
        .external
        .as_ref()
        .is_some_and(|e| e.cluster.is_some());
    if on_cluster {
        cachebridge_dataplane::keys::with_hash_tag(&prefix)
    } else {
        prefix
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachebridge_api::v1alpha1::SourceType;

    fn bridge(spec: serde_json::Value) -> CacheBridge {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "cachebridge.dev/v1alpha1",
            "kind": "CacheBridge",
            "metadata": {"name": "quotes", "namespace": "prod", "uid": "u-1", "generation": 3},
            "spec": spec,
        }))
        .expect("test resource deserializes")
    }

    #[test]
    fn the_defaults_resolve_to_managed_servers() {
        let b = validate(&bridge(serde_json::json!({}))).expect("defaults are valid");
        assert!(matches!(b.redis, RedisPlan::Managed(_)));
        assert!(matches!(b.memcached, MemcachedPlan::Managed(_)));
        assert_eq!(b.key_prefix, "cb:prod:quotes:");
        assert_eq!(b.cache.l1_ttl, Duration::from_secs(30));
        assert_eq!(b.publish_interval, Duration::from_millis(250));
        assert_eq!(b.writer.source.type_, SourceType::Synthetic);
        assert_eq!(b.owner.uid, "u-1");
        assert_eq!(b.owner.controller, Some(true));
        assert_eq!(b.generation, 3);
    }

    #[test]
    fn on_a_redis_cluster_the_key_prefix_carries_a_hash_tag() {
        let on = |prefix: Option<&str>| {
            let mut spec = serde_json::json!({"redis": {"external": {
                "cluster": {"nodes": ["r-0:6379"]},
                "passwordSecret": {"name": "s", "key": "password"}}}});
            if let Some(p) = prefix {
                spec["cache"] = serde_json::json!({"keyPrefix": p});
            }
            validate(&bridge(spec)).expect("valid").key_prefix
        };
        assert_eq!(on(None), "{cb:prod:quotes}:");
        assert_eq!(on(Some("{fx}:q:")), "{fx}:q:", "a tag given is kept");
    }

    #[test]
    fn compound_durations_parse() {
        assert_eq!(duration("f", "1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            duration("f", "1m500ms").unwrap(),
            Duration::from_millis(60_500)
        );
        assert!(
            duration("f", "soon")
                .unwrap_err()
                .to_string()
                .contains("f: \"soon\"")
        );
    }

    #[test]
    fn both_managed_and_external_is_rejected_with_the_rule_message() {
        let cb = bridge(serde_json::json!({"redis": {
            "managed": {},
            "external": {"url": "redis://r:6379", "passwordSecret": {"name": "s"}}
        }}));
        let err = validate(&cb).unwrap_err();
        assert!(
            err.to_string()
                .contains("set exactly one of redis.managed and redis.external"),
            "{err}"
        );
    }

    #[test]
    fn two_or_more_managed_redis_pods_fail_over_one_does_not() {
        let single = validate(&bridge(serde_json::json!({}))).unwrap();
        assert_eq!(single.failover, None);
        let ha = validate(&bridge(serde_json::json!({"redis": {"managed": {
            "replicas": 3,
            "sentinel": {"downAfter": "2s500ms", "failoverTimeout": "1m"}
        }}})))
        .unwrap();
        let failover = ha.failover.expect("replicas 3 fail over");
        assert_eq!(failover.down_after, Duration::from_millis(2500));
        assert_eq!(failover.failover_timeout, Duration::from_secs(60));
    }

    #[test]
    fn an_external_redis_takes_a_url_or_sentinels_not_both() {
        let sentinel =
            serde_json::json!({"servers": ["s-0.redis:26379"], "masterName": "mymaster"});
        let by_sentinel = bridge(serde_json::json!({"redis": {"external": {
            "sentinel": sentinel, "passwordSecret": {"name": "s"}
        }}}));
        let b = validate(&by_sentinel).expect("sentinels instead of a URL");
        assert!(matches!(&b.redis, RedisPlan::External(e) if e.url.is_none()));
        assert_eq!(
            b.failover, None,
            "failover of an external Redis is not ours to run"
        );
        let both = bridge(serde_json::json!({"redis": {"external": {
            "url": "redis://r:6379", "sentinel": sentinel, "passwordSecret": {"name": "s"}
        }}}));
        let err = validate(&both).unwrap_err().to_string();
        assert!(
            err.contains(
                "set exactly one of redis.external.url, redis.external.sentinel and redis.external.cluster"
            ),
            "{err}"
        );
        let neither =
            bridge(serde_json::json!({"redis": {"external": {"passwordSecret": {"name": "s"}}}}));
        assert!(validate(&neither).is_err());
    }

    #[test]
    fn a_missing_uid_is_reported() {
        let mut cb = bridge(serde_json::json!({}));
        cb.metadata.uid = None;
        assert_eq!(
            validate(&cb).unwrap_err().to_string(),
            "metadata.uid is missing"
        );
    }
}
