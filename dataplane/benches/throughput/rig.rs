//! The rig: real Redis and Memcached, the writer and reader binaries, the
//! references and the load generators as pinned processes, and the rounds
//! that load them one after the other.

use crate::cases::{self, Case, Reference, Settings, Setup};
use crate::open_loop::{FixedRate, Plan};
use crate::process::{LOAD_CPU, Pinning, Process, SERVER_CPU, output};
use crate::reference::{self, Captured};
use crate::scrape::{L1Lookups, redis_get_calls};
use crate::wrk::{self, Saturation};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use cachebridge_dataplane::market::{SyntheticFeed, symbol_universe};
use cachebridge_testkit::{PATIENCE, Server, free_port};
use std::path::Path;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

/// The binary users run, built by `cargo bench` for this bench.
const BINARY: &str = env!("CARGO_BIN_EXE_cachebridge-dataplane");
/// Ticks the idle writer is fed once (after the feed's opening).
const IDLE_TICKS: usize = 5_000;

/// Everything a run found.
pub struct Run {
    pub machine: String,
    pub pinning: Pinning,
    /// `/proc/loadavg` before and after: other work on the machine.
    pub load_before: String,
    pub load_after: String,
    pub results: Vec<CaseResult>,
}

/// One case's rounds.
pub struct CaseResult {
    pub case: Case,
    pub body_len: usize,
    pub header_lines: usize,
    pub reader: Vec<Saturation>,
    pub reference: Vec<Saturation>,
    pub half_rate: f64,
    pub half_reader: Vec<FixedRate>,
    pub half_reference: Vec<FixedRate>,
    /// The reader's L1 look-ups during its closed-loop rounds.
    pub l1: Option<L1Lookups>,
    /// Redis `GET` calls (from anyone) during the reader's and the
    /// reference's closed-loop rounds.
    pub redis_gets: (Option<u64>, Option<u64>),
    /// Threads of the reader and the reference processes after the rounds.
    pub threads: (Option<usize>, Option<usize>),
}

/// Measures every case, setup by setup.
pub fn run_all(settings: &Settings) -> Run {
    let load_before = crate::report::load_average();
    let rig = Rig::start(settings.clone());
    eprintln!("throughput bench: {}", rig.pinning.describe());
    let cases = cases::selected();
    let mut results = Vec::new();
    for setup in [Setup::Publishing, Setup::RedisOnly, Setup::Idle] {
        let mut stack = rig.stack(setup);
        for case in cases.iter().filter(|c| c.setup == setup) {
            results.push(rig.measure(case, &mut stack));
        }
    }
    Run {
        machine: crate::report::machine(&[("wrk", "--version")]),
        pinning: rig.pinning,
        load_before,
        load_after: crate::report::load_average(),
        results,
    }
}

/// The idle writer's input, as NDJSON: ticks of the same synthetic feed.
fn idle_ticks() -> String {
    let symbols = symbol_universe(cachebridge_dataplane::market::DEFAULT_SYMBOLS);
    let mut feed = SyntheticFeed::new(42, symbols);
    let now = OffsetDateTime::now_utc();
    let mut ticks = feed.opening(now);
    ticks.extend(feed.next_batch(IDLE_TICKS, now));
    let mut text = String::new();
    for tick in &ticks {
        text.push_str(&serde_json::to_string(tick).expect("a tick serializes"));
        text.push('\n');
    }
    text
}

/// What the closed-loop rounds of one case found.
struct Rounds {
    reader: Vec<Saturation>,
    reference: Vec<Saturation>,
    l1: Option<L1Lookups>,
    redis_gets: (Option<u64>, Option<u64>),
}

/// A server process and its base URL.
struct Served {
    process: Process,
    base: String,
}

/// A writer and the reader under test.
struct Stack {
    reader: Served,
    writer: Process,
}

struct Rig {
    settings: Settings,
    pinning: Pinning,
    redis: Server,
    memcached: Server,
    http: Http,
    logs: tempfile::TempDir,
}

impl Rig {
    fn start(settings: Settings) -> Rig {
        let pinning = Pinning::detect();
        let memcached = Server::memcached();
        // Off the measured CPU, like the writer: on a 2-CPU machine their
        // bursts (every publish) would otherwise preempt whichever server
        // is being measured, which shows as p99 noise on both sides.
        pinning.pin(memcached.pid().expect("memcached runs"), LOAD_CPU);
        Rig {
            settings,
            pinning,
            redis: Server::redis(),
            memcached,
            http: Http::new(),
            logs: tempfile::tempdir().expect("a temp dir"),
        }
    }

    fn logs(&self) -> &Path {
        self.logs.path()
    }

    // ---- processes ------------------------------------------------------

    fn stack(&self, setup: Setup) -> Stack {
        let name = format!("{setup:?}").to_lowercase();
        let prefix = format!("bench:{name}:");
        let writer = self.writer(&name, &prefix, setup);
        let mut reader = self.reader(&name, &prefix, setup);
        self.await_ok(&mut reader, "/readyz");
        Stack { reader, writer }
    }

    fn tiers(&self, prefix: &str, memcached: bool) -> Vec<String> {
        let mut args = vec![
            "--redis".into(),
            self.redis.url(),
            "--key-prefix".into(),
            prefix.into(),
        ];
        if memcached {
            args.extend(["--memcached".into(), self.memcached.addr()]);
        }
        args
    }

    /// The writer: the synthetic feed at its defaults, or (idle) fed one
    /// batch of ticks through `POST /ingest`, which it publishes once; then
    /// nothing but heartbeats. (A `replay:` source would do, but the writer
    /// exits when its replay ends.)
    fn writer(&self, name: &str, prefix: &str, setup: Setup) -> Process {
        let mut args = vec!["writer".to_owned()];
        args.extend(self.tiers(prefix, true));
        let ingest = format!("127.0.0.1:{}", free_port());
        if setup == Setup::Idle {
            args.extend([
                "--source=none".into(),
                format!("--ingest-listen={ingest}"),
                // Unchanged values are republished after half of this.
                "--staleness-budget=1h".into(),
            ]);
        }
        let mut command = self.pinning.command(LOAD_CPU, BINARY);
        command.args(&args);
        let mut writer = Process::spawn(&format!("writer-{name}"), command, self.logs());
        if setup == Setup::Idle {
            self.ingest(&mut writer, &format!("http://{ingest}/ingest"));
        }
        writer
    }

    /// Posts the ticks once the writer takes them (it is another process:
    /// polled until it answers).
    fn ingest(&self, writer: &mut Process, url: &str) {
        let ticks = idle_ticks();
        let deadline = Instant::now() + PATIENCE;
        loop {
            writer.check_alive();
            let last = match self.http.post(url, ticks.clone()) {
                Ok(status) if status.is_success() => return,
                Ok(status) => status.to_string(),
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "{} did not take the ticks within {PATIENCE:?} (last: {last})",
                writer.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn reader(&self, name: &str, prefix: &str, setup: Setup) -> Served {
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec!["reader".to_owned(), format!("--listen={listen}")];
        args.extend(self.tiers(prefix, setup != Setup::RedisOnly));
        match setup {
            Setup::Publishing => {}
            Setup::Idle => args.extend(["--l1-ttl=1h".into(), "--staleness-budget=1h".into()]),
            Setup::RedisOnly => args.push("--l1-max-bytes=0".into()),
        }
        self.server(&format!("reader-{name}"), Path::new(BINARY), &args, listen)
    }

    /// A server process on the server CPU with one tokio worker.
    fn server(&self, name: &str, program: &Path, args: &[String], listen: String) -> Served {
        let mut command = self.pinning.command(SERVER_CPU, program);
        command.args(args).env("TOKIO_WORKER_THREADS", "1");
        Served {
            process: Process::spawn(name, command, self.logs()),
            base: format!("http://{listen}"),
        }
    }

    /// The case's reference server; a spread Redis reference gets the
    /// reader's answer for every symbol stored under its own key.
    fn reference(&self, case: &Case, captured: &Captured, reader: &mut Served) -> Served {
        let stem = self.logs().join(case.key);
        captured.save(&stem).expect("save the captured response");
        let listen = format!("127.0.0.1:{}", free_port());
        let mut args = vec![listen.clone(), stem.display().to_string()];
        let kind = match case.reference {
            Reference::Static => reference::STATIC,
            Reference::Redis if !case.spread.is_empty() => {
                // The reference reads the key named by the path's last segment.
                let stem = format!("bench:reference:{}:", case.key);
                for (symbol, path) in case.spread.iter().zip(case.paths()) {
                    // The case's own path keeps the captured answer, which
                    // the reference's first answer is checked against.
                    let body = if path == case.path {
                        captured.body.clone()
                    } else {
                        self.await_ok(reader, &path).1
                    };
                    self.redis_set(&format!("{stem}{symbol}"), &body);
                }
                args.extend([self.redis.url(), format!("{stem}{}", reference::SYMBOL)]);
                reference::REDIS
            }
            Reference::Redis => {
                let key = format!("bench:reference:{}", case.key);
                self.redis_set(&key, &captured.body);
                args.extend([self.redis.url(), key]);
                reference::REDIS
            }
        };
        args.insert(0, kind.to_owned());
        let exe = std::env::current_exe().expect("the bench executable");
        self.server(&format!("reference-{}", case.key), &exe, &args, listen)
    }

    fn redis_set(&self, key: &str, value: &[u8]) {
        let client = redis::Client::open(self.redis.url()).expect("a Redis URL");
        let mut conn = client.get_connection().expect("connect to Redis");
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .query::<()>(&mut conn)
            .expect("SET the reference's body");
    }

    // ---- one case -------------------------------------------------------

    fn measure(&self, case: &Case, stack: &mut Stack) -> CaseResult {
        let reader = &mut stack.reader;
        eprintln!("case {}: GET {}", case.key, case.path);
        let captured = self.capture(case, reader);
        let mut reference = self.reference(case, &captured, reader);
        let (_, body) = self.await_ok(&mut reference, &case.path);
        assert_eq!(
            body, captured.body,
            "the reference must answer the captured bytes"
        );
        for served in [&*reader, &reference] {
            self.wrk(served, case, self.settings.warmup);
        }
        let rounds = self.saturate(case, reader, &reference);
        let reader_max: Vec<f64> = rounds.reader.iter().map(|s| s.requests_per_sec).collect();
        let half_rate = crate::report::median(&reader_max).unwrap_or(0.0) / 2.0;
        let (half_reader, half_reference) = self.half_load(case, half_rate, reader, &reference);
        reader.process.check_alive();
        reference.process.check_alive();
        stack.writer.check_alive();
        CaseResult {
            case: case.clone(),
            body_len: captured.body.len(),
            header_lines: captured.headers.len(),
            reader: rounds.reader,
            reference: rounds.reference,
            half_rate,
            half_reader,
            half_reference,
            l1: rounds.l1,
            redis_gets: rounds.redis_gets,
            threads: (reader.process.threads(), reference.process.threads()),
        }
    }

    /// The reader's answer for the case, once it serves it steadily.
    fn capture(&self, case: &Case, reader: &mut Served) -> Captured {
        self.await_ok(reader, &case.path);
        if case.setup == Setup::Idle {
            self.await_steady(reader, &case.path);
        }
        // A few more, so the captured one is an ordinary (L1) answer; a
        // compressed case takes the first compressed one after those (a
        // version's first answer in a coding is sent plain while the reader
        // compresses it in the background).
        let mut last = None;
        for _ in 0..10 {
            last = Some(self.await_ok_with(reader, &case.path, case.accept_encoding));
        }
        let compressed =
            |(headers, _): &(HeaderMap, Bytes)| headers.contains_key("content-encoding");
        for _ in 0..1000 {
            if case.accept_encoding.is_none() || last.as_ref().is_some_and(compressed) {
                break;
            }
            last = Some(self.await_ok_with(reader, &case.path, case.accept_encoding));
        }
        let (headers, body) = last.expect("ten answers");
        if case.accept_encoding.is_some() {
            assert!(
                headers.contains_key("content-encoding"),
                "case {}: the reader did not compress ({} bytes)",
                case.key,
                body.len()
            );
        }
        Captured::new(&headers, body)
    }

    /// Closed-loop rounds, reader and reference alternating which goes
    /// first; the reader's L1 look-ups and everyone's Redis `GET`s are
    /// counted over the rounds.
    fn saturate(&self, case: &Case, reader: &Served, reference: &Served) -> Rounds {
        let mut rounds = Rounds {
            reader: Vec::new(),
            reference: Vec::new(),
            l1: Some(L1Lookups::default()),
            redis_gets: (Some(0), Some(0)),
        };
        for round in 0..self.settings.rounds {
            let reader_first = round % 2 == 0;
            for is_reader in [reader_first, !reader_first] {
                let served = if is_reader { reader } else { reference };
                let (l1_before, gets_before) = (self.l1_lookups(reader), self.redis_gets());
                let result = self.wrk(served, case, self.settings.round);
                let (l1_after, gets_after) = (self.l1_lookups(reader), self.redis_gets());
                let gets = gets_before
                    .zip(gets_after)
                    .map(|(b, a)| a.saturating_sub(b));
                let add = |sum: Option<u64>| sum.zip(gets).map(|(s, g)| s + g);
                if is_reader {
                    rounds.reader.push(result);
                    let l1 = l1_before.zip(l1_after).map(|(b, a)| a.since(b));
                    rounds.l1 = rounds.l1.zip(l1).map(|(sum, l1)| sum.add(l1));
                    rounds.redis_gets.0 = add(rounds.redis_gets.0);
                } else {
                    rounds.reference.push(result);
                    rounds.redis_gets.1 = add(rounds.redis_gets.1);
                }
            }
        }
        rounds
    }

    fn redis_gets(&self) -> Option<u64> {
        let client = redis::Client::open(self.redis.url()).ok()?;
        let mut conn = client.get_connection().ok()?;
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut conn)
            .ok()?;
        redis_get_calls(&info)
    }

    /// Fixed-rate rounds at `rate`, alternating like [`saturate`](Self::saturate).
    fn half_load(
        &self,
        case: &Case,
        rate: f64,
        reader: &Served,
        reference: &Served,
    ) -> (Vec<FixedRate>, Vec<FixedRate>) {
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..self.settings.half_load_rounds {
            let reader_first = round % 2 == 0;
            for is_reader in [reader_first, !reader_first] {
                let served = if is_reader { reader } else { reference };
                let result = self.open_loop(served, case, rate);
                (if is_reader { &mut ours } else { &mut theirs }).push(result);
            }
        }
        (ours, theirs)
    }

    // ---- load -----------------------------------------------------------

    fn wrk(&self, served: &Served, case: &Case, duration: Duration) -> Saturation {
        let url = format!("{}{}", served.base, case.path);
        let mut command = self.pinning.command(LOAD_CPU, "wrk");
        command.args(wrk::args(self.settings.connections, duration, &url));
        if let Some(accept) = case.accept_encoding {
            command
                .arg("--header")
                .arg(format!("Accept-Encoding: {accept}"));
        }
        if !case.spread.is_empty() {
            let script = self.logs().join(format!("{}.lua", case.key));
            std::fs::write(&script, wrk::cycle_script(&case.paths()))
                .expect("write the wrk script");
            command.arg("--script").arg(script);
        }
        wrk::run(command).unwrap_or_else(|e| panic!("{}: wrk on {url}: {e}", served.process.name))
    }

    fn open_loop(&self, served: &Served, case: &Case, rate: f64) -> FixedRate {
        let plan = Plan {
            url: format!("{}{}", served.base, case.path),
            paths: case.paths(),
            rate,
            connections: self.settings.connections,
            warmup: self.settings.half_load_warmup,
            measure: self.settings.half_load_measure,
            accept_encoding: case.accept_encoding.unwrap_or_default().to_owned(),
        };
        let exe = std::env::current_exe().expect("the bench executable");
        let mut command = self.pinning.command(LOAD_CPU, exe);
        command.args(plan.args());
        let what = format!("the open-loop generator on {}", served.process.name);
        let text = output(&what, command);
        FixedRate::parse(&text).unwrap_or_else(|| panic!("{what} printed no result: {text}"))
    }

    fn l1_lookups(&self, reader: &Served) -> Option<L1Lookups> {
        let url = format!("{}/metrics", reader.base);
        match self.http.get(&url, None) {
            Ok((StatusCode::OK, _, body)) => L1Lookups::parse(&String::from_utf8_lossy(&body)),
            _ => None,
        }
    }

    // ---- waiting for servers ----------------------------------------------

    /// Polls `path` until it answers 200 (the server is another process:
    /// there is no event to await); returns that answer.
    fn await_ok(&self, served: &mut Served, path: &str) -> (HeaderMap, Bytes) {
        self.await_ok_with(served, path, None)
    }

    /// [`await_ok`](Self::await_ok), sending `accept_encoding` if any.
    fn await_ok_with(
        &self,
        served: &mut Served,
        path: &str,
        accept_encoding: Option<&str>,
    ) -> (HeaderMap, Bytes) {
        let url = format!("{}{path}", served.base);
        let deadline = Instant::now() + PATIENCE;
        loop {
            served.process.check_alive();
            let last = match self.http.get(&url, accept_encoding) {
                Ok((StatusCode::OK, headers, body)) => return (headers, body),
                Ok((status, _, body)) => format!("{status}: {}", String::from_utf8_lossy(&body)),
                Err(e) => e,
            };
            assert!(
                Instant::now() < deadline,
                "{} did not answer 200 on {path} within {PATIENCE:?} (last: {last}); its log:\n{}",
                served.process.name,
                served.process.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `path`'s ETag stays the same for a second: the idle
    /// writer has published everything it will publish.
    fn await_steady(&self, served: &mut Served, path: &str) {
        let deadline = Instant::now() + PATIENCE;
        let etag = |rig: &Rig, served: &mut Served| {
            let (headers, _) = rig.await_ok(served, path);
            headers.get("etag").cloned()
        };
        let mut last = etag(self, served);
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let now = etag(self, served);
            if now == last {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{path} kept changing with the writer idle"
            );
            last = now;
        }
    }
}

/// Blocking HTTP GETs for set-up and scrapes (not for load).
struct Http {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    fn new() -> Http {
        Http {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a tokio runtime"),
            client: reqwest::Client::new(),
        }
    }

    fn post(&self, url: &str, body: String) -> Result<StatusCode, String> {
        self.runtime.block_on(async {
            let response = self.client.post(url).body(body).send().await;
            response.map(|r| r.status()).map_err(|e| e.to_string())
        })
    }

    fn get(
        &self,
        url: &str,
        accept_encoding: Option<&str>,
    ) -> Result<(StatusCode, HeaderMap, Bytes), String> {
        self.runtime.block_on(async {
            let mut request = self.client.get(url).timeout(Duration::from_secs(2));
            if let Some(accept) = accept_encoding {
                request = request.header("accept-encoding", accept);
            }
            let response = request.send().await.map_err(|e| e.to_string())?;
            let (status, headers) = (response.status(), response.headers().clone());
            let body = response.bytes().await.map_err(|e| e.to_string())?;
            Ok((status, headers, body))
        })
    }
}
