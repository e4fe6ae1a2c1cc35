//! The parts of `run` that are not the reconciler: leader election on a
//! Lease, the metrics and health endpoints, and the CLI's answers to bad input.

mod common;

use axum::body::to_bytes;
use axum::http::{Request, StatusCode};
use cachebridge_operator::leader::{self, LeaseConfig};
use cachebridge_operator::metrics::Metrics;
use cachebridge_operator::server::{Health, router};
use common::*;
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use serde_json::json;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{oneshot, watch};
use tower::ServiceExt;

async fn get(health: &Health, path: &str) -> (StatusCode, String) {
    let response = router(health.clone())
        .oneshot(Request::get(path).body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn health_readiness_and_metrics_endpoints() {
    let h = harness(vec![bridge("quotes", json!({"reader": {"replicas": 0}}))]).await;
    let health = Health {
        metrics: Arc::clone(&h.ctx.metrics),
        ready: Arc::new(AtomicBool::new(false)),
    };
    assert_eq!(get(&health, "/healthz").await.0, StatusCode::OK);
    assert_eq!(
        get(&health, "/readyz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    health.ready.store(true, Ordering::Release);
    assert_eq!(get(&health, "/readyz").await.0, StatusCode::OK);

    // One failing reconcile shows up as a reconcile, an error of its kind, and a duration.
    let err = h.reconcile("quotes").await.unwrap_err();
    // The controller hands a failure to the error policy, which counts it.
    cachebridge_operator::controller::error_policy(
        Arc::new(h.get("quotes").await),
        &err,
        Arc::clone(&h.ctx),
    );
    let (status, text) = get(&health, "/metrics").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("cachebridge_operator_reconciles_total 1"),
        "{text}"
    );
    assert!(
        text.contains(r#"cachebridge_operator_reconcile_errors_total{kind="invalid_spec"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("cachebridge_operator_reconcile_duration_seconds_count 1"),
        "{text}"
    );
    assert!(
        text.contains(r#"cachebridge_operator_api_writes_total{op="status"} 1"#),
        "{text}"
    );
}

#[tokio::test]
async fn the_leader_runs_the_work_until_shutdown_then_releases_the_lease() {
    let h = harness(vec![]).await;
    let metrics = Metrics::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    let (started_tx, started_rx) = oneshot::channel();
    let lease = LeaseConfig {
        namespace: "cachebridge-system".into(),
        name: "cachebridge-operator".into(),
        identity: "replica-a".into(),
    };
    let mut started = Some(started_tx);
    let run = leader::run_when_leader(h.client.clone(), lease, &metrics, stop_rx, |stop| {
        let signal = started.take();
        async move {
            if let Some(tx) = signal {
                let _ = tx.send(());
            }
            stop.await;
        }
    });
    let check = async {
        started_rx
            .await
            .expect("the work started: this replica leads");
        let lease = Api::<Lease>::namespaced(h.client.clone(), "cachebridge-system")
            .get("cachebridge-operator")
            .await
            .unwrap();
        assert_eq!(
            lease.spec.unwrap().holder_identity.as_deref(),
            Some("replica-a")
        );
        stop_tx.send(true).unwrap();
    };
    let (result, ()) = tokio::join!(run, check);
    result.expect("leader election ends cleanly");
    assert_eq!(metrics.leader.get(), 0);
    let lease = Api::<Lease>::namespaced(h.client.clone(), "cachebridge-system")
        .get("cachebridge-operator")
        .await
        .unwrap();
    assert_eq!(
        lease.spec.unwrap().holder_identity,
        None,
        "released on shutdown"
    );
}

fn operator(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cachebridge-operator"))
        .args(args)
        .env_remove("KUBECONFIG")
        .env("HOME", "/nonexistent")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn render_of_the_full_example_prints_the_full_topology() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/full.yaml");
    let (ok, stdout, stderr) = operator(&["render", "-f", example]);
    assert!(ok, "{stderr}");
    let kinds: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .collect();
    for kind in [
        "ServiceAccount",
        "Role",
        "RoleBinding",
        "ConfigMap",
        "Secret",
        "NetworkPolicy",
        "Service",
        "StatefulSet",
        "Deployment",
        "PodDisruptionBudget",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    // Redis has two pods, so it fails over: Sentinels, their Services,
    // their NetworkPolicy and a PodDisruptionBudget for each of Redis and Sentinel.
    for (kind, name) in [
        ("StatefulSet", "markets-sentinel"),
        ("Service", "markets-sentinel"),
        ("Service", "markets-sentinel-headless"),
        ("NetworkPolicy", "markets-sentinel"),
        ("PodDisruptionBudget", "markets-sentinel"),
        ("PodDisruptionBudget", "markets-redis"),
    ] {
        assert!(
            stdout
                .split("\n---\n")
                .any(|doc| doc.contains(&format!("kind: {kind}\n"))
                    && doc.contains(&format!("\n  name: {name}\n"))),
            "{kind} {name} missing from the render"
        );
    }
    assert_eq!(stdout.matches("\n---\n").count() + 1, 23, "23 documents");
}

#[test]
fn bad_input_gets_a_clear_error_and_a_failing_exit() {
    let (ok, _, stderr) = operator(&["render", "-f", "/nonexistent/bridge.yaml"]);
    assert!(
        !ok && stderr.contains("cannot read /nonexistent/bridge.yaml"),
        "{stderr}"
    );
    let (ok, _, stderr) = operator(&["run", "--log-format", "text"]);
    assert!(
        !ok && stderr.contains("cannot reach the Kubernetes API"),
        "{stderr}"
    );
}
