//! The readers' HorizontalPodAutoscaler (`spec.reader.autoscaling`).
//!
//! When it is set the reader Deployment is built without `replicas`, so
//! the operator's field manager does not own that field and the HPA alone
//! sets it (see `apply` for how ownership is handed over on a live
//! Deployment). The PodDisruptionBudget needs no change: `maxUnavailable: 1`
//! is counted against whatever replica count the HPA has chosen.

use super::common::meta;
use super::labels::Component;
use super::names;
use crate::validate::Bridge;
use cachebridge_api::v1alpha1::{ReaderAutoscaling, ScalingPolicyType, ScalingRules, SelectPolicy};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler,
    HorizontalPodAutoscalerBehavior, HorizontalPodAutoscalerSpec, MetricSpec, MetricTarget,
    ResourceMetricSource,
};

/// The HPA of the reader Deployment, when the bridge asks for one.
pub fn reader_hpa(b: &Bridge) -> Option<HorizontalPodAutoscaler> {
    let a = b.reader.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: meta(b, names::reader(b), Component::Reader),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: names::reader(b),
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(vec![cpu_utilization(a)]),
            behavior: a
                .behavior
                .as_ref()
                .map(|behavior| HorizontalPodAutoscalerBehavior {
                    scale_up: behavior.scale_up.as_ref().map(rules),
                    scale_down: behavior.scale_down.as_ref().map(rules),
                }),
        }),
        ..Default::default()
    })
}

/// The replica count the operator sets on the reader Deployment: none
/// (the HPA's) when autoscaling, else `spec.reader.replicas`.
pub fn reader_replicas(b: &Bridge) -> Option<i32> {
    b.reader.autoscaling.is_none().then_some(b.reader.replicas)
}

/// The reader count the bridge wants now: the HPA's current choice (the
/// live Deployment's `replicas`, at least `minReplicas`), or the fixed count.
pub fn wanted_readers(b: &Bridge, live_replicas: Option<i32>) -> i32 {
    match &b.reader.autoscaling {
        Some(a) => live_replicas.unwrap_or(a.min_replicas).max(a.min_replicas),
        None => b.reader.replicas,
    }
}

fn cpu_utilization(a: &ReaderAutoscaling) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: "cpu".into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(a.target_cpu_utilization_percentage),
                ..Default::default()
            },
        }),
        ..Default::default()
    }
}

fn rules(r: &ScalingRules) -> HPAScalingRules {
    HPAScalingRules {
        stabilization_window_seconds: r.stabilization_window_seconds,
        select_policy: r.select_policy.map(|p| {
            match p {
                SelectPolicy::Max => "Max",
                SelectPolicy::Min => "Min",
                SelectPolicy::Disabled => "Disabled",
            }
            .to_string()
        }),
        policies: (!r.policies.is_empty()).then(|| {
            r.policies
                .iter()
                .map(|p| HPAScalingPolicy {
                    type_: match p.type_ {
                        ScalingPolicyType::Pods => "Pods",
                        ScalingPolicyType::Percent => "Percent",
                    }
                    .into(),
                    value: p.value,
                    period_seconds: p.period_seconds,
                })
                .collect()
        }),
        ..Default::default()
    }
}
