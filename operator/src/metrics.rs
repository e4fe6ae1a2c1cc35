//! Prometheus metrics of the operator, kept apart from the reconcile logic.
//!
//! - `cachebridge_operator_reconciles_total`: reconciles run;
//! - `cachebridge_operator_reconcile_errors_total{kind}`: failures by
//!   [`crate::Error::metric_label`];
//! - `cachebridge_operator_reconcile_duration_seconds`: how long each took;
//! - `cachebridge_operator_api_writes_total{op}`: children created, updated,
//!   deleted and status writes (a steady state shows none);
//! - `cachebridge_operator_leader`: 1 while this replica holds the Lease;
//! - `cachebridge_operator_bridge_ready{bridge_namespace, bridge}`: 1 while
//!   the bridge's Ready condition is True, 0 while it is not; gone with the
//!   bridge (the alert "bridge not Ready for 5 minutes" reads it). The
//!   labels are not `namespace`: Prometheus sets that to the operator's own.

use crate::error::Error;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Instant;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WriteLabels {
    pub op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BridgeLabels {
    pub bridge_namespace: String,
    pub bridge: String,
}

/// Every metric the operator exports, registered once.
pub struct Metrics {
    pub reconciles: Counter,
    pub errors: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub writes: Family<WriteLabels, Counter>,
    pub leader: Gauge,
    pub bridge_ready: Family<BridgeLabels, Gauge>,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cachebridge_operator");
        let m = Metrics {
            reconciles: Counter::default(),
            errors: Family::default(),
            // 1 ms .. ~16 s
            duration: Histogram::new(exponential_buckets(0.001, 2.0, 15)),
            writes: Family::default(),
            leader: Gauge::default(),
            bridge_ready: Family::default(),
            registry: Registry::default(),
        };
        registry.register("reconciles", "Reconciles run", m.reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Failed reconciles by error kind",
            m.errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of a reconcile",
            m.duration.clone(),
        );
        registry.register(
            "api_writes",
            "API writes by operation (created, updated, deleted, status)",
            m.writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica is the leader",
            m.leader.clone(),
        );
        registry.register(
            "bridge_ready",
            "1 while the bridge's Ready condition is True",
            m.bridge_ready.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Starts timing a reconcile; the returned guard records it when dropped.
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            metrics: self,
            start: Instant::now(),
        }
    }

    pub fn record_error(&self, error: &Error) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: error.metric_label().to_string(),
            })
            .inc();
    }

    pub fn record_writes(&self, op: &str, n: usize) {
        if n > 0 {
            self.record_writes_of(op, n as u64);
        }
    }

    /// Records whether the bridge `namespace/name` is Ready.
    pub fn record_ready(&self, namespace: &str, name: &str, ready: bool) {
        self.bridge_ready
            .get_or_create(&bridge_labels(namespace, name))
            .set(i64::from(ready));
    }

    /// Drops the series of a deleted bridge.
    pub fn forget_bridge(&self, namespace: &str, name: &str) {
        self.bridge_ready.remove(&bridge_labels(namespace, name));
    }

    /// Every family with one series, label values `example`: what
    /// `cachebridge-operator metrics` prints (an empty family shows nothing).
    pub fn with_examples(self) -> Self {
        let example = || "example".to_string();
        self.errors
            .get_or_create(&ErrorLabels { kind: example() })
            .inc_by(0);
        self.record_writes_of(&example(), 0);
        self.record_ready("example", "example", false);
        self
    }

    fn record_writes_of(&self, op: &str, n: u64) {
        self.writes
            .get_or_create(&WriteLabels { op: op.to_string() })
            .inc_by(n);
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn bridge_labels(namespace: &str, name: &str) -> BridgeLabels {
    BridgeLabels {
        bridge_namespace: namespace.to_string(),
        bridge: name.to_string(),
    }
}

/// Records the duration of one reconcile when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}
