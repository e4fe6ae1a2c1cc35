//! The reader: the web-service side of the bridge.
//!
//! An axum app serving market data from the tiered cache, plus health,
//! readiness, Prometheus metrics and a small live dashboard. The coherence
//! follower runs beside it and keeps L1 in step with the writer.

pub mod api;
pub mod coherence;
pub mod feed;
pub mod memo;
pub mod render;
pub mod respond;
pub mod stats;
pub mod stream;

use crate::cache::{Miss, TieredCache};
use crate::metrics::{EndpointHandles, Metrics, Tier};
use axum::Router;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use coherence::Coherence;
use memo::{Kept, Memo};
use render::{Composites, Rendered};
use respond::{IfNoneMatch, Served, StaleReason};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use stream::Streams;

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

    /// The reader's routes.
    pub fn router(self) -> Router {
        Router::new()
            .route("/", get(dashboard_page))
            .route("/api/v1/market/overview", get(api::overview))
            .route("/api/v1/market/tickers", get(api::tickers))
            .route("/api/v1/market/tickers/{symbol}", get(api::ticker))
            .route("/api/v1/market/movers", get(api::movers))
            .route("/api/v1/signals", get(api::signals))
            .route("/api/v1/signals/{symbol}", get(api::signal))
            .route("/api/v1/dashboard", get(api::dashboard))
            .route("/api/v1/market/history/{symbol}", get(api::history))
            .route("/api/v1/stream", get(stream::stream))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .fallback(not_found)
            .with_state(self)
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
        rendered.respond(tier, request.matches(rendered.etag()), stale, now)
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready when this reader can answer with data it can vouch for, or at
/// least has data to serve while the source is unreachable.
///
/// `source` is "reachable" only on evidence: the coherence follower holds a
/// live subscription and has caught up (so Redis answered it), and reads
/// have not tripped the L3 breaker. The breaker alone would say "reachable"
/// for a reader that simply has not called Redis yet.
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

async fn metrics(axum::extract::State(r): axum::extract::State<Reader>) -> Response {
    r.metrics.response()
}

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
