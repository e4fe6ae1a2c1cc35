//! Reader autoscaling against the in-memory API server: `spec.reader.autoscaling`
//! creates the HorizontalPodAutoscaler, the reader Deployment is applied
//! without `replicas` (the operator's field manager gives the field up, so
//! the HPA and the operator never fight over it), a count the HPA sets is
//! left alone, and turning autoscaling off deletes the HPA and takes the
//! count back.

mod common;

use cachebridge_operator::FIELD_MANAGER;
use common::*;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

const READER: &str = "quotes-reader";

fn autoscaling() -> Value {
    json!({"minReplicas": 2, "maxReplicas": 6, "targetCPUUtilizationPercentage": 60,
           "behavior": {"scaleDown": {"stabilizationWindowSeconds": 600,
                                      "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}})
}

async fn hpa(h: &Harness) -> Option<HorizontalPodAutoscaler> {
    Api::<HorizontalPodAutoscaler>::namespaced(h.client.clone(), NS)
        .get_opt(READER)
        .await
        .unwrap()
}

fn replicas(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.replicas)
}

/// Whether `manager`'s managedFields entry of `d` owns `spec.replicas`.
fn owns_replicas(d: &Deployment, manager: &str) -> bool {
    d.metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|e| e.manager.as_deref() == Some(manager))
        .any(|e| {
            e.fields_v1
                .as_ref()
                .and_then(|f| f.0.pointer("/f:spec/f:replicas"))
                .is_some()
        })
}

#[tokio::test]
async fn autoscaling_creates_an_hpa_and_leaves_replicas_to_it() {
    let h = harness(vec![bridge(
        "quotes",
        json!({"reader": {"autoscaling": autoscaling()}}),
    )])
    .await;
    h.reconcile("quotes").await.expect("reconcile");

    let hpa = hpa(&h).await.expect("the HPA exists");
    assert_eq!(owner_uid(&hpa), "uid-quotes");
    let spec = hpa.spec.unwrap();
    assert_eq!(
        (
            spec.scale_target_ref.kind.as_str(),
            spec.scale_target_ref.name.as_str()
        ),
        ("Deployment", READER)
    );
    assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 6));
    let cpu = &spec.metrics.unwrap()[0];
    let target = &cpu.resource.as_ref().unwrap().target;
    assert_eq!(
        (target.type_.as_str(), target.average_utilization),
        ("Utilization", Some(60))
    );
    let down = spec.behavior.unwrap().scale_down.unwrap();
    assert_eq!(down.stabilization_window_seconds, Some(600));

    let deployment = h.deployment(READER).await.unwrap();
    assert_eq!(replicas(&deployment), None, "no replica count applied");
    assert!(!owns_replicas(&deployment, FIELD_MANAGER));
    // The PDB still lets one reader go at a time, counted against the HPA's scale.
    let pdb = Api::<PodDisruptionBudget>::namespaced(h.client.clone(), NS)
        .get(READER)
        .await
        .unwrap();
    assert_eq!(pdb.spec.unwrap().max_unavailable, Some(IntOrString::Int(1)));
    assert_eq!(h.get("quotes").await.status.unwrap().readers, "0/2");

    // Steady: nothing to write again.
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    assert_eq!(h.writes.take(), Vec::<String>::new());
}

#[tokio::test]
async fn the_operator_hands_replicas_to_the_hpa_and_takes_them_back() {
    let h = harness(vec![bridge("quotes", json!({"reader": {"replicas": 3}}))]).await;
    h.reconcile("quotes").await.unwrap();
    let fixed = h.deployment(READER).await.unwrap();
    assert_eq!(replicas(&fixed), Some(3));
    assert!(owns_replicas(&fixed, FIELD_MANAGER));
    assert!(hpa(&h).await.is_none(), "no HPA without autoscaling");

    // On: the HPA appears, the count stays where it was, no longer ours.
    h.change_spec("quotes", json!({"reader": {"autoscaling": autoscaling()}}))
        .await;
    h.reconcile("quotes").await.unwrap();
    assert!(hpa(&h).await.is_some());
    let handed = h.deployment(READER).await.unwrap();
    assert_eq!(replicas(&handed), Some(3), "not reset while handing over");
    assert!(!owns_replicas(&handed, FIELD_MANAGER));

    // The HPA scales the readers (it writes the scale as its own manager):
    // the operator leaves that alone.
    Api::<Deployment>::namespaced(h.client.clone(), NS)
        .patch(
            READER,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    let writes = h.writes.take();
    assert!(
        writes.iter().all(|w| !w.contains("Deployment/")),
        "the operator does not fight the HPA: {writes:?}"
    );
    assert_eq!(replicas(&h.deployment(READER).await.unwrap()), Some(5));
    assert_eq!(h.get("quotes").await.status.unwrap().readers, "0/5");

    // Off: the HPA goes, the fixed count is the operator's again.
    h.change_spec("quotes", json!({"reader": {"autoscaling": null}}))
        .await;
    h.writes.take();
    h.reconcile("quotes").await.unwrap();
    let writes = h.writes.take();
    assert!(
        writes.contains(&format!("delete {READER}")),
        "the HPA is deleted: {writes:?}"
    );
    assert!(hpa(&h).await.is_none());
    let back = h.deployment(READER).await.unwrap();
    assert_eq!(replicas(&back), Some(3));
    assert!(owns_replicas(&back, FIELD_MANAGER));
}
