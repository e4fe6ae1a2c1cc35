//! The validation rules of the CRD, run client-side through kube's CEL
//! engine (and the structural checks of the schema), on a table of valid and
//! invalid CacheBridges. Each invalid row names the message a user would see.

use cachebridge_operator::schema_check::{check, schema};
use kube::core::cel::{ScopeContext, WarningKind, analyze_rule, compile_schema};
use serde_json::{Value, json};

fn bridge(spec: Value) -> Value {
    json!({
        "apiVersion": "cachebridge.dev/v1alpha1",
        "kind": "CacheBridge",
        "metadata": {"name": "quotes", "namespace": "prod"},
        "spec": spec,
    })
}

fn external_redis() -> Value {
    json!({"url": "redis://r.shared.svc:6379", "passwordSecret": {"name": "creds"}})
}

fn external_sentinel(sentinel: Value) -> Value {
    bridge(
        json!({"redis": {"external": {"sentinel": sentinel, "passwordSecret": {"name": "creds"}}}}),
    )
}

#[test]
fn valid_resources_pass() {
    let full: Value = serde_yaml::from_str(include_str!("../../examples/full.yaml")).unwrap();
    let cases: Vec<(&str, Value)> = vec![
        (
            "a name only",
            json!({"apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge", "metadata": {"name": "quotes"}}),
        ),
        ("empty spec", bridge(json!({}))),
        ("examples/full.yaml", full),
        (
            "external redis",
            bridge(json!({"redis": {"external": external_redis()}})),
        ),
        (
            "external redis by sentinel",
            external_sentinel(
                json!({"servers": ["s-0.redis:26379", "10.0.0.8:26379"], "masterName": "mymaster", "passwordSecret": {"name": "sentinel-creds"}}),
            ),
        ),
        (
            "external sentinel without a password",
            external_sentinel(json!({"servers": ["s:26379"], "masterName": "m"})),
        ),
        (
            "replicated redis with sentinel settings",
            bridge(
                json!({"redis": {"managed": {"replicas": 3, "sentinel": {"downAfter": "1s", "failoverTimeout": "10s", "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}}}}),
            ),
        ),
        (
            "external memcached",
            bridge(
                json!({"memcached": {"external": {"servers": ["m-0.cache:11211", "10.0.0.7:11211"]}}}),
            ),
        ),
        (
            "replay source",
            bridge(
                json!({"writer": {"source": {"type": "Replay", "replay": {"configMap": "ticks"}}}}),
            ),
        ),
        (
            "ingest source",
            bridge(json!({"writer": {"source": {"type": "Ingest"}}})),
        ),
        (
            "ingest open to named pods and namespaces",
            bridge(
                json!({"writer": {"source": {"type": "Ingest", "ingest": {"from": [
                    {"podSelector": {"app": "order-router"}},
                    {"namespaceSelector": {"kubernetes.io/metadata.name": "trading"}, "podSelector": {"app": "feed"}},
                    {"namespaceSelector": {"team": "pricing"}}
                ]}}}}),
            ),
        ),
        (
            "ingest open to nobody",
            bridge(json!({"writer": {"source": {"type": "Ingest", "ingest": {"from": []}}}})),
        ),
        (
            "limits equal requests",
            bridge(
                json!({"reader": {"resources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}}}),
            ),
        ),
        (
            "CORS origins",
            bridge(
                json!({"reader": {"corsAllowedOrigins": ["https://app.example.com", "http://localhost:3000", "*"]}}),
            ),
        ),
        (
            "compound durations",
            bridge(
                json!({"cache": {"l1Ttl": "1m30s", "l3Ttl": "1h30m", "stalenessBudget": "500ms"}}),
            ),
        ),
        (
            "a 40-character name",
            json!({"apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge", "metadata": {"name": "a".repeat(40)}}),
        ),
        (
            "key prefix with hash tag",
            bridge(json!({"cache": {"keyPrefix": "{q}:prod/v1-"}})),
        ),
        (
            "external redis cluster",
            bridge(
                json!({"redis": {"external": {"cluster": {"nodes": ["rc-0.redis:6379", "10.0.0.9:7000"]}, "passwordSecret": {"name": "creds"}, "username": "quotes"}}}),
            ),
        ),
        (
            "reader autoscaling, defaults",
            bridge(json!({"reader": {"autoscaling": {"maxReplicas": 10}}})),
        ),
        (
            "reader autoscaling at its bounds, with behavior",
            bridge(
                json!({"reader": {"autoscaling": {"minReplicas": 1, "maxReplicas": 100, "targetCPUUtilizationPercentage": 10,
                    "behavior": {"scaleUp": {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]},
                                 "scaleDown": {"selectPolicy": "Disabled"}}}}}),
            ),
        ),
        (
            "reader autoscaling with min equal to max",
            bridge(json!({"reader": {"autoscaling": {"minReplicas": 3, "maxReplicas": 3}}})),
        ),
    ];
    for (name, object) in cases {
        assert_eq!(check(&object), vec![], "{name} should be valid");
    }
}

#[test]
fn invalid_resources_fail_with_a_message_naming_the_problem() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "redis managed and external",
            bridge(json!({"redis": {"managed": {}, "external": external_redis()}})),
            "set exactly one of redis.managed and redis.external",
        ),
        (
            "ingest access without the ingest source",
            bridge(
                json!({"writer": {"source": {"type": "Synthetic", "ingest": {"from": [{"podSelector": {"a": "b"}}]}}}}),
            ),
            "writer.source.ingest is only for writer.source.type Ingest",
        ),
        (
            "ingest peer without a selector",
            bridge(json!({"writer": {"source": {"type": "Ingest", "ingest": {"from": [{}]}}}})),
            "every writer.source.ingest.from entry needs podSelector or namespaceSelector",
        ),
        (
            "ingest peer with an empty pod selector",
            bridge(
                json!({"writer": {"source": {"type": "Ingest", "ingest": {"from": [{"podSelector": {}}]}}}}),
            ),
            "podSelector must name at least one label",
        ),
        (
            "ingest peer with an empty namespace selector",
            bridge(
                json!({"writer": {"source": {"type": "Ingest", "ingest": {"from": [{"namespaceSelector": {}}]}}}}),
            ),
            "namespaceSelector must name at least one label",
        ),
        (
            "redis neither",
            bridge(json!({"redis": {}})),
            "set exactly one of redis.managed and redis.external",
        ),
        (
            "memcached both",
            bridge(json!({"memcached": {"managed": {}, "external": {"servers": ["m:11211"]}}})),
            "set exactly one of memcached.managed and memcached.external",
        ),
        (
            "redis url scheme",
            bridge(
                json!({"redis": {"external": {"url": "http://r:6379", "passwordSecret": {"name": "s"}}}}),
            ),
            "must start with redis:// or rediss://",
        ),
        (
            "password in url",
            bridge(
                json!({"redis": {"external": {"url": "redis://:hunter2@r:6379", "passwordSecret": {"name": "s"}}}}),
            ),
            "put no credentials in redis.external.url",
        ),
        (
            "external redis without secret",
            bridge(json!({"redis": {"external": {"url": "redis://r:6379"}}})),
            "spec.redis.external.passwordSecret: is required",
        ),
        (
            "external redis with url and sentinel",
            bridge(
                json!({"redis": {"external": {"url": "redis://r:6379", "sentinel": {"servers": ["s:26379"], "masterName": "m"}, "passwordSecret": {"name": "s"}}}}),
            ),
            "set exactly one of redis.external.url, redis.external.sentinel and redis.external.cluster",
        ),
        (
            "external redis with neither url nor sentinel",
            bridge(json!({"redis": {"external": {"passwordSecret": {"name": "s"}}}})),
            "set exactly one of redis.external.url, redis.external.sentinel and redis.external.cluster",
        ),
        (
            "external redis with url and cluster",
            bridge(
                json!({"redis": {"external": {"url": "redis://r:6379", "cluster": {"nodes": ["rc-0:6379"]}, "passwordSecret": {"name": "s"}}}}),
            ),
            "set exactly one of redis.external.url, redis.external.sentinel and redis.external.cluster",
        ),
        (
            "external redis with sentinel and cluster",
            bridge(
                json!({"redis": {"external": {"sentinel": {"servers": ["s:26379"], "masterName": "m"}, "cluster": {"nodes": ["rc-0:6379"]}, "passwordSecret": {"name": "s"}}}}),
            ),
            "set exactly one of redis.external.url, redis.external.sentinel and redis.external.cluster",
        ),
        (
            "cluster node without port",
            bridge(
                json!({"redis": {"external": {"cluster": {"nodes": ["rc-0.redis"]}, "passwordSecret": {"name": "s"}}}}),
            ),
            "every redis.external.cluster.nodes entry must be HOST:PORT",
        ),
        (
            "no cluster nodes",
            bridge(
                json!({"redis": {"external": {"cluster": {"nodes": []}, "passwordSecret": {"name": "s"}}}}),
            ),
            "spec.redis.external.cluster.nodes: must have at least 1 items",
        ),
        (
            "autoscaling min above max",
            bridge(json!({"reader": {"autoscaling": {"minReplicas": 5, "maxReplicas": 4}}})),
            "reader.autoscaling.minReplicas must not exceed maxReplicas",
        ),
        (
            "autoscaling min below 1",
            bridge(json!({"reader": {"autoscaling": {"minReplicas": 0, "maxReplicas": 4}}})),
            "spec.reader.autoscaling.minReplicas",
        ),
        (
            "autoscaling max above 100",
            bridge(json!({"reader": {"autoscaling": {"maxReplicas": 101}}})),
            "spec.reader.autoscaling.maxReplicas",
        ),
        (
            "autoscaling without max",
            bridge(json!({"reader": {"autoscaling": {"minReplicas": 2}}})),
            "spec.reader.autoscaling.maxReplicas: is required",
        ),
        (
            "autoscaling target below 10%",
            bridge(
                json!({"reader": {"autoscaling": {"maxReplicas": 4, "targetCPUUtilizationPercentage": 5}}}),
            ),
            "spec.reader.autoscaling.targetCPUUtilizationPercentage",
        ),
        (
            "autoscaling policy of an unknown type",
            bridge(
                json!({"reader": {"autoscaling": {"maxReplicas": 4, "behavior": {"scaleUp": {"policies": [{"type": "Nodes", "value": 1, "periodSeconds": 15}]}}}}}),
            ),
            "spec.reader.autoscaling.behavior.scaleUp.policies[0].type",
        ),
        (
            "sentinel server without port",
            external_sentinel(json!({"servers": ["s-0.redis"], "masterName": "m"})),
            "every redis.external.sentinel.servers entry must be HOST:PORT",
        ),
        (
            "no sentinel servers",
            external_sentinel(json!({"servers": [], "masterName": "m"})),
            "spec.redis.external.sentinel.servers: must have at least 1 items",
        ),
        (
            "empty master name",
            external_sentinel(json!({"servers": ["s:26379"], "masterName": ""})),
            "spec.redis.external.sentinel.masterName",
        ),
        (
            "master name with a space",
            external_sentinel(json!({"servers": ["s:26379"], "masterName": "my master"})),
            "spec.redis.external.sentinel.masterName: \"my master\" must match",
        ),
        (
            "sentinel without master name",
            external_sentinel(json!({"servers": ["s:26379"]})),
            "spec.redis.external.sentinel.masterName: is required",
        ),
        (
            "sentinel down-after too short",
            bridge(
                json!({"redis": {"managed": {"replicas": 2, "sentinel": {"downAfter": "500ms"}}}}),
            ),
            "redis.managed.sentinel.downAfter must be between 1s and 10m",
        ),
        (
            "failover timeout not above down-after",
            bridge(
                json!({"redis": {"managed": {"replicas": 2, "sentinel": {"downAfter": "2m", "failoverTimeout": "1m"}}}}),
            ),
            "redis.managed.sentinel.failoverTimeout must be longer than downAfter",
        ),
        (
            "failover timeout too short",
            bridge(
                json!({"redis": {"managed": {"sentinel": {"failoverTimeout": "5s", "downAfter": "1s"}}}}),
            ),
            "redis.managed.sentinel.failoverTimeout must be between 10s and 1h",
        ),
        (
            "memcached server without port",
            bridge(json!({"memcached": {"external": {"servers": ["m-0.cache"]}}})),
            "must be HOST:PORT",
        ),
        (
            "memcached no servers",
            bridge(json!({"memcached": {"external": {"servers": []}}})),
            "must have at least 1 items",
        ),
        (
            "memcached memory too small",
            bridge(json!({"memcached": {"managed": {"memoryMb": 8}}})),
            "spec.memcached.managed.memoryMb: must be at least 16",
        ),
        (
            "memcached too many replicas",
            bridge(json!({"memcached": {"managed": {"replicas": 33}}})),
            "spec.memcached.managed.replicas: must be at most 32",
        ),
        (
            "redis too many replicas",
            bridge(json!({"redis": {"managed": {"replicas": 6}}})),
            "spec.redis.managed.replicas: must be at most 5",
        ),
        (
            "no readers",
            bridge(json!({"reader": {"replicas": 0}})),
            "spec.reader.replicas: must be at least 1",
        ),
        (
            "privileged port",
            bridge(json!({"reader": {"port": 80}})),
            "spec.reader.port: must be at least 1024",
        ),
        (
            "ingest port",
            bridge(json!({"reader": {"port": 9090}})),
            "reserved for the writer's ingest port",
        ),
        (
            "CORS origin with a path",
            bridge(json!({"reader": {"corsAllowedOrigins": ["https://app.example.com/"]}})),
            "every reader.corsAllowedOrigins entry must be * or http(s)://host[:port]",
        ),
        (
            "CORS origin without a scheme",
            bridge(json!({"reader": {"corsAllowedOrigins": ["app.example.com"]}})),
            "every reader.corsAllowedOrigins entry must be * or http(s)://host[:port]",
        ),
        (
            "service type",
            bridge(json!({"reader": {"serviceType": "Ingress"}})),
            "must be one of ClusterIP, NodePort, LoadBalancer",
        ),
        (
            "source type",
            bridge(json!({"writer": {"source": {"type": "Kafka"}}})),
            "must be one of Synthetic, Replay, Ingest",
        ),
        (
            "replay without file",
            bridge(json!({"writer": {"source": {"type": "Replay"}}})),
            "writer.source.type Replay needs writer.source.replay",
        ),
        (
            "duration with a space",
            bridge(json!({"cache": {"l1Ttl": "30 s"}})),
            "spec.cache.l1Ttl: \"30 s\" must match",
        ),
        (
            "duration in days",
            bridge(json!({"cache": {"l3Ttl": "1d"}})),
            "spec.cache.l3Ttl: \"1d\" must match",
        ),
        (
            "L1 outlives L3",
            bridge(json!({"cache": {"l1Ttl": "48h"}})),
            "cache.l1Ttl must not exceed cache.l3Ttl",
        ),
        (
            "zero staleness budget",
            bridge(json!({"cache": {"stalenessBudget": "0s"}})),
            "must be above zero",
        ),
        (
            "publish too often",
            bridge(json!({"writer": {"publishInterval": "1ms"}})),
            "writer.publishInterval must be at least 10ms",
        ),
        (
            "memory limit below request",
            bridge(
                json!({"reader": {"resources": {"requests": {"memory": "512Mi"}, "limits": {"memory": "256Mi"}}}}),
            ),
            "the memory limit must not be below the memory request",
        ),
        (
            "cpu limit below request",
            bridge(
                json!({"writer": {"resources": {"requests": {"cpu": "1"}, "limits": {"cpu": "500m"}}}}),
            ),
            "the CPU limit must not be below the CPU request",
        ),
        (
            "cpu not a quantity",
            bridge(json!({"reader": {"resources": {"requests": {"cpu": "lots"}}}})),
            "cpu must be a quantity of at least 1m",
        ),
        (
            "tiny memory request",
            bridge(json!({"reader": {"resources": {"requests": {"memory": "1Mi"}}}})),
            "memory must be a quantity of at least 16Mi",
        ),
        (
            "tiny volume",
            bridge(json!({"redis": {"managed": {"persistence": {"size": "10Mi"}}}})),
            "persistence.size must be a quantity of at least 64Mi",
        ),
        (
            "key prefix with a space",
            bridge(json!({"cache": {"keyPrefix": "my prefix"}})),
            "spec.cache.keyPrefix: \"my prefix\" must match",
        ),
        (
            "key prefix with a glob",
            bridge(json!({"cache": {"keyPrefix": "cb:*"}})),
            "spec.cache.keyPrefix: \"cb:*\" must match",
        ),
        (
            "typo in a field",
            bridge(json!({"reader": {"replica": 3}})),
            "spec.reader.replica: unknown field",
        ),
        (
            "wrong type",
            bridge(json!({"reader": {"replicas": "three"}})),
            "spec.reader.replicas: must be of type integer",
        ),
        (
            "name too long",
            json!({"apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge", "metadata": {"name": "a".repeat(41)}}),
            "the name must be at most 40 characters",
        ),
    ];
    for (name, object, expected) in cases {
        let violations: Vec<String> = check(&object).iter().map(ToString::to_string).collect();
        assert!(
            violations.iter().any(|v| v.contains(expected)),
            "{name}: expected a violation containing {expected:?}, got {violations:?}"
        );
    }
}

/// Every rule compiles and stays within the apiserver's cost budget (which
/// needs maxLength/maxItems on what it reads). Scope warnings are left out:
/// the analyzer does not know variables bound by `all(s, ...)`, and the
/// apiserver-equivalent evaluation above already proves the rules run.
#[test]
fn every_rule_compiles_and_is_cheap_enough_for_the_apiserver() {
    let mut nodes = Vec::new();
    collect_rule_nodes(schema(), &mut nodes);
    assert!(
        nodes.len() >= 15,
        "expected the CRD's CEL rules, found {} nodes",
        nodes.len()
    );
    for node in nodes {
        let compiled = compile_schema(node);
        assert!(
            !compiled.has_errors(),
            "rules do not compile: {:?}",
            compiled.compilation_errors()
        );
        for rule in node["x-kubernetes-validations"].as_array().unwrap() {
            let rule = rule["rule"].as_str().unwrap();
            let warnings: Vec<_> = analyze_rule(rule, &compiled, ScopeContext::CrdValidation)
                .into_iter()
                .filter(|w| w.kind != WarningKind::WrongScope)
                .collect();
            assert!(warnings.is_empty(), "{rule}: {warnings:?}");
        }
    }
}

fn collect_rule_nodes<'a>(node: &'a Value, out: &mut Vec<&'a Value>) {
    if node.get("x-kubernetes-validations").is_some() {
        out.push(node);
    }
    for key in ["properties", "items"] {
        match node.get(key) {
            Some(Value::Object(children)) if key == "properties" => {
                children.values().for_each(|c| collect_rule_nodes(c, out))
            }
            Some(child) if key == "items" => collect_rule_nodes(child, out),
            _ => {}
        }
    }
}
