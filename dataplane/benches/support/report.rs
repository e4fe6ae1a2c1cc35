//! What the benchmarks share to write their reports: the machine line,
//! number formatting, and replacing one bench's section of `BENCHMARKS.md`.
//!
//! Each bench owns the part of `BENCHMARKS.md` between its marker lines
//! (`<!-- NAME:begin -->` … `<!-- NAME:end -->`) and rewrites only that, so
//! benches run separately (and by different people) never erase each
//! other's figures. A file without the markers gets the section appended.

#![allow(dead_code)]

use std::path::Path;
use time::OffsetDateTime;

/// `BENCHMARKS.md` next to the dataplane's `Cargo.toml`.
pub const DOCUMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/BENCHMARKS.md");

/// Prints the report, and with `CACHEBRIDGE_BENCH_WRITE=1` also stores it
/// as section `name` of `BENCHMARKS.md` (an ordinary run leaves the tree
/// clean).
pub fn publish(name: &str, printed: &str, section: &str) {
    println!("{printed}");
    if std::env::var_os("CACHEBRIDGE_BENCH_WRITE").is_none() {
        eprintln!("(set CACHEBRIDGE_BENCH_WRITE=1 to store this in {DOCUMENT})");
        return;
    }
    match write_section(Path::new(DOCUMENT), name, section) {
        Ok(()) => eprintln!("wrote the {name} section of {DOCUMENT}"),
        Err(e) => eprintln!("could not write {DOCUMENT}: {e}"),
    }
}

/// Replaces (or appends) section `name` of the file at `path`.
pub fn write_section(path: &Path, name: &str, section: &str) -> std::io::Result<()> {
    let current = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    std::fs::write(path, replace_section(&current, name, section))
}

/// `document` with the text between `name`'s markers replaced by `section`;
/// everything outside them, other sections included, is kept byte for byte.
pub fn replace_section(document: &str, name: &str, section: &str) -> String {
    let begin = format!("<!-- {name}:begin -->");
    let end = format!("<!-- {name}:end -->");
    let block = format!("{begin}\n{}\n{end}", section.trim_end());
    let found = document.find(&begin).and_then(|b| {
        let e = document[b..].find(&end)?;
        Some((b, b + e + end.len()))
    });
    match found {
        Some((b, e)) => format!("{}{block}{}", &document[..b], &document[e..]),
        None if document.trim().is_empty() => format!("{block}\n"),
        None => format!("{}\n\n{block}\n", document.trim_end()),
    }
}

/// One line describing where the figures were taken; `tools` are extra
/// `(program, version flag)` pairs to name besides Redis and Memcached.
pub fn machine(tools: &[(&str, &str)]) -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let profile = if cfg!(debug_assertions) {
        "debug build (unoptimized: figures not representative)"
    } else {
        "optimized build (`cargo bench` profile)"
    };
    let now = OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut versions = vec![
        tool_version("redis-server", "--version"),
        tool_version("memcached", "-V"),
    ];
    versions.extend(tools.iter().map(|(p, f)| tool_version(p, f)));
    format!(
        "Machine: nproc {cpus}, {model}, Linux {}; {profile}; {}; load average {} (other work on the machine); {now}",
        kernel.trim(),
        versions.join(", "),
        load_average(),
    )
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let averages: Vec<&str> = text.split_whitespace().take(3).collect();
    if averages.is_empty() {
        "unknown".to_owned()
    } else {
        averages.join(" ")
    }
}

/// "program x.y.z" from the program's version output (stdout or stderr).
pub fn tool_version(program: &str, flag: &str) -> String {
    let output = std::process::Command::new(program).arg(flag).output();
    let text = output.map(|o| {
        let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&o.stderr));
        text
    });
    let text = text.unwrap_or_default();
    let version = match program {
        "redis-server" => text
            .split_whitespace()
            .find_map(|w| w.strip_prefix("v="))
            .map(str::to_owned),
        // "memcached 1.6.18", "wrk debian/4.1.0-3+b2 [epoll] Copyright …"
        _ => text
            .split_whitespace()
            .nth(1)
            .map(|v| v.rsplit('/').next().unwrap_or(v))
            .filter(|v| v.starts_with(|c: char| c.is_ascii_digit()))
            .map(str::to_owned),
    };
    match version {
        Some(v) => format!("{program} {v}"),
        None => format!("{program} (version unknown)"),
    }
}

/// Nanoseconds as microseconds, with more decimals for small values.
pub fn micros(nanos: u64) -> String {
    let us = nanos as f64 / 1_000.0;
    match us {
        x if x < 10.0 => format!("{x:.2}"),
        x if x < 100.0 => format!("{x:.1}"),
        x => thousands(x),
    }
}

/// A whole number with comma grouping: 12,345.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.round());
    let (sign, digits) = match digits.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", digits.as_str()),
    };
    let mut out = sign.to_owned();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A byte count for people: 333 B, 11.2 KiB.
pub fn size(bytes: usize) -> String {
    if bytes < 1024 {
        format!("{bytes} B")
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// The median of some measurements (the mean of the middle two for an
/// even count); `None` when there are none.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    Some(if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    })
}
