//! `POST /ingest`: how an existing trading service pushes ticks.
//!
//! The body is NDJSON, one tick per line. A batch is all or nothing: the
//! whole body is validated before any tick touches the book, and the first
//! bad line is reported with its number and field, so the sender can fix it
//! and resend the batch without creating duplicates.

use super::SharedBook;
use super::sources::apply;
use crate::market::tick::parse_ndjson;
use crate::metrics::Metrics;
use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use std::sync::Arc;

/// Largest accepted batch.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

#[derive(Clone)]
struct Ingest {
    book: SharedBook,
    metrics: Arc<Metrics>,
}

/// The ingest routes, to serve alone (writer) or beside the API (`local`).
pub fn router(book: SharedBook, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/ingest", post(ingest))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(Ingest { book, metrics })
}

async fn ingest(State(state): State<Ingest>, body: String) -> Response {
    let ticks = match parse_ndjson(&body) {
        Ok(ticks) if ticks.is_empty() => {
            return reject(&state, json!({"error": "the body holds no ticks"}));
        }
        Ok(ticks) => ticks,
        Err(e) => {
            return reject(
                &state,
                json!({"error": e.to_string(), "line": e.line, "field": e.field, "reason": e.reason}),
            );
        }
    };
    apply(&state.book, &ticks, &state.metrics);
    (StatusCode::ACCEPTED, Json(json!({"accepted": ticks.len()}))).into_response()
}

fn reject(state: &Ingest, body: serde_json::Value) -> Response {
    state.metrics.ingest_rejected.inc();
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}
