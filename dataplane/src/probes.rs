//! The operations endpoints every dataplane process serves alike —
//! liveness and Prometheus metrics — written once for the reader and the
//! writer's status server. Readiness differs per role and stays with each.

use crate::metrics::Metrics;
use axum::extract::State;
use axum::response::Response;
use std::sync::Arc;

/// Liveness.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process serves HTTP",
    responses((status = 200, description = "`ok`", content_type = "text/plain", body = String))
)]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// The process's metrics; any router state that holds them will do.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (OpenMetrics text)",
    responses((status = 200, description = "The metric families", content_type = "application/openmetrics-text", body = String))
)]
pub async fn metrics(State(metrics): State<Arc<Metrics>>) -> Response {
    metrics.response()
}
