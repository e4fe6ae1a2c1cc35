//! The reader's own count of L1 look-ups, read from its `/metrics`
//! (`cachebridge_cache_lookups_total{tier="L1",outcome=...}`), so the hit
//! ratio under load is the reader's figure, not the bench's guess.

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
            let Some(value) = value.split_whitespace().next().and_then(|v| v.parse::<f64>().ok())
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

/// The value of `name="value"` in a label set.
fn label<'a>(labels: &'a str, name: &str) -> Option<&'a str> {
    labels.split(',').find_map(|pair| {
        let (key, value) = pair.trim().split_once('=')?;
        (key == name).then(|| value.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP cachebridge_cache_lookups Look-ups per cache tier by outcome.
# TYPE cachebridge_cache_lookups counter
cachebridge_cache_lookups_total{tier="L1",outcome="hit"} 9990
cachebridge_cache_lookups_total{outcome="miss",tier="L1"} 10
cachebridge_cache_lookups_total{tier="L1",outcome="skipped"} 5
cachebridge_cache_lookups_total{tier="L2",outcome="hit"} 10
# EOF
"#;

    #[test]
    fn counts_l1_lookups() {
        let counts = L1Lookups::parse(TEXT).unwrap();
        assert_eq!(counts, L1Lookups { hits: 9990, total: 10_000 });
        assert_eq!(counts.ratio(), Some(0.999));
        let earlier = L1Lookups { hits: 990, total: 1_000 };
        assert_eq!(counts.since(earlier), L1Lookups { hits: 9000, total: 9000 });
    }

    #[test]
    fn missing_metric_is_none() {
        assert_eq!(L1Lookups::parse("# EOF\n"), None);
        assert_eq!(L1Lookups::default().ratio(), None);
    }
}
