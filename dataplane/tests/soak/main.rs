//! The soak: a writer and two readers (processes of the built binary), a
//! real Redis and Memcached, a steady request load, a tier restart every
//! minute and a connection burst every minute. It reports RSS, open file
//! descriptors and tokio tasks of each process after warm-up and at the
//! end, and fails if RSS grew more than 5%, if descriptors or tasks grew,
//! or if any request of the steady load failed.
//!
//! Not part of `cargo test` (`test = false`); run it by name:
//! `cargo test --release -p cachebridge-dataplane --test soak -- --minutes 10`
//! (`scripts/test` runs `--minutes 1` on the debug build). See docs/soak.md.

mod procs;
mod traffic;

use cachebridge_testkit::{PATIENCE, Server, free_port};
use clap::Parser;
use procs::{Proc, Sample};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::time::Instant;
use traffic::{Steady, Tally};

/// Length of one round: a tier restart, then a burst, then quiet.
const ROUND: Duration = Duration::from_secs(60);
/// When in a round the burst starts, and how long it lasts.
const BURST_AT: Duration = Duration::from_secs(15);
const BURST_FOR: Duration = Duration::from_secs(3);
/// How much RSS may grow from the end of warm-up to the end.
const RSS_GROWTH: f64 = 0.05;
/// Connections to Memcached are a pool that keeps up to 8 idle connections
/// (the `memcache` client's default) for 90 s: after a burst it holds however
/// many the burst's peak left, up to that cap. So they are judged against
/// the cap (plus a few in use by refresh-ahead at the moment of the sample),
/// and every other descriptor against the baseline.
const MEMCACHED_POOL_BOUND: u64 = 8 + 4;
const MEMCACHED: &str = "tcp memcached";

#[derive(Parser, Debug)]
#[command(about = "Soak a writer and two readers under load, tier restarts and connection bursts")]
struct Args {
    /// Rounds of one minute each, after warm-up.
    #[arg(long, default_value_t = 10)]
    minutes: u32,
    /// Warm-up (a burst and a restart of each tier, then quiet) before the baseline.
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Steady clients per reader.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Concurrent connections per reader in a burst.
    #[arg(long, default_value_t = 1000)]
    burst: usize,
}

/// The tiers and processes under test.
struct Rig {
    redis: Server,
    memcached: Server,
    procs: Vec<Proc>,
    readers: Vec<String>,
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let passed = runtime.block_on(soak(args));
    std::process::exit(if passed { 0 } else { 1 });
}

async fn soak(args: Args) -> bool {
    // Not kept alive: a pooled connection would still be open (and its
    // task alive) at the baseline sample and closed by the server's idle
    // timeout before the end one, a difference of the soak's own making.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut rig = start().await;
    ready(&http, &rig.procs[0].metrics.replace("/metrics", "/readyz")).await;
    // The steady load judges every answer: it starts once each is served.
    for base in &rig.readers {
        for path in traffic::PATHS {
            ready(&http, &format!("{base}{path}")).await;
        }
    }
    let mut load = Steady::start(&rig.readers, args.clients);
    let started = Instant::now();
    let at_start = samples(&mut rig, &mut load).await;

    say(&format!(
        "warm-up ({:?}): a burst and a restart of each tier, quiet",
        args.warmup
    ));
    burst(&rig, args.burst).await;
    restart(&mut rig.redis, "Redis");
    burst(&rig, args.burst).await;
    restart(&mut rig.memcached, "Memcached");
    tokio::time::sleep_until(started + args.warmup).await;
    let baseline = samples(&mut rig, &mut load).await;
    let mut rounds = Vec::new();

    for round in 0..args.minutes {
        let t0 = Instant::now();
        if round % 2 == 0 {
            restart(&mut rig.redis, "Redis");
        } else {
            restart(&mut rig.memcached, "Memcached");
        }
        tokio::time::sleep_until(t0 + BURST_AT).await;
        burst(&rig, args.burst).await;
        tokio::time::sleep_until(t0 + ROUND).await;
        say(&format!("round {} of {} done", round + 1, args.minutes));
        rounds.push((
            format!("round {}", round + 1),
            samples(&mut rig, &mut load).await,
        ));
    }
    load.pause().await;
    let at_end = rounds.last().map_or(&baseline, |(_, s)| s);
    let mut columns = vec![
        ("start".to_owned(), &at_start),
        ("baseline".to_owned(), &baseline),
    ];
    columns.extend(rounds.iter().map(|(n, s)| (n.clone(), s)));
    report(&rig, &columns);
    verdict(&rig, &baseline, at_end, &load.tally)
}

async fn start() -> Rig {
    let (redis, memcached) = (Server::redis(), Server::memcached());
    let tiers = |role: &str| -> Vec<String> {
        [
            role,
            "--redis",
            &redis.url(),
            "--memcached",
            &memcached.addr(),
        ]
        .into_iter()
        .chain(["--key-prefix", "cb:soak:", "--log-level", "warn"])
        .map(str::to_owned)
        .collect()
    };
    let ports = |own: u16| {
        vec![
            (redis.port, "redis"),
            (memcached.port, "memcached"),
            (own, "own port"),
        ]
    };
    let status_port = free_port();
    let status = format!("127.0.0.1:{status_port}");
    let mut writer_args = tiers("writer");
    writer_args.extend(["--source", "synthetic", "--status-listen", &status].map(str::to_owned));
    let metrics = format!("http://{status}/metrics");
    let mut procs = vec![Proc::spawn(
        "writer",
        &writer_args,
        metrics,
        ports(status_port),
    )];
    let mut readers = Vec::new();
    for n in 1..=2 {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut args = tiers("reader");
        args.extend(["--listen".to_owned(), listen.clone()]);
        let (name, metrics) = (format!("reader {n}"), format!("http://{listen}/metrics"));
        procs.push(Proc::spawn(&name, &args, metrics, ports(port)));
        readers.push(format!("http://{listen}"));
    }
    Rig {
        redis,
        memcached,
        procs,
        readers,
    }
}

/// Awaits a 200 from a readiness endpoint (no event to wait on across processes).
async fn ready(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn say(what: &str) {
    println!("soak: {what}");
}

fn restart(server: &mut Server, name: &str) {
    say(&format!("restarting {name} (SIGKILL, then empty)"));
    tokio::task::block_in_place(|| server.restart());
}

async fn burst(rig: &Rig, connections: usize) {
    let answered = traffic::burst(&rig.readers, connections, BURST_FOR).await;
    say(&format!(
        "burst: {connections} connections per reader for {BURST_FOR:?}, {answered} answers"
    ));
}

/// Every process measured while the steady load is paused: no client
/// connection is open then but the measurement's own (one at a time, not
/// kept alive), so what a process holds is its own doing.
async fn samples(rig: &mut Rig, load: &mut Steady) -> Vec<Sample> {
    load.pause().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // All at once: each sample takes ten seconds.
    let samples = rig.procs.iter_mut().map(|p| p.settled_sample(&http));
    let out = futures::future::join_all(samples)
        .await
        .into_iter()
        .map(|s| s.unwrap_or_else(|e| panic!("soak: {e}")))
        .collect();
    load.resume();
    out
}

fn report(rig: &Rig, columns: &[(String, &Vec<Sample>)]) {
    println!(
        "\n{:<10} {:<9} {:>10} {:>6} {:>6}  fds by kind",
        "process", "when", "RSS KiB", "fds", "tasks"
    );
    for (i, p) in rig.procs.iter().enumerate() {
        for (when, samples) in columns {
            let s = &samples[i];
            let kinds: Vec<String> = s.kinds.iter().map(|(k, n)| format!("{k} {n}")).collect();
            println!(
                "{:<10} {:<9} {:>10} {:>6} {:>6}  {}",
                p.name,
                when,
                s.rss_kib,
                s.fds,
                s.tasks,
                kinds.join(", ")
            );
        }
    }
}

/// Judges the end against the baseline; prints every breach.
fn verdict(rig: &Rig, baseline: &[Sample], end: &[Sample], tally: &Tally) -> bool {
    let mut breaches = Vec::new();
    for (i, p) in rig.procs.iter().enumerate() {
        let (b, e) = (&baseline[i], &end[i]);
        let limit = (b.rss_kib as f64 * (1.0 + RSS_GROWTH)) as u64;
        if e.rss_kib > limit {
            breaches.push(format!("{}: RSS {} KiB > {limit} KiB", p.name, e.rss_kib));
        }
        let pooled = |s: &Sample| s.kinds.get(MEMCACHED).copied().unwrap_or(0);
        if pooled(e) > MEMCACHED_POOL_BOUND {
            let n = pooled(e);
            breaches.push(format!(
                "{}: {n} Memcached connections > {MEMCACHED_POOL_BOUND}",
                p.name
            ));
        }
        if e.fds - pooled(e) > b.fds - pooled(b) {
            let (from, to) = (&b.kinds, &e.kinds);
            breaches.push(format!(
                "{}: fds grew {} -> {}: {from:?} -> {to:?}",
                p.name, b.fds, e.fds
            ));
        }
        if e.tasks > b.tasks {
            breaches.push(format!("{}: tasks grew {} -> {}", p.name, b.tasks, e.tasks));
        }
    }
    let failed = tally.failed.load(Ordering::Relaxed);
    let ok = tally.ok.load(Ordering::Relaxed);
    println!("\nsteady load: {ok} answered 2xx, {failed} failed");
    if failed > 0 {
        let first = tally.first_failures.lock().unwrap();
        breaches.push(format!("{failed} steady requests failed, first: {first:?}"));
    }
    for b in &breaches {
        println!("FAIL {b}");
    }
    if breaches.is_empty() {
        println!("soak passed");
    }
    breaches.is_empty()
}
