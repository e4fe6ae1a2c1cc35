//! Counters read from the servers: the reader's own count of L1 look-ups,
//! from its `/metrics` (`cachebridge_cache_lookups_total{tier="L1",...}`),
//! so the hit ratio under load is the reader's figure, not the bench's
//! guess; and Redis's count of `GET` calls, to see how many Redis round
//! trips a request really cost.

/// L1 look-ups so far, from one scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct L1Lookups {
    pub hits: u64,
    /// Every answered look-up: hits, misses, outdated, corrupt, errors
    /// (not `skipped`, as in the reader's own `cache_hit_ratio`).
    pub total: u64,
}

const METRIC: &str = "cachebridge_cache_lookups_total";

impl L1Lookups {
    /// From a Prometheus/OpenMetrics text exposition; `None` if the
    /// metric is not there at all.
    pub fn parse(exposition: &str) -> Option<L1Lookups> {
        let mut found = false;
        let mut counts = L1Lookups::default();
        for line in exposition.lines() {
            let Some(rest) = line.strip_prefix(METRIC) else {
                continue;
            };
            let Some((labels, value)) = rest.strip_prefix('{').and_then(|r| r.split_once("} "))
            else {
                continue;
            };
            found = true;
            if label(labels, "tier") != Some("L1") {
                continue;
            }
            let Some(value) = value
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            else {
                continue;
            };
            let value = value as u64;
            match label(labels, "outcome") {
                Some("skipped") | None => {}
                Some(outcome) => {
                    counts.total += value;
                    if outcome == "hit" {
                        counts.hits += value;
                    }
                }
            }
        }
        found.then_some(counts)
    }

    /// The look-ups between an earlier scrape and this one.
    pub fn since(self, earlier: L1Lookups) -> L1Lookups {
        L1Lookups {
            hits: self.hits.saturating_sub(earlier.hits),
            total: self.total.saturating_sub(earlier.total),
        }
    }

    pub fn add(self, other: L1Lookups) -> L1Lookups {
        L1Lookups {
            hits: self.hits + other.hits,
            total: self.total + other.total,
        }
    }

    pub fn ratio(self) -> Option<f64> {
        (self.total > 0).then(|| self.hits as f64 / self.total as f64)
    }
}

/// Calls of `GET` so far, from Redis's `INFO commandstats`
/// (`cmdstat_get:calls=123,usec=…`); 0 before the first `GET`.
pub fn redis_get_calls(info: &str) -> Option<u64> {
    if !info.contains("# Commandstats") {
        return None;
    }
    let calls = info
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_get:calls="))
        .map(|rest| rest.split(',').next().unwrap_or_default().parse().ok());
    calls.unwrap_or(Some(0))
}

/// The value of `name="value"` in a label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim_matches('"'))
    })
}
