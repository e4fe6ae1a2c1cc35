//! Failover benchmark: how long after SIGKILL of the Redis primary (a) the
//! writer publishes again, to the new primary, and (b) fresh data is
//! served by both readers.
//!
//! Each round starts a fresh Sentinel group (three `redis-server`, three
//! `redis-sentinel`, `down-after-milliseconds` 1000), a writer and two
//! readers in Sentinel mode with the default dataplane timings, feeds ticks
//! to the writer, kills the primary, and at that instant posts a tick for a
//! symbol no reader has seen. The run prints a Markdown report; with
//! `CACHEBRIDGE_BENCH_WRITE=1` it also replaces the failover section of
//! `BENCHMARKS.md` (between `<!-- failover:begin -->` and
//! `<!-- failover:end -->`), leaving the rest of the file alone.
//!
//! Run: `cargo bench -p cachebridge-dataplane --bench failover`
//! (`CACHEBRIDGE_FAILOVER_ROUNDS`, default 5).

#[path = "../tests/common/mod.rs"]
mod common;

use cachebridge_dataplane::app::{self, Role, Running};
use cachebridge_dataplane::config::Config;
use cachebridge_dataplane::metrics::ReasonLabels;
use cachebridge_testkit::sentinel::Timing;
use common::{SentinelGroup, client, eventually, free_port, settled, tick};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const BEGIN: &str = "<!-- failover:begin -->";
const END: &str = "<!-- failover:end -->";

/// One round's figures.
struct Round {
    writer_again: Duration,
    fresh_on_both: Duration,
}

fn main() {
    let rounds: usize = std::env::var("CACHEBRIDGE_FAILOVER_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(5);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let timing = Timing::fast();
    let results: Vec<Round> = (1..=rounds)
        .map(|n| {
            let round = runtime.block_on(round(n, timing));
            eprintln!(
                "round {n}: writer again after {:?}, fresh data on both readers after {:?}",
                round.writer_again, round.fresh_on_both
            );
            round
        })
        .collect();
    let text = report(&results, timing, &settings());
    println!("{text}");
    if std::env::var_os("CACHEBRIDGE_BENCH_WRITE").is_some() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");
        let old = std::fs::read_to_string(path).unwrap_or_default();
        std::fs::write(path, with_section(&old, &text)).expect("write BENCHMARKS.md");
    }
}

/// The dataplane settings of the run: the defaults, in Sentinel mode.
fn settings() -> Config {
    Config::default()
}

async fn round(n: usize, timing: Timing) -> Round {
    let mut group = SentinelGroup::start(timing);
    let mut config = common::sentinel_config(&group);
    let defaults = settings();
    config.cache = defaults.cache;
    config.coherence = defaults.coherence;
    config.writer.publish_interval = defaults.writer.publish_interval;
    let ingest_port = free_port();
    config.writer.ingest_listen = Some(format!("127.0.0.1:{ingest_port}").parse().unwrap());
    let ingest = format!("http://127.0.0.1:{ingest_port}/ingest");
    let credentials = common::sentinel_credentials();
    let writer = app::start(Role::Writer, &config, &credentials)
        .await
        .expect("writer");
    let readers: Vec<Running> =
        futures::future::join_all((0..2).map(|_| app::start(Role::Reader, &config, &credentials)))
            .await
            .into_iter()
            .map(|r| r.expect("reader"))
            .collect();
    let feeder = tokio::spawn(feed(ingest.clone()));
    for r in &readers {
        let base = format!("http://{}", r.addr.unwrap());
        eventually("the feed on every reader", || served(base.clone(), "AAA")).await;
    }

    let old = settled(&mut group).await;
    let published = |reason: &'static str| {
        writer
            .metrics
            .writer_publishes
            .get_or_create(&ReasonLabels { reason })
            .get()
    };
    let failed_before = published("failed");
    let killed = Instant::now();
    group.redis_on(old).kill();
    let mark = format!("M{n}");
    client()
        .post(&ingest)
        .body(tick(&mark, 1.0 + n as f64, 1))
        .send()
        .await
        .expect("ingest");

    // (a) the first publish accepted after the writer saw the primary fail.
    let (writer_again, fresh_on_both) = tokio::join!(
        async {
            eventually("a failed publish", || async {
                (published("failed") > failed_before).then_some(())
            })
            .await;
            let accepted = published("published");
            eventually("the writer publishing again", || async {
                (published("published") > accepted).then_some(())
            })
            .await;
            killed.elapsed()
        },
        // (b) the new symbol served by both readers.
        async {
            for r in &readers {
                let base = format!("http://{}", r.addr.unwrap());
                eventually("fresh data on every reader", || served(base.clone(), &mark)).await;
            }
            killed.elapsed()
        }
    );
    feeder.abort();
    Round {
        writer_again,
        fresh_on_both,
    }
}

/// Ticks for a few symbols, every 10 ms, like a live feed.
async fn feed(ingest: String) {
    let http = client();
    for n in 1u64.. {
        let body: Vec<String> = ["AAA", "BBB", "CCC"]
            .iter()
            .map(|s| tick(s, 100.0 + (n % 50) as f64, n))
            .collect();
        let _ = http.post(&ingest).body(body.join("\n")).send().await;
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn served(base: String, symbol: &str) -> Option<()> {
    let url = format!("{base}/api/v1/market/tickers/{symbol}");
    let response = client().get(url).send().await.ok()?;
    response.status().is_success().then_some(())
}

fn report(rounds: &[Round], timing: Timing, config: &Config) -> String {
    let stats = |pick: fn(&Round) -> Duration| {
        let mut all: Vec<Duration> = rounds.iter().map(pick).collect();
        all.sort();
        let median = all[all.len() / 2];
        let max = *all.last().unwrap();
        (median, max)
    };
    let (a_med, a_max) = stats(|r| r.writer_again);
    let (b_med, b_max) = stats(|r| r.fresh_on_both);
    let ms = |d: Duration| format!("{:.0} ms", d.as_secs_f64() * 1000.0);
    let verdict = |d: Duration| {
        if d < Duration::from_secs(5) {
            "yes"
        } else {
            "**no**"
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "## Failover (Sentinel)\n");
    let _ = writeln!(
        out,
        "`cargo bench -p cachebridge-dataplane --bench failover`: {} rounds, each on a fresh group of \
         three `redis-server` and three `redis-sentinel` on loopback, a writer and two readers in \
         Sentinel mode, the primary killed once the group is at rest (every replica acknowledging \
         every write). Time from SIGKILL of the primary to (a) the writer's first publish accepted \
         by the new primary and (b) a tick posted at the kill being served by both readers.\n",
        rounds.len()
    );
    let _ = writeln!(out, "| | median | max | target < 5 s |");
    let _ = writeln!(out, "|---|---|---|---|");
    let _ = writeln!(
        out,
        "| (a) writer publishes again | {} | {} | {} |",
        ms(a_med),
        ms(a_max),
        verdict(a_max)
    );
    let _ = writeln!(
        out,
        "| (b) fresh data on both readers | {} | {} | {} |\n",
        ms(b_med),
        ms(b_max),
        verdict(b_max)
    );
    let _ = writeln!(
        out,
        "Sentinel: quorum 2 of 3, `down-after-milliseconds` {}, `failover-timeout` {}, \
         `parallel-syncs` 2. Dataplane defaults: publish interval {:?}, heartbeat {:?}, tier \
         timeout {:?}, breaker {} failures / {:?} cooldown; the store also asks the Sentinels every \
         2 s and on every `+switch-master`.\n",
        timing.down_after_ms,
        timing.failover_timeout_ms,
        config.writer.publish_interval,
        config.coherence.heartbeat_interval,
        config.cache.tier_timeout,
        config.cache.breaker_failures,
        config.cache.breaker_cooldown,
    );
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ = writeln!(
        out,
        "Sentinel alone needs `down-after-milliseconds`, then agreement on the primary being down, \
         an election (with a random delay of up to 1 s) and its 1 s `INFO` polling to see the \
         promoted replica before it announces `+switch-master`; the dataplane acts on that \
         announcement at once. A lost election is retried only after twice `failover-timeout`. \
         Load average at the end of the run: {} (a shared 2-core machine).",
        load.split(' ').next().unwrap_or("unknown")
    );
    out
}

/// `document` with the text between the failover markers replaced (markers
/// appended when missing).
fn with_section(document: &str, section: &str) -> String {
    let block = format!("{BEGIN}\n{section}\n{END}");
    match (document.find(BEGIN), document.find(END)) {
        (Some(start), Some(end)) if start < end => format!(
            "{}{block}{}",
            &document[..start],
            &document[end + END.len()..]
        ),
        _ => format!("{}\n\n{block}\n", document.trim_end()),
    }
}
