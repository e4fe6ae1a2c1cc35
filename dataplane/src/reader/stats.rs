//! Publishes this reader's cache figures into L3 for the operator.
//!
//! The operator shows a bridge's hit ratio and data age in `kubectl get
//! cachebridges`. Rather than scraping every reader pod, it reads one hash
//! per bridge from Redis (`{prefix}stats:readers`), where each reader keeps
//! one field (its pod name) holding a small JSON document with the time it
//! was written (`at`), refreshed every few seconds. One hash, rather than
//! one key per reader, lets the operator find every report without SCAN,
//! which the bridge's ACL user may not run: SCAN would list every key name
//! on a shared server, other bridges' included. Redis 7.0 has no per-field
//! expiry: the operator ignores and prunes fields older than
//! [`REPORT_EXPIRES_AFTER`], and the whole hash expires that long after the
//! last report, so a bridge whose readers are all gone leaves nothing behind.

use super::Reader;
use crate::cache::envelope;
use crate::keys::logical;
use crate::metrics::{Outcome, Tier};
use std::time::{Duration, SystemTime};

/// How often the figures are refreshed.
pub const REPORT_EVERY: Duration = Duration::from_secs(10);
/// A report older than this is a reader that is gone (six missed refreshes).
pub const REPORT_EXPIRES_AFTER: Duration = Duration::from_secs(REPORT_EVERY.as_secs() * 6);

/// The reader's field in the stats hash: the pod name in Kubernetes.
pub fn instance_name() -> String {
    std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| format!("reader-{}", std::process::id()))
}

/// The figures document, as the operator expects it.
pub async fn figures(reader: &Reader) -> serde_json::Value {
    let m = &reader.metrics;
    let l1_lookups: u64 = [Outcome::hit, Outcome::miss, Outcome::outdated]
        .into_iter()
        .map(|o| m.lookup_count(Tier::L1, o))
        .sum();
    let ratio = |hits: u64| (l1_lookups > 0).then(|| hits as f64 / l1_lookups as f64);
    let l1_hits = m.lookup_count(Tier::L1, Outcome::hit);
    let l2_hits = m.lookup_count(Tier::L2, Outcome::hit);
    let data_age = match reader.cache.get(logical::OVERVIEW).await {
        Ok(found) => Some(envelope::age(found.env.produced_at(), SystemTime::now()).as_secs_f64()),
        Err(_) => None,
    };
    let at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    serde_json::json!({
        // Share of look-ups answered without going to Redis (L1 or L2).
        "hitRatio": ratio(l1_hits + l2_hits),
        "l1HitRatio": ratio(l1_hits),
        "dataAgeSeconds": data_age,
        "synced": reader.coherence.is_synced(),
        "at": at,
    })
}

/// Refreshes the document forever.
pub async fn report_loop(reader: Reader, instance: String) {
    let hash = reader.cache.keys().reader_stats();
    let mut every = tokio::time::interval(REPORT_EVERY);
    loop {
        every.tick().await;
        let doc = figures(&reader).await.to_string();
        if let Err(e) = reader
            .cache
            .l3()
            .report_stats(&hash, &instance, &doc, REPORT_EXPIRES_AFTER)
            .await
        {
            tracing::debug!(error = %e, "reader figures not stored");
        }
    }
}
