//! The writer's own health, readiness and metrics endpoints.
//!
//! A writer that cannot reach Redis still runs (it holds values back and
//! flushes them later), but it is not doing its job: `/readyz` says so, so
//! the pod, and the CacheBridge's `WriterReady` condition built from it,
//! never claim a writer is working when it is not.

use crate::metrics::Metrics;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::sync::Arc;
use tokio::sync::watch;

#[derive(Clone)]
struct Status {
    healthy: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

/// `/healthz`, `/readyz` and `/metrics` of a writer.
pub fn router(healthy: watch::Receiver<bool>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(Status { healthy, metrics })
}

/// Ready while the last contact with Redis succeeded and nothing is held back.
async fn readyz(State(s): State<Status>) -> Response {
    let ready = *s.healthy.borrow();
    let body = serde_json::json!({
        "ready": ready,
        "reason": if ready { "publishing to Redis" } else { "Redis unreachable or values held back" },
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

async fn metrics_text(State(s): State<Status>) -> Response {
    s.metrics.response()
}
