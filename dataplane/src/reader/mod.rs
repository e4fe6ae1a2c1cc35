//! The reader: the web-service side of the bridge.
//!
//! An axum app serving market data from the tiered cache, plus health,
//! readiness, Prometheus metrics and a small live dashboard. The coherence
//! follower runs beside it and keeps L1 in step with the writer.

pub mod api;
pub mod coherence;
pub mod compress;
pub mod cors;
pub mod docs;
pub mod feed;
pub mod memo;
pub mod render;
pub mod respond;
pub mod stats;
pub mod stream;

use crate::cache::{Miss, TieredCache};
use crate::metrics::{EndpointHandles, Metrics, Tier};
use crate::openapi::{Problem, serve_with_document};
use crate::probes;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use coherence::Coherence;
use memo::{Kept, Memo};
use render::{Composites, Rendered};
use respond::{IfNoneMatch, Served, StaleReason};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use stream::Streams;
use utoipa::{OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The reader document's title, tags and shared schemas; its paths come
/// from the handlers' annotations (see [`Reader::routes`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "CacheBridge reader API",
        description = "Live market data served from a multi-tier cache (L1 in the reader, L2 Memcached, L3 Redis). \
Every data answer says which tier answered (`X-Cache`), which version it is (`ETag`; `If-None-Match` gets `304`), \
how old it is (`Age`, `meta.age_ms`) and whether it is stale (`X-Data-Stale`, `meta.stale_reason`). \
Errors are RFC 9457 problem documents. Bodies of 1 KiB or more are sent gzip- or brotli-compressed when \
`Accept-Encoding` allows it. Cross-origin requests are allowed from the origins the operator configured \
(`--cors-allow-origin`; none by default). Every server also answers `503` (`text/plain`, `Retry-After: 1`) to a \
connection over its connection cap, before reading the request.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    tags(
        (name = "market", description = "Market views: overview, tickers, movers, the dashboard's combined answer"),
        (name = "signals", description = "Technical signals per symbol"),
        (name = "operations", description = "Health, readiness and metrics, for probes and Prometheus"),
        (name = "documentation", description = "This document and the pages"),
    ),
    components(schemas(Problem))
)]
pub struct ReaderApi;

/// The data endpoints, as labelled in request metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Overview,
    Tickers,
    Ticker,
    Movers,
    Signals,
    Signal,
    Dashboard,
    History,
}

impl Endpoint {
    pub const ALL: [Endpoint; 8] = [
        Endpoint::Overview,
        Endpoint::Tickers,
        Endpoint::Ticker,
        Endpoint::Movers,
        Endpoint::Signals,
        Endpoint::Signal,
        Endpoint::Dashboard,
        Endpoint::History,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Overview => "overview",
            Endpoint::Tickers => "tickers",
            Endpoint::Ticker => "ticker",
            Endpoint::Movers => "movers",
            Endpoint::Signals => "signals",
            Endpoint::Signal => "signal",
            Endpoint::Dashboard => "dashboard",
            Endpoint::History => "history",
        }
    }
}

/// Bytes of rendered composite answers (dashboard, ticker lists) kept.
const COMPOSITES_MAX_BYTES: u64 = 8 << 20;

/// What the handlers share: one `Arc`, so that handing it to a request (axum
/// clones the state for each) is one atomic increment, not one per field.
#[derive(Clone)]
pub struct Reader(Arc<Shared>);

/// The reader's state behind [`Reader`].
pub struct Shared {
    pub cache: Arc<TieredCache>,
    pub coherence: Arc<Coherence>,
    pub metrics: Arc<Metrics>,
    pub staleness_budget: Duration,
    /// Request metrics per endpoint, indexed by `Endpoint as usize`.
    counters: [EndpointHandles; Endpoint::ALL.len()],
    composites: Composites,
    lists: Memo,
    streams: Streams,
}

impl std::ops::Deref for Reader {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Reader {
    pub fn new(
        cache: Arc<TieredCache>,
        coherence: Arc<Coherence>,
        metrics: Arc<Metrics>,
        staleness_budget: Duration,
        max_streams: usize,
    ) -> Self {
        let counters = Endpoint::ALL.map(|e| metrics.endpoint(e.as_str()));
        Reader(Arc::new(Shared {
            cache,
            coherence,
            metrics,
            staleness_budget,
            counters,
            composites: Composites::new(COMPOSITES_MAX_BYTES),
            lists: Memo::new(),
            streams: Streams::new(max_streams),
        }))
    }

    /// Ends every open stream and refuses new ones (on shutdown).
    pub fn close_streams(&self) {
        self.streams.close();
    }

    /// The reader's routes, each with its OpenAPI description (the
    /// annotation beside its handler): one list for both, so nothing is
    /// served undocumented.
    pub fn routes(self) -> OpenApiRouter {
        OpenApiRouter::with_openapi(ReaderApi::openapi())
            .routes(routes!(api::overview))
            .routes(routes!(api::tickers))
            .routes(routes!(api::ticker))
            .routes(routes!(api::movers))
            .routes(routes!(api::signals))
            .routes(routes!(api::signal))
            .routes(routes!(api::dashboard))
            .routes(routes!(dashboard_page))
            .routes(routes!(docs::page))
            .routes(routes!(docs::redoc))
            .routes(routes!(probes::healthz))
            .routes(routes!(readyz))
            .routes(routes!(probes::metrics))
            .routes(routes!(api::history))
            .routes(routes!(stream::stream))
            .fallback(not_found)
            .with_state(self)
    }

    /// The reader's router, `GET /api/v1/openapi.json` included.
    pub fn router(self) -> Router {
        serve_with_document(self.routes()).0
    }
}

impl Shared {
    /// Why this data should be marked stale, if it should.
    fn staleness(&self, served: &Served, now: SystemTime) -> Option<StaleReason> {
        if !self.coherence.is_synced() || served.superseded() {
            return Some(StaleReason::NotSynced);
        }
        (served.age(now) > self.staleness_budget).then_some(StaleReason::Age)
    }

    fn counters(&self, endpoint: Endpoint) -> &EndpointHandles {
        &self.counters[endpoint as usize]
    }

    /// Counts a request no tier could answer and passes its response on.
    fn reject(&self, endpoint: Endpoint, response: Response) -> Response {
        self.counters(endpoint).request(None);
        response
    }

    /// The answer for served data (or the 503 for a miss), counted.
    fn answer(
        &self,
        endpoint: Endpoint,
        request: &IfNoneMatch,
        result: Result<Served, Miss>,
    ) -> Response {
        let served = match result {
            Ok(served) => served,
            Err(miss) => return self.reject(endpoint, api::unavailable(&miss)),
        };
        let composite;
        let rendered = match served
            .only()
            .and_then(|only| only.env.memo.get_or_init(|| Rendered::of(&served)))
        {
            Some(single) => single,
            None => {
                composite = self.composites.get(&served);
                &composite
            }
        };
        self.respond(endpoint, request, &served, served.tier(), rendered)
    }

    /// A `?symbols=` answer kept in the memo: all of it from memory.
    fn answer_kept(&self, endpoint: Endpoint, request: &IfNoneMatch, kept: &Kept) -> Response {
        self.metrics.l1_hits(kept.served.part_count() as u64);
        self.respond(endpoint, request, &kept.served, Tier::L1, &kept.rendered)
    }

    /// Builds, answers and keeps a `?symbols=` list from look-ups that
    /// started when the cache's change counter stood at `changes`.
    fn answer_list(
        &self,
        request: &IfNoneMatch,
        list: &str,
        changes: u64,
        served: Served,
    ) -> Response {
        let rendered = self.composites.get(&served);
        let response = self.respond(
            Endpoint::Tickers,
            request,
            &served,
            served.tier(),
            &rendered,
        );
        let kept = Kept {
            changes,
            served,
            rendered,
        };
        self.lists.keep(list, kept);
        response
    }

    /// The response for rendered data, with what changes per request:
    /// staleness, age, and a 304 for a client that has this version.
    fn respond(
        &self,
        endpoint: Endpoint,
        request: &IfNoneMatch,
        served: &Served,
        tier: Tier,
        rendered: &Rendered,
    ) -> Response {
        let now = SystemTime::now();
        let stale = self.staleness(served, now);
        let counters = self.counters(endpoint);
        counters.request(Some(tier));
        counters.served(served.age(now).as_secs_f64(), stale.is_some());
        let not_modified = request.matches(rendered.etag());
        rendered.respond(tier, not_modified, stale, now, request.encoding())
    }
}

/// Ready when this reader can answer with data it can vouch for, or at
/// least has data to serve while the source is unreachable.
///
/// `source` is "reachable" only on evidence: the coherence follower holds a
/// live subscription and has caught up (so Redis answered it), and reads
/// have not tripped the L3 breaker. The breaker alone would say "reachable"
/// for a reader that simply has not called Redis yet.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: synced with the writer, or holding data to serve",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: not synced and nothing to serve", body = Readiness),
    )
)]
async fn readyz(axum::extract::State(r): axum::extract::State<Reader>) -> Response {
    let synced = r.coherence.is_synced();
    let l1_entries = r.cache.l1_entries().await;
    let ready = synced || l1_entries > 0;
    let reachable = synced && r.cache.l3_healthy();
    let body = serde_json::json!({
        "ready": ready,
        "synced": synced,
        "source": if reachable { "reachable" } else { "unreachable" },
        "l1_entries": l1_entries,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

/// Where the reader stands, for probes and people.
#[derive(ToSchema)]
#[allow(dead_code)] // describes the JSON `readyz` writes
struct Readiness {
    ready: bool,
    /// Following the writer's updates, caught up.
    synced: bool,
    /// `reachable` only while the reader follows Redis's updates and its reads succeed.
    #[schema(pattern = "^(reachable|unreachable)$")]
    source: String,
    /// Values held in L1.
    l1_entries: u64,
}

impl axum::extract::FromRef<Reader> for Arc<Metrics> {
    fn from_ref(reader: &Reader) -> Self {
        Arc::clone(&reader.metrics)
    }
}

#[utoipa::path(
    get,
    path = "/",
    tag = "documentation",
    summary = "The live dashboard page",
    responses((status = 200, description = "An HTML page", content_type = "text/html"))
)]
async fn dashboard_page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

async fn not_found(uri: axum::http::Uri) -> Response {
    respond::problem(
        StatusCode::NOT_FOUND,
        "Not found",
        format!("no endpoint at {}", uri.path()),
    )
}
