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
use crate::openapi::Problem;
use crate::reader::respond::problem;
use axum::Json;
use axum::extract::rejection::StringRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::header::{AUTHORIZATION, CONNECTION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
struct Ingest {
    book: SharedBook,
    metrics: Arc<Metrics>,
    token: Option<Arc<TokenFile>>,
}

/// The ingest routes and their description, to serve alone (writer) or
/// beside the API (`local`); with a token, only requests bearing it reach
/// the batch.
pub fn routes(
    book: SharedBook,
    metrics: Arc<Metrics>,
    token: Option<Arc<TokenFile>>,
) -> OpenApiRouter {
    let state = Ingest {
        book,
        metrics,
        token,
    };
    OpenApiRouter::new()
        .routes(routes!(ingest))
        // The server's own limit (crate::serve) is the one limit: lift
        // axum's smaller default for body extractors.
        .route_layer(DefaultBodyLimit::disable())
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state)
}

/// A batch was applied.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `ingest` writes
struct Accepted {
    /// Ticks in the batch.
    accepted: u64,
}

/// Why a batch was refused: nothing of it was applied.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `reject` writes
struct IngestError {
    /// The whole reason in one line, e.g. `line 3: price: must be greater than 0`.
    error: String,
    /// The 1-based line of the first bad tick (absent for an empty batch).
    line: Option<u64>,
    /// `symbol`, `price`, `volume`, `ts`, or `line` for whole-line problems.
    field: Option<String>,
    /// What was wrong with the field.
    reason: Option<String>,
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

/// Applies a batch of ticks, all or nothing.
#[utoipa::path(
    post,
    path = "/ingest",
    tag = "ingest",
    summary = "Push ticks: NDJSON, one tick per line, all or nothing",
    description = "Each line: `{\"symbol\":\"AAPL\",\"price\":189.5,\"volume\":300,\"ts\":\"2026-01-02T15:04:05Z\"}`. \
Symbols are 1-15 of `A-Z 0-9 . -` (lowercase is upper-cased), price 0.0001 to 1 000 000 000, volume an integer \
0 to 1 000 000 000 000, `ts` RFC 3339 and at most 60 s ahead of the writer's clock. The first bad line refuses the \
whole batch, so it can be fixed and resent without duplicates.",
    request_body(content = String, content_type = "application/x-ndjson",
        example = json!("{\"symbol\":\"AAPL\",\"price\":189.5,\"volume\":300,\"ts\":\"2026-01-02T15:04:05Z\"}\n")),
    security((), ("ingest_token" = [])),
    responses(
        (status = 202, description = "Applied: the ticks reach readers with the next publish", body = Accepted),
        (status = 400, description = "Refused: the first bad line, its field and why (or an empty batch)", body = IngestError),
        (status = 401, description = "A token file is configured and the request does not bear its token; the body was not read",
            body = Problem, content_type = "application/problem+json",
            headers(("WWW-Authenticate" = String, description = "`Bearer`"))),
        (status = 408, description = "The body did not arrive within the server's body read timeout (`--http-body-read-timeout`); the connection is closed",
            body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body is larger than the server's limit (`--http-max-body-bytes`)", body = Problem, content_type = "application/problem+json"),
    )
)]
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
