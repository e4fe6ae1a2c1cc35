//! Benchmark: the operator at fleet scale. Reconciles N CacheBridges
//! against the in-memory API backend (kube-fake-client) and reports API
//! reads and writes per bridge for the first pass and for a simulated
//! steady hour (requeues every 30 s, cache figures read from a real
//! `redis-server` on every requeue, the watch events of the operator's own
//! status writes), the watch traffic (counted apart), and the operator's
//! peak memory.
//!
//! The in-memory API backend runs in a child process (this binary again,
//! with `--backend`), reached over HTTP on loopback like a real API server,
//! so this process's peak RSS (`VmHWM`) is the operator's own: reflector
//! stores, reconciles, the HTTP client, the bridges as its watch holds them.
//!
//! `cargo run --release -p cachebridge-operator --example reconcile_bench [-- BRIDGES [CONCURRENCY]]`
//!
//! Not a timed test: the figures go into operator/BENCHMARKS.md.

use cachebridge_api::CacheBridge;
use cachebridge_dataplane::keys::Keys;
use cachebridge_operator::ALLOCATOR as OPERATOR_ALLOCATOR;
use cachebridge_operator::caches;
use cachebridge_operator::controller::{self, Context, READY_REQUEUE};
use cachebridge_operator::desired::Settings;
use cachebridge_operator::desired::redis::acl_rules;
use cachebridge_operator::metrics::Metrics;
use cachebridge_testkit::Server;
use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube_fake_client::{ClientBuilder, interceptor};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::alloc::{GlobalAlloc, Layout};
use std::collections::HashMap;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

const NS: &str = "bench";
const PASSWORD: &str = "BenchPassw0rdForTheBridgeAclUser";
/// Requeues of a ready bridge in one hour.
const ROUNDS: i64 = 3600 / READY_REQUEUE.as_secs() as i64;

/// Counts live heap bytes and their peak, allocating with the operator
/// binary's own allocator.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { OPERATOR_ALLOCATOR.alloc(layout) };
        if !p.is_null() {
            let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { OPERATOR_ALLOCATOR.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn reset_peak() -> usize {
    let live = LIVE.load(Ordering::Relaxed);
    PEAK.store(live, Ordering::Relaxed);
    live
}

/// Requests the backend received, by kind of request (kept in the backend
/// process, read over HTTP at `/bench/counters`).
#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    status_writes: AtomicU64,
}

/// A reading of [`Counters`].
#[derive(Default, Clone, Copy, Serialize, Deserialize)]
struct Counts {
    reads: u64,
    writes: u64,
    status_writes: u64,
}

impl Counts {
    fn minus(self, o: Counts) -> Counts {
        Counts {
            reads: self.reads - o.reads,
            writes: self.writes - o.writes,
            status_writes: self.status_writes - o.status_writes,
        }
    }
    fn plus(self, o: Counts) -> Counts {
        Counts {
            reads: self.reads + o.reads,
            writes: self.writes + o.writes,
            status_writes: self.status_writes + o.status_writes,
        }
    }
}

/// The requests the reconciles made since the last `take`: the backend's
/// counts, less what the bench itself asked (watch playing, setup).
struct Tally {
    client: Client,
    base: Counts,
    /// Counted before a pause for watch traffic, carried over it.
    carry: Counts,
}

impl Tally {
    async fn now(&self) -> Counts {
        let text = bench_request(&self.client, "counters").await;
        serde_json::from_str(&text).expect("counters JSON")
    }

    async fn take(&mut self) -> Counts {
        let now = self.now().await;
        let taken = now.minus(self.base).plus(self.carry);
        self.base = now;
        self.carry = Counts::default();
        taken
    }

    /// Runs `f` without counting its requests.
    async fn aside<T>(&mut self, f: impl Future<Output = T>) -> T {
        let pending = self.take().await;
        let out = f.await;
        self.take().await;
        self.carry = pending;
        out
    }
}

/// Asks the backend process for `/bench/{what}` (not forwarded to the fake
/// API, not counted): the bench's own work stays out of this process.
async fn bench_request(client: &Client, what: &str) -> String {
    let request = axum::http::Request::get(format!("/bench/{what}"))
        .body(Vec::new())
        .expect("request");
    client.request_text(request).await.expect(what)
}

/// The simulated time, in seconds after the real start.
static SIMULATED: AtomicI64 = AtomicI64::new(0);

fn simulated_clock() -> Timestamp {
    Timestamp::now()
        .checked_add(SignedDuration::from_secs(SIMULATED.load(Ordering::SeqCst)))
        .expect("a time within range")
}

fn main() {
    // kube's client builds a TLS connector even for http://; name the provider.
    cachebridge_dataplane::tls::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if args.first().map(String::as_str) == Some("--backend") {
        let bridges = args[1].parse().expect("BRIDGES");
        runtime.block_on(serve_backend(bridges, args[2].clone()));
    } else {
        let bridges = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
        let concurrency = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
        // Fewer requeues than an hour's make a shorter run (its figures
        // say so); the real changes of the figures come at 60 and 120.
        let rounds = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(ROUNDS);
        runtime.block_on(run(bridges, concurrency, rounds));
    }
}

/// The in-memory API backend in a child process, killed with the bench.
struct BackendProcess {
    child: std::process::Child,
    port: u16,
}

impl BackendProcess {
    fn start(bridges: usize, redis_url: &str) -> Self {
        let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
            .args(["--backend", &bridges.to_string(), redis_url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start the backend process");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the backend's port");
        let port = line.trim().parse().expect("a port number");
        BackendProcess { child, port }
    }

    fn peak_rss(&self) -> String {
        proc_status(&format!("/proc/{}/status", self.child.id()), "VmHWM:")
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn run(bridges: usize, concurrency: usize, rounds: i64) {
    let baseline_rss = proc_status("/proc/self/status", "VmRSS:");
    let redis = acl_redis();
    let backend = BackendProcess::start(bridges, &redis.url());
    let client = loopback_client(backend.port);
    let mut ctx = Context::new(
        client.clone(),
        Settings::default(),
        Arc::new(Metrics::new()),
    );
    ctx.observe_primary = false;
    ctx.clock = simulated_clock;
    let ctx = Arc::new(ctx);
    let mut tally = Tally {
        client: client.clone(),
        base: Counts::default(),
        carry: Counts::default(),
    };
    tally.take().await;
    let mut bench = Bench {
        client,
        ctx,
        tally,
        bridges,
        concurrency,
        cached: HashMap::new(),
        watch_events: 0,
    };
    println!(
        "{bridges} CacheBridges (external Redis: one real redis-server, 2 reader reports per bridge), \
         {concurrency} reconciles in flight, in-memory API backend in its own process over loopback HTTP\n"
    );

    // The watches' initial listing: before it, nothing is cached.
    bench.play_watches().await;
    let first = bench.pass().await;
    bench.play_watches().await;
    let children = bench.ctx.caches.len();
    bench
        .tally
        .aside(bench_request(&bench.client, "make-ready"))
        .await;
    bench.play_watches().await;
    let ready = bench.pass().await;
    // The readers' first reports, and the requeue that shows them.
    put_reports(&redis, bridges, 0).await;
    SIMULATED.fetch_add(READY_REQUEUE.as_secs() as i64, Ordering::SeqCst);
    bench.play_watches().await;
    bench.pass().await;
    let after_setup_rss = proc_status("/proc/self/status", "VmHWM:");
    // Progress, for runs cut short: the hour takes the longest.
    eprintln!(
        "first pass: {:.2} reads, {:.2} writes per bridge ({:.2} child writes per child), {:.1} s; \
         ready pass: {:.2} reads, {:.2} writes per bridge; VmHWM {after_setup_rss}",
        first.reads as f64 / bridges as f64,
        first.writes as f64 / bridges as f64,
        first.child_writes as f64 / children as f64,
        first.wall.as_secs_f64(),
        ready.reads as f64 / bridges as f64,
        ready.writes as f64 / bridges as f64,
    );
    let hour = bench.steady_hour(&redis, rounds).await;
    let steady_secs = (rounds * READY_REQUEUE.as_secs() as i64) as f64;
    let steady = format!(
        "steady {:.0} min ({rounds} requeues, figures read each time)",
        steady_secs / 60.0
    );

    println!("| pass | API reads/bridge | API writes/bridge | watch events/bridge | wall time |");
    println!("|---|---|---|---|---|");
    for (name, p) in [
        ("first (creates every child)", &first),
        ("children became ready", &ready),
        (steady.as_str(), &hour.pass),
    ] {
        println!(
            "| {name} | {:.2} | {:.2} | {:.2} | {:.2} s |",
            p.reads as f64 / bridges as f64,
            p.writes as f64 / bridges as f64,
            p.watch_events as f64 / bridges as f64,
            p.wall.as_secs_f64()
        );
    }
    let per_10_min =
        (hour.pass.reads + hour.pass.writes) as f64 / bridges as f64 / (steady_secs / 600.0);
    println!(
        "\nchildren: {children} ({:.1} per bridge); first pass child writes per child: {:.2}",
        children as f64 / bridges as f64,
        first.child_writes as f64 / children as f64
    );
    println!(
        "{steady}: {:.3} API requests per bridge per 10 min; {:.3} reads/s and {:.3} writes/s for the fleet",
        per_10_min,
        hour.pass.reads as f64 / steady_secs,
        hour.pass.writes as f64 / steady_secs
    );
    println!(
        "{steady}: {} status writes, {} of their watch events would have triggered a reconcile",
        hour.status_writes, hour.status_triggers
    );
    println!(
        "\nmemory (operator process): VmRSS at start {baseline_rss}; watch caches {:.1} MiB of heap \
         ({children} objects, {:.0} bytes each); heap peak {:.1} MiB in the setup passes, {:.1} MiB \
         in the steady run; peak RSS (VmHWM) {after_setup_rss} after the setup passes, {} after the \
         steady run",
        hour.cache_bytes as f64 / MIB,
        hour.cache_bytes as f64 / children as f64,
        PEAK_EVER.load(Ordering::Relaxed) as f64 / MIB,
        PEAK.load(Ordering::Relaxed) as f64 / MIB,
        proc_status("/proc/self/status", "VmHWM:")
    );
    println!(
        "memory now: heap {:.1} MiB live; RssAnon {}, RssFile {}",
        LIVE.load(Ordering::Relaxed) as f64 / MIB,
        proc_status("/proc/self/status", "RssAnon:"),
        proc_status("/proc/self/status", "RssFile:")
    );
    println!(
        "memory (in-memory API backend, another process, not the operator's): VmHWM {}",
        backend.peak_rss()
    );
}

/// The highest heap peak seen before [`reset_peak`] was called.
static PEAK_EVER: AtomicUsize = AtomicUsize::new(0);

const MIB: f64 = 1024.0 * 1024.0;

/// A kube client of the backend process, as of an API server without TLS.
fn loopback_client(port: u16) -> Client {
    let url = format!("http://127.0.0.1:{port}").parse().expect("URL");
    let mut config = kube::Config::new(url);
    config.default_namespace = NS.into();
    Client::try_from(config).expect("client")
}

struct Bench {
    client: Client,
    ctx: Arc<Context>,
    tally: Tally,
    bridges: usize,
    concurrency: usize,
    /// The bridges as the controller's own watch would hold them.
    cached: HashMap<String, Arc<CacheBridge>>,
    watch_events: u64,
}

#[derive(Default)]
struct Pass {
    reads: u64,
    writes: u64,
    child_writes: u64,
    watch_events: u64,
    wall: std::time::Duration,
}

/// The bridges' status changes a watch delivered, and how many of their
/// events would have started a reconcile (the controller's trigger filter).
#[derive(Default)]
struct StatusSeen {
    changes: u64,
    triggers: u64,
}

impl StatusSeen {
    fn count(&mut self, old: &CacheBridge, new: &CacheBridge) {
        if new.status != old.status {
            self.changes += 1;
            if controller::trigger_hash(new) != controller::trigger_hash(old) {
                self.triggers += 1;
            }
        }
    }
}

struct Hour {
    pass: Pass,
    status_writes: u64,
    status_triggers: u64,
    cache_bytes: usize,
}

impl Bench {
    /// What the watches would have delivered by now: the children into the
    /// caches, the bridges into `cached`. Its requests are watch traffic,
    /// not the reconcile's: they are not counted.
    async fn play_watches(&mut self) {
        self.play_child_watches().await;
        self.play_bridge_watch().await;
    }

    /// The children's watches: a re-list of every kind into the caches.
    async fn play_child_watches(&mut self) {
        let ctx = Arc::clone(&self.ctx);
        self.tally
            .aside(async move { ctx.fill_caches_from_api(NS).await.expect("list") })
            .await;
    }

    /// The bridges' watch: each bridge as the controller's store keeps it,
    /// replaced in place, and how its status changed.
    async fn play_bridge_watch(&mut self) -> StatusSeen {
        let api: Api<CacheBridge> = Api::namespaced(self.client.clone(), NS);
        let (tally, cached) = (&mut self.tally, &mut self.cached);
        let mut seen = StatusSeen::default();
        let each = |mut cb: CacheBridge| {
            controller::slim_bridge(&mut cb);
            let name = cb.metadata.name.clone().expect("a name");
            if let Some(old) = cached.get(&name) {
                seen.count(old, &cb);
            }
            cached.insert(name, Arc::new(cb));
        };
        tally
            .aside(caches::for_each_listed(&api, ListParams::default(), each))
            .await
            .expect("bridges");
        seen
    }

    /// One reconcile of every bridge; the writes it made are the watch
    /// events it causes (one per written object).
    async fn pass(&mut self) -> Pass {
        let start = Instant::now();
        let failures = stream::iter(self.cached.values().cloned())
            .map(|cb| controller::reconcile(cb, Arc::clone(&self.ctx)))
            .buffer_unordered(self.concurrency)
            .filter(|r| futures::future::ready(r.is_err()))
            .count()
            .await;
        assert_eq!(failures, 0, "{failures} reconciles failed");
        let wall = start.elapsed();
        let counts = self.tally.take().await;
        let events = self.recorded_events().await;
        self.watch_events += counts.writes - events;
        Pass {
            reads: counts.reads,
            writes: counts.writes,
            child_writes: counts.writes - counts.status_writes - events,
            watch_events: counts.writes - events,
            wall,
        }
    }

    /// Events the Recorder created (not watched by the operator), counted
    /// in the backend.
    async fn recorded_events(&mut self) -> u64 {
        let client = self.client.clone();
        let text = self
            .tally
            .aside(async move { bench_request(&client, "events").await })
            .await;
        let n: u64 = text.trim().parse().expect("a count of events");
        let seen = EVENTS_SEEN.swap(n, Ordering::Relaxed);
        n - seen
    }

    /// An hour of a ready fleet: every bridge requeued every 30 s, its
    /// figures read from Redis each time (jitter below 0.1 point every
    /// time, a real change twice an hour), its status written only on a
    /// meaningful change, and each status write's watch event checked
    /// against the controller's trigger filter.
    async fn steady_hour(&mut self, redis: &Server, rounds: i64) -> Hour {
        let cache_bytes = self.cache_bytes().await;
        PEAK_EVER.fetch_max(PEAK.load(Ordering::Relaxed), Ordering::Relaxed);
        reset_peak();
        let mut total = Pass::default();
        let (mut status_writes, mut status_triggers) = (0, 0);
        for round in 1..=rounds {
            SIMULATED.fetch_add(READY_REQUEUE.as_secs() as i64, Ordering::SeqCst);
            put_reports(redis, self.bridges, round).await;
            let p = self.pass().await;
            if round % 20 == 0 {
                eprintln!(
                    "steady: round {round}/{rounds}, {:.1} s of reconciles so far",
                    (total.wall + p.wall).as_secs_f64()
                );
            }
            total.reads += p.reads;
            total.writes += p.writes;
            total.watch_events += p.watch_events;
            total.wall += p.wall;
            if p.writes > 0 {
                // The writes come back through the watches.
                if p.child_writes > 0 {
                    self.play_child_watches().await;
                }
                let seen = self.play_bridge_watch().await;
                status_writes += seen.changes;
                status_triggers += seen.triggers;
            }
        }
        Hour {
            pass: total,
            status_writes,
            status_triggers,
            cache_bytes,
        }
    }

    /// Heap held by the caches: what dropping their content frees.
    async fn cache_bytes(&mut self) -> usize {
        let full = LIVE.load(Ordering::Relaxed);
        self.ctx.empty_caches();
        let empty = LIVE.load(Ordering::Relaxed);
        // Refilled, and the setup's last status writes delivered.
        self.play_watches().await;
        full.saturating_sub(empty)
    }
}

static EVENTS_SEEN: AtomicU64 = AtomicU64::new(0);

/// The backend process: the in-memory API server, over HTTP on loopback.
/// Prints its port, serves until its stdin closes (the bench ended).
async fn serve_backend(bridges: usize, redis_url: String) {
    let counters = Arc::new(Counters::default());
    let client = backend(bridges, &redis_url, &counters).await;
    let app = axum::Router::new()
        .route(
            "/bench/counters",
            axum::routing::get({
                let counters = Arc::clone(&counters);
                move || async move {
                    axum::Json(Counts {
                        reads: counters.reads.load(Ordering::Relaxed),
                        writes: counters.writes.load(Ordering::Relaxed),
                        status_writes: counters.status_writes.load(Ordering::Relaxed),
                    })
                }
            }),
        )
        .route(
            "/bench/make-ready",
            axum::routing::get({
                let client = client.clone();
                move || async move {
                    make_ready(&client).await;
                    "ok"
                }
            }),
        )
        .route(
            "/bench/events",
            axum::routing::get({
                let client = client.clone();
                move || async move {
                    let events: Api<k8s_openapi::api::events::v1::Event> =
                        Api::namespaced(client, NS);
                    let listed = events.list(&Default::default()).await.expect("events");
                    listed.items.len().to_string()
                }
            }),
        )
        .fallback({
            let snapshot = Snapshot::default();
            move |request: axum::extract::Request| {
                forward(client.clone(), Arc::clone(&snapshot), request)
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    println!("{}", listener.local_addr().expect("address").port());
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    axum::serve(listener, app).await.expect("serve");
}

/// The listing whose pages are being served, by the request for the whole
/// listing. A real API server serves a listing's pages from one snapshot
/// too; listing everything again for each page made a re-list of 5000
/// bridges' children quadratic in the backend.
type Snapshot = Arc<std::sync::Mutex<Option<(String, Arc<Value>)>>>;

/// One API request, handed to the in-memory backend as it came, except
/// that listings are paged here: kube-fake-client truncates at `limit` and
/// returns no `continue` token, where a real API server pages.
async fn forward(
    client: Client,
    snapshot: Snapshot,
    request: axum::extract::Request,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (mut parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return (axum::http::StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let page = page_asked(&parts.uri);
    if let Some((page, whole)) = &page {
        // The next page of the listing being served: from its snapshot.
        let taken = snapshot.lock().expect("snapshot").clone();
        let same = |(uri, _): &(String, Arc<Value>)| page.offset > 0 && *uri == whole.to_string();
        if let Some((_, list)) = taken.filter(same) {
            return axum::Json(page.of(&list)).into_response();
        }
        parts.uri = whole.clone();
    }
    let request = axum::http::Request::from_parts(parts, kube::client::Body::from(body));
    let response = match client.send(request).await {
        Ok(response) => response,
        Err(e) => {
            return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
        }
    };
    let Some((page, whole)) = page.filter(|_| response.status().is_success()) else {
        return response.map(axum::body::Body::new);
    };
    let bytes = axum::body::to_bytes(axum::body::Body::new(response.into_body()), usize::MAX)
        .await
        .expect("a listing");
    let list: Arc<Value> = Arc::new(serde_json::from_slice(&bytes).expect("a JSON listing"));
    *snapshot.lock().expect("snapshot") = Some((whole.to_string(), Arc::clone(&list)));
    axum::Json(page.of(&list)).into_response()
}

/// One page of a listing: `limit` objects from `offset` (the `continue` token).
struct Page {
    limit: usize,
    offset: usize,
}

/// The page a listing request asks for, and the request for the whole
/// listing (without `limit` and `continue`); `None` if it asks for no limit.
fn page_asked(uri: &axum::http::Uri) -> Option<(Page, axum::http::Uri)> {
    let query = uri.query()?;
    let (mut limit, mut offset, mut kept) = (None, 0, Vec::new());
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("limit", n)) => limit = n.parse().ok(),
            Some(("continue", token)) => offset = token.parse().unwrap_or(0),
            _ => kept.push(pair),
        }
    }
    let whole = match kept.join("&") {
        q if q.is_empty() => uri.path().to_string(),
        q => format!("{}?{q}", uri.path()),
    };
    Some((
        Page {
            limit: limit?,
            offset,
        },
        whole.parse().ok()?,
    ))
}

impl Page {
    /// This page of a whole listing, with the next page's token.
    fn of(&self, list: &Value) -> Value {
        let items = list["items"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let end = (self.offset + self.limit).min(items.len());
        let mut page = json!({
            "kind": list["kind"],
            "apiVersion": list["apiVersion"],
            "metadata": list["metadata"],
            "items": items[self.offset.min(end)..end],
        });
        if end < items.len() {
            page["metadata"]["continue"] = end.to_string().into();
        }
        page
    }
}

/// A Redis with the ACL user every bench bridge uses (one key prefix each).
fn acl_redis() -> Server {
    let user_line = format!("cachebridge on >{PASSWORD} {}", acl_rules("cb:bench:"));
    let mut args = vec!["--user"];
    args.extend(user_line.split(' '));
    Server::redis_args(&args)
}

/// Each bridge's two readers report; in `round`, the ratio jitters by less
/// than 0.1 point, and twice an hour it really moves (0.5 point).
async fn put_reports(redis: &Server, bridges: usize, round: i64) {
    let client = redis::Client::open(format!(
        "redis://cachebridge:{PASSWORD}@127.0.0.1:{}",
        redis.port
    ))
    .expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let jitter = if round % 2 == 0 { 0.0003 } else { -0.0003 };
    let shift = if (round / (ROUNDS / 2)) % 2 == 1 {
        0.005
    } else {
        0.0
    };
    // Stamped with the simulated time, as readers stamp theirs with the real one.
    let at = simulated_clock().to_string();
    // The readers' part, in this process: kept small, a pipeline per 100 bridges.
    for first in (0..bridges).step_by(100) {
        let mut pipe = redis::pipe();
        for i in first..(first + 100).min(bridges) {
            let hash = Keys::new(format!("cb:bench:b{i}:")).reader_stats();
            for pod in ["r-0", "r-1"] {
                let doc =
                    json!({"hitRatio": 0.98 + jitter + shift, "dataAgeSeconds": 0.3, "at": at});
                pipe.hset(&hash, format!("b{i}-reader-{pod}"), doc.to_string())
                    .ignore();
            }
        }
        let _: () = pipe.query_async(&mut conn).await.expect("reports");
    }
}

async fn backend(bridges: usize, redis_url: &str, counters: &Arc<Counters>) -> Client {
    let mut objects: Vec<Value> = Vec::with_capacity(bridges * 2);
    for i in 0..bridges {
        objects.push(json!({
            "apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge",
            "metadata": {"name": format!("b{i}"), "namespace": NS, "uid": format!("uid-{i}"), "generation": 1},
            "spec": {"redis": {"external": {"url": redis_url, "username": "cachebridge", "passwordSecret": {"name": format!("b{i}-creds")}}}},
        }));
        objects.push(json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("b{i}-creds"), "namespace": NS},
            "data": {"password": base64(PASSWORD)},
        }));
    }
    let (r1, r2, w1, w2, w3, w4) = (
        Arc::clone(counters),
        Arc::clone(counters),
        Arc::clone(counters),
        Arc::clone(counters),
        Arc::clone(counters),
        Arc::clone(counters),
    );
    let count = |c: &Arc<Counters>, read: bool| {
        if read {
            c.reads.fetch_add(1, Ordering::Relaxed)
        } else {
            c.writes.fetch_add(1, Ordering::Relaxed)
        };
        Ok(None)
    };
    let funcs = interceptor::Funcs::new()
        .get(move |_| count(&r1, true))
        .list(move |_| {
            r2.reads.fetch_add(1, Ordering::Relaxed);
            Ok(None)
        })
        .create(move |_| count(&w1, false))
        .patch(move |_| count(&w2, false))
        .patch_status(move |_| {
            w3.status_writes.fetch_add(1, Ordering::Relaxed);
            count(&w3, false)
        })
        .delete(move |_| count(&w4, false));
    ClientBuilder::new()
        .with_resource::<CacheBridge>()
        .with_status_subresource::<CacheBridge>()
        .with_status_subresource::<Deployment>()
        .with_status_subresource::<StatefulSet>()
        .with_runtime_objects(objects)
        .with_interceptor_funcs(funcs)
        .build()
        .await
        .expect("in-memory backend")
}

fn base64(s: &str) -> String {
    use std::fmt::Write;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let _ = out.write_char(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Plays the workload controllers: every pod of every bridge ready.
async fn make_ready(client: &Client) {
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), NS);
    let deploy: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for s in sts.list(&ListParams::default()).await.unwrap() {
        let n = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = json!({"status": {"observedGeneration": s.metadata.generation, "replicas": n, "readyReplicas": n}});
        sts.patch_status(
            &s.metadata.name.unwrap(),
            &PatchParams::default(),
            &Patch::Merge(&status),
        )
        .await
        .unwrap();
    }
    for d in deploy.list(&ListParams::default()).await.unwrap() {
        let n = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let status = json!({"status": {"observedGeneration": d.metadata.generation, "replicas": n, "readyReplicas": n}});
        deploy
            .patch_status(
                &d.metadata.name.unwrap(),
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
            .unwrap();
    }
}

fn proc_status(path: &str, field: &str) -> String {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .map(|l| l.trim_start_matches(field).trim().to_string())
        })
        .unwrap_or_else(|| "unknown (no /proc)".into())
}
