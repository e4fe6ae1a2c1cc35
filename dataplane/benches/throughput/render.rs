//! The report: per-case medians, ratios and verdicts against issue 7's
//! targets, and the `BENCHMARKS.md` section around it.

use crate::cases::{MAX_P99_RATIO, MIN_L1_HIT_RATIO, Reference, Settings, Setup};
use crate::open_loop::FixedRate;
use crate::report::{median, micros, size, thousands};
use crate::rig::{CaseResult, Run};
use crate::wrk::Saturation;
use std::fmt::Write as _;

/// The results: settings, then one table per target.
pub fn report(run: &Run, settings: &Settings) -> String {
    let mut out = format!("{}\n\n", run.machine);
    if settings.quick {
        out.push_str("**Smoke run (`CACHEBRIDGE_BENCH_QUICK`): one short round per case, not for the record.**\n\n");
    }
    let _ = writeln!(
        out,
        "Setup: {}; each server with `TOKIO_WORKER_THREADS=1` ({}). \
         Load average before / after the run: {} / {} (the machine is shared; \
         interleaved rounds spread interference over both sides).\n",
        run.pinning.describe(),
        threads(&run.results),
        run.load_before,
        run.load_after,
    );
    out.push_str(&throughput_table(&run.results, settings));
    out.push_str(&half_load_table(&run.results, settings));
    out.push_str(&l1_table(&run.results));
    out.push_str(&redis_table(&run.results));
    out
}

fn threads(results: &[CaseResult]) -> String {
    let show = |n: Option<usize>| n.map_or("?".to_owned(), |n| n.to_string());
    let Some(r) = results.first() else {
        return "no cases ran".into();
    };
    format!(
        "threads in /proc: reader {}, reference {}, counting the main thread and tokio's blocking pool",
        show(r.threads.0),
        show(r.threads.1)
    )
}

fn verdict(pass: bool) -> &'static str {
    if pass { "pass" } else { "**FAIL**" }
}

fn med(values: impl Iterator<Item = f64>) -> f64 {
    median(&values.collect::<Vec<_>>()).unwrap_or(f64::NAN)
}

/// The lowest and highest of some per-round ratios.
fn range(ratios: impl Iterator<Item = f64>) -> (f64, f64) {
    ratios.fold((f64::INFINITY, 0.0), |(lo, hi), r| (lo.min(r), hi.max(r)))
}

fn med_ns(values: impl Iterator<Item = u64>) -> u64 {
    med(values.map(|v| v as f64)) as u64
}

fn throughput_table(results: &[CaseResult], settings: &Settings) -> String {
    let mut out = format!(
        "**Maximum throughput** (`wrk -t1 -c{} -d{}s --latency`, median of {} interleaved rounds per server; \
         latencies at saturation):\n\n",
        settings.connections,
        settings.round.as_secs(),
        settings.rounds
    );
    let mut notes = Vec::new();
    out.push_str("| Case | Answer | Reader req/s | Reference req/s | Reader / reference (rounds) | Target | Result | Reader p50 / p99 µs | Reference p50 / p99 µs |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---|---:|---:|\n");
    for r in results {
        let rate = |s: &[Saturation]| med(s.iter().map(|s| s.requests_per_sec));
        let (ours, theirs) = (rate(&r.reader), rate(&r.reference));
        let ratio = ours / theirs;
        let (lo, hi) = range(
            r.reader
                .iter()
                .zip(&r.reference)
                .map(|(a, b)| a.requests_per_sec / b.requests_per_sec),
        );
        let lat = |s: &[Saturation]| {
            format!(
                "{} / {}",
                micros(med_ns(s.iter().map(|s| s.p50_ns))),
                micros(med_ns(s.iter().map(|s| s.p99_ns)))
            )
        };
        let _ = writeln!(
            out,
            "| {} | {}, {} headers | {} | {} | **{ratio:.2}** ({lo:.2}–{hi:.2}) | ≥ {:.2} | {} | {} | {} |",
            r.case.title,
            size(r.body_len),
            r.header_lines,
            thousands(ours),
            thousands(theirs),
            r.case.min_ratio,
            throughput_verdict(r, ratio, settings.connections, &mut notes),
            lat(&r.reader),
            lat(&r.reference),
        );
    }
    out.push('\n');
    for note in notes {
        let _ = writeln!(out, "{note}\n");
    }
    out
}

/// Pass or fail; a Redis-path case where the reader needed clearly fewer
/// Redis round trips than requests is flagged as not comparable, with a
/// note saying why.
fn throughput_verdict(
    r: &CaseResult,
    ratio: f64,
    connections: usize,
    notes: &mut Vec<String>,
) -> String {
    let verdict = verdict(ratio >= r.case.min_ratio);
    let per_request = per_request(r.redis_gets.0, &r.reader);
    match per_request {
        Some(gets) if r.case.reference == Reference::Redis && gets < 0.9 => {
            let mark = format!("({})", "*".repeat(notes.len() + 1));
            notes.push(format!(
                "{mark} Not comparable: the reader made {gets:.3} Redis `GET`s per request, the reference 1. \
                 Concurrent misses of one key share one fetch in the reader (single flight), so with \
                 {} connections asking for the same key most requests wait for another's `GET`; this \
                 case does not measure the per-request Redis path. A case spreading requests over many \
                 keys would.",
                connections
            ));
            format!("{verdict} {mark}")
        }
        _ => verdict.to_owned(),
    }
}

/// Redis `GET`s per answered request over some rounds.
fn per_request(gets: Option<u64>, rounds: &[Saturation]) -> Option<f64> {
    let requests: u64 = rounds.iter().map(|s| s.requests).sum();
    gets.filter(|_| requests > 0)
        .map(|gets| gets as f64 / requests as f64)
}

fn half_load_table(results: &[CaseResult], settings: &Settings) -> String {
    let mut out = format!(
        "**p99 at half load** (open loop at a fixed rate of half the reader's median maximum, \
         {} connections, latency from each request's due time, {} s measured after {} ms, \
         median of {} interleaved rounds per server):\n\n",
        settings.connections,
        settings.half_load_measure.as_secs(),
        settings.half_load_warmup.as_millis(),
        settings.half_load_rounds
    );
    out.push_str("| Case | Rate req/s | Reader p50 / p99 µs | Reference p50 / p99 µs | p99 reader / reference (rounds) | Target | Result |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---|\n");
    for r in results {
        let p = |s: &[FixedRate], f: fn(&FixedRate) -> u64| med_ns(s.iter().map(f));
        let (ours50, ours99) = (
            p(&r.half_reader, |f| f.p50_ns),
            p(&r.half_reader, |f| f.p99_ns),
        );
        let (theirs50, theirs99) = (
            p(&r.half_reference, |f| f.p50_ns),
            p(&r.half_reference, |f| f.p99_ns),
        );
        let ratio = ours99 as f64 / theirs99 as f64;
        // Each reader round beside the reference round next to it in time.
        let (lo, hi) = range(
            r.half_reader
                .iter()
                .zip(&r.half_reference)
                .map(|(a, b)| a.p99_ns as f64 / b.p99_ns as f64),
        );
        let kept = r
            .half_reader
            .iter()
            .chain(&r.half_reference)
            .all(FixedRate::kept_rate);
        let result = if kept {
            verdict(ratio <= MAX_P99_RATIO).to_owned()
        } else {
            format!("{} (rate not kept: {})", verdict(false), shortfall(r))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} / {} | {} / {} | **{ratio:.2}** ({lo:.2}–{hi:.2}) | ≤ {MAX_P99_RATIO:.1} | {result} |",
            r.case.title,
            thousands(r.half_rate),
            micros(ours50),
            micros(ours99),
            micros(theirs50),
            micros(theirs99),
        );
    }
    out.push('\n');
    out
}

/// Which rounds missed their rate, for the report.
fn shortfall(r: &CaseResult) -> String {
    let mut notes = Vec::new();
    for (who, rounds) in [("reader", &r.half_reader), ("reference", &r.half_reference)] {
        for f in rounds.iter().filter(|f| !f.kept_rate()) {
            notes.push(format!(
                "{who} answered {} of {} due, {} errors",
                f.answered, f.due, f.errors
            ));
        }
    }
    notes.join("; ")
}

fn l1_table(results: &[CaseResult]) -> String {
    let mut out = String::from(
        "**L1 hit ratio under full load** (the reader's own `cachebridge_cache_lookups_total{tier=\"L1\"}`, \
         hits over look-ups, summed over its closed-loop rounds; target with the writer publishing):\n\n",
    );
    out.push_str("| Case | L1 look-ups | L1 misses | Hit ratio | Target | Result |\n");
    out.push_str("|---|---:|---:|---:|---:|---|\n");
    for r in results {
        let Some(l1) = r.l1 else {
            let _ = writeln!(out, "| {} | — | — | metric not found | | |", r.case.title);
            continue;
        };
        let (ratio, target, result) = match (r.case.setup, l1.ratio()) {
            (Setup::RedisOnly, _) => ("L1 off".to_owned(), String::new(), String::new()),
            (_, None) => (
                "no look-ups".to_owned(),
                String::new(),
                verdict(false).to_owned(),
            ),
            (setup, Some(ratio)) => {
                let (target, result) = if setup == Setup::Publishing {
                    (
                        format!("≥ {:.2} %", MIN_L1_HIT_RATIO * 100.0),
                        verdict(ratio >= MIN_L1_HIT_RATIO).to_owned(),
                    )
                } else {
                    (String::new(), String::new())
                };
                (format!("{:.4} %", ratio * 100.0), target, result)
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {ratio} | {target} | {result} |",
            r.case.title,
            thousands(l1.total as f64),
            thousands((l1.total - l1.hits) as f64),
        );
    }
    out.push('\n');
    out
}

fn redis_table(results: &[CaseResult]) -> String {
    let mut out = String::from(
        "**Redis round trips** (Redis's own count of `GET` calls during the closed-loop rounds, \
         from every client, over the requests answered):\n\n",
    );
    out.push_str("| Case | Reader GETs / request | Reference GETs / request |\n|---|---:|---:|\n");
    for r in results {
        let per_request = |gets, rounds: &[Saturation]| {
            per_request(gets, rounds).map_or("—".to_owned(), |g| format!("{g:.3}"))
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            r.case.title,
            per_request(r.redis_gets.0, &r.reader),
            per_request(r.redis_gets.1, &r.reference),
        );
    }
    out.push('\n');
    out
}

/// The `BENCHMARKS.md` section: how to run, the results, what is measured.
pub fn section(results: &str, settings: &Settings) -> String {
    format!(
        r#"## Throughput: the reader against bare axum references

Written by `dataplane/benches/throughput/` (run below); the figures are
from the last recorded run, on the machine named in their first line.

### How to run

```sh
cargo bench -p cachebridge-dataplane --bench throughput
```

It needs `redis-server`, `memcached` and `wrk` on `PATH` (Debian packages
`redis-server`, `memcached`, `wrk`; `taskset` from `util-linux` for
pinning) and starts everything itself on free loopback ports. It takes
about five minutes, prints the results below, and with
`CACHEBRIDGE_BENCH_WRITE=1` rewrites this section (`CACHEBRIDGE_BENCH_CASES=ticker,ticker_idle`
runs only the cases named, to compare one change; not for the record). `CACHEBRIDGE_BENCH_QUICK=1`
runs one short round per case to check the set-up. The tests do not run it
(`scripts/test` does not install `wrk`).

### Results

{results}
### What each case measures

The reader is the real binary, `cachebridge-dataplane reader`, with the
flags users give it, against a real `redis-server` and `memcached` and a
real `cachebridge-dataplane writer`. Its references are the bench
executable itself, re-executed as a bare axum server: the same runtime
(`#[tokio::main]`-style multi-thread runtime with `TOKIO_WORKER_THREADS=1`),
`TCP_NODELAY`, no routing or middleware. For each case the bench first
captures the reader's answer for the URL (status 200, every header except
`date` and `content-length`, which hyper writes for both, and the body) and
the reference answers exactly that: the "Answer" column is its size. Reader
and reference never run at the same time; they take turns on the same CPU
under the same load from the other CPU, the reader first in odd rounds and
second in even ones, so drift and other work on the machine hit both.
The writer and Memcached run on the load CPU: on two CPUs their bursts at
every publish would otherwise preempt the measured server (reader or
reference alike) and make the p99 figures mostly noise. Redis is left
unpinned: the Redis path's reference needs it as much as the reader, and
on the load CPU, beside `wrk`, it would cap both.

- **Maximum throughput**: `wrk` keeps {connections} connections busy (closed
  loop) for {round} s per round; the table gives medians over {rounds} rounds
  per server and the median reader/reference ratio, with the range of the
  per-round ratios. Latencies here are at saturation (mostly queueing).
- **p99 at half load**: an open-loop generator (the bench executable again,
  on the load CPU) sends requests at fixed times at half the reader's
  median maximum, to the reader and then the reference at the same rate;
  each latency counts from when its request was due, so a stall is charged
  to every request it delayed. The ratio is of the two medians; beside it,
  the range of the per-round ratios (each reader round against the
  reference round next to it in time), which shows how much of a p99 on
  two CPUs is the machine's noise. A round whose generator could not keep
  the rate (answered < 97 % of due requests, or errors) fails the case.
- **L1 hit ratio**: the reader's look-up counters from `/metrics`, read
  before and after each of its closed-loop rounds.
- **Redis round trips**: Redis's `INFO commandstats` count of `GET` calls
  before and after each closed-loop round. With L1 on, the reader's cache
  lets concurrent misses of one key share one fetch (single flight), so
  under {connections} connections asking for the same key it can need fewer
  than one `GET` per request; the reference always does one, and so does
  the reader with L1 off.

The cases:

- **L1 hit, one ticker, writer publishing**: `GET /api/v1/market/tickers/AAPL`;
  the writer runs the synthetic feed at its defaults (175 symbols, 500
  ticks/s, publishing changed values every 250 ms), the reader its defaults.
  Each update of AAPL is fetched into L1 by the reader itself
  (refresh-ahead), so requests keep hitting L1.
- **L1 hit, dashboard / full ticker list / `?symbols=`**: the same set-up,
  multi-key answers: the dashboard (overview, movers and signals), the
  whole ticker list (one key), and `/api/v1/market/tickers?symbols=` with
  the first {symbols} symbols (one key each).
- **L1 hit, full ticker list, compressed**: the full ticker list asked for
  as browsers ask (`Accept-Encoding: gzip, deflate, br`), so the reader
  answers brotli: its per-version part compressed once, the per-request
  tail appended as an uncompressed meta-block per request. The reference
  replays the reader's captured brotli bytes.
- **Redis path**: the reader with `--l1-max-bytes 0` and no `--memcached`,
  the writer publishing; requests ask for the ticker of every symbol in
  turn (a wrk script; the open-loop generator likewise), so no two
  requests in flight want the same key and single flight cannot merge
  them (with L1 off there is none anyway). The reference does one Redis
  `GET` per request of a key holding the reader's answer for that symbol,
  over the same kind of Redis connection (`redis::aio::ConnectionManager`).
- **L1 hit, writer not publishing**: the writer replays a file of ticks of
  the same feed at once and then sends only heartbeats (its
  `--staleness-budget 1h` stops refreshes); the reader has `--l1-ttl 1h`
  and `--staleness-budget 1h`, so the answer never leaves L1 and is never
  stale: the pure L1 path.
"#,
        connections = settings.connections,
        round = settings.round.as_secs(),
        rounds = settings.rounds,
        symbols = crate::cases::LIST_SYMBOLS,
    )
}
