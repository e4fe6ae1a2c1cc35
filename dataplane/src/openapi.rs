//! The OpenAPI 3.1 documents of the dataplane's HTTP servers, generated from
//! the code that serves them.
//!
//! Every route is registered through `utoipa_axum`'s `routes!`, which reads
//! the `#[utoipa::path]` annotation next to its handler: the router that
//! serves requests and the document that describes them are built from the
//! same list, so an endpoint cannot be served undocumented. Adding one is its
//! annotation and one `.routes(routes!(handler))` line. What every cached-data
//! answer shares — the headers (`X-Cache`, `ETag`, `Last-Modified`, `Age`,
//! `X-Data-Stale`, …), `304` and `503` — is added here to each operation whose
//! `200` is an [`Answer`], so the annotations only say what differs.
//!
//! Each server serves its own document at [`DOCUMENT_PATH`]; the committed
//! copies (`docs/openapi.json`, `docs/openapi-writer.json`) are checked
//! against what the servers serve by `dataplane/tests/openapi.rs`.

use crate::reader::compress::{Encoding, Static};
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;

/// Where every server serves its document.
pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";

/// Media type of error documents (RFC 9457).
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A cached-data answer: the payload, spliced in as the writer serialized
/// it, and the facts to judge it by.
#[derive(ToSchema)]
pub struct Answer<T> {
    pub data: T,
    pub meta: Meta,
}

/// How fresh an answer is and where it came from. `etag` and `produced_at`
/// belong to the version; `tier`, `age_ms`, `stale` and `stale_reason` are
/// written per request, which is why they come last.
#[derive(ToSchema)]
pub struct Meta {
    /// The version, as in the `ETag` header without its quotes: `v<number>`
    /// for one value, `m<hex>` for an answer made of several.
    #[schema(pattern = "^(v[0-9]+|m[0-9a-f]+)$")]
    pub etag: String,
    /// When the writer produced the (oldest) value.
    #[schema(format = DateTime)]
    pub produced_at: String,
    /// The tier that answered (for several values, the slowest involved).
    pub tier: TierName,
    /// Milliseconds since `produced_at`.
    pub age_ms: u64,
    /// Older than the staleness budget, or not confirmed current.
    pub stale: bool,
    /// Why it is stale; null when it is not.
    pub stale_reason: Option<StaleReasonName>,
}

/// A cache tier.
#[derive(ToSchema)]
pub enum TierName {
    L1,
    L2,
    L3,
}

/// Why data is marked stale: `age` — older than the staleness budget;
/// `not_synced` — the reader cannot currently confirm it holds the latest
/// version (Redis or the update channel is down).
#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum StaleReasonName {
    Age,
    NotSynced,
}

/// An RFC 9457 problem document: every error of the data API.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short, fixed summary, e.g. `Unknown symbol`.
    pub title: String,
    /// The HTTP status again.
    pub status: u16,
    /// What exactly was wrong, in words a person can act on.
    pub detail: String,
}

/// The document of everything `router` serves, itself included, and the
/// router with `GET /api/v1/openapi.json` added.
pub fn serve_with_document(router: OpenApiRouter) -> (Router, Value) {
    let (router, mut api) = router.split_for_parts();
    api.merge(DocumentPath::openapi());
    let document = finish(&api);
    let bytes = serde_json::to_vec_pretty(&document).expect("a JSON value serializes");
    let asset = Arc::new(Static::new(bytes, "application/json"));
    let served = Router::new()
        .route(DOCUMENT_PATH, get(openapi_json))
        .with_state(asset);
    (router.merge(served), document)
}

/// The document's own path (served with the document as state, so not
/// through `routes!`).
#[derive(OpenApi)]
#[openapi(paths(openapi_json))]
struct DocumentPath;

/// This server's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "documentation",
    summary = "This server's OpenAPI 3.1 document",
    description = "Generated from the code that serves the endpoints it describes; gzip or brotli when asked for.",
    responses((status = 200, description = "The document", content_type = "application/json", body = Object))
)]
async fn openapi_json(
    State(asset): State<Arc<Static>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let encoding = Encoding::negotiate(headers.get_all(axum::http::header::ACCEPT_ENCODING));
    asset.respond(encoding).await
}

/// The document as served: the generated one, with what every cached-data
/// answer shares added to each operation answering with an [`Answer`].
fn finish(api: &utoipa::openapi::OpenApi) -> Value {
    let mut document = serde_json::to_value(api).expect("an OpenAPI document serializes");
    if let Some(paths) = document["paths"].as_object_mut() {
        for operation in paths.values_mut().filter_map(|p| p.get_mut("get")) {
            if answers_cached_data(operation) {
                add_cached_data_responses(&mut operation["responses"]);
            }
        }
    }
    let schemas = &mut document["components"]["schemas"];
    if schemas.get("Problem").is_none() {
        schemas["Problem"] = serde_json::to_value(problem_schema()).expect("a schema serializes");
    }
    document
}

fn problem_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    <Problem as utoipa::PartialSchema>::schema()
}

/// Whether the operation's 200 is an [`Answer`] (`Answer_<Payload>`).
fn answers_cached_data(operation: &Value) -> bool {
    operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .is_some_and(|r| r.starts_with("#/components/schemas/Answer_"))
}

/// A header every such answer carries.
fn header(description: &str, schema: Value) -> Value {
    json!({"description": description, "required": true, "schema": schema})
}

/// Headers of both the 200 and the 304 of a cached-data answer.
fn version_headers() -> serde_json::Map<String, Value> {
    let digits = json!({"type": "string", "pattern": "^[0-9]+$"});
    let headers = json!({
        "X-Cache": header("The tier that answered; for several values, the slowest involved.",
            json!({"type": "string", "enum": ["L1", "L2", "L3"]})),
        "ETag": header("The version: `If-None-Match` with it gets `304 Not Modified`.",
            json!({"type": "string", "pattern": "^\"(v[0-9]+|m[0-9a-f]+)\"$"})),
        "Last-Modified": header("When the writer produced the (oldest) value.",
            json!({"type": "string"})),
        "Age": header("Seconds since the value was produced.", digits.clone()),
        "X-Data-Age-Ms": header("Milliseconds since the value was produced.", digits),
        "X-Data-Stale": header("`true` when older than the staleness budget or not confirmed current (see `meta.stale_reason`); stale data is still served, never silently.",
            json!({"type": "string", "enum": ["true", "false"]})),
        "Cache-Control": header("`no-cache`: keep the body, but revalidate with the ETag.",
            json!({"type": "string", "const": "no-cache"})),
        "Vary": header("The body's coding depends on `Accept-Encoding`.",
            json!({"type": "string"})),
    });
    match headers {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// Adds the shared headers to the 200, and the 304 and 503 answers.
fn add_cached_data_responses(responses: &mut Value) {
    let mut ok = version_headers();
    ok.insert(
        "Content-Encoding".into(),
        json!({
            "description": "`br` or `gzip` when the request's `Accept-Encoding` allows it and the body is 1 KiB or more; absent otherwise.",
            "schema": {"type": "string", "enum": ["br", "gzip"]},
        }),
    );
    responses["200"]["headers"] = Value::Object(ok);
    responses["304"] = json!({
        "description": "Not modified: the client's `If-None-Match` names this version. No body.",
        "headers": Value::Object(version_headers()),
    });
    responses["503"] = json!({
        "description": "No data to serve: `No data yet` before the writer's first publish, `Data unavailable` when no tier holds the value and Redis is unreachable. Retry after the given seconds.",
        "headers": {"Retry-After": header("Seconds to wait before retrying.", json!({"type": "string", "pattern": "^[0-9]+$"}))},
        "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    });
}
