//! The human-readable API page: `/api/docs`, the reader's OpenAPI document
//! rendered by Redoc.
//!
//! Redoc's standalone bundle is vendored (`assets/redoc/`, MIT, with the
//! licences of what it bundles) and embedded in the binary, so the page
//! needs no build step, no CDN and no internet. Both are compressed at most
//! once per coding (see [`super::compress::Static`]).

use super::compress::{Encoding, Static};
use axum::http::HeaderMap;
use axum::http::header::ACCEPT_ENCODING;
use axum::response::Response;
use std::sync::{Arc, LazyLock};

static PAGE: LazyLock<Arc<Static>> = LazyLock::new(|| {
    Arc::new(Static::new(
        include_str!("assets/docs.html"),
        "text/html; charset=utf-8",
    ))
});

static REDOC: LazyLock<Arc<Static>> = LazyLock::new(|| {
    Arc::new(Static::new(
        &include_bytes!("assets/redoc/redoc.standalone.js")[..],
        "text/javascript; charset=utf-8",
    ))
});

fn encoding(headers: &HeaderMap) -> Encoding {
    Encoding::negotiate(headers.get_all(ACCEPT_ENCODING))
}

/// The API reference page.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "documentation",
    summary = "The API reference, for people (Redoc over /api/v1/openapi.json)",
    responses((status = 200, description = "An HTML page", content_type = "text/html"))
)]
pub async fn page(headers: HeaderMap) -> Response {
    Arc::clone(&PAGE).respond(encoding(&headers)).await
}

/// The vendored renderer the page loads.
#[utoipa::path(
    get,
    path = "/api/docs/redoc.standalone.js",
    tag = "documentation",
    summary = "Redoc 2.5.4, vendored (MIT): the renderer of /api/docs",
    responses((status = 200, description = "JavaScript", content_type = "text/javascript"))
)]
pub async fn redoc(headers: HeaderMap) -> Response {
    Arc::clone(&REDOC).respond(encoding(&headers)).await
}
