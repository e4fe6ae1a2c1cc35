//! Closed-loop load from `wrk` (Debian package `wrk`): N connections, each
//! sending its next request as soon as the previous answer arrived, for a
//! fixed time. What it finds is the server's maximum throughput; its
//! `--latency` percentiles are latencies at that saturation.

use std::process::Command;
use std::time::Duration;

/// One `wrk` run's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Saturation {
    /// Requests answered in the run.
    pub requests: u64,
    pub requests_per_sec: f64,
    pub p50_ns: u64,
    pub p99_ns: u64,
}

/// Why a `wrk` run cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WrkError {
    #[error("`wrk` is not installed: install the Debian package `wrk` (apt-get install wrk)")]
    Missing,
    #[error("wrk failed: {0}")]
    Failed(String),
    #[error("{0} of wrk's responses were not 2xx/3xx: the benchmark would measure errors")]
    Errors(u64),
    #[error("wrk's output has no {0}: {1}")]
    Unparsed(&'static str, String),
}

/// `wrk --version` works (it exits 1 but prints its banner).
pub fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).starts_with("wrk "))
}

/// The arguments of one run: one thread, `connections`, `duration`.
pub fn args(connections: usize, duration: Duration, url: &str) -> Vec<String> {
    vec![
        "-t1".into(),
        format!("-c{connections}"),
        format!("-d{}s", duration.as_secs().max(1)),
        "--latency".into(),
        url.into(),
    ]
}

/// A wrk script that sends the paths in turn, one request after another
/// (wrk's `-t1` runs one script for all connections, so requests in flight
/// at once are consecutive paths).
pub fn cycle_script(paths: &[String]) -> String {
    let list: Vec<String> = paths.iter().map(|p| format!("{p:?}")).collect();
    format!(
        "local paths = {{{}}}\n\
         local i = 0\n\
         request = function()\n\
         \x20 i = i % #paths + 1\n\
         \x20 return wrk.format(nil, paths[i])\n\
         end\n",
        list.join(", ")
    )
}

/// Runs `command` (wrk with [`args`], pinned or not) and reads its result.
pub fn run(mut command: Command) -> Result<Saturation, WrkError> {
    let out = command.output().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => WrkError::Missing,
        _ => WrkError::Failed(e.to_string()),
    })?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(WrkError::Failed(format!("{}: {text}{err}", out.status)));
    }
    parse(&text)
}

/// Reads wrk's `--latency` report.
pub fn parse(text: &str) -> Result<Saturation, WrkError> {
    let unparsed = |what| WrkError::Unparsed(what, text.to_owned());
    if let Some(errors) = field(text, "Non-2xx or 3xx responses:") {
        let errors = errors.parse().map_err(|_| unparsed("error count"))?;
        return Err(WrkError::Errors(errors));
    }
    // "  66154 requests in 3.00s, 30.78MB read"
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| unparsed("request count"))?;
    let rate = field(text, "Requests/sec:")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| unparsed("Requests/sec"))?;
    let p50 = field(text, "50%")
        .and_then(duration_ns)
        .ok_or_else(|| unparsed("50% latency"))?;
    let p99 = field(text, "99%")
        .and_then(duration_ns)
        .ok_or_else(|| unparsed("99% latency"))?;
    Ok(Saturation {
        requests,
        requests_per_sec: rate,
        p50_ns: p50,
        p99_ns: p99,
    })
}

/// The first word after `label` on the first line starting with it.
fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(label))
        .and_then(|rest| rest.split_whitespace().next())
}

/// wrk's durations: `812.00us`, `1.41ms`, `2.00s`.
fn duration_ns(text: &str) -> Option<u64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e9)
    } else {
        return None;
    };
    let value: f64 = number.parse().ok()?;
    Some((value * scale).round() as u64)
}
