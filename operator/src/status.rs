//! Stage 4 of a reconcile: tell the truth in `status`.
//!
//! Conditions come only from what `apply` saw of the children (their
//! reported ready replicas and observed generation), never from what was
//! merely asked for; an external Redis is ready when it answered the
//! operator's PING as the bridge's user (see `probe`). The Redis primary of
//! a bridge with Sentinel is what the Sentinels last said (see `primary`). [`compute`] is pure; [`write_if_changed`] patches the
//! status subresource only when the result differs from what is stored,
//! and keeps `lastTransitionTime` unless a condition's status really flips.
//! `observedGeneration` says which spec the conditions describe, so
//! `kubectl wait --for=condition=Ready` cannot be fooled by a stale status.

use crate::FIELD_MANAGER;
use crate::apply::Applied;
use crate::desired::{self, config, names};
use crate::error::Result;
use crate::primary::Observation;
use crate::probe::Probe;
use crate::validate::{Bridge, InvalidSpec, MemcachedPlan, RedisPlan};
use cachebridge_api::v1alpha1::condition::{
    MEMCACHED_READY, READER_READY, READY, REDIS_READY, WRITER_READY,
};
use cachebridge_api::v1alpha1::{
    CacheBridge, CacheBridgeStatus, CacheFigures, Endpoints, SecretKeySelector,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};

/// Condition status values.
const TRUE: &str = "True";
const FALSE: &str = "False";
const UNKNOWN: &str = "Unknown";

/// One condition before timestamps: status, reason, message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub status: &'static str,
    pub reason: String,
    pub message: String,
}

impl Verdict {
    fn new(status: &'static str, reason: &str, message: impl Into<String>) -> Self {
        Verdict {
            status,
            reason: reason.into(),
            message: message.into(),
        }
    }

    fn is_true(&self) -> bool {
        self.status == TRUE
    }
}

/// The status of a bridge that was applied: conditions from the live
/// children and the probe of an external Redis, the primary from what the
/// Sentinels said (if asked).
pub fn compute(
    b: &Bridge,
    applied: &Applied,
    old: Option<&CacheBridgeStatus>,
    cache: Option<CacheFigures>,
    primary: &Observation,
    probe: &Probe,
    now: Timestamp,
) -> CacheBridgeStatus {
    let redis = redis_verdict(b, applied, probe);
    let memcached = memcached_verdict(b, applied);
    let writer = deployment_verdict(applied.deployments.get(&names::writer(b)), 1);
    let reader_deployment = applied.deployments.get(&names::reader(b));
    let reader = deployment_verdict(reader_deployment, b.reader.replicas);
    let ready = overall(&[
        (REDIS_READY, &redis),
        (MEMCACHED_READY, &memcached),
        (WRITER_READY, &writer),
        (READER_READY, &reader),
    ]);
    let verdicts = [
        (READY, ready),
        (REDIS_READY, redis),
        (MEMCACHED_READY, memcached),
        (WRITER_READY, writer),
        (READER_READY, reader),
    ];
    let (secret, key) = desired::password_secret(b);
    let (redis_url, redis_primary) = redis_endpoint(b, old, primary);
    CacheBridgeStatus {
        observed_generation: b.generation,
        conditions: conditions(&verdicts, old, b.generation, now),
        endpoints: Endpoints {
            redis: redis_url,
            memcached: config::memcached_servers(b),
            reader: Some(names::reader_url(b)),
            sentinel: config::sentinel_endpoints(b),
            redis_cluster: None,
        },
        password_secret: Some(SecretKeySelector { name: secret, key }),
        ingest_token_secret: desired::ingest_token_secret(b)
            .map(|(name, key)| SecretKeySelector { name, key }),
        redis_primary,
        redis_username: config::redis_username(b),
        key_prefix: b.key_prefix.clone(),
        readers: format!(
            "{}/{}",
            reader_deployment.map_or(0, ready_replicas),
            b.reader.replicas
        ),
        cache: cache.or_else(|| old.and_then(|o| o.cache.clone())),
    }
}

/// The status of a bridge whose spec is invalid: Ready is False with the
/// problems; the parts are Unknown, because nothing was applied. What the
/// running children use (endpoints, Secret) stays as it was.
pub fn invalid(
    generation: i64,
    problem: &InvalidSpec,
    old: Option<&CacheBridgeStatus>,
    now: Timestamp,
) -> CacheBridgeStatus {
    let message = format!("the spec is invalid: {problem}");
    let untouched = Verdict::new(
        UNKNOWN,
        "InvalidSpec",
        "not reconciled while the spec is invalid",
    );
    let verdicts = [
        (READY, Verdict::new(FALSE, "InvalidSpec", message)),
        (REDIS_READY, untouched.clone()),
        (MEMCACHED_READY, untouched.clone()),
        (WRITER_READY, untouched.clone()),
        (READER_READY, untouched),
    ];
    let base = old.cloned().unwrap_or_default();
    CacheBridgeStatus {
        observed_generation: generation,
        conditions: conditions(&verdicts, old, generation, now),
        ..base
    }
}

/// The URL of the bridge's Redis (`endpoints.redis`) and, with Sentinel,
/// the primary's name (`redisPrimary`).
pub fn redis_endpoint(
    b: &Bridge,
    old: Option<&CacheBridgeStatus>,
    primary: &Observation,
) -> (Option<String>, Option<String>) {
    match config::sentinel_endpoints(b) {
        Some(_) => observed_primary(b, old, primary),
        None => (config::redis_url(b), None),
    }
}

/// With Sentinel: `endpoints.redis` and `redisPrimary` as the Sentinels
/// answered now; when they did not, as last observed (a managed Redis
/// starts out with pod 0, its first primary).
fn observed_primary(
    b: &Bridge,
    old: Option<&CacheBridgeStatus>,
    primary: &Observation,
) -> (Option<String>, Option<String>) {
    if let Observation::Found(p) = primary {
        let name = match &b.redis {
            // `NAME-redis-1.NAME-redis.NS.svc` names pod `NAME-redis-1`.
            RedisPlan::Managed(_) => p.host.split('.').next().unwrap_or(&p.host).to_string(),
            RedisPlan::External(_) => format!("{}:{}", p.host, p.port),
        };
        return (Some(p.url()), Some(name));
    }
    match old.filter(|o| o.redis_primary.is_some()) {
        Some(o) => (o.endpoints.redis.clone(), o.redis_primary.clone()),
        None => (config::redis_url(b), None),
    }
}

fn redis_verdict(b: &Bridge, applied: &Applied, probe: &Probe) -> Verdict {
    match &b.redis {
        RedisPlan::Managed(m) => {
            let redis =
                stateful_set_verdict(applied.stateful_sets.get(&names::redis(b)), m.replicas);
            if !redis.is_true() || b.failover.is_none() {
                return redis;
            }
            let sentinels = stateful_set_verdict(
                applied.stateful_sets.get(&names::sentinel(b)),
                names::SENTINEL_REPLICAS,
            );
            if sentinels.is_true() {
                Verdict::new(
                    TRUE,
                    "Ready",
                    format!("{}; Sentinels: {}", redis.message, sentinels.message),
                )
            } else {
                Verdict::new(
                    FALSE,
                    "SentinelNotReady",
                    format!("Sentinels: {}", sentinels.message),
                )
            }
        }
        RedisPlan::External(e) => match probe {
            Probe::Failed(why) => Verdict::new(FALSE, why.reason(), why.to_string()),
            Probe::Answered { url, user } => Verdict::new(
                TRUE,
                "External",
                format!("the external Redis {url} answered a PING as user {user}"),
            ),
            Probe::NotAsked => unprobed_external(e),
        },
    }
}

/// An external Redis the operator may not talk to (`--no-stats`).
fn unprobed_external(e: &cachebridge_api::v1alpha1::ExternalRedis) -> Verdict {
    Verdict::new(
        TRUE,
        "External",
        match (&e.url, &e.sentinel) {
            (Some(url), _) => {
                format!("using the external Redis {url} (its health is the readers' to report)")
            }
            (None, Some(s)) => format!(
                "using the external Redis {:?} through {} Sentinel(s) (its health is the readers' to report)",
                s.master_name,
                s.servers.len()
            ),
            (None, None) => "using an external Redis".to_string(),
        },
    )
}

fn memcached_verdict(b: &Bridge, applied: &Applied) -> Verdict {
    match &b.memcached {
        MemcachedPlan::Managed(m) => {
            stateful_set_verdict(applied.stateful_sets.get(&names::memcached(b)), m.replicas)
        }
        MemcachedPlan::External(e) => Verdict::new(
            TRUE,
            "External",
            format!("using {} external server(s)", e.servers.len()),
        ),
    }
}

fn stateful_set_verdict(sts: Option<&StatefulSet>, desired: i32) -> Verdict {
    let Some(sts) = sts else {
        return Verdict::new(FALSE, "Missing", "the StatefulSet does not exist");
    };
    let status = sts.status.clone().unwrap_or_default();
    workload_verdict(
        sts.metadata.generation,
        status.observed_generation,
        status.ready_replicas.unwrap_or(0),
        desired,
    )
}

fn deployment_verdict(deployment: Option<&Deployment>, desired: i32) -> Verdict {
    let Some(deployment) = deployment else {
        return Verdict::new(FALSE, "Missing", "the Deployment does not exist");
    };
    let status = deployment.status.clone().unwrap_or_default();
    workload_verdict(
        deployment.metadata.generation,
        status.observed_generation,
        ready_replicas(deployment),
        desired,
    )
}

fn ready_replicas(deployment: &Deployment) -> i32 {
    deployment
        .status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// Ready when the workload controller has seen the current template and
/// reports at least the desired ready pods.
pub fn workload_verdict(
    generation: Option<i64>,
    observed: Option<i64>,
    ready: i32,
    desired: i32,
) -> Verdict {
    let generation = generation.unwrap_or(0);
    if observed.unwrap_or(0) < generation {
        return Verdict::new(
            FALSE,
            "RolloutPending",
            format!("waiting for the controller to see generation {generation}"),
        );
    }
    if ready >= desired {
        Verdict::new(TRUE, "Ready", format!("{ready}/{desired} pods ready"))
    } else {
        Verdict::new(
            FALSE,
            "Progressing",
            format!("{ready}/{desired} pods ready"),
        )
    }
}

fn overall(parts: &[(&str, &Verdict)]) -> Verdict {
    let waiting: Vec<String> = parts
        .iter()
        .filter(|(_, v)| !v.is_true())
        .map(|(t, v)| format!("{t} ({})", v.message))
        .collect();
    if waiting.is_empty() {
        Verdict::new(
            TRUE,
            "Ready",
            "Redis, Memcached, the writer and every reader are ready",
        )
    } else {
        Verdict::new(
            FALSE,
            "ComponentsNotReady",
            format!("waiting for {}", waiting.join(", ")),
        )
    }
}

/// Conditions in the fixed order, keeping `lastTransitionTime` of a
/// condition whose status did not change.
fn conditions(
    verdicts: &[(&str, Verdict)],
    old: Option<&CacheBridgeStatus>,
    generation: i64,
    now: Timestamp,
) -> Vec<Condition> {
    verdicts
        .iter()
        .map(|(type_, v)| {
            let previous = old.and_then(|o| o.condition(type_));
            let since = match previous {
                Some(p) if p.status == v.status => p.last_transition_time.clone(),
                _ => Time(now),
            };
            Condition {
                type_: (*type_).to_string(),
                status: v.status.to_string(),
                reason: v.reason.clone(),
                message: v.message.clone(),
                observed_generation: Some(generation),
                last_transition_time: since,
            }
        })
        .collect()
}

/// Writes `new` to the status subresource unless it equals what is stored.
/// Returns whether it wrote.
pub async fn write_if_changed(
    api: &Api<CacheBridge>,
    name: &str,
    old: Option<&CacheBridgeStatus>,
    new: &CacheBridgeStatus,
) -> Result<bool> {
    if old == Some(new) {
        return Ok(false);
    }
    let mut status = serde_json::to_value(new)?;
    if let Some(old) = old {
        null_removed(&serde_json::to_value(old)?, &mut status);
    }
    let body = serde_json::json!({
        "apiVersion": "cachebridge.dev/v1alpha1",
        "kind": "CacheBridge",
        "status": status,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch_status(name, &params, &Patch::Apply(&body))
        .await?;
    Ok(true)
}

/// Marks fields that `old` had and `new` lacks as `null`: server-side apply
/// drops fields its manager stops sending, a merge would keep them; an
/// explicit null removes them either way (the ACL user of a Redis that
/// became external must not linger in the status).
fn null_removed(old: &serde_json::Value, new: &mut serde_json::Value) {
    if let (Some(old), Some(new)) = (old.as_object(), new.as_object_mut()) {
        for (key, old_value) in old {
            match new.get_mut(key) {
                Some(new_value) => null_removed(old_value, new_value),
                None => {
                    new.insert(key.clone(), serde_json::Value::Null);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workload_is_ready_only_when_current_and_fully_ready() {
        assert!(workload_verdict(Some(2), Some(2), 3, 3).is_true());
        assert!(workload_verdict(Some(2), Some(2), 4, 3).is_true());
        let partial = workload_verdict(Some(2), Some(2), 2, 3);
        assert_eq!(
            (
                partial.status,
                partial.reason.as_str(),
                partial.message.as_str()
            ),
            (FALSE, "Progressing", "2/3 pods ready")
        );
        // All pods ready, but of the previous template: not ready yet.
        let stale = workload_verdict(Some(3), Some(2), 3, 3);
        assert_eq!(stale.reason, "RolloutPending");
    }

    #[test]
    fn a_managed_primary_is_named_by_its_pod_and_kept_while_unanswered() {
        use crate::primary::Primary;
        let cb: CacheBridge = serde_json::from_value(serde_json::json!({
            "apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge",
            "metadata": {"name": "quotes", "namespace": "prod", "uid": "u-1"},
            "spec": {"redis": {"managed": {"replicas": 2}}},
        }))
        .unwrap();
        let b = crate::validate::validate(&cb).unwrap();
        let pod0 = Some("redis://quotes-redis-0.quotes-redis.prod.svc:6379".to_string());
        assert_eq!(
            observed_primary(&b, None, &Observation::NotAsked),
            (pod0.clone(), None),
            "before any answer: the first primary, unnamed"
        );
        let found = Observation::Found(Primary {
            host: "quotes-redis-1.quotes-redis.prod.svc".into(),
            port: 6379,
        });
        let (url, name) = observed_primary(&b, None, &found);
        assert_eq!(name.as_deref(), Some("quotes-redis-1"));
        assert_eq!(
            url.as_deref(),
            Some("redis://quotes-redis-1.quotes-redis.prod.svc:6379")
        );
        let old = CacheBridgeStatus {
            endpoints: Endpoints {
                redis: url.clone(),
                ..Default::default()
            },
            redis_primary: name.clone(),
            ..Default::default()
        };
        let unanswered = Observation::Unanswered("no Sentinel answered".into());
        assert_eq!(observed_primary(&b, Some(&old), &unanswered), (url, name));
    }

    #[test]
    fn transition_time_moves_only_when_the_status_flips() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let first = conditions(
            &[(READY, Verdict::new(FALSE, "Progressing", "0/1"))],
            None,
            1,
            t0,
        );
        let old = CacheBridgeStatus {
            conditions: first,
            ..Default::default()
        };
        let same = conditions(
            &[(READY, Verdict::new(FALSE, "Progressing", "1/2"))],
            Some(&old),
            1,
            t1,
        );
        assert_eq!(same[0].last_transition_time, Time(t0));
        let flipped = conditions(
            &[(READY, Verdict::new(TRUE, "Ready", "2/2"))],
            Some(&old),
            1,
            t1,
        );
        assert_eq!(flipped[0].last_transition_time, Time(t1));
    }
}
