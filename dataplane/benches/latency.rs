//! Latency benchmark for the dataplane's speed targets: an L1 hit under
//! 1 ms p99 over loopback HTTP, writer → both readers under 10 ms p99, and
//! (issue 7) the new version served over HTTP within 1 ms p99 while the
//! writer publishes 1,000 updated keys per second.
//!
//! The targets are checked here, not in timed tests, because timings on a
//! shared CI machine are noise; a benchmark reports distributions and the
//! reader judges them. Everything runs against real `redis-server` and
//! `memcached` processes started by the integration-test harness, with the
//! same wiring (`app`) the binary uses, and payloads built by the writer's
//! own market pipeline. The run prints a Markdown report; with
//! `CACHEBRIDGE_BENCH_WRITE=1` it also rewrites its section of
//! `BENCHMARKS.md` next to `Cargo.toml` (so an ordinary run leaves the tree
//! clean).
//!
//! Run: `cargo bench -p cachebridge-dataplane --bench latency`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/report.rs"]
mod report;

use bytes::Bytes;
use cachebridge_dataplane::app::{self, Running, Tiers, build_reader};
use cachebridge_dataplane::cache::TieredCache;
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::keys::logical;
use cachebridge_dataplane::market::{Book, Overview, SyntheticFeed, symbol_universe};
use cachebridge_dataplane::metrics::{Metrics, Tier};
use cachebridge_dataplane::reader::Reader;
use cachebridge_dataplane::writer::{self, publisher::Publisher};
use common::{PATIENCE, Server, until};
use hdrhistogram::Histogram;
use report::{micros, size, thousands};
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Requests per HTTP endpoint before measuring (connection set up, code paths warm).
const HTTP_WARMUP: usize = 2_000;
/// Measured sequential requests per HTTP endpoint.
const HTTP_REQUESTS: usize = 20_000;
/// Measured in-process `TieredCache::get` calls.
const IN_PROCESS_CALLS: usize = 200_000;
/// Measured full-snapshot publishes.
const SNAPSHOT_PUBLISHES: usize = 200;
/// Measured updates for "applied by both readers" and "publish".
const FANOUT_UPDATES: usize = 5_000;
/// Measured updates for "returned by both readers' cache.get".
const VISIBLE_UPDATES: usize = 2_000;
/// Measured updates for "both readers serve the new ETag over HTTP".
const HTTP_FANOUT_UPDATES: usize = 1_000;
/// Updates before each writer → reader figure is measured.
const FANOUT_WARMUP: usize = 100;
/// Ticks applied to the synthetic book before the first publish.
const OPENING_TICKS: usize = 5_000;
/// Ticks applied between two published overviews, so each one differs.
const TICKS_PER_UPDATE: usize = 10;
/// Updated keys per second published beside the measured key in the loaded
/// variant of the HTTP figure (issue 7).
const BACKGROUND_KEYS_PER_SEC: usize = 1_000;

const OVERVIEW_PATH: &str = "/api/v1/market/overview";
const TICKERS_PATH: &str = "/api/v1/market/tickers";

/// The product targets, from the issue.
const L1_TARGET: Duration = Duration::from_millis(1);
const FANOUT_TARGET: Duration = Duration::from_millis(10);
const LOADED_FANOUT_TARGET: Duration = Duration::from_millis(1);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let figures = runtime.block_on(measure_all());
    let text = report(&report::machine(&[]), &figures);
    report::publish("latency", &text, &section(&text));
}

// ---- the measurements -----------------------------------------------------

async fn measure_all() -> Vec<Figure> {
    let redis = Server::redis();
    let memcached = Server::memcached();
    let config = bench_config(&redis, &memcached);
    let mut market = Market::new(config.writer.symbols);
    let mut writer = publisher(&config);
    publish_snapshot(&mut writer, &market, config.writer.movers).await;

    let mut figures = l1_figures(&config).await;
    figures.push(snapshot_figure(&mut writer, &market, config.writer.movers).await);
    let base_seq = current_seq(&config).await;
    let mut fanout = Fanout::start(&config, writer, base_seq).await;
    figures.extend(fanout.applied_figures(&mut market).await);
    figures.push(fanout.visible_figure(&mut market).await);
    let (writer, seq) = fanout.finish(&config).await;
    let mut http = HttpFanout {
        writer,
        seq,
        market,
    };
    figures.push(http.figure(&config, None).await);
    figures.push(http.figure(&config, Some(BACKGROUND_KEYS_PER_SEC)).await);
    figures
}

/// The harness config, with timings that keep the measured path the
/// intended one for the whole run.
fn bench_config(redis: &Server, memcached: &Server) -> Config {
    let mut config = common::config(Some(redis), &[memcached]);
    let defaults = Config::default();
    // Production tier timeouts (the harness shortens them for fault tests).
    config.cache.tier_timeout = defaults.cache.tier_timeout;
    config.cache.breaker_cooldown = defaults.cache.breaker_cooldown;
    // Nothing sends heartbeats (publish is called directly), and the silence
    // detector fires after three intervals: 3 min is beyond the whole run.
    config.coherence.heartbeat_interval = Duration::from_secs(60);
    // The L1 TTL is only a safety net; an expiry mid-run would turn L1 hits
    // into L2 look-ups and abort the HTTP figures.
    config.cache.l1_ttl = Duration::from_secs(600);
    // Data published at start-up stays "fresh" for the whole run, so every
    // response takes the normal, not-stale path.
    config.cache.staleness_budget = Duration::from_secs(600);
    config
}

fn publisher(config: &Config) -> Publisher {
    let tiers = Tiers::connect(config, "bench writer", false).expect("writer tiers");
    let breaker = (config.cache.breaker_failures, config.cache.breaker_cooldown);
    Publisher::new(
        tiers.keys,
        tiers.l3,
        tiers.l2,
        breaker,
        Arc::new(Metrics::new()),
    )
}

/// Publishes every value the writer publishes for one snapshot of the book.
async fn publish_snapshot(writer: &mut Publisher, market: &Market, movers: usize) {
    let values = market.snapshot_values(movers);
    let count = values.len();
    let report = writer.publish(values, now_ms()).await;
    assert_eq!(
        report.published, count,
        "the snapshot was not fully published"
    );
}

/// The writer's whole publish of one snapshot (every ticker, signal and
/// view, serialized, then pipelined to Redis and Memcached): what one
/// publish cycle costs when everything changed.
async fn snapshot_figure(writer: &mut Publisher, market: &Market, movers: usize) -> Figure {
    let count = market.snapshot_values(movers).len();
    let mut hist = histogram();
    for _ in 0..SNAPSHOT_PUBLISHES {
        let start = Instant::now();
        publish_snapshot(writer, market, movers).await;
        record(&mut hist, start.elapsed());
    }
    let label = format!("writer: publish a full snapshot ({count} values) to Redis + Memcached");
    Figure::new("snapshot", label, hist)
}

async fn current_seq(config: &Config) -> u64 {
    let tiers = Tiers::connect(config, "bench probe", false).expect("probe tiers");
    tiers
        .l3
        .current_seq()
        .await
        .expect("read the update sequence")
}

// ---- L1 hits ----------------------------------------------------------------

/// L1 hits over loopback HTTP (two endpoints) and in-process.
async fn l1_figures(config: &Config) -> Vec<Figure> {
    let running = app::start_reader(config).await.expect("start a reader");
    let reader = running.reader.clone().expect("a reader has a reader");
    until("reader synced", &mut reader.coherence.synced(), |s| *s).await;
    let client = common::client();
    let base = base_url(&running);
    let mut figures = Vec::new();
    for (key, path) in [
        ("http_overview", OVERVIEW_PATH),
        ("http_tickers", TICKERS_PATH),
    ] {
        eprintln!("measuring L1 hits over HTTP: GET {path}");
        figures.push(http_l1(&client, &base, path, key).await);
    }
    eprintln!("measuring in-process L1 hits");
    figures.push(in_process_l1(&reader.cache).await);
    figures
}

fn base_url(running: &Running) -> String {
    format!("http://{}", running.addr.expect("the reader listens"))
}

/// Sequential keep-alive GETs, each one required to be an L1 hit.
async fn http_l1(client: &reqwest::Client, base: &str, path: &str, key: &'static str) -> Figure {
    let url = &format!("{base}{path}");
    prime(client, url).await;
    let mut body_len = 0;
    for _ in 0..HTTP_WARMUP {
        body_len = get_l1(client, url).await;
    }
    let mut hist = histogram();
    let started = Instant::now();
    for _ in 0..HTTP_REQUESTS {
        let sent = Instant::now();
        get_l1(client, url).await;
        record(&mut hist, sent.elapsed());
    }
    let rate = per_second(HTTP_REQUESTS, started.elapsed());
    Figure::new(
        key,
        format!("L1 hit over HTTP: GET {path} ({} body)", size(body_len)),
        hist,
    )
    .with_rate(rate, "req/s")
}

/// A first GET, answered from L2 or L3, which puts the value into L1.
async fn prime(client: &reqwest::Client, url: &str) {
    let response = client.get(url).send().await.expect("GET on loopback");
    assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {url}");
    response.bytes().await.expect("read the body");
}

/// One GET, read to the end; panics unless L1 answered, since anything else
/// would measure the wrong path. Returns the body length.
async fn get_l1(client: &reqwest::Client, url: &str) -> usize {
    let response = client.get(url).send().await.expect("GET on loopback");
    assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {url}");
    let tier = response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned();
    assert!(
        tier == "L1",
        "GET {url} was answered from {tier}, not L1: aborting, the benchmark would measure the wrong path"
    );
    response.bytes().await.expect("read the body").len()
}

/// `TieredCache::get` on an L1-resident key: the cache alone, no HTTP.
async fn in_process_l1(cache: &TieredCache) -> Figure {
    let mut hist = histogram();
    let started = Instant::now();
    for _ in 0..IN_PROCESS_CALLS {
        let called = Instant::now();
        let found = cache.get(logical::OVERVIEW).await;
        let took = called.elapsed();
        let found = found.expect("the overview is published");
        assert_eq!(found.tier, Tier::L1, "in-process look-up missed L1");
        record(&mut hist, took);
    }
    let rate = per_second(IN_PROCESS_CALLS, started.elapsed());
    Figure::new(
        "in_process",
        "L1 hit in-process: `TieredCache::get` (no HTTP)".into(),
        hist,
    )
    .with_rate(rate, "calls/s")
}

// ---- writer → both readers ------------------------------------------------------

/// One reader replica: its own tiers (own Redis connections and Memcached
/// pool, as a separate process would have) and its coherence follower.
struct Replica {
    reader: Reader,
    applied: watch::Receiver<u64>,
    /// Dropping the set stops the follower.
    _tasks: JoinSet<()>,
}

impl Replica {
    async fn start(config: &Config) -> Replica {
        let tiers = Tiers::connect(config, "bench reader", false).expect("reader tiers");
        let reader = build_reader(config, tiers, Arc::new(Metrics::new()));
        let mut tasks = JoinSet::new();
        tasks.spawn(Arc::clone(&reader.coherence).run());
        until("replica synced", &mut reader.coherence.synced(), |s| *s).await;
        let replica = Replica {
            applied: reader.coherence.applied(),
            reader,
            _tasks: tasks,
        };
        replica.overview().await; // into L1, as on a serving replica
        replica
    }

    async fn overview(&self) -> Bytes {
        let found = self.reader.cache.get(logical::OVERVIEW).await;
        found
            .expect("the overview is published")
            .env
            .payload
            .clone()
    }
}

/// The writer and two reader replicas on the same Redis and Memcached.
///
/// Which sequence number an update gets is known exactly without asking
/// Redis: the publish script increments the bridge's counter by one per
/// accepted update and by nothing else (an outdated offer returns before
/// `INCR`; heartbeats only read it), and nothing but this benchmark writes
/// under this bridge's key prefix (the harness names every bridge afresh).
/// So with the counter read once at the start, the k-th accepted update
/// gets `start + k`; each `publish` must report exactly one accepted update,
/// and [`Fanout::finish`] checks the final count against Redis.
struct Fanout {
    writer: Publisher,
    replicas: [Replica; 2],
    seq: u64,
}

impl Fanout {
    async fn start(config: &Config, writer: Publisher, seq: u64) -> Fanout {
        let replicas = [Replica::start(config).await, Replica::start(config).await];
        Fanout {
            writer,
            replicas,
            seq,
        }
    }

    /// "Both readers applied the update" and, from the same updates, the
    /// writer's `publish` call itself.
    async fn applied_figures(&mut self, market: &mut Market) -> [Figure; 2] {
        eprintln!("measuring writer → both readers (applied)");
        let (mut applied, mut publish) = (histogram(), histogram());
        for i in 0..FANOUT_WARMUP + FANOUT_UPDATES {
            let payload = market.next_overview();
            let (to_applied, to_published) = self.applied_once(payload.clone()).await;
            for replica in &self.replicas {
                assert_eq!(
                    replica.overview().await,
                    payload,
                    "a reader served an old overview"
                );
            }
            if i >= FANOUT_WARMUP {
                record(&mut applied, to_applied);
                record(&mut publish, to_published);
            }
        }
        [
            Figure::new(
                "fanout_applied",
                "writer → both readers: update applied (old L1 copy dropped)".into(),
                applied,
            ),
            Figure::new(
                "publish",
                "writer alone: `Publisher::publish` of one key (Redis + Memcached)".into(),
                publish,
            ),
        ]
    }

    /// Publishes one overview; returns the time until both readers applied
    /// it, and until `publish` returned, both from just before `publish`.
    async fn applied_once(&mut self, payload: Bytes) -> (Duration, Duration) {
        self.seq += 1;
        let [a, b] = &mut self.replicas;
        let started = Instant::now();
        let (published, applied) = tokio::join!(
            publish_one(&mut self.writer, payload),
            both(
                reached(&mut a.applied, self.seq),
                reached(&mut b.applied, self.seq)
            ),
        );
        (applied - started, published - started)
    }

    /// "Both readers' `cache.get` returns the new version": per reader, wait
    /// for the update to be applied, then read through the cache.
    async fn visible_figure(&mut self, market: &mut Market) -> Figure {
        eprintln!("measuring writer → both readers (visible via cache.get)");
        let mut hist = histogram();
        for i in 0..FANOUT_WARMUP + VISIBLE_UPDATES {
            let payload = market.next_overview();
            self.seq += 1;
            let [a, b] = &mut self.replicas;
            let started = Instant::now();
            let (_, visible) = tokio::join!(
                publish_one(&mut self.writer, payload.clone()),
                both(
                    visible(a, self.seq, &payload),
                    visible(b, self.seq, &payload)
                ),
            );
            if i >= FANOUT_WARMUP {
                record(&mut hist, visible - started);
            }
        }
        Figure::new(
            "fanout_visible",
            "writer → both readers: new version returned by `cache.get`".into(),
            hist,
        )
    }

    /// Checks the sequence bookkeeping against Redis and stops the replicas.
    async fn finish(self, config: &Config) -> (Publisher, u64) {
        let stored = current_seq(config).await;
        assert_eq!(
            stored, self.seq,
            "the update sequence in Redis differs from the one counted"
        );
        (self.writer, self.seq)
    }
}

/// Publishes one new overview; returns when `publish` came back.
async fn publish_one(writer: &mut Publisher, payload: Bytes) -> Instant {
    let values = vec![(logical::OVERVIEW.to_owned(), payload)];
    let report = writer.publish(values, now_ms()).await;
    assert_eq!(
        (report.published, report.held_back),
        (1, 0),
        "exactly one update must be accepted (see `Fanout`)"
    );
    Instant::now()
}

/// When a reader's applied sequence reached `seq`.
async fn reached(applied: &mut watch::Receiver<u64>, seq: u64) -> Instant {
    applied
        .wait_for(|last| *last >= seq)
        .await
        .expect("the coherence follower is running");
    Instant::now()
}

/// When a reader's cache returned the overview published as update `seq`.
async fn visible(replica: &mut Replica, seq: u64, payload: &Bytes) -> Instant {
    reached(&mut replica.applied, seq).await;
    let served = replica.overview().await;
    let now = Instant::now();
    assert_eq!(
        &served, payload,
        "reader served an old overview after applying update {seq}"
    );
    now
}

/// When both of two events happened; panics after the harness's patience.
async fn both(a: impl Future<Output = Instant>, b: impl Future<Output = Instant>) -> Instant {
    let (a, b) = tokio::time::timeout(PATIENCE, async { tokio::join!(a, b) })
        .await
        .unwrap_or_else(|_| panic!("readers did not see an update within {PATIENCE:?}"));
    a.max(b)
}

// ---- writer → both readers, over HTTP ------------------------------------------

/// The writer's side of the HTTP figures: its publisher, the last update
/// sequence number it caused, and the market it publishes from.
struct HttpFanout {
    writer: Publisher,
    seq: u64,
    market: Market,
}

impl HttpFanout {
    /// Two `app::start_reader` replicas; per update, the time until a
    /// client revalidating with `If-None-Match` gets the new ETag from both.
    /// With `background`, another publisher sends that many updated keys
    /// per second (other keys) the whole time.
    async fn figure(&mut self, config: &Config, background: Option<usize>) -> Figure {
        eprintln!(
            "measuring writer → both readers over HTTP (new ETag), background {background:?} keys/s"
        );
        let readers = [http_replica(config).await, http_replica(config).await];
        let urls = readers
            .each_ref()
            .map(|r| format!("{}{OVERVIEW_PATH}", base_url(r)));
        let client = common::client();
        let mut etag = current_etag(&client, &urls).await;
        let load = background.map(|per_sec| Background::start(config, per_sec));
        let mut hist = histogram();
        for i in 0..FANOUT_WARMUP + HTTP_FANOUT_UPDATES {
            let payload = self.market.next_overview();
            self.seq += 1;
            let started = Instant::now();
            let (_, (served_at, new_etag)) = tokio::join!(
                publish_one(&mut self.writer, payload),
                new_etag_on_both(&client, &urls, &etag),
            );
            etag = new_etag;
            if i >= FANOUT_WARMUP {
                record(&mut hist, served_at - started);
            }
        }
        let label = match load {
            None => "writer → both readers over HTTP: new ETag served (client polling with `If-None-Match`)".to_owned(),
            Some(load) => {
                let (published, per_sec) = load.stop().await;
                self.seq += published as u64;
                format!(
                    "writer → both readers over HTTP, new ETag served, while {} other updated keys/s are published (measured: {})",
                    thousands(background.unwrap_or_default() as f64),
                    thousands(per_sec)
                )
            }
        };
        assert_eq!(current_seq(config).await, self.seq, "sequence bookkeeping");
        let key = if background.is_some() {
            "fanout_http_loaded"
        } else {
            "fanout_http"
        };
        Figure::new(key, label, hist)
    }
}

/// Values per publish to send `per_sec` a second, one publish per `interval`.
fn per_cycle(per_sec: usize, interval: Duration) -> usize {
    (per_sec as f64 * interval.as_secs_f64()).round() as usize
}

/// A second publisher on the bridge sending updated values of other keys
/// than the measured one (tickers, signals, lists) at a steady rate, in the
/// writer's cadence: one pipelined publish per default publish interval.
struct Background {
    stop: watch::Sender<bool>,
    /// Updates accepted, and for how long it ran.
    task: tokio::task::JoinHandle<(usize, Duration)>,
}

impl Background {
    fn start(config: &Config, per_sec: usize) -> Background {
        let mut writer = publisher(config);
        let mut market = Market::new(config.writer.symbols);
        let movers = config.writer.movers;
        let interval = Config::default().writer.publish_interval;
        let per_cycle = per_cycle(per_sec, interval);
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut cycles = tokio::time::interval(interval);
            let (mut published, mut offset) = (0, 0);
            loop {
                tokio::select! {
                    _ = cycles.tick() => {}
                    _ = stopped.wait_for(|stop| *stop) => break,
                }
                let values = market.other_values(movers, per_cycle, &mut offset);
                let report = writer.publish(values, now_ms()).await;
                assert_eq!(
                    report.held_back, 0,
                    "the background publisher was held back"
                );
                published += report.published;
            }
            (published, started.elapsed())
        });
        Background { stop, task }
    }

    /// Stops it; returns the updates it published and their rate per second.
    async fn stop(self) -> (usize, f64) {
        self.stop.send_replace(true);
        let (published, took) = self.task.await.expect("the background publisher");
        (published, per_second(published, took))
    }
}

async fn http_replica(config: &Config) -> Running {
    let running = app::start_reader(config).await.expect("start a reader");
    let reader = running.reader.as_ref().expect("a reader has a reader");
    until("reader synced", &mut reader.coherence.synced(), |s| *s).await;
    running
}

/// The ETag both readers serve now; they must agree.
async fn current_etag(client: &reqwest::Client, urls: &[String; 2]) -> String {
    let [a, b] = urls;
    let (a, b) = tokio::join!(fetch_etag(client, a), fetch_etag(client, b));
    assert_eq!(a, b, "both readers serve the same version");
    a
}

async fn fetch_etag(client: &reqwest::Client, url: &str) -> String {
    let response = client.get(url).send().await.expect("GET on loopback");
    assert_eq!(response.status(), reqwest::StatusCode::OK, "GET {url}");
    etag_of(&response)
}

fn etag_of(response: &reqwest::Response) -> String {
    let etag = response
        .headers()
        .get("etag")
        .expect("responses carry an ETag");
    etag.to_str().expect("an ASCII ETag").to_owned()
}

/// When both readers answered a conditional GET with a new ETag, and which.
async fn new_etag_on_both(
    client: &reqwest::Client,
    urls: &[String; 2],
    old: &str,
) -> (Instant, String) {
    let [a, b] = urls;
    let wait = async { tokio::join!(new_etag(client, a, old), new_etag(client, b, old)) };
    let ((at_a, etag_a), (at_b, etag_b)) = tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("readers did not serve a new ETag within {PATIENCE:?}"));
    assert_eq!(etag_a, etag_b, "both readers serve the same new version");
    (at_a.max(at_b), etag_a)
}

/// Revalidates back to back until the reader answers 200 with another ETag.
async fn new_etag(client: &reqwest::Client, url: &str, old: &str) -> (Instant, String) {
    loop {
        let response = client
            .get(url)
            .header("if-none-match", old)
            .send()
            .await
            .expect("GET on loopback");
        match response.status() {
            reqwest::StatusCode::NOT_MODIFIED => continue,
            reqwest::StatusCode::OK => {}
            other => panic!("GET {url} answered {other}"),
        }
        let at = Instant::now();
        let etag = etag_of(&response);
        response.bytes().await.expect("read the body");
        if etag != old {
            return (at, etag);
        }
    }
}

// ---- payloads ---------------------------------------------------------------

/// A synthetic market moved tick by tick; its values are built by the
/// writer's own code, so sizes and shapes are the ones served in production.
struct Market {
    feed: SyntheticFeed,
    book: Book,
}

impl Market {
    fn new(symbols: usize) -> Market {
        let mut feed = SyntheticFeed::new(42, symbol_universe(symbols));
        let mut book = Book::new();
        let now = OffsetDateTime::now_utc();
        book.apply_all(&feed.opening(now));
        book.apply_all(&feed.next_batch(OPENING_TICKS, now));
        Market { feed, book }
    }

    /// Every value of one writer cycle: overview, ticker list, movers, signals, per-symbol keys.
    fn snapshot_values(&self, movers: usize) -> Vec<(String, Bytes)> {
        let as_of = self.book.last_update().expect("the book has ticks");
        let snapshot =
            cachebridge_dataplane::market::snapshot(&self.book, movers, as_of).expect("a snapshot");
        writer::payloads(&snapshot)
    }

    /// A new overview after a few more ticks (total volume only grows, so
    /// every overview differs from the previous one).
    fn next_overview(&mut self) -> Bytes {
        let now = self.advance();
        let overview = Overview::from_book(&self.book, now);
        Bytes::from(serde_json::to_vec(&overview).expect("the overview serializes"))
    }

    /// `count` values of keys other than the overview after a few more
    /// ticks, taken round-robin from `offset` so every key gets updated.
    fn other_values(
        &mut self,
        movers: usize,
        count: usize,
        offset: &mut usize,
    ) -> Vec<(String, Bytes)> {
        self.advance();
        let others: Vec<_> = self
            .snapshot_values(movers)
            .into_iter()
            .filter(|(key, _)| key != logical::OVERVIEW)
            .collect();
        let start = *offset % others.len();
        *offset = start + count;
        let count = count.min(others.len());
        others.into_iter().cycle().skip(start).take(count).collect()
    }

    fn advance(&mut self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        self.book
            .apply_all(&self.feed.next_batch(TICKS_PER_UPDATE, now));
        now
    }
}

fn now_ms() -> i64 {
    let since_epoch = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since_epoch.as_millis()).expect("milliseconds fit in i64")
}

// ---- figures and the report ---------------------------------------------------------

/// One measured distribution, in nanoseconds.
struct Figure {
    key: &'static str,
    label: String,
    hist: Histogram<u64>,
    rate: Option<(f64, &'static str)>,
}

impl Figure {
    fn new(key: &'static str, label: String, hist: Histogram<u64>) -> Figure {
        Figure {
            key,
            label,
            hist,
            rate: None,
        }
    }

    fn with_rate(self, rate: f64, unit: &'static str) -> Figure {
        Figure {
            rate: Some((rate, unit)),
            ..self
        }
    }

    fn p99_nanos(&self) -> u64 {
        self.hist.value_at_quantile(0.99)
    }

    fn p99(&self) -> Duration {
        Duration::from_nanos(self.p99_nanos())
    }
}

/// 1 ns to 1 min at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn record(hist: &mut Histogram<u64>, took: Duration) {
    hist.saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
}

fn per_second(count: usize, took: Duration) -> f64 {
    count as f64 / took.as_secs_f64()
}

/// The targets: (what, figure key, limit).
const TARGETS: [(&str, &str, Duration); 6] = [
    (
        "L1 hit over loopback HTTP < 1 ms p99 (overview)",
        "http_overview",
        L1_TARGET,
    ),
    (
        "L1 hit over loopback HTTP < 1 ms p99 (tickers)",
        "http_tickers",
        L1_TARGET,
    ),
    (
        "writer → both readers < 10 ms p99 (applied)",
        "fanout_applied",
        FANOUT_TARGET,
    ),
    (
        "writer → both readers < 10 ms p99 (visible via `cache.get`)",
        "fanout_visible",
        FANOUT_TARGET,
    ),
    (
        "writer → both readers < 10 ms p99 (new ETag over HTTP)",
        "fanout_http",
        FANOUT_TARGET,
    ),
    (
        "writer → both readers over HTTP ≤ 1 ms p99 while 1,000 other keys/s are published",
        "fanout_http_loaded",
        LOADED_FANOUT_TARGET,
    ),
];

fn report(machine: &str, figures: &[Figure]) -> String {
    let mut out = format!("{machine}\n\n");
    out.push_str(
        "| Figure | Samples | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | Throughput |\n",
    );
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for f in figures {
        let q = |q: f64| micros(f.hist.value_at_quantile(q));
        let rate = f.rate.map_or("—".to_owned(), |(r, unit)| {
            format!("{} {unit}", thousands(r))
        });
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {rate} |",
            f.label,
            thousands(f.hist.len() as f64),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            micros(f.hist.max()),
        );
    }
    out.push_str("\n| Target | Measured p99 | Result |\n|---|---:|---|\n");
    for (what, key, limit) in TARGETS {
        let Some(figure) = figures.iter().find(|f| f.key == key) else {
            continue;
        };
        let p99 = figure.p99();
        let verdict = if p99 < limit { "pass" } else { "**FAIL**" };
        let _ = writeln!(
            out,
            "| {what} | {} µs | {verdict} |",
            micros(figure.p99_nanos())
        );
    }
    out
}

/// Its `BENCHMARKS.md` section: how to run, the report, what each figure
/// means.
fn section(report: &str) -> String {
    let n = |count: usize| thousands(count as f64);
    let interval = Config::default().writer.publish_interval;
    format!(
        r#"## Latency

Written by `dataplane/benches/latency.rs`; the figures below are from the
last recorded run, on the machine named in their first line.

### How to run

```sh
cargo bench -p cachebridge-dataplane --bench latency
```

It needs `redis-server` and `memcached` on `PATH` (the same Debian packages
the integration tests use) and starts its own on free loopback ports. It
takes about two minutes, prints the report below, and with
`CACHEBRIDGE_BENCH_WRITE=1` rewrites this section.

### Results

{report}
Latencies are per operation, in microseconds, from an HDR histogram
(3 significant digits). Throughput is sequential: one request in flight.
Compare the in-process figure with the HTTP ones: nearly all of an L1 hit
over HTTP is HTTP, loopback TCP and task scheduling, not the cache.

### What each figure measures

- **L1 hit over HTTP**: a reader started with `app::start_reader` against
  real Redis and Memcached, after the writer's `Publisher` stored one full
  cycle of values built by the writer's own market code (default symbol
  universe). One keep-alive `reqwest` client sends {requests} sequential
  GETs (after {warmup} unmeasured); each is timed from `send()` until the
  whole body is read. Every response must carry `x-cache: L1`, otherwise
  the run aborts. Client and server share the process and the CPUs.
- **L1 hit in-process**: {calls} calls of `TieredCache::get` on the same
  reader's L1-resident overview: the cache alone, no HTTP.
- **writer → both readers, applied**: one `Publisher` and two readers, each
  built with `build_reader` over its own `Tiers` (own Redis connections and
  Memcached pool, as separate replicas have) with its coherence follower
  running. For {fanout} new versions of `market:overview` (after
  {fanout_warmup} unmeasured): time from just before `publish` until both
  readers' `Coherence::applied()` watch reached the update's sequence
  number, i.e. both dropped their old L1 copy and raised the key's version
  floor. The sequence number is known exactly (one per accepted update on a
  fresh key prefix; checked against Redis at the end). After each update,
  untimed, both readers' `cache.get` must return the new payload.
- **writer alone, publish**: from the same updates, how long `publish`
  took (the Redis Lua script that stores, numbers and announces, then the
  Memcached `set`). Readers can apply an update before `publish` returns.
- **writer → both readers, visible via `cache.get`**: {visible} updates;
  per reader, wait until the update is applied, then `cache.get` the key
  (an L2 or L3 read, since L1 was invalidated) and check the bytes; the
  figure is until both readers returned the new version.
- **writer → both readers over HTTP**: {http_fanout} updates with two
  `app::start_reader` readers; a client revalidates each reader back to back
  with `If-None-Match: <old ETag>` (304 until the update lands), and the
  figure is until both answered 200 with the new ETag. The polling itself
  competes for the CPUs, so this is an upper bound on the real delay.
- **… while other keys are published**: the same with two fresh readers,
  while a second `Publisher` on the bridge publishes {background} updated
  values of other keys (tickers, signals, lists; round-robin over all of
  them) per second, in the writer's cadence: one pipelined publish of
  {per_cycle} values every {interval_ms} ms. Both readers apply every one of those
  announcements while they serve the measured key. The sequence bookkeeping
  counts the background's accepted updates too.

Bench settings: no heartbeats (the interval is 60 s and `publish` is called
directly), L1 TTL and staleness budget 10 min so neither expires mid-run,
production tier timeouts. Updates are published back to back, each once
the previous one was seen by both readers.
"#,
        requests = n(HTTP_REQUESTS),
        warmup = n(HTTP_WARMUP),
        calls = n(IN_PROCESS_CALLS),
        fanout = n(FANOUT_UPDATES),
        fanout_warmup = n(FANOUT_WARMUP),
        visible = n(VISIBLE_UPDATES),
        http_fanout = n(HTTP_FANOUT_UPDATES),
        background = n(BACKGROUND_KEYS_PER_SEC),
        per_cycle = n(per_cycle(BACKGROUND_KEYS_PER_SEC, interval)),
        interval_ms = interval.as_millis(),
    )
}
