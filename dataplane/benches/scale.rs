//! Scale benchmark: one writer and 1, 2, 5, then 10 readers, each a process
//! of the real binary on loopback, against one `redis-server` and one
//! `memcached`, with a feed of 1000 ticker updates per second. What does
//! each added reader cost, and does propagation hold?
//!
//! Readers are added to the running set (never restarted). At each count,
//! after a warm-up, one measured window of `CACHEBRIDGE_SCALE_WINDOW`
//! seconds (default 5) records:
//! - **propagation**: probe updates of a symbol only the probe posts, one
//!   every 100 ms; the bench hears the writer's announcement on the
//!   bridge's pub/sub channel itself and times from there until *every*
//!   reader serves the new price over HTTP (p50, p99 over probes);
//! - **Redis load**: commands per second from `INFO commandstats` (total,
//!   and the commands that make it up), and Memcached gets per second
//!   from `stats`;
//! - **hit ratio**: the readers' L1 hit ratio under a read load of 100
//!   requests per second per reader spread over all symbols, from their
//!   own `/metrics`.
//!
//! Run: `cargo bench -p cachebridge-dataplane --bench scale`; with
//! `CACHEBRIDGE_BENCH_WRITE=1` the report replaces the `scale` section of
//! `BENCHMARKS.md`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "support/report.rs"]
mod report;

use cachebridge_dataplane::cache::l3::{Event, Message};
use common::{Proc, Server, client, free_port, tick};
use futures::StreamExt;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_cachebridge-dataplane");
const PREFIX: &str = "bench:scale:";
/// Symbols the feed updates, round robin.
const SYMBOLS: usize = 200;
/// Ticker updates per second, sent as 10 ticks every 10 ms.
const RATE: usize = 1000;
const PUBLISH_INTERVAL: &str = "10ms";
const READERS: [usize; 4] = [1, 2, 5, 10];
/// Requests per second each reader gets from the read load.
const READ_RATE: u64 = 100;

/// The figures at one reader count.
struct Step {
    readers: usize,
    propagation_p50: Duration,
    propagation_p99: Duration,
    probes: usize,
    redis_per_s: f64,
    redis_by_command: BTreeMap<String, f64>,
    memcached_gets_per_s: f64,
    announced_per_s: f64,
    l1_hit_ratio: f64,
}

fn main() {
    let window = Duration::from_secs(
        std::env::var("CACHEBRIDGE_SCALE_WINDOW")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let steps = runtime.block_on(run(window));
    let text = render(&steps, window);
    report::publish("scale", &text, &text);
}

async fn run(window: Duration) -> Vec<Step> {
    let redis = Server::redis();
    let memcached = Server::memcached();
    let ingest_port = free_port();
    let _writer = spawn(&[
        "writer",
        "--redis",
        &redis.url(),
        "--memcached",
        &memcached.addr(),
        "--key-prefix",
        PREFIX,
        "--source",
        "none",
        "--publish-interval",
        PUBLISH_INTERVAL,
        "--ingest-listen",
        &format!("127.0.0.1:{ingest_port}"),
    ]);
    let ingest = format!("http://127.0.0.1:{ingest_port}/ingest");
    wait_http(&format!("http://127.0.0.1:{ingest_port}/healthz")).await;
    let running = Arc::new(AtomicBool::new(true));
    let feeder = tokio::spawn(feed(ingest.clone(), Arc::clone(&running)));

    let mut readers: Vec<(Proc, String)> = Vec::new();
    let mut steps = Vec::new();
    for count in READERS {
        while readers.len() < count {
            let port = free_port();
            let proc = spawn(&[
                "reader",
                "--redis",
                &redis.url(),
                "--memcached",
                &memcached.addr(),
                "--key-prefix",
                PREFIX,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ]);
            let base = format!("http://127.0.0.1:{port}");
            wait_http(&format!("{base}/readyz")).await;
            readers.push((proc, base));
        }
        let bases: Vec<String> = readers.iter().map(|(_, b)| b.clone()).collect();
        let loads: Vec<_> = bases
            .iter()
            .map(|b| tokio::spawn(read_load(b.clone())))
            .collect();
        // Warm-up: every reader has read every symbol at least once.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let step = measure(&redis, &memcached, &ingest, &bases, window).await;
        eprintln!(
            "{} readers: propagation p50 {:?} p99 {:?}; Redis {:.0} cmd/s; memcached {:.0} get/s; L1 hit {:.4}",
            step.readers,
            step.propagation_p50,
            step.propagation_p99,
            step.redis_per_s,
            step.memcached_gets_per_s,
            step.l1_hit_ratio
        );
        steps.push(step);
        for l in loads {
            l.abort();
        }
    }
    running.store(false, Ordering::Relaxed);
    feeder.abort();
    steps
}

fn spawn(args: &[&str]) -> Proc {
    let child = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the dataplane binary");
    Proc(child)
}

async fn wait_http(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client().get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 1000 ticker updates per second: 10 ticks every 10 ms, round robin over
/// the symbols, each with a new price.
async fn feed(ingest: String, running: Arc<AtomicBool>) {
    let http = client();
    let mut interval = tokio::time::interval(Duration::from_millis(10));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let per_tick = RATE / 100;
    let mut n = 0usize;
    while running.load(Ordering::Relaxed) {
        interval.tick().await;
        // Every symbol in turn (an earlier version stepped by two and fed
        // only half of them: the other half answered 404, which counted as
        // L1 misses and made the hit ratio look like 70 %).
        let body: Vec<String> = (0..per_tick)
            .map(|_| {
                n += 1;
                let s = n % SYMBOLS;
                tick(&format!("S{s}"), 100.0 + (n % 997) as f64 / 10.0, n as u64)
            })
            .collect();
        let _ = http.post(&ingest).body(body.join("\n")).send().await;
    }
}

/// READ_RATE requests per second over every symbol.
async fn read_load(base: String) {
    let http = client();
    let mut interval = tokio::time::interval(Duration::from_millis(1000 / READ_RATE));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    for n in 0usize.. {
        interval.tick().await;
        let url = format!("{base}/api/v1/market/tickers/S{}", n % SYMBOLS);
        let _ = http.get(url).send().await;
    }
}

async fn measure(
    redis: &Server,
    memcached: &Server,
    ingest: &str,
    bases: &[String],
    window: Duration,
) -> Step {
    let mut conn = common::redis_conn(redis);
    let redis_before = commandstats(&mut conn);
    let mc_before = memcached_gets(memcached);
    let hits_before = l1_lookups(bases).await;
    let announced = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let (notices, listener) = listen(redis, Arc::clone(&announced)).await;
    let started = Instant::now();
    let samples = probes(ingest, bases, notices, window).await;
    let elapsed = started.elapsed().as_secs_f64();
    listener.abort();
    let redis_after = commandstats(&mut conn);
    let mc_after = memcached_gets(memcached);
    let hits_after = l1_lookups(bases).await;

    let by_command: BTreeMap<String, f64> = redis_after
        .iter()
        .map(|(cmd, calls)| {
            let before = redis_before.get(cmd).copied().unwrap_or(0);
            (cmd.clone(), (calls - before) as f64 / elapsed)
        })
        .filter(|(_, rate)| *rate > 0.0)
        .collect();
    // `INFO` itself (this bench's two calls) is not load.
    let redis_per_s = by_command
        .iter()
        .filter(|(c, _)| c.as_str() != "info")
        .map(|(_, r)| r)
        .sum();
    let mut sorted = samples.clone();
    sorted.sort();
    let pick = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q).round() as usize];
    let (hit, all) = (
        hits_after.0 - hits_before.0,
        (hits_after.1 - hits_before.1).max(1),
    );
    Step {
        readers: bases.len(),
        propagation_p50: pick(0.5),
        propagation_p99: pick(0.99),
        probes: samples.len(),
        redis_per_s,
        redis_by_command: by_command,
        memcached_gets_per_s: (mc_after - mc_before) as f64 / elapsed,
        announced_per_s: announced.load(Ordering::Relaxed) as f64 / elapsed,
        l1_hit_ratio: hit as f64 / all as f64,
    }
}

/// Subscribes to the bridge's announcements: counts them, and passes on
/// the arrival time of each probe update.
async fn listen(
    redis: &Server,
    announced: Arc<std::sync::atomic::AtomicU64>,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    tokio::task::JoinHandle<()>,
) {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe(format!("{PREFIX}events")).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let at = Instant::now();
            let payload: Vec<u8> = msg.get_payload().unwrap_or_default();
            // The readers' own decoder: one message carries a publish
            // round's updates.
            let Ok(message) = serde_json::from_slice::<Message>(&payload) else {
                continue;
            };
            for event in message.into_events() {
                let Event::Update(notice) = event else {
                    continue;
                };
                announced.fetch_add(1, Ordering::Relaxed);
                if notice.key == "market:ticker:PROBE" {
                    let _ = tx.send((notice.version, at));
                }
            }
        }
    });
    (rx, task)
}

/// Probe updates every 100 ms for `window`: from the announcement to every
/// reader serving the new price.
async fn probes(
    ingest: &str,
    bases: &[String],
    mut notices: tokio::sync::mpsc::UnboundedReceiver<(u64, Instant)>,
    window: Duration,
) -> Vec<Duration> {
    let http = client();
    let end = Instant::now() + window;
    let mut samples = Vec::new();
    let mut n = 0u64;
    while Instant::now() < end {
        n += 1;
        let price = 1000.0 + n as f64;
        http.post(ingest)
            .body(tick("PROBE", price, n))
            .send()
            .await
            .expect("ingest");
        let (_, announced) = tokio::time::timeout(Duration::from_secs(5), notices.recv())
            .await
            .expect("the probe announced")
            .expect("listener alive");
        let served = futures::future::join_all(bases.iter().map(|b| serves(&http, b, price))).await;
        let last = served.into_iter().max().unwrap();
        samples.push(last.saturating_duration_since(announced));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    samples
}

/// When `base` first serves `price` for the probe symbol.
async fn serves(http: &reqwest::Client, base: &str, price: f64) -> Instant {
    let url = format!("{base}/api/v1/market/tickers/PROBE");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(r) = http.get(&url).send().await
            && let Ok(body) = r.json::<serde_json::Value>().await
            && body["data"]["last"].as_f64() == Some(price)
        {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{base} never served {price}");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}

/// Calls per command from `INFO commandstats`.
fn commandstats(conn: &mut redis::Connection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO").arg("commandstats").query(conn).unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// `cmd_get` from Memcached's `stats`.
fn memcached_gets(server: &Server) -> u64 {
    use std::io::{BufRead, BufReader, Write};
    let mut stream = std::net::TcpStream::connect(server.addr()).unwrap();
    stream.write_all(b"stats\r\n").unwrap();
    let reader = BufReader::new(stream);
    for line in reader.lines() {
        let line = line.unwrap();
        if line == "END" {
            break;
        }
        if let Some(n) = line.strip_prefix("STAT cmd_get ") {
            return n.trim().parse().unwrap_or(0);
        }
    }
    0
}

/// L1 hits and all L1 look-ups, summed over the readers' `/metrics`.
async fn l1_lookups(bases: &[String]) -> (u64, u64) {
    let mut totals = (0, 0);
    for base in bases {
        let text = client()
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("cachebridge_cache_lookups_total{") else {
                continue;
            };
            if !rest.contains("tier=\"L1\"") {
                continue;
            }
            let n: f64 = rest
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0.0);
            totals.1 += n as u64;
            if rest.contains("outcome=\"hit\"") {
                totals.0 += n as u64;
            }
        }
    }
    totals
}

fn render(steps: &[Step], window: Duration) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Scale: one writer, 1 to 10 readers\n");
    let _ = writeln!(
        out,
        "`cargo bench -p cachebridge-dataplane --bench scale`: one writer and 1, 2, 5, 10 readers, each a \
         process of the release binary on loopback, one `redis-server`, one `memcached`; a feed of {RATE} \
         ticker updates/s over {SYMBOLS} symbols (publish interval {PUBLISH_INTERVAL}); each reader gets \
         {READ_RATE} requests/s over all symbols. Readers are added to the running set; each count is \
         measured over {}s after a 3 s warm-up. Propagation: from the writer's announcement (heard by the \
         bench on the bridge's channel) until *every* reader serves the probe's new price over HTTP. Not \
         pinned: {} processes share the machine's CPUs.\n",
        window.as_secs(),
        2 + READERS.last().unwrap() + 1
    );
    let _ = writeln!(out, "{}\n", report::machine(&[]));
    let _ = writeln!(
        out,
        "| readers | propagation p50 | p99 (all readers) | probes | Redis cmd/s | Memcached get/s | updates announced/s | readers' L1 hit ratio |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|");
    for s in steps {
        let _ = writeln!(
            out,
            "| {} | {:.2} ms | {:.2} ms | {} | {} | {} | {} | {:.2} % |",
            s.readers,
            s.propagation_p50.as_secs_f64() * 1000.0,
            s.propagation_p99.as_secs_f64() * 1000.0,
            s.probes,
            report::thousands(s.redis_per_s),
            report::thousands(s.memcached_gets_per_s),
            report::thousands(s.announced_per_s),
            s.l1_hit_ratio * 100.0
        );
    }
    let _ = writeln!(out, "\nRedis commands/s by command:\n");
    let commands: std::collections::BTreeSet<&String> = steps
        .iter()
        .flat_map(|s| s.redis_by_command.keys())
        .filter(|c| c.as_str() != "info")
        .collect();
    let _ = write!(out, "| command |");
    for s in steps {
        let _ = write!(out, " {} readers |", s.readers);
    }
    let _ = writeln!(out, "\n|---|{}", "---:|".repeat(steps.len()));
    for cmd in commands {
        let _ = write!(out, "| `{cmd}` |");
        for s in steps {
            let rate = s.redis_by_command.get(cmd).copied().unwrap_or(0.0);
            let _ = write!(out, " {} |", report::thousands(rate));
        }
        let _ = writeln!(out);
    }
    let (slope, intercept) = fit(steps.iter().map(|s| (s.readers as f64, s.redis_per_s)));
    let (get_slope, _) = fit(steps.iter().map(|s| {
        let gets = s.redis_by_command.get("get").copied().unwrap_or(0.0);
        (s.readers as f64, gets)
    }));
    let (mc_slope, _) = fit(steps
        .iter()
        .map(|s| (s.readers as f64, s.memcached_gets_per_s)));
    let _ = writeln!(
        out,
        "\n`INFO commandstats` counts the commands a script runs as well as the script: a publish round \
         is one `evalsha` and one `publish` (the round's updates in one message), and per updated \
         key an `hget`, `set`, `hset`, `incr` and `xadd`.\n\n\
         Cost per added reader (least-squares lines over the counts): Redis `get` {} per second per \
         reader (its refresh-ahead and miss reads; the writer's own commands do not depend on readers); \
         all Redis commands {} per reader on top of {} (the writer's rate varies between steps on a \
         loaded machine, which dominates this line); Memcached {} gets/s per reader.",
        report::thousands(get_slope),
        report::thousands(slope),
        report::thousands(intercept),
        report::thousands(mc_slope)
    );
    out
}

/// Least-squares line `y = slope * x + intercept`.
fn fit(points: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    let points: Vec<(f64, f64)> = points.collect();
    let n = points.len() as f64;
    let (sx, sy) = points
        .iter()
        .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx).powi(2)).sum();
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (slope, my - slope * mx)
}
