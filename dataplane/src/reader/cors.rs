//! Which other origins' pages may call the API (CORS).
//!
//! The default allows none: a browser page served from elsewhere gets its
//! answers without `Access-Control-Allow-Origin`, so the browser withholds
//! them. A preflight `OPTIONS` always gets an answer (never `405`): for an
//! allowed origin it names the methods, headers and how long to remember;
//! for any other it allows nothing. The layer reads and adds headers only;
//! bodies pass through untouched.

use crate::reader::respond::{X_CACHE, X_DATA_AGE_MS, X_DATA_STALE};
use axum::http::header::{AGE, ETAG, IF_NONE_MATCH, RETRY_AFTER};
use axum::http::{HeaderValue, Method};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may keep a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `origins` (checked by `Config::validate`; `*` is any).
pub fn layer(origins: &[String]) -> CorsLayer {
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
