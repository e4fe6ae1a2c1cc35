//! The reconciler against an in-memory API server (kube-fake-client, which
//! enforces resourceVersion, the status subresource and server-side apply
//! field ownership): create, roll on config change, no writes in a steady
//! state, honest conditions, invalid specs, switching Redis to external,
//! per-object backoff.

mod common;

use cachebridge_api::v1alpha1::condition::{
    MEMCACHED_READY, READER_READY, READY, REDIS_READY, WRITER_READY,
};
use cachebridge_operator::Error;
use cachebridge_operator::controller::{self, READY_REQUEUE};
use cachebridge_operator::desired::labels::CONFIG_HASH;
use common::*;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use kube::runtime::controller::Action;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn config_hash(d: &Deployment) -> String {
    d.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_HASH]
        .clone()
}

#[tokio::test]
async fn create_stands_up_every_child_and_reports_where_things_are() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.expect("reconcile");

    let writes = h.writes.take();
    let creates = writes.iter().filter(|w| w.starts_with("patch ")).count();
    assert_eq!(creates, 17, "one server-side apply per child: {writes:?}");
    for name in ["quotes-redis", "quotes-memcached"] {
        let sts = h
            .stateful_set(name)
            .await
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(owner_uid(&sts), "uid-quotes");
    }
    for name in ["quotes-writer", "quotes-reader"] {
        assert!(h.deployment(name).await.is_some(), "{name}");
    }
    // The password Secret: generated once, 32 characters, two keys.
    let secret = Api::<Secret>::namespaced(h.client.clone(), NS)
        .get("quotes-redis-password")
        .await
        .unwrap();
    let data = secret.data.unwrap();
    assert_eq!(data["password"].0.len(), 32);
    assert_eq!(data["admin-password"].0.len(), 32);
    assert_ne!(data["password"], data["admin-password"]);

    let cb = h.get("quotes").await;
    let status = cb.status.as_ref().unwrap();
    assert_eq!(status.observed_generation, 1);
    assert_eq!(status.key_prefix, "cb:prod:quotes:");
    assert_eq!(
        status.endpoints.redis.as_deref(),
        Some("redis://quotes-redis-0.quotes-redis.prod.svc:6379")
    );
    assert_eq!(
        status.endpoints.memcached,
        [
            "quotes-memcached-0.quotes-memcached.prod.svc:11211",
            "quotes-memcached-1.quotes-memcached.prod.svc:11211"
        ]
    );
    assert_eq!(
        status.endpoints.reader.as_deref(),
        Some("http://quotes-reader.prod.svc:8080")
    );
    let secret_ref = status.password_secret.as_ref().unwrap();
    assert_eq!(
        (secret_ref.name.as_str(), secret_ref.key.as_str()),
        ("quotes-redis-password", "password")
    );
    assert_eq!(status.redis_username.as_deref(), Some("cachebridge"));
    assert_eq!(status.readers, "0/2");
    // Nothing is ready yet, and the conditions say so: no workload
    // controller has even seen its object.
    assert_eq!(condition(&cb, READY), ("False", "ComponentsNotReady"));
    assert_eq!(condition(&cb, REDIS_READY), ("False", "RolloutPending"));
    let reasons: Vec<String> = h
        .events("quotes")
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(reasons.contains(&"Created".to_string()), "{reasons:?}");
}

#[tokio::test]
async fn a_second_reconcile_of_an_unchanged_bridge_writes_nothing() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.unwrap();
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    assert_eq!(
        h.writes.take(),
        Vec::<String>::new(),
        "not ready yet, nothing changed"
    );

    // Once ready: one status write (and its event), then silence again.
    h.make_all_ready("quotes").await;
    h.writes.take();
    let action = h.reconcile("quotes").await.unwrap();
    assert_eq!(
        action,
        Action::requeue(READY_REQUEUE),
        "a ready bridge is revisited for fresh figures"
    );
    let writes = h.writes.take();
    assert!(
        writes
            .iter()
            .any(|w| w.starts_with("patch-status CacheBridge/quotes")),
        "{writes:?}"
    );
    assert!(
        writes
            .iter()
            .all(|w| !w.starts_with("patch ") || w.contains("Event")),
        "no child changed: {writes:?}"
    );
    h.reconcile("quotes").await.unwrap();
    assert_eq!(h.writes.take(), Vec::<String>::new());
}

#[tokio::test]
async fn a_config_change_rolls_the_pods_through_the_hash() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.unwrap();
    let before = config_hash(&h.deployment("quotes-reader").await.unwrap());
    let writer_before = config_hash(&h.deployment("quotes-writer").await.unwrap());

    h.change_spec("quotes", json!({"cache": {"l2Ttl": "10m"}}))
        .await;
    h.writes.take();
    h.reconcile("quotes").await.unwrap();

    let after = config_hash(&h.deployment("quotes-reader").await.unwrap());
    assert_ne!(
        before, after,
        "the pod template changed, so Kubernetes rolls the readers"
    );
    assert_ne!(
        writer_before,
        config_hash(&h.deployment("quotes-writer").await.unwrap())
    );
    let cm = Api::<ConfigMap>::namespaced(h.client.clone(), NS)
        .get("quotes-dataplane")
        .await
        .unwrap();
    assert!(cm.data.unwrap()["config.yaml"].contains("l2Ttl: 10m"));
    let writes = h.writes.take();
    let patched: Vec<&String> = writes
        .iter()
        .filter(|w| w.starts_with("patch ") && !w.contains("Event"))
        .collect();
    assert_eq!(
        patched,
        [
            "patch ConfigMap/quotes-dataplane",
            "patch Deployment/quotes-writer",
            "patch Deployment/quotes-reader"
        ],
        "only what the config touches is written"
    );
    assert_eq!(h.get("quotes").await.status.unwrap().observed_generation, 2);
}

#[tokio::test]
async fn conditions_follow_the_childrens_readiness() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.unwrap();

    h.set_stateful_set_ready("quotes-redis", 1).await;
    h.reconcile("quotes").await.unwrap();
    let cb = h.get("quotes").await;
    assert_eq!(condition(&cb, REDIS_READY), ("True", "Ready"));
    assert_eq!(condition(&cb, MEMCACHED_READY), ("False", "RolloutPending"));
    h.set_stateful_set_ready("quotes-memcached", 1).await;
    h.reconcile("quotes").await.unwrap();
    let cb = h.get("quotes").await;
    assert_eq!(condition(&cb, MEMCACHED_READY), ("False", "Progressing"));
    let message = &cb
        .status
        .as_ref()
        .unwrap()
        .condition(MEMCACHED_READY)
        .unwrap()
        .message;
    assert_eq!(message, "1/2 pods ready");
    assert_eq!(condition(&cb, READY).0, "False");

    h.make_all_ready("quotes").await;
    h.reconcile("quotes").await.unwrap();
    let cb = h.get("quotes").await;
    for type_ in [
        READY,
        REDIS_READY,
        MEMCACHED_READY,
        WRITER_READY,
        READER_READY,
    ] {
        assert_eq!(condition(&cb, type_).0, "True", "{type_}");
    }
    let status = cb.status.as_ref().unwrap();
    assert_eq!(status.readers, "2/2");
    let ready = status.condition(READY).unwrap();
    assert_eq!(ready.observed_generation, Some(1));
    assert!(h.events("quotes").await.iter().any(|(r, _)| r == "Ready"));

    // A reader drops out: ReaderReady and Ready turn False, with an event.
    h.set_deployment_ready("quotes-reader", 1).await;
    h.reconcile("quotes").await.unwrap();
    let cb = h.get("quotes").await;
    assert_eq!(condition(&cb, READER_READY), ("False", "Progressing"));
    assert_eq!(condition(&cb, READY), ("False", "ComponentsNotReady"));
    assert_eq!(cb.status.as_ref().unwrap().readers, "1/2");
    let reasons: Vec<String> = h
        .events("quotes")
        .await
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    assert!(
        reasons.contains(&"NotReady".to_string())
            && reasons.contains(&"ReaderReadyLost".to_string()),
        "{reasons:?}"
    );

    // A spec change the StatefulSet controller has not seen yet is not "ready".
    h.make_all_ready("quotes").await;
    h.change_spec(
        "quotes",
        json!({"redis": {"managed": {"image": "redis:7.2-alpine"}}}),
    )
    .await;
    h.reconcile("quotes").await.unwrap();
    let cb = h.get("quotes").await;
    assert_eq!(condition(&cb, REDIS_READY), ("False", "RolloutPending"));
}

#[tokio::test]
async fn an_invalid_spec_reports_invalid_spec_emits_an_event_and_touches_no_child() {
    let h = harness(vec![bridge(
        "broken",
        json!({"reader": {"replicas": 0}, "redis": {}}),
    )])
    .await;
    let err = h.reconcile("broken").await.unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err}");
    assert_eq!(err.metric_label(), "invalid_spec");

    let writes = h.writes.take();
    assert!(
        writes
            .iter()
            .all(|w| w.starts_with("patch-status CacheBridge/broken") || w.contains("Event")),
        "only the status and an event: {writes:?}"
    );
    assert!(h.deployment("broken-reader").await.is_none());
    assert!(h.stateful_set("broken-redis").await.is_none());

    let cb = h.get("broken").await;
    assert_eq!(condition(&cb, READY), ("False", "InvalidSpec"));
    assert_eq!(condition(&cb, REDIS_READY), ("Unknown", "InvalidSpec"));
    let message = &cb
        .status
        .as_ref()
        .unwrap()
        .condition(READY)
        .unwrap()
        .message;
    assert!(
        message.contains("spec.reader.replicas: must be at least 1"),
        "{message}"
    );
    let events = h.events("broken").await;
    assert!(
        events
            .iter()
            .any(|(r, note)| r == "InvalidSpec" && note.contains("spec.reader.replicas")),
        "{events:?}"
    );

    // The error policy waits for the user instead of retrying.
    let action = controller::error_policy(Arc::new(cb), &err, Arc::clone(&h.ctx));
    assert_eq!(action, Action::await_change());

    // Reconciling the same invalid spec again writes nothing new.
    let _ = h.reconcile("broken").await;
    assert_eq!(h.writes.take(), Vec::<String>::new());
}

#[tokio::test]
async fn switching_redis_to_external_deletes_the_managed_redis() {
    let secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shared", "namespace": NS}, "data": {"password": "c2VjcmV0"}});
    let h = harness(vec![bridge("quotes", json!({})), secret]).await;
    h.reconcile("quotes").await.unwrap();
    assert!(h.stateful_set("quotes-redis").await.is_some());

    h.change_spec(
        "quotes",
        json!({"redis": {"managed": null, "external": {"url": "redis://redis.shared.svc:6379", "passwordSecret": {"name": "shared"}}}}),
    )
    .await;
    h.writes.take();
    h.reconcile("quotes").await.unwrap();

    assert!(
        h.stateful_set("quotes-redis").await.is_none(),
        "the managed Redis is gone"
    );
    assert!(
        Api::<Service>::namespaced(h.client.clone(), NS)
            .get_opt("quotes-redis")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<NetworkPolicy>::namespaced(h.client.clone(), NS)
            .get_opt("quotes-redis")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<Secret>::namespaced(h.client.clone(), NS)
            .get_opt("quotes-redis-password")
            .await
            .unwrap()
            .is_none()
    );
    // The user's Secret is not ours: untouched.
    assert!(
        Api::<Secret>::namespaced(h.client.clone(), NS)
            .get_opt("shared")
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        h.stateful_set("quotes-memcached").await.is_some(),
        "Memcached is still managed"
    );

    let cb = h.get("quotes").await;
    let status = cb.status.as_ref().unwrap();
    assert_eq!(
        status.endpoints.redis.as_deref(),
        Some("redis://redis.shared.svc:6379")
    );
    assert_eq!(status.password_secret.as_ref().unwrap().name, "shared");
    assert_eq!(status.redis_username, None);
    assert_eq!(condition(&cb, REDIS_READY), ("True", "External"));
    let role = Api::<k8s_openapi::api::rbac::v1::Role>::namespaced(h.client.clone(), NS)
        .get("quotes-dataplane")
        .await
        .unwrap();
    assert_eq!(
        role.rules.unwrap()[1].resource_names.as_deref(),
        Some(&["shared".to_string()][..])
    );
    assert!(
        h.events("quotes")
            .await
            .iter()
            .any(|(r, note)| r == "Deleted" && note.contains("StatefulSet quotes-redis"))
    );

    // Deleting is a one-time thing: the next reconcile writes nothing.
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    assert_eq!(h.writes.take(), Vec::<String>::new());
}

#[tokio::test]
async fn drift_on_a_child_is_repaired_and_the_generated_password_is_kept() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.unwrap();
    let secrets = Api::<Secret>::namespaced(h.client.clone(), NS);
    let password = secrets
        .get("quotes-redis-password")
        .await
        .unwrap()
        .data
        .unwrap()["password"]
        .clone();

    // Someone scales the readers by hand.
    let deployments = Api::<Deployment>::namespaced(h.client.clone(), NS);
    deployments
        .patch(
            "quotes-reader",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"replicas": 7}})),
        )
        .await
        .unwrap();
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    assert_eq!(
        h.deployment("quotes-reader")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(2)
    );
    let writes = h.writes.take();
    assert!(
        writes.contains(&"patch Deployment/quotes-reader".to_string()),
        "{writes:?}"
    );
    assert_eq!(
        secrets
            .get("quotes-redis-password")
            .await
            .unwrap()
            .data
            .unwrap()["password"],
        password
    );
}

#[tokio::test]
async fn a_secret_the_operator_did_not_make_is_not_overwritten() {
    let foreign = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "quotes-redis-password", "namespace": NS}, "data": {"other": "eA=="}});
    let h = harness(vec![bridge("quotes", json!({})), foreign]).await;
    let err = h.reconcile("quotes").await.unwrap_err();
    assert_eq!(err.metric_label(), "foreign_secret");
    assert!(
        err.to_string()
            .contains("delete it to have a new password generated"),
        "{err}"
    );
    let data = Api::<Secret>::namespaced(h.client.clone(), NS)
        .get("quotes-redis-password")
        .await
        .unwrap()
        .data
        .unwrap();
    assert!(data.contains_key("other") && !data.contains_key("password"));
}

#[tokio::test]
async fn failures_back_off_exponentially_per_object() {
    let h = harness(vec![bridge("a", json!({})), bridge("b", json!({}))]).await;
    let a = Arc::new(h.get("a").await);
    let b = Arc::new(h.get("b").await);
    let err = Error::Stats("injected".into());
    let delay =
        |cb: &Arc<_>| match controller::error_policy(Arc::clone(cb), &err, Arc::clone(&h.ctx)) {
            a if a == Action::requeue(Duration::from_secs(1)) => 1,
            a if a == Action::requeue(Duration::from_secs(2)) => 2,
            a if a == Action::requeue(Duration::from_secs(4)) => 4,
            other => panic!("unexpected {other:?}"),
        };
    assert_eq!([delay(&a), delay(&a), delay(&a)], [1, 2, 4]);
    assert_eq!(delay(&b), 1, "another bridge has its own backoff");
    // A successful reconcile resets it.
    h.reconcile("a").await.unwrap();
    assert_eq!(delay(&a), 1);
}

#[tokio::test]
async fn every_child_is_applied_by_one_field_manager() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.unwrap();
    let managers =
        |m: Option<Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry>>| {
            m.unwrap_or_default()
                .into_iter()
                .map(|e| {
                    (
                        e.manager.unwrap_or_default(),
                        e.operation.unwrap_or_default(),
                    )
                })
                .collect::<Vec<_>>()
        };
    let expected = vec![("cachebridge-operator".to_string(), "Apply".to_string())];
    let sts: StatefulSet = Api::namespaced(h.client.clone(), NS)
        .get("quotes-memcached")
        .await
        .unwrap();
    assert_eq!(managers(sts.metadata.managed_fields), expected);
    let d = h.deployment("quotes-reader").await.unwrap();
    assert_eq!(managers(d.metadata.managed_fields), expected);
    let cm: ConfigMap = Api::namespaced(h.client.clone(), NS)
        .get("quotes-dataplane")
        .await
        .unwrap();
    assert_eq!(managers(cm.metadata.managed_fields), expected);
}

#[tokio::test]
async fn switching_persistence_on_replaces_the_redis_stateful_set() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.unwrap();
    assert!(
        h.stateful_set("quotes-redis")
            .await
            .unwrap()
            .spec
            .unwrap()
            .volume_claim_templates
            .is_none()
    );

    h.change_spec(
        "quotes",
        json!({"redis": {"managed": {"persistence": {"size": "2Gi"}}}}),
    )
    .await;
    h.writes.take();
    h.reconcile("quotes")
        .await
        .expect("the refused in-place update becomes a replacement");
    let claims = h
        .stateful_set("quotes-redis")
        .await
        .unwrap()
        .spec
        .unwrap()
        .volume_claim_templates
        .unwrap();
    let storage = &claims[0]
        .spec
        .as_ref()
        .unwrap()
        .resources
        .as_ref()
        .unwrap()
        .requests
        .as_ref()
        .unwrap()["storage"];
    assert_eq!(storage.0, "2Gi");
    let writes = h.writes.take();
    let redis_writes: Vec<&String> = writes
        .iter()
        .filter(|w| {
            w.as_str() == "patch StatefulSet/quotes-redis" || w.as_str() == "delete quotes-redis"
        })
        .collect();
    assert_eq!(
        redis_writes,
        [
            "patch StatefulSet/quotes-redis",
            "delete quotes-redis",
            "patch StatefulSet/quotes-redis"
        ],
        "refused, deleted (orphaning the pods), created again: {writes:?}"
    );
    h.reconcile("quotes").await.unwrap();
    assert_eq!(h.writes.take(), Vec::<String>::new());
}

#[tokio::test]
async fn a_replicated_redis_gets_sentinels_and_loses_them_when_scaled_back_to_one() {
    use k8s_openapi::api::policy::v1::PodDisruptionBudget;
    let h = harness(vec![bridge(
        "quotes",
        json!({"redis": {"managed": {"replicas": 2}}}),
    )])
    .await;
    h.reconcile("quotes").await.unwrap();

    let sentinel = h
        .stateful_set("quotes-sentinel")
        .await
        .expect("the Sentinels");
    assert_eq!(sentinel.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(owner_uid(&sentinel), "uid-quotes");
    let services = Api::<Service>::namespaced(h.client.clone(), NS);
    for name in ["quotes-sentinel", "quotes-sentinel-headless"] {
        let svc = services
            .get_opt(name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name}"));
        assert_eq!(svc.spec.unwrap().ports.unwrap()[0].port, 26379, "{name}");
    }
    let pdbs = Api::<PodDisruptionBudget>::namespaced(h.client.clone(), NS);
    for name in ["quotes-redis", "quotes-sentinel"] {
        assert!(pdbs.get_opt(name).await.unwrap().is_some(), "PDB {name}");
    }
    let policy = Api::<NetworkPolicy>::namespaced(h.client.clone(), NS)
        .get("quotes-sentinel")
        .await
        .unwrap();
    let ingress = &policy.spec.unwrap().ingress.unwrap()[0];
    assert_eq!(
        ingress.from.as_ref().unwrap().len(),
        5,
        "writer, readers, Redis, Sentinels, operator"
    );

    let status = h.get("quotes").await.status.unwrap();
    let endpoints = status
        .endpoints
        .sentinel
        .as_ref()
        .expect("status.endpoints.sentinel");
    assert_eq!(
        endpoints.servers,
        [
            "quotes-sentinel-0.quotes-sentinel-headless.prod.svc:26379",
            "quotes-sentinel-1.quotes-sentinel-headless.prod.svc:26379",
            "quotes-sentinel-2.quotes-sentinel-headless.prod.svc:26379"
        ]
    );
    assert_eq!(endpoints.master_name, "quotes");
    let secret = endpoints.password_secret.as_ref().unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("quotes-redis-password", "password")
    );
    // Nobody asked the Sentinels yet: the first primary, pod 0, and no name.
    assert_eq!(
        status.endpoints.redis.as_deref(),
        Some("redis://quotes-redis-0.quotes-redis.prod.svc:6379")
    );
    assert_eq!(status.redis_primary, None);

    // RedisReady needs the Sentinels too.
    h.set_stateful_set_ready("quotes-redis", 2).await;
    h.set_stateful_set_ready("quotes-sentinel", 2).await;
    h.reconcile("quotes").await.unwrap();
    let cb = h.get("quotes").await;
    assert_eq!(condition(&cb, REDIS_READY), ("False", "SentinelNotReady"));
    h.set_stateful_set_ready("quotes-sentinel", 3).await;
    h.reconcile("quotes").await.unwrap();
    assert_eq!(
        condition(&h.get("quotes").await, REDIS_READY),
        ("True", "Ready")
    );
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    assert_eq!(
        h.writes.take(),
        Vec::<String>::new(),
        "steady: nothing written"
    );

    // Back to one pod: nothing to fail over to, so no Sentinel objects.
    h.change_spec("quotes", json!({"redis": {"managed": {"replicas": 1}}}))
        .await;
    h.reconcile("quotes").await.unwrap();
    assert!(h.stateful_set("quotes-sentinel").await.is_none());
    for name in ["quotes-sentinel", "quotes-sentinel-headless"] {
        assert!(services.get_opt(name).await.unwrap().is_none(), "{name}");
    }
    for name in ["quotes-redis", "quotes-sentinel"] {
        assert!(pdbs.get_opt(name).await.unwrap().is_none(), "PDB {name}");
    }
    assert!(
        Api::<NetworkPolicy>::namespaced(h.client.clone(), NS)
            .get_opt("quotes-sentinel")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        h.stateful_set("quotes-redis").await.is_some(),
        "Redis stays"
    );
    let status = h.get("quotes").await.status.unwrap();
    assert_eq!(
        status.endpoints.sentinel, None,
        "clients no longer ask Sentinel"
    );
    // One Redis pod ready is enough now: no Sentinel is waited for.
    h.set_stateful_set_ready("quotes-redis", 1).await;
    h.reconcile("quotes").await.unwrap();
    assert_eq!(
        condition(&h.get("quotes").await, REDIS_READY),
        ("True", "Ready")
    );
}

#[tokio::test]
async fn a_steady_bridge_is_reconciled_without_a_single_api_read() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.unwrap();
    assert_eq!(
        h.reads.take(),
        ["get quotes-redis-password", "get quotes-ingest-token"],
        "first pass: children come from the (empty) caches; only the password \
         Secret's absence is confirmed by the API before passwords are generated, \
         and an ingest token Secret left from an earlier Ingest source is looked for \
         (Secrets are not watched), to be deleted"
    );
    h.make_all_ready("quotes").await;
    h.reconcile("quotes").await.unwrap();
    h.writes.take();
    for _ in 0..3 {
        h.reconcile("quotes").await.unwrap();
        assert_eq!(h.reads.take(), Vec::<String>::new(), "no API read");
        assert_eq!(h.writes.take(), Vec::<String>::new(), "no API write");
    }
}

#[tokio::test]
async fn drift_seen_in_the_cache_is_repaired() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    h.reconcile("quotes").await.unwrap();
    // Someone scales the readers by hand: the watch delivers it, the reconcile repairs it.
    let scale = json!({"spec": {"replicas": 7}});
    Api::<Deployment>::namespaced(h.client.clone(), NS)
        .patch(
            "quotes-reader",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&scale),
        )
        .await
        .unwrap();
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    let children: Vec<String> = h
        .writes
        .take()
        .into_iter()
        .filter(|w| w.starts_with("patch ") || w.starts_with("delete "))
        .collect();
    assert_eq!(children, ["patch Deployment/quotes-reader"]);
    assert_eq!(h.reads.take(), Vec::<String>::new());
    let spec = h.deployment("quotes-reader").await.unwrap().spec.unwrap();
    assert_eq!(spec.replicas, Some(2));
}

#[tokio::test]
async fn a_change_of_the_status_alone_triggers_no_reconcile() {
    let h = harness(vec![bridge("quotes", json!({}))]).await;
    let before = controller::trigger_hash(&h.get("quotes").await);
    h.reconcile("quotes").await.unwrap();
    let with_status = h.get("quotes").await;
    assert!(with_status.status.is_some(), "the reconcile wrote a status");
    assert_eq!(
        controller::trigger_hash(&with_status),
        before,
        "our own status write must not come back as a reconcile"
    );
    h.change_spec("quotes", json!({"cache": {"l2Ttl": "10m"}}))
        .await;
    assert_ne!(
        controller::trigger_hash(&h.get("quotes").await),
        before,
        "a spec change does"
    );
}

#[tokio::test]
async fn an_external_redis_cluster_is_published_in_the_status() {
    let cluster = json!({"external": {"cluster": {"nodes": ["rc-0.redis:6379", "rc-1.redis:6379"]},
                                      "passwordSecret": {"name": "shared"}, "username": "quotes"}});
    let h = harness(vec![bridge("quotes", json!({"redis": cluster}))]).await;
    h.reconcile("quotes").await.expect("reconcile");
    let status = h.get("quotes").await.status.unwrap();
    assert_eq!(
        status.endpoints.redis_cluster,
        Some(vec![
            "rc-0.redis:6379".to_string(),
            "rc-1.redis:6379".to_string()
        ])
    );
    assert_eq!(status.endpoints.redis, None, "clients start from the seeds");
    assert_eq!(status.endpoints.sentinel, None);
    assert_eq!(status.redis_username.as_deref(), Some("quotes"));
    assert!(
        h.stateful_set("quotes-redis").await.is_none(),
        "nothing managed"
    );
}
