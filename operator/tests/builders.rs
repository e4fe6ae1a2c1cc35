//! The builders as pure functions: the exact objects for a minimal and a
//! full CacheBridge (golden files), and the properties every object must
//! have whatever the spec (restricted pods, requests, owners, no secrets in
//! config).
//!
//! Regenerate the golden files after an intended change with
//! `UPDATE_GOLDEN=1 cargo test -p cachebridge-operator --test builders` and
//! review the diff.

use cachebridge_api::CacheBridge;
use cachebridge_operator::desired::{self, Child, Desired, Kind, Settings, labels};
use cachebridge_operator::render::{self, read_bridge};
use cachebridge_operator::validate::{self, Bridge};
use k8s_openapi::api::core::v1::PodSpec;
use std::path::PathBuf;

fn example(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bridge_of(yaml: &str) -> (CacheBridge, Bridge) {
    let doc = serde_yaml::Deserializer::from_str(yaml)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|v: &serde_json::Value| v["kind"] == "CacheBridge")
        .expect("a CacheBridge document");
    let cb = read_bridge(1, doc).expect("the example is valid");
    let bridge = validate::validate(&cb).expect("the example validates");
    (cb, bridge)
}

fn desired(yaml: &str) -> (Bridge, Desired) {
    let (_, bridge) = bridge_of(yaml);
    let desired = desired::build(&bridge, &Settings::default()).expect("build");
    (bridge, desired)
}

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    if expected != actual {
        let line = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .map_or(expected.lines().count().min(actual.lines().count()), |l| l);
        panic!(
            "{name} differs from the built objects at line {}:\n expected: {:?}\n   actual: {:?}\n(UPDATE_GOLDEN=1 regenerates it; review the diff)",
            line + 1,
            expected.lines().nth(line),
            actual.lines().nth(line)
        );
    }
}

#[test]
fn minimal_bridge_builds_exactly_the_golden_objects() {
    let rendered = render::render(&example("minimal.yaml"), &Settings::default()).unwrap();
    golden("minimal.rendered.yaml", &rendered);
}

#[test]
fn full_bridge_builds_exactly_the_golden_objects() {
    let rendered = render::render(&example("full.yaml"), &Settings::default()).unwrap();
    golden("full.rendered.yaml", &rendered);
}

#[test]
fn external_redis_bridge_builds_exactly_the_golden_objects() {
    let rendered = render::render(&example("external-redis.yaml"), &Settings::default()).unwrap();
    golden("external-redis.rendered.yaml", &rendered);
}

#[test]
fn the_minimal_bridge_has_the_whole_managed_topology() {
    let (_, d) = desired(&example("minimal.yaml"));
    let keys: Vec<(Kind, String)> = d
        .children()
        .iter()
        .map(|c| (c.key().kind, c.key().name))
        .collect();
    let expect = |kind, name: &str| {
        assert!(
            keys.contains(&(kind, name.to_string())),
            "missing {kind:?} {name}: {keys:?}"
        )
    };
    expect(Kind::ServiceAccount, "quotes-dataplane");
    expect(Kind::Role, "quotes-dataplane");
    expect(Kind::RoleBinding, "quotes-dataplane");
    expect(Kind::ConfigMap, "quotes-dataplane");
    expect(Kind::Secret, "quotes-redis-password");
    expect(Kind::StatefulSet, "quotes-redis");
    expect(Kind::Service, "quotes-redis");
    expect(Kind::NetworkPolicy, "quotes-redis");
    expect(Kind::StatefulSet, "quotes-memcached");
    expect(Kind::Service, "quotes-memcached");
    expect(Kind::NetworkPolicy, "quotes-memcached");
    expect(Kind::Deployment, "quotes-writer");
    expect(Kind::NetworkPolicy, "quotes-writer");
    expect(Kind::Deployment, "quotes-reader");
    expect(Kind::Service, "quotes-reader");
    expect(Kind::PodDisruptionBudget, "quotes-reader");
    expect(Kind::NetworkPolicy, "quotes-reader");
    assert_eq!(keys.len(), 17, "{keys:?}");
}

fn pods(d: &Desired) -> Vec<(String, PodSpec)> {
    d.children()
        .into_iter()
        .filter_map(|c| {
            let template = match c {
                Child::Deployment(o) => o.spec.as_ref()?.template.clone(),
                Child::StatefulSet(o) => o.spec.as_ref()?.template.clone(),
                _ => return None,
            };
            Some((c.key().name, template.spec?))
        })
        .collect()
}

#[test]
fn every_pod_is_restricted_and_requests_resources() {
    for example_name in ["minimal.yaml", "full.yaml", "external-redis.yaml"] {
        let (_, d) = desired(&example(example_name));
        let pods = pods(&d);
        assert!(pods.len() >= 3, "{example_name}: {pods:?}");
        for (name, pod) in pods {
            let psc = pod.security_context.as_ref().expect("pod security context");
            assert_eq!(psc.run_as_non_root, Some(true), "{name}");
            assert!(psc.run_as_user.is_some_and(|u| u > 0), "{name}");
            assert_eq!(
                psc.seccomp_profile.as_ref().map(|s| s.type_.as_str()),
                Some("RuntimeDefault"),
                "{name}"
            );
            for c in pod
                .containers
                .iter()
                .chain(pod.init_containers.iter().flatten())
            {
                let sc = c
                    .security_context
                    .as_ref()
                    .expect("container security context");
                assert_eq!(
                    sc.read_only_root_filesystem,
                    Some(true),
                    "{name}/{}",
                    c.name
                );
                assert_eq!(
                    sc.allow_privilege_escalation,
                    Some(false),
                    "{name}/{}",
                    c.name
                );
                assert_eq!(sc.run_as_non_root, Some(true), "{name}/{}", c.name);
                let drop = sc.capabilities.as_ref().and_then(|c| c.drop.clone());
                assert_eq!(drop, Some(vec!["ALL".to_string()]), "{name}/{}", c.name);
                let requests = c
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .expect("requests");
                assert!(
                    requests.contains_key("cpu") && requests.contains_key("memory"),
                    "{name}/{}",
                    c.name
                );
            }
            // Only the dataplane pods talk to the API server.
            let is_dataplane = name.ends_with("-writer") || name.ends_with("-reader");
            assert_eq!(
                pod.automount_service_account_token,
                Some(is_dataplane),
                "{name}"
            );
        }
    }
}

#[test]
fn every_child_is_owned_by_the_bridge_and_labelled() {
    let (bridge, d) = desired(&example("full.yaml"));
    for child in d.children() {
        let json = child.to_json().unwrap();
        let owners = &json["metadata"]["ownerReferences"];
        assert_eq!(owners[0]["kind"], "CacheBridge", "{:?}", child.key());
        assert_eq!(owners[0]["name"], bridge.name.as_str());
        assert_eq!(owners[0]["controller"], true);
        assert_eq!(json["metadata"]["namespace"], "trading");
        assert_eq!(
            json["metadata"]["labels"][labels::MANAGED_BY],
            "cachebridge-operator"
        );
    }
}

#[test]
fn no_password_reaches_a_configmap_or_the_rendered_output() {
    for example_name in ["minimal.yaml", "full.yaml", "external-redis.yaml"] {
        let rendered = render::render(&example(example_name), &Settings::default()).unwrap();
        assert!(
            !rendered.contains("change-me"),
            "{example_name}: the user's Secret leaked"
        );
        for line in rendered.lines() {
            let l = line.to_ascii_lowercase();
            assert!(
                !l.contains("password:") && !l.contains("stringdata"),
                "{example_name}: {line}"
            );
        }
        let (_, d) = desired(&example(example_name));
        let config = &d.dataplane.config_map.data.as_ref().unwrap()["config.yaml"];
        assert!(config.contains("passwordFile: null"), "{config}");
        if let Some(redis) = &d.redis {
            assert!(redis.secret.data.is_none() && redis.secret.string_data.is_none());
        }
    }
}

#[test]
fn the_dataplane_config_follows_the_spec_and_the_contract() {
    let (bridge, d) = desired(&example("full.yaml"));
    let yaml = &d.dataplane.config_map.data.as_ref().unwrap()["config.yaml"];
    let config: cachebridge_dataplane::config::Config = serde_yaml::from_str(yaml).unwrap();
    config.validate().expect("the dataplane accepts the config");
    assert_eq!(config.bridge.namespace, "trading");
    assert_eq!(config.bridge.name, "markets");
    assert_eq!(config.key_prefix(), "mkt:trading:");
    assert_eq!(
        config.redis.url.as_deref(),
        Some("redis://markets-redis-0.markets-redis.trading.svc:6379")
    );
    assert_eq!(config.redis.username.as_deref(), Some("cachebridge"));
    assert_eq!(
        config.memcached.servers,
        (0..3)
            .map(|i| format!("markets-memcached-{i}.markets-memcached.trading.svc:11211"))
            .collect::<Vec<_>>()
    );
    assert_eq!(config.cache.l1_max_bytes, 128 * 1024 * 1024);
    assert_eq!(
        config.cache.staleness_budget,
        std::time::Duration::from_secs(5)
    );
    assert_eq!(config.writer.seed, 7);
    assert_eq!(config.writer.tick_rate, 1000);
    assert_eq!(config.writer.symbols, 250);
    assert_eq!(config.writer.ingest_listen, None);
    assert_eq!(config.reader.listen.to_string(), "0.0.0.0:8080");
    let reader = pod_of(&d.reader.deployment);
    assert_eq!(
        reader.containers[0].args.as_deref().unwrap(),
        [
            "reader",
            "--bridge",
            "trading/markets",
            "--config",
            "/etc/cachebridge/config.yaml",
            "--listen",
            "0.0.0.0:8080"
        ]
    );
    let writer = pod_of(&d.writer.deployment);
    assert_eq!(
        writer.containers[0].args.as_deref().unwrap(),
        [
            "writer",
            "--bridge",
            "trading/markets",
            "--config",
            "/etc/cachebridge/config.yaml"
        ]
    );
    assert_eq!(
        writer.service_account_name.as_deref(),
        Some("markets-dataplane")
    );
    assert_eq!(bridge.key_prefix, "mkt:trading:");
}

#[test]
fn ingest_source_listens_on_9090_and_gets_a_service() {
    let (_, d) = desired(&example("external-redis.yaml"));
    let yaml = &d.dataplane.config_map.data.as_ref().unwrap()["config.yaml"];
    let config: cachebridge_dataplane::config::Config = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(
        config
            .writer
            .ingest_listen
            .map(|a| a.to_string())
            .as_deref(),
        Some("0.0.0.0:9090")
    );
    assert_eq!(
        config.writer.source,
        cachebridge_dataplane::config::Source::None
    );
    assert!(d.writer.service.is_some());
    assert!(d.redis.is_none(), "external Redis: nothing managed");
    // The dataplane may read the user's Secret, by name, and nothing else.
    let rules = d.dataplane.role.rules.as_ref().unwrap();
    assert_eq!(
        rules[1].resource_names.as_deref(),
        Some(&["shared-redis-credentials".to_string()][..])
    );
}

#[test]
fn ingest_needs_a_generated_token_and_admits_only_the_named_pods() {
    let (bridge, d) = desired(&example("external-redis.yaml"));
    let secret = d.writer.token_secret.as_ref().expect("a token Secret");
    assert_eq!(secret.metadata.name.as_deref(), Some("orders-ingest-token"));
    assert_eq!(
        secret.data, None,
        "apply generates the token, not the builder"
    );
    assert_ne!(secret.immutable, Some(true), "rotation edits it");
    assert_eq!(
        desired::secret::generated_keys(secret),
        ["token".to_string()]
    );
    // Mounted (a rotated Secret reaches the pod without a restart) and named.
    let pod = pod_of(&d.writer.deployment);
    let volume = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| {
            v.secret.as_ref().and_then(|s| s.secret_name.as_deref()) == Some("orders-ingest-token")
        })
        .expect("the token Secret is mounted");
    let container = &pod.containers[0];
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == volume.name)
        .unwrap();
    let env: Vec<_> = container.env.iter().flatten().collect();
    let file = env
        .iter()
        .find(|e| e.name == "CACHEBRIDGE_INGEST_TOKEN_FILE")
        .and_then(|e| e.value.clone())
        .expect("the writer is told where the token is");
    assert_eq!(file, format!("{}/token", mount.mount_path));
    // Only the pods the spec names reach port 9090.
    let rules = d
        .writer
        .network_policy
        .spec
        .as_ref()
        .unwrap()
        .ingress
        .as_ref()
        .unwrap();
    let from = serde_json::to_value(&rules[0].from).unwrap();
    assert_eq!(
        from,
        serde_json::json!([{"podSelector": {"matchLabels": {"app": "order-router"}}}])
    );
    // What the status names (`status.ingestTokenSecret`).
    assert_eq!(
        desired::ingest_token_secret(&bridge),
        Some(("orders-ingest-token".to_string(), "token".to_string()))
    );

    // Naming nobody admits nobody; without Ingest there is no token at all.
    let closed = example("external-redis.yaml").replace(
        "      ingest:\n        from:\n          - podSelector:\n              app: order-router\n",
        "",
    );
    assert_ne!(closed, example("external-redis.yaml"));
    let (_, d) = desired(&closed);
    assert_eq!(d.writer.network_policy.spec.unwrap().ingress, None);
    let (bridge, d) = desired(&example("minimal.yaml"));
    assert!(d.writer.token_secret.is_none());
    assert_eq!(desired::ingest_token_secret(&bridge), None);
    let stale = format!("{}-ingest-token", bridge.name);
    assert!(
        d.unwanted(&bridge)
            .iter()
            .any(|k| k.kind == Kind::Secret && k.name == stale),
        "a token Secret left from an earlier Ingest source is deleted"
    );
}

#[test]
fn dataplane_pods_log_json_without_colour() {
    for example_name in ["minimal.yaml", "full.yaml", "external-redis.yaml"] {
        let (_, d) = desired(&example(example_name));
        for deployment in [&d.writer.deployment, &d.reader.deployment] {
            let pod = pod_of(deployment);
            let env = pod.containers[0].env.as_ref().unwrap();
            let format = env.iter().find(|e| e.name == "CACHEBRIDGE_LOG_FORMAT");
            assert_eq!(
                format.and_then(|e| e.value.as_deref()),
                Some("json"),
                "{example_name}"
            );
        }
    }
}

#[test]
fn a_config_change_changes_the_pod_template_hash_and_nothing_else_does() {
    let base = example("minimal.yaml");
    let (_, before) = desired(&base);
    let (_, ttl_changed) = desired(&format!("{base}spec:\n  cache:\n    l2Ttl: 10m\n"));
    let (_, image_changed) = desired(&format!(
        "{base}spec:\n  redis:\n    managed:\n      image: redis:7.2-alpine\n"
    ));
    let hash = |d: &Desired| {
        d.reader
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[labels::CONFIG_HASH]
            .clone()
    };
    assert_ne!(
        hash(&before),
        hash(&ttl_changed),
        "a new L2 TTL must roll the pods"
    );
    assert_eq!(
        hash(&before),
        hash(&image_changed),
        "the Redis image is not in the dataplane config"
    );
    let writer_hash = |d: &Desired| {
        d.writer
            .deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .annotations
            .as_ref()
            .unwrap()[labels::CONFIG_HASH]
            .clone()
    };
    assert_eq!(hash(&ttl_changed), writer_hash(&ttl_changed));
}

#[test]
fn the_redis_acl_user_is_limited_to_the_prefix_and_the_dataplane_commands() {
    let (bridge, d) = desired(&example("minimal.yaml"));
    let sts = &d.redis.as_ref().unwrap().stateful_set;
    let script = &sts
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .command
        .as_ref()
        .unwrap()[2];
    assert!(
        script.contains(
            "resetkeys ~cb:default:quotes:* resetchannels &cb:default:quotes:* -@all +get"
        ),
        "{script}"
    );
    assert!(script.contains("requirepass $admin"));
    assert!(
        !script.contains("+@all") && !script.contains("+keys") && !script.contains("+flushall")
    );
    assert_eq!(bridge.key_prefix, "cb:default:quotes:");
}

#[test]
fn render_rejects_bad_input_with_a_clear_error() {
    let bad = "apiVersion: cachebridge.dev/v1alpha1\nkind: CacheBridge\nmetadata:\n  name: q\nspec:\n  reader:\n    replicas: 0\n";
    let err = render::render(bad, &Settings::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("document 1 (q) is not valid: spec.reader.replicas: must be at least 1"),
        "{err}"
    );
    let not_yaml = render::render("a: [", &Settings::default())
        .unwrap_err()
        .to_string();
    assert!(not_yaml.starts_with("not valid YAML"), "{not_yaml}");
    let wrong_kind =
        "apiVersion: cachebridge.dev/v1alpha1\nkind: CacheBrige\nmetadata:\n  name: q\n";
    let err = render::render(wrong_kind, &Settings::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a cachebridge.dev/v1alpha1 CacheBridge"),
        "{err}"
    );
    let none = render::render(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n",
        &Settings::default(),
    );
    assert!(
        none.unwrap_err()
            .to_string()
            .contains("no cachebridge.dev/v1alpha1 CacheBridge")
    );
}

/// The pod spec of a Deployment the builders made.
fn pod_of(
    deployment: &k8s_openapi::api::apps::v1::Deployment,
) -> &k8s_openapi::api::core::v1::PodSpec {
    deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

/// A minimal bridge with `spec` (YAML), built.
fn built(spec: &str) -> (Bridge, Desired) {
    let yaml = format!(
        "apiVersion: cachebridge.dev/v1alpha1\nkind: CacheBridge\nmetadata: {{name: quotes, namespace: prod}}\nspec:\n{spec}"
    );
    desired(&yaml)
}

#[test]
fn reader_autoscaling_builds_an_hpa_and_no_replica_count() {
    let (b, d) = built(
        "  reader:\n    replicas: 4\n    autoscaling: {minReplicas: 3, maxReplicas: 12, targetCPUUtilizationPercentage: 55,\n      behavior: {scaleUp: {selectPolicy: Max, policies: [{type: Percent, value: 100, periodSeconds: 15}]}}}\n",
    );
    let hpa = d.reader.hpa.as_ref().expect("an HPA");
    let spec = hpa.spec.as_ref().unwrap();
    assert_eq!(
        spec.scale_target_ref.api_version.as_deref(),
        Some("apps/v1")
    );
    assert_eq!(spec.scale_target_ref.name, "quotes-reader");
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(3), 12));
    let metric = &spec.metrics.as_ref().unwrap()[0];
    assert_eq!(metric.type_, "Resource");
    let resource = metric.resource.as_ref().unwrap();
    assert_eq!(resource.name, "cpu");
    assert_eq!(resource.target.average_utilization, Some(55));
    let up = spec.behavior.as_ref().unwrap().scale_up.as_ref().unwrap();
    assert_eq!(up.select_policy.as_deref(), Some("Max"));
    let policy = &up.policies.as_ref().unwrap()[0];
    assert_eq!(
        (policy.type_.as_str(), policy.value, policy.period_seconds),
        ("Percent", 100, 15)
    );
    assert!(spec.behavior.as_ref().unwrap().scale_down.is_none());
    // The Deployment leaves the count to the HPA; `replicas: 4` is ignored.
    let reader = d.reader.deployment.spec.as_ref().unwrap();
    assert_eq!(reader.replicas, None);
    assert!(
        d.unwanted(&b)
            .iter()
            .all(|k| k.kind != Kind::HorizontalPodAutoscaler)
    );
    // It is applied after the Deployment it scales, like every other child.
    let kinds: Vec<Kind> = d.children().iter().map(|c| c.key().kind).collect();
    assert_eq!(kinds.last(), Some(&Kind::HorizontalPodAutoscaler));
    // The writer stays a single pod.
    assert_eq!(d.writer.deployment.spec.as_ref().unwrap().replicas, Some(1));
}

#[test]
fn without_autoscaling_the_count_is_fixed_and_an_old_hpa_is_unwanted() {
    let (b, d) = built("  reader: {replicas: 4}\n");
    assert!(d.reader.hpa.is_none());
    assert_eq!(d.reader.deployment.spec.as_ref().unwrap().replicas, Some(4));
    let unwanted = d.unwanted(&b);
    assert!(
        unwanted
            .iter()
            .any(|k| k.kind == Kind::HorizontalPodAutoscaler && k.name == "quotes-reader"),
        "{unwanted:?}"
    );
}

#[test]
fn an_external_redis_cluster_is_published_with_its_seed_nodes() {
    let (b, d) = built(
        "  redis:\n    external:\n      cluster: {nodes: ['rc-0.redis:6379', 'rc-1.redis:6379']}\n      passwordSecret: {name: shared}\n      username: quotes\n",
    );
    assert!(d.redis.is_none(), "nothing managed");
    assert_eq!(
        desired::config::cluster_nodes(&b),
        Some(vec![
            "rc-0.redis:6379".to_string(),
            "rc-1.redis:6379".to_string()
        ])
    );
    // The pods learn the seeds from the status (`--bridge`), not the file:
    // the ConfigMap names no Redis address at all.
    let yaml = &d.dataplane.config_map.data.as_ref().unwrap()["config.yaml"];
    let config: cachebridge_dataplane::config::Config = serde_yaml::from_str(yaml).unwrap();
    assert_eq!(config.redis.url, None);
    assert!(config.redis.sentinel.is_empty());
    assert_eq!(config.redis.username.as_deref(), Some("quotes"));
}
