//! Prometheus metrics of the writer and the reader, kept apart from the
//! code that counts them so the names and labels are listed in one place.
//!
//! Hit ratios are derived at scrape time from the counters, so they are
//! always consistent with them and cost nothing on the request path.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// A cache tier.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelValue)]
pub enum Tier {
    L1,
    L2,
    L3,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::L1 => "L1",
            Tier::L2 => "L2",
            Tier::L3 => "L3",
        }
    }
}

/// How one look-up in one tier went.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Outcome {
    hit,
    miss,
    /// Found, but older than a version this reader already heard of.
    outdated,
    /// Found, but the bytes did not decode (counted as a miss too).
    corrupt,
    error,
    /// Not asked: the tier's circuit breaker is open.
    skipped,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TierLabels {
    pub tier: Tier,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LookupLabels {
    pub tier: Tier,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: &'static str,
    /// `L1`, `L2`, `L3`, or `none` when no tier had the data.
    pub tier: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub scope: &'static str,
}

/// Every outcome, in the order of [`Outcome`]'s discriminants.
const OUTCOMES: [Outcome; 6] = [
    Outcome::hit,
    Outcome::miss,
    Outcome::outdated,
    Outcome::corrupt,
    Outcome::error,
    Outcome::skipped,
];
const TIERS: [Tier; 3] = [Tier::L1, Tier::L2, Tier::L3];

/// Look-up counters and latency histograms resolved once per label set:
/// `Family::get_or_create` hashes the labels and takes a lock, which the
/// request path should not pay on every L1 hit.
struct LookupHandles {
    counts: [[Counter; OUTCOMES.len()]; TIERS.len()],
    seconds: [Histogram; TIERS.len()],
}

impl LookupHandles {
    fn resolve(
        lookups: &Family<LookupLabels, Counter>,
        fetch_seconds: &Family<TierLabels, Histogram>,
    ) -> Self {
        LookupHandles {
            counts: TIERS.map(|tier| {
                OUTCOMES.map(|outcome| {
                    lookups
                        .get_or_create(&LookupLabels { tier, outcome })
                        .clone()
                })
            }),
            seconds: TIERS.map(|tier| fetch_seconds.get_or_create(&TierLabels { tier }).clone()),
        }
    }
}

/// One endpoint's request metrics, resolved once (see [`LookupHandles`]).
pub struct EndpointHandles {
    /// Indexed by the answering tier's position in `L1, L2, L3`, then `none`.
    requests: [Counter; 4],
    data_age_seconds: Gauge<f64, AtomicU64>,
    stale_responses: Counter,
}

impl EndpointHandles {
    /// Counts a request answered by `tier` (`None`: no tier had the data).
    pub fn request(&self, tier: Option<Tier>) {
        self.requests[tier.map_or(3, |t| t as usize)].inc();
    }

    /// Records the age of data served, and whether it was marked stale.
    pub fn served(&self, age_seconds: f64, stale: bool) {
        self.data_age_seconds.set(age_seconds);
        if stale {
            self.stale_responses.inc();
        }
    }
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    handles: LookupHandles,
    pub lookups: Family<LookupLabels, Counter>,
    pub fetch_seconds: Family<TierLabels, Histogram>,
    pub requests: Family<RequestLabels, Counter>,
    pub data_age_seconds: Family<EndpointLabels, Gauge<f64, AtomicU64>>,
    pub stale_responses: Family<EndpointLabels, Counter>,
    pub hit_ratio: Family<ScopeLabels, Gauge<f64, AtomicU64>>,
    pub breaker_state: Family<TierLabels, Gauge>,
    pub coherence_synced: Gauge,
    pub coherence_gaps: Family<ReasonLabels, Counter>,
    pub coherence_resyncs: Family<ReasonLabels, Counter>,
    pub coherence_applied: Counter,
    pub l1_refreshes: Family<ReasonLabels, Counter>,
    pub coherence_seq: Gauge,
    pub writer_ticks: Counter,
    pub writer_publishes: Family<ReasonLabels, Counter>,
    pub writer_pending: Gauge,
    pub ingest_rejected: Counter,
    /// Tasks alive in the process's tokio runtime, read at scrape time.
    pub runtime_tasks: Gauge,
    /// Server-Sent Event streams (`/api/v1/stream`).
    pub streams_open: Gauge,
    pub stream_events_sent: Counter,
    pub stream_events_coalesced: Counter,
    pub streams_refused: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("cachebridge");
        let fetch_seconds = Family::<TierLabels, Histogram>::new_with_constructor(
            latency_histogram as fn() -> Histogram,
        );
        let lookups = Family::default();
        let handles = LookupHandles::resolve(&lookups, &fetch_seconds);
        let m = Metrics {
            handles,
            lookups,
            fetch_seconds,
            requests: Family::default(),
            data_age_seconds: Family::default(),
            stale_responses: Family::default(),
            hit_ratio: Family::default(),
            breaker_state: Family::default(),
            coherence_synced: Gauge::default(),
            coherence_gaps: Family::default(),
            coherence_resyncs: Family::default(),
            coherence_applied: Counter::default(),
            l1_refreshes: Family::default(),
            coherence_seq: Gauge::default(),
            writer_ticks: Counter::default(),
            writer_publishes: Family::default(),
            writer_pending: Gauge::default(),
            ingest_rejected: Counter::default(),
            runtime_tasks: Gauge::default(),
            streams_open: Gauge::default(),
            stream_events_sent: Counter::default(),
            stream_events_coalesced: Counter::default(),
            streams_refused: Counter::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "cache_lookups",
            "Look-ups per cache tier by outcome",
            m.lookups.clone(),
        );
        r.register(
            "tier_fetch_seconds",
            "Latency of one look-up in a tier",
            m.fetch_seconds.clone(),
        );
        r.register(
            "requests",
            "API requests by endpoint and the tier that answered",
            m.requests.clone(),
        );
        r.register(
            "data_age_seconds",
            "Age of the data last served, per endpoint",
            m.data_age_seconds.clone(),
        );
        r.register(
            "stale_responses",
            "Responses marked stale, per endpoint",
            m.stale_responses.clone(),
        );
        r.register(
            "cache_hit_ratio",
            "Hits over look-ups per tier; scope=overall is requests answered from any tier over all requests",
            m.hit_ratio.clone(),
        );
        r.register(
            "breaker_state",
            "Circuit breaker per tier: 0 closed, 1 half-open, 2 open",
            m.breaker_state.clone(),
        );
        r.register(
            "coherence_synced",
            "1 while this reader follows the writer's updates without a known gap",
            m.coherence_synced.clone(),
        );
        r.register(
            "coherence_gaps",
            "Gaps detected in the update sequence, by how",
            m.coherence_gaps.clone(),
        );
        r.register(
            "coherence_resyncs",
            "Resyncs: replayed from the stream, or L1 flushed",
            m.coherence_resyncs.clone(),
        );
        r.register(
            "coherence_applied",
            "Update announcements applied to L1",
            m.coherence_applied.clone(),
        );
        r.register(
            "l1_refreshes",
            "Updated keys fetched into L1 ahead of requests (refreshed), dropped because the new version could not be had, or left (already current or evicted)",
            m.l1_refreshes.clone(),
        );
        r.register(
            "coherence_seq",
            "Last update sequence applied",
            m.coherence_seq.clone(),
        );
        r.register(
            "writer_ticks",
            "Ticks applied by the writer",
            m.writer_ticks.clone(),
        );
        r.register(
            "writer_publishes",
            "Values offered to the store, by result",
            m.writer_publishes.clone(),
        );
        r.register(
            "writer_pending",
            "Values held back while the store is unreachable",
            m.writer_pending.clone(),
        );
        r.register(
            "ingest_rejected",
            "Ingest batches rejected as malformed",
            m.ingest_rejected.clone(),
        );
        r.register(
            "runtime_tasks",
            "Tasks alive in the tokio runtime (a count that keeps growing is a task leak)",
            m.runtime_tasks.clone(),
        );
        r.register(
            "streams_open",
            "Server-Sent Event streams open (/api/v1/stream)",
            m.streams_open.clone(),
        );
        r.register(
            "stream_events_sent",
            "Events written to Server-Sent Event streams",
            m.stream_events_sent.clone(),
        );
        r.register(
            "stream_events_coalesced",
            "Updates not sent to a stream because a newer version of the same key was sent instead",
            m.stream_events_coalesced.clone(),
        );
        r.register(
            "streams_refused",
            "Streams refused with 503 at the concurrent-stream cap",
            m.streams_refused.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Counts a look-up and its latency.
    pub fn lookup(&self, tier: Tier, outcome: Outcome, seconds: Option<f64>) {
        self.handles.counts[tier as usize][outcome as usize].inc();
        if let Some(seconds) = seconds {
            self.fetch_seconds(tier, seconds);
        }
    }

    /// Records how long one call to a tier took.
    pub fn fetch_seconds(&self, tier: Tier, seconds: f64) {
        self.handles.seconds[tier as usize].observe(seconds);
    }

    /// Counts `n` L1 hits at once (the values of a kept multi-key answer).
    pub fn l1_hits(&self, n: u64) {
        self.handles.counts[Tier::L1 as usize][Outcome::hit as usize].inc_by(n);
    }

    pub fn lookup_count(&self, tier: Tier, outcome: Outcome) -> u64 {
        self.handles.counts[tier as usize][outcome as usize].get()
    }

    /// The request metrics of one endpoint, to keep and count through.
    pub fn endpoint(&self, endpoint: &'static str) -> EndpointHandles {
        let labels = EndpointLabels { endpoint };
        EndpointHandles {
            requests: ["L1", "L2", "L3", "none"].map(|tier| {
                self.requests
                    .get_or_create(&RequestLabels { endpoint, tier })
                    .clone()
            }),
            data_age_seconds: self.data_age_seconds.get_or_create(&labels).clone(),
            stale_responses: self.stale_responses.get_or_create(&labels).clone(),
        }
    }

    /// The Prometheus text exposition, with hit ratios brought up to date.
    pub fn encode(&self) -> String {
        self.refresh_ratios();
        self.refresh_runtime();
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// `/metrics`: the exposition with its content type.
    pub fn response(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        (
            [(axum::http::header::CONTENT_TYPE, content_type)],
            self.encode(),
        )
            .into_response()
    }

    /// Hit ratio per tier and overall, as of now.
    pub fn ratios(&self) -> Vec<(&'static str, f64)> {
        let mut ratios = Vec::new();
        for tier in [Tier::L1, Tier::L2, Tier::L3] {
            let hits = self.lookup_count(tier, Outcome::hit);
            let total: u64 = OUTCOMES
                .into_iter()
                .filter(|o| *o != Outcome::skipped)
                .map(|o| self.lookup_count(tier, o))
                .sum();
            if total > 0 {
                ratios.push((tier.as_str(), hits as f64 / total as f64));
            }
        }
        let (mut answered, mut all) = (0u64, 0u64);
        for (labels, counter) in self.requests_snapshot() {
            all += counter;
            if labels.tier != "none" {
                answered += counter;
            }
        }
        if all > 0 {
            ratios.push(("overall", answered as f64 / all as f64));
        }
        ratios
    }

    fn refresh_ratios(&self) {
        for (scope, ratio) in self.ratios() {
            self.hit_ratio
                .get_or_create(&ScopeLabels { scope })
                .set(ratio);
        }
    }

    /// Reads the runtime's task count; outside a runtime the gauge keeps
    /// its last value.
    fn refresh_runtime(&self) {
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let tasks = runtime.metrics().num_alive_tasks();
            self.runtime_tasks
                .set(i64::try_from(tasks).unwrap_or(i64::MAX));
        }
    }

    fn requests_snapshot(&self) -> Vec<(RequestLabels, u64)> {
        let mut out = Vec::new();
        for endpoint in crate::reader::Endpoint::ALL.map(crate::reader::Endpoint::as_str) {
            for tier in ["L1", "L2", "L3", "none"] {
                let labels = RequestLabels { endpoint, tier };
                let n = self.requests.get_or_create(&labels).get();
                if n > 0 {
                    out.push((labels, n));
                }
            }
        }
        out
    }
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks_in(exposition: &str) -> i64 {
        exposition
            .lines()
            .find_map(|l| l.strip_prefix("cachebridge_runtime_tasks "))
            .expect("the gauge is exposed")
            .parse()
            .unwrap()
    }

    #[tokio::test]
    async fn the_task_gauge_counts_the_runtimes_live_tasks() {
        let metrics = Metrics::new();
        let before = tasks_in(&metrics.encode());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let parked = tokio::spawn(async move {
            let _ = stopped.await;
        });
        assert_eq!(tasks_in(&metrics.encode()), before + 1);
        stop.send(()).unwrap();
        parked.await.unwrap();
        assert_eq!(tasks_in(&metrics.encode()), before);
    }
}
