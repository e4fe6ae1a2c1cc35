//! Request load for the tests that break things under traffic (failover,
//! faults): readers asked for every symbol in a loop with every answer
//! checked, and a writer fed ticks in a loop.

use super::{client, eventually, tick};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;

/// The symbols the feed publishes and the load asks for.
pub const SYMBOLS: [&str; 4] = ["AAA", "BBB", "CCC", "DDD"];

/// What the request load saw.
#[derive(Default, Debug)]
pub struct Seen {
    pub ok: u64,
    pub stale: u64,
    pub failures: Vec<String>,
    pub backwards: Vec<String>,
    /// Last version answered per (reader, path).
    pub last: HashMap<(usize, String), u64>,
}

impl Seen {
    pub fn shared() -> Arc<Mutex<Seen>> {
        Arc::new(Mutex::new(Seen::default()))
    }
}

/// Requests every symbol's ticker from a reader in a loop, at most
/// `requests` times, checking each answer: a 2xx with a version never
/// older than the last one this reader gave for the path.
pub fn load(reader: usize, base: String, seen: Arc<Mutex<Seen>>, requests: u64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = client();
        let mut sent = 0u64;
        while sent < requests {
            for symbol in SYMBOLS {
                sent += 1;
                let path = format!("/api/v1/market/tickers/{symbol}");
                let answer = http.get(format!("{base}{path}")).send().await;
                check(reader, path, answer, &mut seen.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

fn check(reader: usize, path: String, answer: reqwest::Result<reqwest::Response>, seen: &mut Seen) {
    let response = match answer {
        Ok(r) if r.status().is_success() => r,
        other => {
            let why = other.map_or_else(|e| e.to_string(), |r| r.status().to_string());
            seen.failures.push(format!("reader {reader} {path}: {why}"));
            return;
        }
    };
    seen.ok += 1;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if header("x-data-stale") == "true" {
        seen.stale += 1;
    }
    let version: u64 = header("etag")
        .trim_matches('"')
        .trim_start_matches('v')
        .parse()
        .expect("a single value's ETag is its version");
    let slot = (reader, path);
    let last = seen.last.get(&slot).copied().unwrap_or(0);
    if version < last {
        let msg = format!("reader {} {}: {version} after {last}", slot.0, slot.1);
        seen.backwards.push(msg);
    }
    seen.last.insert(slot, version.max(last));
}

/// Posts ticks for every symbol to the writer in a loop.
pub fn feed(ingest: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        let http = client();
        for n in 1u64.. {
            let body: Vec<String> = SYMBOLS
                .iter()
                .map(|s| tick(s, 100.0 + (n % 50) as f64, n))
                .collect();
            // Refusals while a tier or the writer is down are fine: the
            // writer holds ticks in its book.
            let _ = http.post(&ingest).body(body.join("\n")).send().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}

/// The last price a reader serves for a symbol, if it serves one.
pub async fn price_on(base: &str, symbol: &str) -> Option<f64> {
    let url = format!("{base}/api/v1/market/tickers/{symbol}");
    let body: serde_json::Value = client().get(url).send().await.ok()?.json().await.ok()?;
    body["data"]["last"].as_f64()
}

/// Awaits a reader serving every symbol of [`SYMBOLS`], so that a load
/// started afterwards asks only for keys that were served before.
pub async fn every_symbol_served(base: &str) {
    for symbol in SYMBOLS {
        eventually("every symbol served", || async move {
            price_on(base, symbol).await.map(|_| ())
        })
        .await;
    }
}
