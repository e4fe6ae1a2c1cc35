//! Cache figures for `status.cache`, from what the readers report in Redis.
//!
//! Each reader keeps a small JSON document, stamped with the time it wrote
//! it, as its own field (its pod name) of one hash per bridge,
//! `{keyPrefix}stats:readers` (see the dataplane's `reader::stats`). For a
//! ready bridge, at most every [`REFRESH_EVERY`], the operator reads that
//! hash with one HGETALL (as the bridge's own ACL user, with the password
//! from the bridge's Secret: no SCAN, which would list other bridges' key
//! names), averages the fresh reports with the pure [`aggregate`], and the
//! status shows the result. A failure to read is logged and leaves the
//! previous figures (with their `updatedAt`): it never fails a reconcile.
//!
//! Redis 7.0 has no per-field expiry, so the operator, which reads every
//! field anyway, is the one that prunes: reports older than the readers'
//! `REPORT_EXPIRES_AFTER` (a reader that is gone) are left out and deleted
//! ([`sort_reports`]). Pruning here rather than in the readers keeps the
//! readers' 10 s report to one HSET, and gives each hash one pruner (the
//! leader) instead of every reader racing the others.
//!
//! Figures are read on every refresh but written only when they change
//! meaningfully ([`settle`]): the hit ratio by at least 0.1 percentage point,
//! the number of reporting readers, or the data age moving to another coarse
//! bucket (one bound of which is the bridge's staleness budget). So a steady
//! bridge writes no status at all, and `updatedAt` says when the figures last
//! changed, not when they were last read.

use crate::desired::{self, config};
use crate::error::{Error, Result};
use crate::secrets::Secrets;
use crate::validate::Bridge;
use cachebridge_api::v1alpha1::CacheFigures;
use cachebridge_dataplane::keys::Keys;
use cachebridge_dataplane::reader::stats::REPORT_EXPIRES_AFTER;
use k8s_openapi::jiff::Timestamp;
use serde::Deserialize;
use std::collections::HashMap;
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

/// Whether figures last read at `last_read` (never: `None`) are due again.
pub fn due(last_read: Option<Timestamp>, now: Timestamp) -> bool {
    match last_read {
        Some(at) => now.duration_since(at).unsigned_abs() >= REFRESH_EVERY,
        None => true,
    }
}

/// The smallest hit-ratio change worth a status write: 0.1 percentage point.
pub const HIT_RATIO_STEP: f64 = 0.001;
/// Bounds of the coarse data-age buckets, besides the staleness budget.
const AGE_BOUNDS: [f64; 4] = [1.0, 10.0, 60.0, 600.0];

/// Averages the reports. Readers that have not served a lookup yet report
/// no ratio and are left out of that average rather than counted as 0 %.
/// The data age is shown as its coarse bucket (see [`age_bucket`]).
pub fn aggregate(
    reports: &[ReaderReport],
    staleness_budget: Duration,
    now: Timestamp,
) -> CacheFigures {
    CacheFigures {
        hit_ratio: mean(reports.iter().filter_map(|r| r.hit_ratio)).map(format_ratio),
        data_age: mean(reports.iter().filter_map(|r| r.data_age_seconds))
            .map(|age| age_bucket(age, staleness_budget)),
        updated_at: Some(now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
        reporting_readers: i32::try_from(reports.len()).unwrap_or(i32::MAX),
    }
}

/// The figures the status should show after reading `reports`: fresh ones
/// when they differ meaningfully from `old`, else `old` unchanged
/// (timestamp included), so that nothing is written. The hit ratio is
/// compared unrounded against the one shown, so a ratio hovering at a
/// rounding boundary does not flap.
pub fn settle(
    old: Option<&CacheFigures>,
    reports: &[ReaderReport],
    staleness_budget: Duration,
    now: Timestamp,
) -> CacheFigures {
    let fresh = aggregate(reports, staleness_budget, now);
    let ratio = mean(reports.iter().filter_map(|r| r.hit_ratio));
    match old {
        Some(old) if !meaningful_change(old, &fresh, ratio) => old.clone(),
        _ => fresh,
    }
}

fn meaningful_change(old: &CacheFigures, fresh: &CacheFigures, ratio: Option<f64>) -> bool {
    let shown = old.hit_ratio.as_deref().and_then(parse_ratio);
    let ratio_moved = match (shown, ratio) {
        // A rounding error below the step must not count as a step.
        (Some(a), Some(b)) => (a - b).abs() >= HIT_RATIO_STEP - 1e-9,
        (a, b) => a.is_some() != b.is_some(),
    };
    ratio_moved
        || old.reporting_readers != fresh.reporting_readers
        || old.data_age != fresh.data_age
}

/// `98.7%` → `0.987`.
fn parse_ratio(shown: &str) -> Option<f64> {
    shown
        .strip_suffix('%')?
        .parse::<f64>()
        .ok()
        .map(|p| p / 100.0)
}

/// The data age as a coarse bucket: `<1s`, `<10s`, `<1m`, `<10m` or
/// `>=10m`, with the staleness budget as one more bound (`<30s` for a 30 s
/// budget), so crossing the budget always shows. Never the exact age: that
/// changes on every read, and the status would be written every time.
pub fn age_bucket(seconds: f64, staleness_budget: Duration) -> String {
    let budget = staleness_budget.as_secs_f64();
    let mut bounds: Vec<f64> = AGE_BOUNDS.to_vec();
    if budget > 0.0 && !bounds.iter().any(|b| (b - budget).abs() < 1e-9) {
        bounds.push(budget);
    }
    bounds.sort_by(f64::total_cmp);
    let seconds = seconds.max(0.0);
    match bounds.iter().find(|b| seconds < **b) {
        Some(bound) => format!("<{}", format_bound(*bound)),
        None => format!(">={}", format_bound(bounds[bounds.len() - 1])),
    }
}

/// `0.5` → `0.5s`, `30` → `30s`, `60` → `1m`, `90` → `1m30s`.
fn format_bound(seconds: f64) -> String {
    if seconds < 1.0 {
        return format!("{seconds}s");
    }
    let whole = seconds.round() as u64;
    match (whole / 60, whole % 60) {
        (0, s) => format!("{s}s"),
        (m, 0) => format!("{m}m"),
        (m, s) => format!("{m}m{s}s"),
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

/// The bridge's Redis at `url` (the primary as last observed), its ACL
/// user and the password from its Secret.
pub async fn target(secrets: &Secrets, b: &Bridge, url: String) -> Result<RedisTarget> {
    let (secret, key) = desired::password_secret(b);
    let password = secrets
        .read_key(&b.namespace, &secret, &key)
        .await?
        .ok_or_else(|| Error::Stats(format!("Secret {secret} has no key {key:?}")))?;
    Ok(RedisTarget {
        url,
        username: config::redis_username(b),
        password: Some(password),
    })
}

/// The readers' fresh reports for the bridge with `key_prefix`, read from
/// its stats hash at `now`; stale or unreadable fields are pruned.
pub async fn read_reports(
    target: &RedisTarget,
    key_prefix: &str,
    now: Timestamp,
) -> Result<Vec<ReaderReport>> {
    tokio::time::timeout(TIMEOUT, read_hash(target, key_prefix, now))
        .await
        .map_err(|_| Error::Stats(format!("no answer from {} within {TIMEOUT:?}", target.url)))?
}

async fn read_hash(
    target: &RedisTarget,
    key_prefix: &str,
    now: Timestamp,
) -> Result<Vec<ReaderReport>> {
    let stats_err = |e: redis::RedisError| Error::Stats(format!("{}: {e}", target.url));
    let mut conn = connect(target, &target.url).await.map_err(stats_err)?;
    let hash = Keys::new(key_prefix).reader_stats();
    let mut hgetall = redis::cmd("HGETALL");
    hgetall.arg(&hash);
    let fields: HashMap<String, String> = match hgetall.query_async(&mut conn).await {
        Err(e) if e.redirect_node().is_some() => {
            // A Redis Cluster node that does not hold the bridge's slot
            // names the one that does: read (and prune) there.
            conn = follow_redirect(target, &e).await.map_err(stats_err)?;
            hgetall.query_async(&mut conn).await.map_err(stats_err)?
        }
        other => other.map_err(stats_err)?,
    };
    let sorted = sort_reports(fields, now);
    if !sorted.stale.is_empty() {
        // A reader that reports again between HGETALL and HDEL loses that
        // one report, and is back 10 s later: not worth a script.
        let pruned: redis::RedisResult<i64> = redis::cmd("HDEL")
            .arg(&hash)
            .arg(&sorted.stale)
            .query_async(&mut conn)
            .await;
        if let Err(e) = pruned {
            tracing::debug!(hash, error = %e, "stale reader reports not pruned");
        }
    }
    Ok(sorted.fresh)
}

async fn connect(
    target: &RedisTarget,
    url: &str,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    client(url, target.username.as_deref(), target.password.as_deref())?
        .get_multiplexed_async_connection()
        .await
}

/// A connection to the node a MOVED or ASK answer names (same user and
/// password: the ACL user must exist on every node of a cluster). After
/// ASK (a slot being migrated) the next command must be preceded by ASKING.
async fn follow_redirect(
    target: &RedisTarget,
    redirect: &redis::RedisError,
) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
    let (node, _slot) = redirect.redirect_node().unwrap_or_default();
    let mut conn = connect(target, &format!("redis://{node}")).await?;
    if redirect.code() == Some("ASK") {
        redis::cmd("ASKING").query_async::<()>(&mut conn).await?;
    }
    Ok(conn)
}

/// The fields of a stats hash, sorted.
#[derive(Debug, Default, PartialEq)]
pub struct SortedReports {
    /// Reports written within `REPORT_EXPIRES_AFTER` of now.
    pub fresh: Vec<ReaderReport>,
    /// Fields to delete: older reports (or newer by as much: a clock that
    /// far off cannot be trusted), and documents without a readable `at`.
    pub stale: Vec<String>,
}

/// Sorts the fields (pod name → JSON report) of a stats hash read at `now`.
pub fn sort_reports(fields: HashMap<String, String>, now: Timestamp) -> SortedReports {
    let mut sorted = SortedReports::default();
    for (pod, doc) in fields {
        match serde_json::from_str::<ReaderReport>(&doc) {
            Ok(report) if written_recently(&report, now) => sorted.fresh.push(report),
            Ok(_) => sorted.stale.push(pod),
            Err(e) => {
                tracing::debug!(pod, error = %e, "pruning a reader report that does not parse");
                sorted.stale.push(pod);
            }
        }
    }
    sorted.stale.sort();
    sorted
}

fn written_recently(report: &ReaderReport, now: Timestamp) -> bool {
    report
        .at
        .as_deref()
        .and_then(|at| at.parse::<Timestamp>().ok())
        .is_some_and(|at| now.duration_since(at).unsigned_abs() <= REPORT_EXPIRES_AFTER)
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

    const BUDGET: Duration = Duration::from_secs(30);

    #[test]
    fn aggregate_averages_and_formats() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let figures = aggregate(
            &[
                report(Some(0.99), Some(0.3)),
                report(Some(0.97), Some(0.5)),
                report(None, None),
            ],
            BUDGET,
            now,
        );
        assert_eq!(figures.hit_ratio.as_deref(), Some("98.0%"));
        assert_eq!(figures.data_age.as_deref(), Some("<1s"));
        assert_eq!(figures.reporting_readers, 3);
        assert_eq!(figures.updated_at.as_deref(), Some("2027-01-15T08:00:00Z"));
        let none = aggregate(&[], BUDGET, now);
        assert_eq!(
            (none.hit_ratio, none.data_age, none.reporting_readers),
            (None, None, 0)
        );
    }

    #[test]
    fn ages_fall_into_coarse_buckets_bounded_by_the_budget_too() {
        assert_eq!(age_bucket(0.42, BUDGET), "<1s");
        assert_eq!(age_bucket(12.3, BUDGET), "<30s");
        assert_eq!(age_bucket(31.0, BUDGET), "<1m");
        assert_eq!(age_bucket(754.0, BUDGET), ">=10m");
        assert_eq!(age_bucket(80.0, Duration::from_secs(90)), "<1m30s");
        assert_eq!(age_bucket(5.0, Duration::from_secs(10)), "<10s");
        assert_eq!(format_ratio(1.2), "100.0%");
    }

    #[test]
    fn only_meaningful_changes_replace_the_figures() {
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let read = |old: Option<&CacheFigures>, reports: &[ReaderReport], s| {
            settle(old, reports, BUDGET, t(s))
        };
        let old = read(None, &[report(Some(0.987), Some(0.3))], 0);
        assert_eq!(old.hit_ratio.as_deref(), Some("98.7%"));
        // Jitter below 0.1 point, even across a rounding boundary, same age bucket.
        for jitter in [0.9874, 0.9866, 0.98751] {
            let same = read(Some(&old), &[report(Some(jitter), Some(0.8))], 30);
            assert_eq!(same, old, "{jitter}: nothing to write, not even the time");
        }
        let moved = read(Some(&old), &[report(Some(0.988), Some(0.3))], 30);
        assert_eq!(moved.hit_ratio.as_deref(), Some("98.8%"));
        assert_ne!(moved.updated_at, old.updated_at);
        let down = read(Some(&old), &[report(Some(0.9859), Some(0.3))], 30);
        assert_eq!(down.hit_ratio.as_deref(), Some("98.6%"));
        let two = [
            report(Some(0.987), Some(0.3)),
            report(Some(0.987), Some(0.3)),
        ];
        assert_eq!(read(Some(&old), &two, 30).reporting_readers, 2);
        let stale = read(Some(&old), &[report(Some(0.987), Some(31.0))], 30);
        assert_eq!(stale.data_age.as_deref(), Some("<1m"), "past the budget");
        let unused = read(Some(&old), &[report(None, Some(0.3))], 30);
        assert_eq!(unused.hit_ratio, None);
    }

    #[test]
    fn old_and_unreadable_reports_are_left_out_and_pruned() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let at = |ago: i64| {
            let t = Timestamp::from_second(1_800_000_000 - ago).unwrap();
            format!(r#"{{"hitRatio": 0.5, "at": "{t}"}}"#)
        };
        let fields = HashMap::from([
            ("fresh".to_string(), at(5)),
            ("skewed-ahead".to_string(), at(-20)),
            ("just-in-time".to_string(), at(60)),
            ("gone".to_string(), at(61)),
            ("far-future".to_string(), at(-3600)),
            ("no-time".to_string(), r#"{"hitRatio": 0.5}"#.to_string()),
            ("bad-time".to_string(), r#"{"at": "yesterday"}"#.to_string()),
            ("not-json".to_string(), "not a report".to_string()),
        ]);
        let sorted = sort_reports(fields, now);
        assert_eq!(sorted.fresh.len(), 3);
        assert!(sorted.fresh.iter().all(|r| r.hit_ratio == Some(0.5)));
        assert_eq!(
            sorted.stale,
            ["bad-time", "far-future", "gone", "no-time", "not-json"]
        );
    }

    #[test]
    fn figures_are_due_after_the_refresh_interval() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        assert!(due(None, now));
        assert!(!due(
            Some(Timestamp::from_second(1_799_999_990).unwrap()),
            now
        ));
        assert!(due(
            Some(Timestamp::from_second(1_799_999_970).unwrap()),
            now
        ));
    }
}
