//! Live-stream benchmark (issue 9): how long from the writer's publish until
//! an SSE client of `/api/v1/stream` has the event, on each of two reader
//! processes (target: p99 ≤ 2 ms on loopback), and what 10,000 open streams
//! cost a reader in memory (RSS).
//!
//! Real `redis-server` and `memcached`, two `cachebridge-dataplane reader`
//! processes of the binary this package builds (so the RSS is a reader's
//! alone), and the writer's `Publisher` in this process. Prints a Markdown
//! report; with `CACHEBRIDGE_BENCH_WRITE=1` it also rewrites its section of
//! `BENCHMARKS.md` (see `support/report.rs`).
//!
//! Run: `cargo bench -p cachebridge-dataplane --bench stream`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/report.rs"]
mod report;

use bytes::Bytes;
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::keys::logical;
use cachebridge_dataplane::writer::publisher::Publisher;
use common::sse::Sse;
use common::{PATIENCE, Proc, Server, free_port};
use hdrhistogram::Histogram;
use report::{micros, thousands};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::task::JoinSet;

/// Measured updates per latency figure, after the unmeasured ones.
const UPDATES: usize = 2_000;
const WARMUP: usize = 100;
/// Streams held open on one reader for the memory figure.
const STREAMS: usize = 10_000;
/// Updates timed until every one of those streams has them.
const FANOUT_UPDATES: usize = 50;
/// Streams connected at once while opening them (the listen backlog is 1024).
const CONNECT_BATCH: usize = 250;
/// The issue's target for publish → event, p99, on both readers.
const TARGET: Duration = Duration::from_millis(2);
const TOPICS: &str = "/api/v1/stream?topics=overview";

fn main() {
    // Each stream is a descriptor here and one in the reader, which inherits the limit.
    let limit = rlimit::increase_nofile_limit((STREAMS + 2_000) as u64).expect("RLIMIT_NOFILE");
    assert!(
        limit >= (STREAMS + 1_000) as u64,
        "{STREAMS} streams need more open files than the hard limit ({limit}) allows"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let figures = runtime.block_on(measure());
    let text = report(&report::machine(&[]), &figures);
    report::publish("stream", &text, &section(&text));
}

/// What the run found.
struct Figures {
    latency: Vec<(String, Histogram<u64>)>,
    rss_before: u64,
    rss_streams: u64,
    open_reported: String,
    fanout: Histogram<u64>,
}

async fn measure() -> Figures {
    let redis = Server::redis();
    let memcached = Server::memcached();
    let config = common::config(Some(&redis), &[&memcached]);
    let mut writer = common::publisher(&config);
    publish(&mut writer, 0).await;
    let readers = [Reader::start(&config).await, Reader::start(&config).await];

    eprintln!("measuring publish → SSE event on both readers");
    let latency = latency(&mut writer, &readers).await;

    let rss_before = rss(&readers[0]);
    eprintln!("opening {STREAMS} streams on reader A");
    let mut crowd = Crowd::open(readers[0].addr, STREAMS).await;
    // Settled: every stream has its first event and nothing is in flight.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_streams = rss(&readers[0]);
    let open_reported = readers[0].open_streams().await;
    eprintln!("measuring publish → all {STREAMS} streams");
    let mut fanout = histogram();
    for n in 1..=FANOUT_UPDATES as u64 {
        let started = Instant::now();
        let n = UPDATES as u64 + WARMUP as u64 + n;
        crowd.expect(n);
        let (_, done) = tokio::join!(publish(&mut writer, n), crowd.reached());
        record(&mut fanout, done - started);
    }
    crowd.close().await;
    Figures {
        latency,
        rss_before,
        rss_streams,
        open_reported,
        fanout,
    }
}

/// A reader process of this package's binary, killed when dropped.
struct Reader {
    addr: SocketAddr,
    proc: Proc,
}

impl Reader {
    async fn start(config: &Config) -> Reader {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let memcached = config.memcached.servers.join(",");
        let args = [
            "reader",
            "--redis",
            config.redis.url.as_deref().expect("a Redis URL"),
            "--memcached",
            &memcached,
            "--key-prefix",
            &config.key_prefix(),
            "--listen",
            &addr.to_string(),
            // Nothing sends heartbeats (values are published directly); the
            // silence detector would fire after three intervals.
            "--heartbeat-interval",
            "10m",
            // Published at start-up, fresh for the whole run.
            "--staleness-budget",
            "10m",
            "--l1-ttl",
            "10m",
            "--max-streams",
            "11000",
            "--http-max-connections",
            "12000",
            "--log-level",
            "warn",
        ];
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_cachebridge-dataplane"))
            .args(args)
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start a reader");
        let reader = Reader {
            addr,
            proc: Proc(child),
        };
        // Another process: polling /readyz is the only way to know it is up.
        let url = format!("http://{addr}/readyz");
        let client = common::client();
        let deadline = Instant::now() + PATIENCE;
        while !client
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "the reader did not get ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        reader
    }

    /// `cachebridge_streams_open` as the reader reports it.
    async fn open_streams(&self) -> String {
        let url = format!("http://{}/metrics", self.addr);
        let text = common::client()
            .get(url)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .find_map(|l| l.strip_prefix("cachebridge_streams_open "))
            .unwrap_or("?")
            .to_owned()
    }
}

/// The reader's resident memory, from `/proc`.
fn rss(reader: &Reader) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", reader.proc.0.id()))
        .expect("the reader's /proc status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024
}

/// An overview-sized value numbered `n`.
fn overview(n: u64) -> Bytes {
    Bytes::from(format!(
        r#"{{"n":{n},"symbols":175,"total_traded_value":1234567890.12,"total_volume":987654321,"advancers":90,"decliners":80,"unchanged":5,"index":100.1234,"as_of":"2026-01-02T15:04:05Z"}}"#
    ))
}

async fn publish(writer: &mut Publisher, n: u64) {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let now_ms = i64::try_from(since.as_millis()).unwrap();
    let values = vec![(logical::OVERVIEW.to_owned(), overview(n))];
    let report = writer.publish(values, now_ms).await;
    assert_eq!((report.published, report.held_back), (1, 0));
}

/// Publish → event, on each reader and on both, one update at a time.
async fn latency(writer: &mut Publisher, readers: &[Reader; 2]) -> Vec<(String, Histogram<u64>)> {
    let mut a = Sse::open(readers[0].addr, TOPICS, None, None).await;
    let mut b = Sse::open(readers[1].addr, TOPICS, None, None).await;
    received(&mut a, 0).await;
    received(&mut b, 0).await;
    let (mut on_a, mut on_b, mut on_both) = (histogram(), histogram(), histogram());
    for n in 1..=(WARMUP + UPDATES) as u64 {
        let started = Instant::now();
        let (_, at_a, at_b) =
            tokio::join!(publish(writer, n), received(&mut a, n), received(&mut b, n));
        if n > WARMUP as u64 {
            record(&mut on_a, at_a - started);
            record(&mut on_b, at_b - started);
            record(&mut on_both, at_a.max(at_b) - started);
        }
    }
    vec![
        ("publish → event on reader A".into(), on_a),
        ("publish → event on reader B".into(), on_b),
        (
            "publish → event on both readers (the later)".into(),
            on_both,
        ),
    ]
}

/// When the stream delivered the overview numbered `n`.
async fn received(sse: &mut Sse, n: u64) -> Instant {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let event = sse.next_value().await;
            let got = event.json()["data"]["n"]
                .as_u64()
                .expect("a numbered value");
            if got >= n {
                assert_eq!(got, n, "an update was skipped");
                return Instant::now();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("update {n} did not arrive within {PATIENCE:?}"))
}

/// Many streams on raw sockets, each noting the newest value it received.
struct Crowd {
    tasks: JoinSet<()>,
    shared: Arc<Shared>,
}

struct Shared {
    /// The value every stream should reach, and how many have.
    target: AtomicU64,
    reached: AtomicUsize,
    all: Notify,
    streams: usize,
}

impl Crowd {
    async fn open(addr: SocketAddr, streams: usize) -> Crowd {
        let shared = Arc::new(Shared {
            target: AtomicU64::new(0),
            reached: AtomicUsize::new(0),
            all: Notify::new(),
            streams,
        });
        let mut tasks = JoinSet::new();
        for start in (0..streams).step_by(CONNECT_BATCH) {
            let batch = CONNECT_BATCH.min(streams - start);
            let connected = Arc::new(tokio::sync::Semaphore::new(0));
            for _ in 0..batch {
                let (shared, connected) = (Arc::clone(&shared), Arc::clone(&connected));
                tasks.spawn(follow(addr, shared, connected));
            }
            let _ = connected.acquire_many(batch as u32).await.expect("open");
        }
        // Every stream has received the current value (target 0).
        let crowd = Crowd { tasks, shared };
        crowd.reached().await;
        crowd
    }

    /// Starts counting the streams that received value `n`.
    fn expect(&mut self, n: u64) {
        self.shared.reached.store(0, Ordering::SeqCst);
        self.shared.target.store(n, Ordering::SeqCst);
    }

    /// When every stream has the expected value.
    async fn reached(&self) -> Instant {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let notified = self.shared.all.notified();
                if self.shared.reached.load(Ordering::SeqCst) >= self.shared.streams {
                    return Instant::now();
                }
                notified.await;
            }
        })
        .await
        .expect("every stream received the update")
    }

    async fn close(mut self) {
        self.tasks.shutdown().await;
    }
}

/// One stream: sends the request, then reads events, counting itself in
/// when it has the target value.
async fn follow(addr: SocketAddr, shared: Arc<Shared>, connected: Arc<tokio::sync::Semaphore>) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!("GET {TOPICS} HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("send");
    connected.add_permits(1);
    let mut buffer = Vec::with_capacity(4096);
    let mut counted: Option<u64> = None;
    let mut chunk = [0_u8; 4096];
    loop {
        let read = tcp.read(&mut chunk).await.expect("read");
        assert!(read > 0, "the reader closed a stream");
        buffer.extend_from_slice(&chunk[..read]);
        let newest = numbers(&mut buffer).max();
        let (Some(n), target) = (newest, shared.target.load(Ordering::SeqCst)) else {
            continue;
        };
        if n >= target && counted != Some(target) {
            counted = Some(target);
            if shared.reached.fetch_add(1, Ordering::SeqCst) + 1 == shared.streams {
                shared.all.notify_waiters();
            }
        }
    }
}

/// The value numbers in `buffer`'s complete events; the incomplete rest stays.
fn numbers(buffer: &mut Vec<u8>) -> impl Iterator<Item = u64> {
    const MARK: &[u8] = br#"{"data":{"n":"#;
    let mut found = Vec::new();
    let mut consumed = 0;
    while let Some(at) = find(&buffer[consumed..], MARK) {
        let digits = consumed + at + MARK.len();
        let end = buffer[digits..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map(|e| digits + e);
        let Some(end) = end else { break };
        let text = std::str::from_utf8(&buffer[digits..end]).expect("digits");
        found.push(text.parse().expect("a number"));
        consumed = end;
    }
    // Keep enough of the tail to hold a mark split across reads.
    let keep_from = consumed.max(buffer.len().saturating_sub(MARK.len() + 20));
    buffer.drain(..keep_from);
    found.into_iter()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// 1 ns to 1 min at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn record(hist: &mut Histogram<u64>, took: Duration) {
    hist.saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn report(machine: &str, f: &Figures) -> String {
    let mut out = format!("{machine}\n\n");
    out.push_str("| Figure | Samples | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|\n");
    let mut rows: Vec<(&str, &Histogram<u64>)> =
        f.latency.iter().map(|(l, h)| (l.as_str(), h)).collect();
    let fanout_label = format!(
        "publish → event on all {} streams of reader A",
        thousands(STREAMS as f64)
    );
    rows.push((&fanout_label, &f.fanout));
    for (label, h) in rows {
        let q = |q: f64| micros(h.value_at_quantile(q));
        let _ = writeln!(
            out,
            "| {label} | {} | {} | {} | {} | {} | {} |",
            thousands(h.len() as f64),
            q(0.5),
            q(0.9),
            q(0.99),
            q(0.999),
            micros(h.max()),
        );
    }
    let per_stream = f.rss_streams.saturating_sub(f.rss_before) / STREAMS as u64;
    let _ = write!(
        out,
        "\n| Reader memory (RSS) | |\n|---|---:|\n\
         | before (no stream open) | {} |\n\
         | with {} more streams open (`cachebridge_streams_open` {}) | {} |\n\
         | per stream | {:.1} KiB |\n",
        mib(f.rss_before),
        thousands(STREAMS as f64),
        f.open_reported,
        mib(f.rss_streams),
        per_stream as f64 / 1024.0,
    );
    out.push_str("\n| Target | Measured p99 | Result |\n|---|---:|---|\n");
    if let Some((_, both)) = f.latency.last() {
        let p99 = both.value_at_quantile(0.99);
        let verdict = if Duration::from_nanos(p99) <= TARGET {
            "pass"
        } else {
            "**FAIL**"
        };
        let _ = writeln!(
            out,
            "| publish → SSE event on both readers ≤ 2 ms p99 | {} µs | {verdict} |",
            micros(p99)
        );
    }
    out
}

fn section(report: &str) -> String {
    format!(
        r#"## Live stream

Written by `dataplane/benches/stream.rs`; the figures below are from the last
recorded run, on the machine named in their first line.

### How to run

```sh
cargo bench -p cachebridge-dataplane --bench stream
```

It needs `redis-server` and `memcached` on `PATH`, starts its own on free
loopback ports and two reader processes of the package's binary, raises its
open-file limit to hold {streams} streams (the readers inherit it), prints
the report below and with `CACHEBRIDGE_BENCH_WRITE=1` rewrites this section.

### Results

{report}
### What each figure measures

- **publish → event on reader A / B / both**: one SSE client per reader
  (`GET /api/v1/stream?topics=overview`, hyper's HTTP/1 client in the bench
  process). For {updates} new versions of `market:overview` (after {warmup}
  unmeasured), from just before the writer's `Publisher::publish` (the Redis
  script that stores, numbers and announces, then the Memcached set) until
  the client has parsed the event carrying that version; "both" is the later
  of the two readers. Each update waits for both events before the next, so
  nothing is coalesced. This is the whole path a browser sees: Redis pub/sub,
  the reader's coherence follower (refresh-ahead into L1 first, then the
  feed), the stream's look-up and rendering, hyper, loopback TCP, and the
  client's parsing.
- **reader memory**: resident set size (`VmRSS`) of reader A, a separate
  process (jemalloc, as shipped), before and one second after {streams}
  more raw-socket clients each opened a stream and received its first event.
  The per-stream figure is the difference divided by {streams}: the
  connection (hyper's buffers), the stream's state and its share of the
  kernel's socket accounting that shows in RSS.
- **publish → event on all streams**: with those {streams} streams open,
  {fanout} updates, each timed until every stream's client (a task per
  socket in the bench process, reading raw bytes) has read it. Both sides
  share the machine's cores, so this is an upper bound of the reader's own
  fan-out time.
"#,
        streams = thousands(STREAMS as f64),
        updates = thousands(UPDATES as f64),
        warmup = thousands(WARMUP as f64),
        fanout = FANOUT_UPDATES,
    )
}
