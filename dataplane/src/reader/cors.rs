//! Which other origins' pages may call the API (CORS).
//!
//! The default allows none: a browser page served from elsewhere gets its
//! answers without `Access-Control-Allow-Origin`, so the browser withholds
//! them. A preflight `OPTIONS` always gets an answer (never `405`): for an
//! allowed origin it names the methods, headers and how long to remember;
//! for any other it allows nothing. The layer reads and adds headers only;
//! bodies pass through untouched.
//!
//! With no origin allowed (the default) there is no layer at all: it would
//! still add its `Vary` headers to every answer, which cost about a fifth of
//! an L1 hit. Preflights are then answered by the routes' fallback for a
//! method they do not take, which plain requests never reach.

use crate::reader::respond::{X_CACHE, X_DATA_AGE_MS, X_DATA_STALE};
use axum::Router;
use axum::http::header::{AGE, ALLOW, ETAG, IF_NONE_MATCH, RETRY_AFTER};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// `router` behind the CORS policy for `origins` (checked by
/// `Config::validate`; `*` is any; none allows no other origin).
pub fn apply(router: Router, origins: &[String]) -> Router {
    if origins.is_empty() {
        router.method_not_allowed_fallback(not_allowed)
    } else {
        router.layer(layer(origins))
    }
}

/// A method a route does not take: a preflight (`OPTIONS`) gets `204`
/// allowing no origin, anything else `405`; both name the methods allowed.
async fn not_allowed(method: Method) -> Response {
    let status = if method == Method::OPTIONS {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::METHOD_NOT_ALLOWED
    };
    (status, [(ALLOW, HeaderValue::from_static("GET, HEAD"))]).into_response()
}

/// The CORS layer for `origins`.
fn layer(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::HEAD])
        // The one request header a client of this API needs beyond the
        // safelisted ones: revalidation by ETag.
        .allow_headers([IF_NONE_MATCH])
        // What a page needs to judge the data (Last-Modified and
        // Cache-Control are readable anyway).
        .expose_headers([X_CACHE, ETAG, AGE, X_DATA_STALE, X_DATA_AGE_MS, RETRY_AFTER])
        .max_age(PREFLIGHT_MAX_AGE)
}
