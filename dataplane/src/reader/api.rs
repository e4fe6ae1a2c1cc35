//! The `/api/v1` handlers: which keys each endpoint reads, and what a miss
//! means for it (503 before the first write, 404 for a symbol the writer
//! never saw, 400 for a request that cannot be right).

use super::respond::{IfNoneMatch, Served, problem};
use super::{Endpoint, Reader};
use crate::cache::{Lookup, Miss};
use crate::keys::logical;
use crate::market::tick::validate_symbol;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

/// Most symbols one `?symbols=` request may name.
const MAX_SYMBOLS: usize = 200;

/// Query of endpoints that take none: unknown parameters are an error, not
/// silently ignored, so a typo does not look like a working filter.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoQuery {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TickersQuery {
    symbols: Option<String>,
}

pub async fn overview(
    State(r): State<Reader>,
    q: Result<Query<NoQuery>, QueryRejection>,
    h: IfNoneMatch,
) -> Response {
    one(&r, Endpoint::Overview, q, logical::OVERVIEW, &h).await
}

pub async fn movers(
    State(r): State<Reader>,
    q: Result<Query<NoQuery>, QueryRejection>,
    h: IfNoneMatch,
) -> Response {
    one(&r, Endpoint::Movers, q, logical::MOVERS, &h).await
}

pub async fn signals(
    State(r): State<Reader>,
    q: Result<Query<NoQuery>, QueryRejection>,
    h: IfNoneMatch,
) -> Response {
    one(&r, Endpoint::Signals, q, logical::SIGNALS, &h).await
}

pub async fn ticker(
    State(r): State<Reader>,
    Path(symbol): Path<String>,
    h: IfNoneMatch,
) -> Response {
    by_symbol(&r, Endpoint::Ticker, &symbol, logical::ticker, &h).await
}

pub async fn signal(
    State(r): State<Reader>,
    Path(symbol): Path<String>,
    h: IfNoneMatch,
) -> Response {
    by_symbol(&r, Endpoint::Signal, &symbol, logical::signal, &h).await
}

pub async fn history(
    State(r): State<Reader>,
    Path(symbol): Path<String>,
    h: IfNoneMatch,
) -> Response {
    by_symbol(&r, Endpoint::History, &symbol, logical::history, &h).await
}

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
