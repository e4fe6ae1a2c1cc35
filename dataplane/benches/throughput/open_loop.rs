//! Open-loop load at a fixed rate, for "p99 at half of the maximum load":
//! `wrk` is closed-loop (a slow answer delays the next request, which hides
//! the delay), and Debian has no `wrk2`. Run as this bench executable with
//! a hidden first argument, pinned to the load CPU.
//!
//! Each of N keep-alive connections sends its share of the requests at
//! fixed times (request k of connection c at `(k·N + c) / rate`), and each
//! latency runs from the time the request was *due*, not from when it was
//! sent: a server that stalls is charged for every request that had to
//! wait (no coordinated omission). To start requests on time, a connection
//! sleeps on tokio's millisecond timer until shortly before the due time
//! and then yields in a loop until it has come; the load CPU is the
//! generator's alone, so spinning costs the measured server nothing.

use axum::body::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper::header::{ACCEPT_ENCODING, HOST};
use hyper_util::rt::TokioIo;
use std::process::ExitCode;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Hidden first argument of the bench executable.
pub const COMMAND: &str = "__open-loop";

/// Sleep on the timer until this long before a request is due, then spin.
const SPIN: Duration = Duration::from_micros(1_500);

/// What to send, how fast, for how long.
#[derive(Debug, Clone)]
pub struct Plan {
    pub url: String,
    /// Paths requested in turn instead of the URL's (request k of
    /// connection c asks for path `(k·N + c) mod len`); at most one path
    /// means the URL's own.
    pub paths: Vec<String>,
    pub rate: f64,
    pub connections: usize,
    /// Sent at the rate but not recorded: connections and caches warm up.
    pub warmup: Duration,
    pub measure: Duration,
    /// Sent as `Accept-Encoding` when not empty.
    pub accept_encoding: String,
}

impl Plan {
    /// The hidden command's arguments.
    pub fn args(&self) -> Vec<String> {
        vec![
            COMMAND.into(),
            self.url.clone(),
            format!("{}", self.rate),
            self.connections.to_string(),
            self.warmup.as_millis().to_string(),
            self.measure.as_millis().to_string(),
            self.paths.join("\n"),
            self.accept_encoding.clone(),
        ]
    }

    pub fn parse(args: &[String]) -> Result<Plan, String> {
        let [
            url,
            rate,
            connections,
            warmup,
            measure,
            paths,
            accept_encoding,
        ] = args
        else {
            return Err(format!(
                "usage: {COMMAND} URL RATE CONNECTIONS WARMUP_MS MEASURE_MS PATHS (one per line) ACCEPT_ENCODING"
            ));
        };
        let number = |s: &String| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
        Ok(Plan {
            url: url.clone(),
            paths: paths.split('\n').map(str::to_owned).collect(),
            rate: rate.parse().map_err(|e| format!("{rate}: {e}"))?,
            connections: number(connections)? as usize,
            warmup: Duration::from_millis(number(warmup)?),
            measure: Duration::from_millis(number(measure)?),
            accept_encoding: accept_encoding.clone(),
        })
    }
}

/// The result line the generator prints, read back by the bench.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FixedRate {
    /// Requests due in the measured window, and how many were answered.
    pub due: u64,
    pub answered: u64,
    /// Answers other than 2xx, and failed connections.
    pub errors: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl FixedRate {
    pub fn line(&self) -> String {
        format!(
            "due={} answered={} errors={} p50={} p99={} max={}",
            self.due, self.answered, self.errors, self.p50_ns, self.p99_ns, self.max_ns
        )
    }

    /// Reads [`line`](Self::line) from the generator's output.
    pub fn parse(text: &str) -> Option<FixedRate> {
        let line = text.lines().rev().find(|l| l.starts_with("due="))?;
        let value = |key: &str| -> Option<u64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))?
                .parse()
                .ok()
        };
        Some(FixedRate {
            due: value("due")?,
            answered: value("answered")?,
            errors: value("errors")?,
            p50_ns: value("p50")?,
            p99_ns: value("p99")?,
            max_ns: value("max")?,
        })
    }

    /// Most due requests were answered and none failed: the generator kept
    /// the rate and the figures describe it.
    pub fn kept_rate(&self) -> bool {
        self.errors == 0 && self.answered * 100 >= self.due * 97
    }
}

/// Runs the plan given as arguments; prints the result line.
pub fn main(args: &[String]) -> ExitCode {
    let plan = match Plan::parse(args) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("open-loop generator: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(plan)) {
        Ok(result) => {
            println!("{}", result.line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("open-loop generator: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(plan: Plan) -> Result<FixedRate, String> {
    let target = Target::parse(&plan.url)?;
    let mut connections = Vec::with_capacity(plan.connections);
    for _ in 0..plan.connections {
        connections.push(Connection::open(&target).await?);
    }
    let start = Instant::now() + Duration::from_millis(10);
    let tasks: Vec<_> = connections
        .into_iter()
        .enumerate()
        .map(|(index, connection)| {
            let plan = plan.clone();
            tokio::spawn(connection.drive(plan, index, start))
        })
        .collect();
    let mut hist = histogram();
    let mut errors = 0;
    for task in tasks {
        let (h, e) = task.await.map_err(|e| e.to_string())?;
        hist.add(h).map_err(|e| e.to_string())?;
        errors += e;
    }
    let due = (plan.rate * plan.measure.as_secs_f64()).round() as u64;
    Ok(FixedRate {
        due,
        answered: hist.len(),
        errors,
        p50_ns: hist.value_at_quantile(0.5),
        p99_ns: hist.value_at_quantile(0.99),
        max_ns: hist.max(),
    })
}

/// Host and path of a plain `http://HOST:PORT/PATH` URL.
pub struct Target {
    pub authority: String,
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs"))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        Ok(Target {
            authority: authority.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    send: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    authority: String,
    path: String,
}

impl Connection {
    async fn open(target: &Target) -> Result<Connection, String> {
        let stream = TcpStream::connect(&target.authority)
            .await
            .map_err(|e| format!("connect {}: {e}", target.authority))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        Ok(Connection {
            send,
            authority: target.authority.clone(),
            path: target.path.clone(),
        })
    }

    /// Sends this connection's share of the plan; returns the latencies
    /// of the measured window and the number of errors.
    async fn drive(mut self, plan: Plan, index: usize, start: Instant) -> (Histogram<u64>, u64) {
        let mut hist = histogram();
        let mut errors = 0;
        let measured_from = start + plan.warmup;
        let end = measured_from + plan.measure;
        for k in 0.. {
            let slot = (k * plan.connections + index) as f64;
            let due = start + Duration::from_secs_f64(slot / plan.rate);
            if due >= end {
                break;
            }
            wait_until(due).await;
            let path = match plan.paths.as_slice() {
                [] | [_] => None,
                paths => Some(paths[(k * plan.connections + index) % paths.len()].as_str()),
            };
            let ok = self.get(path, &plan.accept_encoding).await;
            let took = Instant::now() - due;
            if !ok {
                errors += 1;
            } else if due >= measured_from {
                hist.saturating_record(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
            }
        }
        (hist, errors)
    }

    /// One GET (of `path`, or the target's), read to the end; whether it
    /// was answered 2xx.
    async fn get(&mut self, path: Option<&str>, accept_encoding: &str) -> bool {
        if self.send.ready().await.is_err() {
            return false;
        }
        let mut request =
            Request::get(path.unwrap_or(self.path.as_str())).header(HOST, self.authority.as_str());
        if !accept_encoding.is_empty() {
            request = request.header(ACCEPT_ENCODING, accept_encoding);
        }
        let request = request
            .body(Empty::<Bytes>::new())
            .expect("a valid request");
        match self.send.send_request(request).await {
            Ok(response) => {
                let success = response.status().is_success();
                success && response.into_body().collect().await.is_ok()
            }
            Err(_) => false,
        }
    }
}

async fn wait_until(due: Instant) {
    if let Some(coarse) = due.checked_sub(SPIN)
        && Instant::now() < coarse
    {
        tokio::time::sleep_until(coarse).await;
    }
    while Instant::now() < due {
        tokio::task::yield_now().await;
    }
}

/// 1 µs to 1 min at 3 significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1_000, 60_000_000_000, 3).expect("valid histogram bounds")
}
