//! `POST /ingest`: how an existing trading service pushes ticks.
//!
//! The body is NDJSON, one tick per line. A batch is all or nothing: the
//! whole body is validated before any tick touches the book, and the first
//! bad line is reported with its number and field, so the sender can fix it
//! and resend the batch without creating duplicates.
//!
//! With a token file configured, a request without `Authorization: Bearer
//! <token>` is refused with 401 before its body is read. The body size limit
//! is the server's (see [`crate::serve`]); a body that does not arrive
//! within the server's body read timeout is answered 408.

use super::SharedBook;
use super::sources::apply;
use super::token::TokenFile;
use crate::market::tick::parse_ndjson;
use crate::metrics::Metrics;
use crate::reader::respond::problem;
use axum::Json;
use axum::Router;
use axum::extract::rejection::StringRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{AUTHORIZATION, CONNECTION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;
use std::sync::Arc;

#[derive(Clone)]
struct Ingest {
    book: SharedBook,
    metrics: Arc<Metrics>,
    token: Option<Arc<TokenFile>>,
}

/// The ingest routes, to serve alone (writer) or beside the API (`local`);
/// with a token, only requests bearing it reach the batch.
pub fn router(book: SharedBook, metrics: Arc<Metrics>, token: Option<Arc<TokenFile>>) -> Router {
    let state = Ingest {
        book,
        metrics,
        token,
    };
    Router::new()
        .route("/ingest", post(ingest))
        // The server's own limit (crate::serve) is the one limit: lift
        // axum's smaller default for body extractors.
        .route_layer(DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// Lets a request through when no token is configured or it bears the
/// token; otherwise answers 401 without reading the body.
async fn authorize(State(state): State<Ingest>, request: Request, next: Next) -> Response {
    let Some(token) = &state.token else {
        return next.run(request).await;
    };
    let presented = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "));
    match presented {
        Some(presented) if token.accepts(presented.trim_ascii()) => next.run(request).await,
        Some(_) => unauthorized(&state, "the bearer token is not the ingest token"),
        None => unauthorized(&state, "POST /ingest needs `Authorization: Bearer <token>`"),
    }
}

fn unauthorized(state: &Ingest, detail: &str) -> Response {
    state.metrics.ingest_rejected.inc();
    let mut response = problem(StatusCode::UNAUTHORIZED, "Unauthorized", detail);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn ingest(State(state): State<Ingest>, body: Result<String, StringRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return refuse_body(&state, rejection),
    };
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

/// A body that could not be read: 408 when it was too slow to arrive,
/// otherwise axum's own answer (413 over the size limit, 400 for a body that
/// is not UTF-8 or broke off).
fn refuse_body(state: &Ingest, rejection: StringRejection) -> Response {
    state.metrics.ingest_rejected.inc();
    if crate::serve::is_body_timeout(&rejection) {
        let mut response = problem(
            StatusCode::REQUEST_TIMEOUT,
            "Request body timeout",
            rejection.body_text(),
        );
        // The rest of the body may still arrive: it must not be read as the
        // next request.
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    rejection.into_response()
}

fn reject(state: &Ingest, body: serde_json::Value) -> Response {
    state.metrics.ingest_rejected.inc();
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}
