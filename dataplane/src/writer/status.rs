//! The writer's own health, readiness and metrics endpoints.
//!
//! A writer that cannot reach Redis still runs (it holds values back and
//! flushes them later), but it is not doing its job: `/readyz` says so, so
//! the pod, and the CacheBridge's `WriterReady` condition built from it,
//! never claim a writer is working when it is not.

use crate::metrics::Metrics;
use crate::probes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use tokio::sync::watch;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
struct Status {
    healthy: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

/// `/healthz`, `/readyz` and `/metrics` of a writer, described.
pub fn routes(healthy: watch::Receiver<bool>, metrics: Arc<Metrics>) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(probes::healthz))
        .routes(routes!(readyz))
        .routes(routes!(probes::metrics))
        .with_state(Status { healthy, metrics })
}

/// Whether the writer is doing its job.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `readyz` writes
struct WriterReadiness {
    ready: bool,
    /// In words.
    reason: String,
}

/// Ready while the last contact with Redis succeeded and nothing is held back.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: Redis takes the writer's values and nothing is held back",
    responses(
        (status = 200, description = "Ready", body = WriterReadiness),
        (status = 503, description = "Redis unreachable or values held back", body = WriterReadiness),
    )
)]
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

impl axum::extract::FromRef<Status> for Arc<Metrics> {
    fn from_ref(status: &Status) -> Self {
        Arc::clone(&status.metrics)
    }
}
