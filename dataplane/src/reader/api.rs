//! The `/api/v1` handlers: which keys each endpoint reads, and what a miss
//! means for it (503 before the first write, 404 for a symbol the writer
//! never saw, 400 for a request that cannot be right). Each handler's
//! `#[utoipa::path]` annotation is its entry in the OpenAPI document.

use super::respond::{IfNoneMatch, Served, problem};
use super::{Endpoint, Reader};
use crate::cache::{Lookup, Miss};
use crate::keys::logical;
use crate::market::signals::SymbolSignals;
use crate::market::tick::validate_symbol;
use crate::market::views::{Movers, Overview, Ticker};
use crate::openapi::{Answer, Problem};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use utoipa::ToSchema;

/// Most symbols one `?symbols=` request may name.
const MAX_SYMBOLS: usize = 200;

/// Query of endpoints that take none: unknown parameters are an error, not
/// silently ignored, so a typo does not look like a working filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TickersQuery {
    /// Only these tickers, in this order: 1 to 200 distinct symbols,
    /// comma-separated (spaces around commas are ignored, lowercase is
    /// upper-cased, repeats are served once).
    #[param(
        pattern = r"^ *[A-Za-z0-9.-]{1,15} *(, *[A-Za-z0-9.-]{1,15} *){0,199}$",
        example = "AAPL,MSFT"
    )]
    symbols: Option<String>,
}

/// The dashboard: overview, movers and signals in one answer.
#[derive(ToSchema)]
pub struct Dashboard {
    pub overview: Overview,
    pub movers: Movers,
    pub signals: Vec<SymbolSignals>,
}

/// A symbol in a path: 1-15 of `A-Z 0-9 . -`; lowercase is upper-cased.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SymbolPath {
    /// The symbol, e.g. `AAPL`.
    #[param(
        pattern = r"^[A-Za-z0-9.-]{1,15}$",
        min_length = 1,
        max_length = 15,
        example = "AAPL"
    )]
    pub symbol: String,
}

// Descriptions of the answers the annotations below share. What every data
// endpoint answers alike (its headers, 304 and 503) is added to each by
// `crate::openapi`.
const DATA: &str = "The data, with its version, age and staleness.";
const BAD_QUERY: &str = "Bad query: an unknown query parameter (this endpoint takes none).";
const BAD_SYMBOL: &str = "Bad symbol: not 1-15 of `A-Z 0-9 . -`.";
const UNKNOWN_SYMBOL: &str =
    "Unknown symbol: the writer has published data, but never for this symbol.";

#[utoipa::path(
    get,
    path = "/api/v1/market/overview",
    tag = "market",
    summary = "Market overview: symbol count, totals, advancers/decliners, equal-weight index",
    responses(
        (status = 200, description = DATA, body = Answer<Overview>),
        (status = 400, description = BAD_QUERY, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn overview(
    State(r): State<Reader>,
    q: Result<Query<NoQuery>, QueryRejection>,
    h: IfNoneMatch,
) -> Response {
    one(&r, Endpoint::Overview, q, logical::OVERVIEW, &h).await
}

#[utoipa::path(
    get,
    path = "/api/v1/market/movers",
    tag = "market",
    summary = "Top gainers, top losers and most active tickers",
    responses(
        (status = 200, description = DATA, body = Answer<Movers>),
        (status = 400, description = BAD_QUERY, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn movers(
    State(r): State<Reader>,
    q: Result<Query<NoQuery>, QueryRejection>,
    h: IfNoneMatch,
) -> Response {
    one(&r, Endpoint::Movers, q, logical::MOVERS, &h).await
}

#[utoipa::path(
    get,
    path = "/api/v1/signals",
    tag = "signals",
    summary = "Every symbol's signals: SMA(5/20) crossover and RSI(14)",
    responses(
        (status = 200, description = DATA, body = Answer<Vec<SymbolSignals>>),
        (status = 400, description = BAD_QUERY, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn signals(
    State(r): State<Reader>,
    q: Result<Query<NoQuery>, QueryRejection>,
    h: IfNoneMatch,
) -> Response {
    one(&r, Endpoint::Signals, q, logical::SIGNALS, &h).await
}

#[utoipa::path(
    get,
    path = "/api/v1/market/tickers/{symbol}",
    tag = "market",
    summary = "One ticker: last, open, change, volume, VWAP, day high/low",
    params(SymbolPath),
    responses(
        (status = 200, description = DATA, body = Answer<Ticker>),
        (status = 400, description = BAD_SYMBOL, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = UNKNOWN_SYMBOL, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn ticker(
    State(r): State<Reader>,
    Path(symbol): Path<String>,
    h: IfNoneMatch,
) -> Response {
    by_symbol(&r, Endpoint::Ticker, &symbol, logical::ticker, &h).await
}

#[utoipa::path(
    get,
    path = "/api/v1/signals/{symbol}",
    tag = "signals",
    summary = "One symbol's signals",
    params(SymbolPath),
    responses(
        (status = 200, description = DATA, body = Answer<SymbolSignals>),
        (status = 400, description = BAD_SYMBOL, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = UNKNOWN_SYMBOL, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn signal(
    State(r): State<Reader>,
    Path(symbol): Path<String>,
    h: IfNoneMatch,
) -> Response {
    by_symbol(&r, Endpoint::Signal, &symbol, logical::signal, &h).await
}

#[utoipa::path(
    get,
    path = "/api/v1/market/history/{symbol}",
    tag = "market",
    summary = "One symbol's price history: one-second OHLCV bars of the last five minutes, oldest first",
    params(SymbolPath),
    responses(
        (status = 200, description = DATA, body = Answer<crate::market::bars::History>),
        (status = 400, description = BAD_SYMBOL, body = Problem, content_type = "application/problem+json"),
        (status = 404, description = UNKNOWN_SYMBOL, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn history(
    State(r): State<Reader>,
    Path(symbol): Path<String>,
    h: IfNoneMatch,
) -> Response {
    by_symbol(&r, Endpoint::History, &symbol, logical::history, &h).await
}

#[utoipa::path(
    get,
    path = "/api/v1/market/tickers",
    tag = "market",
    summary = "Every ticker, or the listed ones in their order",
    params(TickersQuery),
    responses(
        (status = 200, description = DATA, body = Answer<Vec<Ticker>>),
        (status = 400, description = "Bad symbols parameter (a bad symbol, more than 200) or an unknown query parameter.", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "Unknown symbol: one or more of the listed symbols were never published (all are named).", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn tickers(
    State(r): State<Reader>,
    q: Result<Query<TickersQuery>, QueryRejection>,
    h: IfNoneMatch,
) -> Response {
    let endpoint = Endpoint::Tickers;
    let query = match q {
        Ok(Query(query)) => query,
        Err(e) => return r.reject(endpoint, bad_query(e)),
    };
    let Some(list) = query.symbols else {
        return r.answer(
            endpoint,
            &h,
            r.cache.get(logical::TICKERS).await.map(Served::single),
        );
    };
    // Read before the look-ups: see `memo`.
    let changes = r.cache.changes();
    if let Some(kept) = r.lists.get(&list, changes) {
        return r.answer_kept(endpoint, &h, &kept);
    }
    let symbols = match parse_symbols(&list) {
        Ok(symbols) => symbols,
        Err(reason) => {
            return r.reject(
                endpoint,
                problem(StatusCode::BAD_REQUEST, "Bad symbols parameter", reason),
            );
        }
    };
    let keys: Vec<String> = symbols.iter().map(|s| logical::ticker(s)).collect();
    let mut parts = Vec::with_capacity(keys.len());
    let mut unknown = Vec::new();
    let looked_up = futures::future::join_all(keys.iter().map(|k| r.cache.get(k))).await;
    for ((symbol, key), result) in symbols.iter().zip(&keys).zip(looked_up) {
        match result {
            Ok(lookup) => parts.push((None, key.as_str(), lookup)),
            Err(Miss::Absent) => unknown.push(symbol.clone()),
            Err(miss) => return r.reject(endpoint, unavailable(&miss)),
        }
    }
    if !unknown.is_empty() {
        return r.reject(endpoint, r.unknown_symbols(&unknown).await);
    }
    r.answer_list(&h, &list, changes, Served::composite(parts, true))
}

#[utoipa::path(
    get,
    path = "/api/v1/dashboard",
    tag = "market",
    summary = "Overview, movers and signals in one answer (what the dashboard page shows)",
    responses(
        (status = 200, description = DATA, body = Answer<Dashboard>),
        (status = 400, description = BAD_QUERY, body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn dashboard(
    State(r): State<Reader>,
    q: Result<Query<NoQuery>, QueryRejection>,
    h: IfNoneMatch,
) -> Response {
    let endpoint = Endpoint::Dashboard;
    if let Err(e) = q {
        return r.reject(endpoint, bad_query(e));
    }
    let parts = [
        ("overview", logical::OVERVIEW),
        ("movers", logical::MOVERS),
        ("signals", logical::SIGNALS),
    ];
    let result = fetch(&r, &parts.map(|(_, key)| key)).await.map(|lookups| {
        let named = parts.iter().zip(lookups);
        Served::composite(named.map(|((name, key), l)| (Some(*name), *key, l)), false)
    });
    r.answer(endpoint, &h, result)
}

async fn one(
    r: &Reader,
    endpoint: Endpoint,
    q: Result<Query<NoQuery>, QueryRejection>,
    key: &str,
    h: &IfNoneMatch,
) -> Response {
    if let Err(e) = q {
        return r.reject(endpoint, bad_query(e));
    }
    let result = r.cache.get(key).await.map(Served::single);
    r.answer(endpoint, h, result)
}

async fn by_symbol(
    r: &Reader,
    endpoint: Endpoint,
    raw: &str,
    key_of: fn(&str) -> String,
    h: &IfNoneMatch,
) -> Response {
    let symbol = match validate_symbol(raw) {
        Ok(symbol) => symbol,
        Err(reason) => {
            return r.reject(
                endpoint,
                problem(StatusCode::BAD_REQUEST, "Bad symbol", reason),
            );
        }
    };
    match r.cache.get(&key_of(&symbol)).await {
        Ok(lookup) => r.answer(endpoint, h, Ok(Served::single(lookup))),
        Err(Miss::Absent) => r.reject(endpoint, r.unknown_symbols(&[symbol]).await),
        Err(miss) => r.reject(endpoint, unavailable(&miss)),
    }
}

/// Looks up several keys at once; all must be there.
async fn fetch(r: &Reader, keys: &[&str]) -> Result<Vec<Lookup>, Miss> {
    let results = futures::future::join_all(keys.iter().map(|k| r.cache.get(k))).await;
    results.into_iter().collect()
}

/// 503: nothing to serve, and the reason why.
pub(super) fn unavailable(miss: &Miss) -> Response {
    match miss {
        Miss::Absent => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "No data yet",
            "the writer has not published this data yet; retry shortly",
        ),
        Miss::Unreachable(why) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Data unavailable",
            why.clone(),
        ),
    }
}

fn bad_query(e: QueryRejection) -> Response {
    problem(StatusCode::BAD_REQUEST, "Bad query", e.body_text())
}

fn parse_symbols(list: &str) -> Result<Vec<String>, String> {
    let mut symbols: Vec<String> = Vec::new();
    for raw in list.split(',').map(str::trim) {
        let symbol = validate_symbol(raw).map_err(|e| format!("{raw:?}: {e}"))?;
        if !symbols.contains(&symbol) {
            symbols.push(symbol);
        }
    }
    if symbols.len() > MAX_SYMBOLS {
        return Err(format!("at most {MAX_SYMBOLS} symbols per request"));
    }
    Ok(symbols)
}

impl Reader {
    /// 404 when the writer has published data but not these symbols; 503
    /// when it has published nothing yet, because then we cannot know.
    async fn unknown_symbols(&self, symbols: &[String]) -> Response {
        match self.cache.get(logical::OVERVIEW).await {
            Ok(_) => problem(
                StatusCode::NOT_FOUND,
                "Unknown symbol",
                format!("no data for {}", symbols.join(", ")),
            ),
            Err(miss) => unavailable(&miss),
        }
    }
}
