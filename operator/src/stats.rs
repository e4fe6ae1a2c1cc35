//! Cache figures for `status.cache`, from what the readers report in Redis.
//!
//! Each reader stores a small JSON document at
//! `{keyPrefix}stats:reader:{podName}` with a 60 s expiry; a reader that is
//! gone drops out by itself. For a ready bridge, at most every
//! [`REFRESH_EVERY`], the operator SCANs those keys (as the bridge's own ACL
//! user, with the password from the bridge's Secret), averages them with the
//! pure [`aggregate`], and the status shows the result. A failure to read
//! is logged and leaves the previous figures (with their `updatedAt`): it
//! never fails a reconcile.

use crate::desired::{self, config};
use crate::error::{Error, Result};
use crate::secrets;
use crate::validate::Bridge;
use cachebridge_api::v1alpha1::{CacheBridgeStatus, CacheFigures};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use serde::Deserialize;
use std::time::Duration;

/// How old figures may get before the next reconcile refreshes them; the
/// reconcile of a ready bridge requeues every 30 s, so figures are never
/// older than that.
pub const REFRESH_EVERY: Duration = Duration::from_secs(25);
/// How long reading the figures may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// One reader's document.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReaderReport {
    /// Lookups answered from L1 or L2 over all lookups, 0..1; none before
    /// the first lookup.
    #[serde(default)]
    pub hit_ratio: Option<f64>,
    #[serde(default)]
    pub l1_hit_ratio: Option<f64>,
    #[serde(default)]
    pub data_age_seconds: Option<f64>,
    #[serde(default)]
    pub at: Option<String>,
}

/// Where and as whom to read.
pub struct RedisTarget {
    pub url: String,
    pub username: Option<String>,
    /// Kept out of `Debug`: this struct may end up in a log line.
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &self.url)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Whether the stored figures are old enough to refresh.
pub fn due(old: Option<&CacheBridgeStatus>, now: Timestamp) -> bool {
    let updated = old
        .and_then(|s| s.cache.as_ref())
        .and_then(|c| c.updated_at.as_deref())
        .and_then(|t| t.parse::<Timestamp>().ok());
    match updated {
        Some(at) => now.duration_since(at).unsigned_abs() >= REFRESH_EVERY,
        None => true,
    }
}

/// Averages the reports. Readers that have not served a lookup yet report
/// no ratio and are left out of that average rather than counted as 0 %.
pub fn aggregate(reports: &[ReaderReport], now: Timestamp) -> CacheFigures {
    CacheFigures {
        hit_ratio: mean(reports.iter().filter_map(|r| r.hit_ratio)).map(format_ratio),
        data_age: mean(reports.iter().filter_map(|r| r.data_age_seconds)).map(format_age),
        updated_at: Some(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        reporting_readers: i32::try_from(reports.len()).unwrap_or(i32::MAX),
    }
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values
        .filter(|v| v.is_finite())
        .fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

/// `0.987` → `98.7%`.
pub fn format_ratio(ratio: f64) -> String {
    format!("{:.1}%", ratio.clamp(0.0, 1.0) * 100.0)
}

/// `0.42` → `0.4s`, `12.3` → `12s`, `754` → `12m34s`.
pub fn format_age(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 10.0 {
        format!("{seconds:.1}s")
    } else if seconds < 60.0 {
        format!("{seconds:.0}s")
    } else {
        let whole = seconds.round() as u64;
        format!("{}m{}s", whole / 60, whole % 60)
    }
}

/// The bridge's Redis at `url` (the primary as last observed), its ACL
/// user and the password from its Secret.
pub async fn target(client: &Client, b: &Bridge, url: String) -> Result<RedisTarget> {
    let (secret, key) = desired::password_secret(b);
    let password = secrets::read_key(client, &b.namespace, &secret, &key)
        .await?
        .ok_or_else(|| Error::Stats(format!("Secret {secret} has no key {key:?}")))?;
    Ok(RedisTarget {
        url,
        username: config::redis_username(b),
        password: Some(password),
    })
}

/// SCANs the readers' documents under `key_prefix` and parses them;
/// documents that do not parse are skipped (and logged).
pub async fn read_reports(target: &RedisTarget, key_prefix: &str) -> Result<Vec<ReaderReport>> {
    tokio::time::timeout(TIMEOUT, scan_reports(target, key_prefix))
        .await
        .map_err(|_| Error::Stats(format!("no answer from {} within {TIMEOUT:?}", target.url)))?
}

async fn scan_reports(target: &RedisTarget, key_prefix: &str) -> Result<Vec<ReaderReport>> {
    let stats_err = |e: redis::RedisError| Error::Stats(format!("{}: {e}", target.url));
    let mut conn = open(target)
        .map_err(stats_err)?
        .get_multiplexed_async_connection()
        .await
        .map_err(stats_err)?;
    let pattern = format!("{key_prefix}stats:reader:*");
    let mut keys = Vec::new();
    let mut cursor: u64 = 0;
    loop {
        let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(100)
            .query_async(&mut conn)
            .await
            .map_err(stats_err)?;
        keys.extend(batch);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut reports = Vec::with_capacity(keys.len());
    for key in keys {
        // A document may expire between SCAN and GET: then there is nothing to count.
        let doc: Option<String> = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .map_err(stats_err)?;
        match doc.map(|d| serde_json::from_str::<ReaderReport>(&d)) {
            Some(Ok(report)) => reports.push(report),
            Some(Err(e)) => {
                tracing::debug!(key, error = %e, "skipping a reader document that does not parse")
            }
            None => {}
        }
    }
    Ok(reports)
}

fn open(target: &RedisTarget) -> redis::RedisResult<redis::Client> {
    client(
        &target.url,
        target.username.as_deref(),
        target.password.as_deref(),
    )
}

/// A client for `url` with credentials set apart from the URL (a password
/// never has to be escaped into, or logged with, a URL).
pub fn client(
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = username {
        settings = settings.set_username(user);
    }
    if let Some(password) = password {
        settings = settings.set_password(password);
    }
    redis::Client::open(info.set_redis_settings(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(hit: Option<f64>, age: Option<f64>) -> ReaderReport {
        ReaderReport {
            hit_ratio: hit,
            data_age_seconds: age,
            ..Default::default()
        }
    }

    #[test]
    fn aggregate_averages_and_formats() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let figures = aggregate(
            &[
                report(Some(0.99), Some(0.3)),
                report(Some(0.97), Some(0.5)),
                report(None, None),
            ],
            now,
        );
        assert_eq!(figures.hit_ratio.as_deref(), Some("98.0%"));
        assert_eq!(figures.data_age.as_deref(), Some("0.4s"));
        assert_eq!(figures.reporting_readers, 3);
        assert_eq!(figures.updated_at.as_deref(), Some("2027-01-15T08:00:00Z"));
        let none = aggregate(&[], now);
        assert_eq!(
            (none.hit_ratio, none.data_age, none.reporting_readers),
            (None, None, 0)
        );
    }

    #[test]
    fn ages_read_naturally() {
        assert_eq!(format_age(0.42), "0.4s");
        assert_eq!(format_age(12.3), "12s");
        assert_eq!(format_age(754.0), "12m34s");
        assert_eq!(format_ratio(1.2), "100.0%");
    }

    #[test]
    fn figures_are_due_after_the_refresh_interval() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        assert!(due(None, now));
        let status = |at: &str| CacheBridgeStatus {
            cache: Some(CacheFigures {
                updated_at: Some(at.into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(!due(Some(&status("2027-01-15T07:59:50Z")), now));
        assert!(due(Some(&status("2027-01-15T07:59:30Z")), now));
    }
}
