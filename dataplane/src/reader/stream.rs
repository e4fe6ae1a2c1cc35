//! `GET /api/v1/stream`: every update of the values a client follows, pushed
//! as Server-Sent Events the moment this reader applies it.
//!
//! Each event is named by the logical key (`market:overview`,
//! `market:ticker:AAPL`, …), carries as `data` exactly the JSON the REST
//! endpoint answers for that key (rendered once per version and shared with
//! REST, see [`super::render`]), and as `id` the update's sequence number:
//! the same number on every reader of the bridge, so a client that
//! reconnects, to this reader or another, sends it back as `Last-Event-ID`
//! and gets what it missed.
//!
//! A stream holds no queue of its own: it keeps a position in the reader's
//! [`Feed`] and, whenever its client can take more, reads what came after
//! it and sends each key once, at its newest version, in the order of those
//! versions' updates. A client that reads slowly therefore gets fewer
//! events, never older ones, and costs the same memory as a fast one
//! (`cachebridge_stream_events_coalesced_total` counts what it skipped).
//! Where the position cannot be continued (the log was trimmed past it, or
//! the reader started a new history after a failover), the stream sends the
//! current value of every key it follows instead.
//!
//! REST requests do not pay for any of this: the feed is appended by the
//! coherence follower, and a stream's work runs on its own connection.

use super::Reader;
use super::feed::{Position, Since};
use super::render::Rendered;
use super::respond::{Served, problem};
use crate::cache::Lookup;
use crate::keys::logical;
use crate::market::tick::validate_symbol;
use crate::metrics::Metrics;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use serde::Deserialize;
use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// A comment this often keeps an idle stream open through proxies that
/// close silent connections (commonly after 30–60 s).
pub const HEARTBEAT: Duration = Duration::from_secs(15);
/// How long `EventSource` waits before reconnecting after the stream ends.
const RETRY_MS: u32 = 1_000;
/// Most keys one `topics` list may name, like `?symbols=`.
const MAX_TOPIC_KEYS: usize = 200;

const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");

/// The reader's streams as a whole: the cap on how many run at once, and
/// the signal that ends them all on shutdown.
pub struct Streams {
    max: usize,
    slots: Arc<Semaphore>,
    closing: watch::Sender<bool>,
}

impl Streams {
    pub fn new(max: usize) -> Self {
        Streams {
            max,
            slots: Arc::new(Semaphore::new(max)),
            closing: watch::channel(false).0,
        }
    }

    /// Ends every stream (each finishes the event it is writing) and
    /// refuses new ones: the server's graceful stop waits for responses to
    /// end, and a stream otherwise never does.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// Which values a stream follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topics {
    /// No `topics` parameter: every value the writer publishes.
    All,
    /// These logical keys, in the order the client named them.
    Keys(Vec<Arc<str>>, HashSet<Arc<str>>),
}

impl Topics {
    /// `overview`, `movers`, `signals`, `tickers` (the whole list), and
    /// per symbol `tickers:SYM`, `signals:SYM`, `history:SYM`; further
    /// symbols of the same kind may follow as plain items:
    /// `tickers:AAPL,MSFT,history:AAPL`.
    pub fn parse(list: Option<&str>) -> Result<Topics, String> {
        let Some(list) = list else {
            return Ok(Topics::All);
        };
        let mut keys: Vec<Arc<str>> = Vec::new();
        let mut kind: Option<fn(&str) -> String> = None;
        for item in list.split(',').map(str::trim) {
            let key = match item.split_once(':') {
                None => match item {
                    "overview" => fixed(&mut kind, logical::OVERVIEW),
                    "movers" => fixed(&mut kind, logical::MOVERS),
                    "signals" => fixed(&mut kind, logical::SIGNALS),
                    "tickers" => fixed(&mut kind, logical::TICKERS),
                    symbol => match kind {
                        Some(key_of) => key_of(&valid(symbol)?),
                        None => return Err(unknown(item)),
                    },
                },
                Some((name, symbol)) => {
                    let key_of: fn(&str) -> String = match name {
                        "tickers" => logical::ticker,
                        "signals" => logical::signal,
                        "history" => logical::history,
                        _ => return Err(unknown(item)),
                    };
                    kind = Some(key_of);
                    key_of(&valid(symbol)?)
                }
            };
            if !keys.iter().any(|k| **k == *key) {
                keys.push(key.into());
            }
        }
        if keys.len() > MAX_TOPIC_KEYS {
            return Err(format!("at most {MAX_TOPIC_KEYS} keys per stream"));
        }
        let set = keys.iter().cloned().collect();
        Ok(Topics::Keys(keys, set))
    }

    fn wants(&self, key: &str) -> bool {
        match self {
            Topics::All => true,
            Topics::Keys(_, set) => set.contains(key),
        }
    }
}

fn fixed(kind: &mut Option<fn(&str) -> String>, key: &str) -> String {
    *kind = None;
    key.to_owned()
}

fn valid(symbol: &str) -> Result<String, String> {
    validate_symbol(symbol).map_err(|e| format!("{symbol:?}: {e}"))
}

fn unknown(item: &str) -> String {
    format!(
        "unknown topic {item:?}: topics are overview, movers, signals, tickers, \
         tickers:SYMBOL, signals:SYMBOL and history:SYMBOL (more symbols of the same kind \
         may follow: tickers:AAPL,MSFT)"
    )
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated topics: `overview`, `movers`, `signals`, `tickers`,
    /// `tickers:SYM`, `signals:SYM`, `history:SYM` (more symbols of the same
    /// kind may follow: `tickers:AAPL,MSFT`). All keys when absent.
    #[param(example = "overview,tickers:AAPL,MSFT")]
    topics: Option<String>,
}

/// One event of the stream, as the OpenAPI document describes it (the
/// handler writes the text form: `event:`, `id:` and `data:` lines).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct StreamEvent {
    /// The logical key (`market:overview`, `market:ticker:AAPL`, …), or
    /// `status` for the reader's sync state.
    event: Option<String>,
    /// The position to resume from with `Last-Event-ID`.
    id: Option<String>,
    /// The JSON the REST endpoint answers for that key (for `status`:
    /// `{"synced":…,"staleness_budget_ms":…}`).
    data: String,
    /// How long a client waits before reconnecting, in milliseconds.
    retry: Option<u64>,
}

/// The handler.
#[utoipa::path(
    get,
    path = "/api/v1/stream",
    tag = "market",
    summary = "Live updates as Server-Sent Events",
    description = "One event per updated value: `event` is the logical key (`market:overview`, \
`market:ticker:AAPL`, …), `id` a position to resume from (send it back as `Last-Event-ID`), `data` the same \
JSON the REST endpoint answers for that key. The current value of each subscribed key comes first; a `status` \
event tells whether this reader is synced; a comment every 15 s keeps idle connections open.",
    params(
        StreamQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id"),
    ),
    responses(
        (status = 200, description = "The event stream; the schema describes one event", content_type = "text/event-stream", body = StreamEvent),
        (status = 400, description = "An unknown topic, a bad symbol or an unknown query parameter (named)", body = crate::openapi::Problem, content_type = "application/problem+json"),
        (status = 503, description = "Too many open streams (`--max-streams`); retry later", body = crate::openapi::Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub async fn stream(
    State(reader): State<Reader>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let query = match query {
        Ok(Query(query)) => query,
        Err(e) => return problem(StatusCode::BAD_REQUEST, "Bad query", e.body_text()),
    };
    let topics = match Topics::parse(query.topics.as_deref()) {
        Ok(topics) => topics,
        Err(reason) => return problem(StatusCode::BAD_REQUEST, "Bad topics parameter", reason),
    };
    let streams = &reader.streams;
    if *streams.closing.borrow() {
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Shutting down",
            "this reader is stopping; reconnect to another replica",
        );
    }
    let Ok(slot) = Arc::clone(&streams.slots).try_acquire_owned() else {
        reader.metrics.streams_refused.inc();
        return problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many streams",
            format!(
                "this reader serves at most {} streams at once; retry shortly",
                streams.max
            ),
        );
    };
    // Ids this reader hands out are sequence numbers; anything else (or
    // none) cannot be continued, so the client gets the current values.
    let resume = headers
        .get(LAST_EVENT_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let client = Client::new(reader, topics, resume, slot);
    let body = Body::from_stream(futures::stream::unfold(client, |mut client| async move {
        let chunk = client.next().await?;
        Some((Ok::<Bytes, Infallible>(chunk), client))
    }));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies not to buffer the stream.
    headers.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

/// Counts the stream as open while it lives, and holds its place under the cap.
struct Open {
    _slot: OwnedSemaphorePermit,
    metrics: Arc<Metrics>,
}

impl Open {
    fn new(slot: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.streams_open.inc();
        Open {
            _slot: slot,
            metrics,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.metrics.streams_open.dec();
    }
}

/// One client's stream.
struct Client {
    reader: Reader,
    topics: Topics,
    moved: watch::Receiver<u64>,
    synced: watch::Receiver<bool>,
    closing: watch::Receiver<bool>,
    heartbeat: tokio::time::Interval,
    /// What has been read of the feed.
    at: Position,
    /// No position to continue from: send the current values first.
    lost: bool,
    started: bool,
    /// The version last sent per key: never the same twice, never older.
    sent: HashMap<Arc<str>, u64>,
    /// Bytes ready for the connection.
    out: VecDeque<Bytes>,
    _open: Open,
}

impl Client {
    fn new(
        reader: Reader,
        topics: Topics,
        resume: Option<u64>,
        slot: OwnedSemaphorePermit,
    ) -> Self {
        let feed = reader.coherence.feed();
        let mut moved = feed.subscribe();
        moved.borrow_and_update();
        let current = feed.position();
        let at = Position {
            seq: resume.unwrap_or(current.seq),
            ..current
        };
        let mut synced = reader.coherence.synced();
        synced.borrow_and_update();
        let start = tokio::time::Instant::now() + HEARTBEAT;
        let mut client = Client {
            topics,
            moved,
            synced,
            closing: reader.streams.closing.subscribe(),
            heartbeat: tokio::time::interval_at(start, HEARTBEAT),
            at,
            lost: resume.is_none(),
            started: false,
            sent: HashMap::new(),
            out: VecDeque::new(),
            _open: Open::new(slot, Arc::clone(&reader.metrics)),
            reader,
        };
        client
            .out
            .push_back(Bytes::from(format!("retry: {RETRY_MS}\n\n")));
        client.status();
        client
    }

    /// The next bytes to send; `None` ends the stream.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(chunk) = self.out.pop_front() {
                return Some(chunk);
            }
            if *self.closing.borrow() {
                return None;
            }
            if !self.started {
                self.started = true;
                self.catch_up().await;
                continue;
            }
            tokio::select! {
                closing = self.closing.changed() => if closing.is_err() {
                    return None;
                },
                moved = self.moved.changed() => match moved {
                    Ok(()) => self.catch_up().await,
                    Err(_) => return None,
                },
                synced = self.synced.changed() => match synced {
                    Ok(()) => self.status(),
                    Err(_) => return None,
                },
                _ = self.heartbeat.tick() => self.out.push_back(Bytes::from_static(b": keep-alive\n\n")),
            }
        }
    }

    /// A `status` event: whether this reader currently follows the writer
    /// (values are marked `not_synced` otherwise) and the staleness budget,
    /// so a page can tell when quiet means stale.
    fn status(&mut self) {
        let synced = *self.synced.borrow_and_update();
        let budget = self.reader.staleness_budget.as_millis();
        self.out.push_back(Bytes::from(format!(
            "event: status\ndata: {{\"synced\":{synced},\"staleness_budget_ms\":{budget}}}\n\n"
        )));
    }

    /// Sends what the feed holds after this stream's position: each key
    /// once, at its newest update, in update order, each event with its id.
    async fn catch_up(&mut self) {
        self.moved.borrow_and_update();
        let feed = Arc::clone(self.reader.coherence.feed());
        if self.lost {
            return self.send_current(feed.position()).await;
        }
        let mut newest: HashMap<Arc<str>, u64> = HashMap::new();
        let mut matched = 0_u64;
        let topics = &self.topics;
        let since = feed.since(self.at, |seq, key| {
            if topics.wants(key) {
                matched += 1;
                newest.insert(Arc::clone(key), seq);
            }
        });
        let at = match since {
            Since::Read(at) => at,
            Since::Lost(at) => return self.send_current(at).await,
        };
        self.at = at;
        let mut order: Vec<(u64, Arc<str>)> = newest.into_iter().map(|(k, s)| (s, k)).collect();
        order.sort_unstable_by_key(|(seq, _)| *seq);
        let skipped = matched - order.len() as u64;
        self.reader.metrics.stream_events_coalesced.inc_by(skipped);
        for (seq, key) in order {
            if let Ok(lookup) = self.reader.cache.get(&key).await {
                self.write(key, lookup, Some(seq));
            }
        }
    }

    /// The current value of every key followed (those not sent at that
    /// version already). Only the last event carries an id, `at`: a client
    /// cut off halfway through resumes from its previous id and gets them
    /// all again rather than skipping the rest.
    async fn send_current(&mut self, at: Position) {
        self.lost = false;
        self.at = at;
        let keys = match &self.topics {
            Topics::Keys(keys, _) => keys.clone(),
            Topics::All => self.every_key().await,
        };
        let cache = &self.reader.cache;
        let found = futures::future::join_all(keys.iter().map(|k| cache.get(k))).await;
        let fresh: Vec<(Arc<str>, Lookup)> = keys
            .into_iter()
            .zip(found)
            .filter_map(|(key, found)| Some((key, found.ok()?)))
            .filter(|(key, lookup)| {
                self.sent
                    .get(key)
                    .is_none_or(|sent| *sent < lookup.env.version)
            })
            .collect();
        let last = fresh.len();
        for (i, (key, lookup)) in fresh.into_iter().enumerate() {
            self.write(key, lookup, (i + 1 == last).then_some(at.seq));
        }
    }

    /// Every key the writer publishes: the lists, and each listed symbol's
    /// ticker, signals and history.
    async fn every_key(&self) -> Vec<Arc<str>> {
        #[derive(Deserialize)]
        struct Listed {
            symbol: String,
        }
        let mut keys: Vec<Arc<str>> = [
            logical::OVERVIEW,
            logical::TICKERS,
            logical::MOVERS,
            logical::SIGNALS,
        ]
        .map(Arc::from)
        .to_vec();
        if let Ok(list) = self.reader.cache.get(logical::TICKERS).await
            && let Ok(listed) = serde_json::from_slice::<Vec<Listed>>(&list.env.payload)
        {
            for Listed { symbol } in listed {
                for key_of in [logical::ticker, logical::signal, logical::history] {
                    keys.push(key_of(&symbol).into());
                }
            }
        }
        keys
    }

    /// Queues one event: the key's value as its REST endpoint answers it.
    fn write(&mut self, key: Arc<str>, lookup: Lookup, id: Option<u64>) {
        let version = lookup.env.version;
        if self.sent.get(&key).is_some_and(|sent| *sent >= version) {
            return;
        }
        let served = Served::single(lookup);
        let now = SystemTime::now();
        let stale = self.reader.staleness(&served, now);
        let fallback;
        let rendered = match served
            .only()
            .and_then(|only| only.env.memo.get_or_init(|| Rendered::of(&served)))
        {
            Some(rendered) => rendered,
            None => {
                fallback = Rendered::of(&served);
                &fallback
            }
        };
        let [head, tail] = rendered.body(served.tier(), stale, now);
        let mut prefix = BytesMut::with_capacity(key.len() + 40);
        prefix.put_slice(b"event: ");
        prefix.put_slice(key.as_bytes());
        if let Some(id) = id {
            prefix.put_slice(b"\nid: ");
            prefix.put_slice(itoa::Buffer::new().format(id).as_bytes());
        }
        prefix.put_slice(b"\ndata: ");
        let mut end = BytesMut::with_capacity(tail.len() + 2);
        end.put_slice(&tail);
        end.put_slice(b"\n\n");
        self.out.extend([prefix.freeze(), head, end.freeze()]);
        self.sent.insert(key, version);
        self.reader.metrics.stream_events_sent.inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &str) -> Vec<String> {
        match Topics::parse(Some(list)).unwrap() {
            Topics::Keys(keys, _) => keys.iter().map(|k| k.to_string()).collect(),
            Topics::All => panic!("a list names keys"),
        }
    }

    #[test]
    fn topics_name_keys_and_symbols_continue_their_kind() {
        assert_eq!(Topics::parse(None), Ok(Topics::All));
        assert_eq!(
            keys("overview,movers,signals,tickers:AAPL,msft"),
            [
                "market:overview",
                "market:movers",
                "signals",
                "market:ticker:AAPL",
                "market:ticker:MSFT"
            ]
        );
        assert_eq!(
            keys("history:AAPL,tickers,signals:X,Y,overview,overview"),
            [
                "market:history:AAPL",
                "market:tickers",
                "signal:X",
                "signal:Y",
                "market:overview"
            ]
        );
    }

    #[test]
    fn unknown_topics_and_bad_symbols_are_named() {
        for (list, named) in [
            ("overview,weather", "\"weather\""),
            ("AAPL", "\"AAPL\""),
            ("prices:AAPL", "\"prices:AAPL\""),
            ("history", "\"history\""),
            ("tickers:AAPL,B@D", "\"B@D\""),
            ("", "\"\""),
        ] {
            let err = Topics::parse(Some(list)).unwrap_err();
            assert!(err.contains(named), "{list}: {err}");
        }
        let many: Vec<String> = (0..=MAX_TOPIC_KEYS).map(|i| format!("S{i}")).collect();
        let err = Topics::parse(Some(&format!("tickers:{}", many.join(",")))).unwrap_err();
        assert!(err.contains("at most"), "{err}");
    }
}
