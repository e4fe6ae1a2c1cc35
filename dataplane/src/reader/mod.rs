//! The reader: the web-service side of the bridge.
//!
//! An axum app serving market data from the tiered cache, plus health,
//! readiness, Prometheus metrics and a small live dashboard. The coherence
//! follower runs beside it and keeps L1 in step with the writer.

pub mod api;
pub mod coherence;
pub mod respond;
pub mod stats;

use crate::cache::TieredCache;
use crate::metrics::{EndpointLabels, Metrics, RequestLabels};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use coherence::Coherence;
use respond::{Served, StaleReason};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Every endpoint label used in request metrics.
pub const ENDPOINTS: [&str; 7] = [
    "overview",
    "tickers",
    "ticker",
    "movers",
    "signals",
    "signal",
    "dashboard",
];

/// What the handlers share.
#[derive(Clone)]
pub struct Reader {
    pub cache: Arc<TieredCache>,
    pub coherence: Arc<Coherence>,
    pub metrics: Arc<Metrics>,
    pub staleness_budget: Duration,
}

impl Reader {
    /// The reader's routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(dashboard_page))
            .route("/api/v1/market/overview", get(api::overview))
            .route("/api/v1/market/tickers", get(api::tickers))
            .route("/api/v1/market/tickers/{symbol}", get(api::ticker))
            .route("/api/v1/market/movers", get(api::movers))
            .route("/api/v1/signals", get(api::signals))
            .route("/api/v1/signals/{symbol}", get(api::signal))
            .route("/api/v1/dashboard", get(api::dashboard))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .with_state(self)
    }

    /// Why this data should be marked stale, if it should.
    fn staleness(&self, served: &Served, now: SystemTime) -> Option<StaleReason> {
        if !self.coherence.is_synced() {
            return Some(StaleReason::NotSynced);
        }
        (served.age(now) > self.staleness_budget).then_some(StaleReason::Age)
    }

    fn count_served(&self, endpoint: &'static str, served: &Served, stale: bool, now: SystemTime) {
        let tier = served
            .parts
            .iter()
            .map(|(_, l)| l.tier)
            .max()
            .map_or("none", |t| t.as_str());
        self.metrics
            .requests
            .get_or_create(&RequestLabels { endpoint, tier })
            .inc();
        let labels = EndpointLabels { endpoint };
        self.metrics
            .data_age_seconds
            .get_or_create(&labels)
            .set(served.age(now).as_secs_f64());
        if stale {
            self.metrics.stale_responses.get_or_create(&labels).inc();
        }
    }

    /// Counts a request no tier could answer and passes its response on.
    fn reject(&self, endpoint: &'static str, response: Response) -> Response {
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                endpoint,
                tier: "none",
            })
            .inc();
        response
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when this reader can answer with data it can vouch for, or at
/// least has data to serve while the source is unreachable.
async fn readyz(axum::extract::State(r): axum::extract::State<Reader>) -> Response {
    let synced = r.coherence.is_synced();
    let l1_entries = r.cache.l1_entries().await;
    let ready = synced || l1_entries > 0;
    let body = serde_json::json!({
        "ready": ready,
        "synced": synced,
        "source": if r.cache.l3_healthy() { "reachable" } else { "unreachable" },
        "l1_entries": l1_entries,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics(axum::extract::State(r): axum::extract::State<Reader>) -> Response {
    r.metrics.response()
}

async fn dashboard_page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

async fn not_found(uri: axum::http::Uri) -> Response {
    respond::problem(
        StatusCode::NOT_FOUND,
        "Not found",
        format!("no endpoint at {}", uri.path()),
    )
}
