//! Whether an external Redis takes the bridge's user: a real PING before
//! `RedisReady=True`.
//!
//! A managed Redis is judged by its StatefulSet; an external one the
//! operator does not run, so it asks it: connect (TLS where the URL says
//! `rediss://`), log in as the bridge's user with the password from the
//! bridge's Secret, PING, all within [`TIMEOUT`]. A failure says which of
//! password, permissions, network, TLS or time failed, with a message that
//! tells the user what to check ([`ProbeError`]).
//!
//! An external Redis Cluster is probed the same way on its seed nodes, in
//! turn, until one answers ([`cluster`]).
//!
//! At 1000 bridges the probes must stay cheap. A result is kept per bridge
//! ([`Probes`]) and used again until the URL, user or password changes (the
//! password as the Secret cache holds it: no API read of its own), or until
//! it is older than [`RECHECK_OK`] (a success: the server may change under
//! us) or [`RECHECK_FAILED`] (a failure: a fix on the server, which no watch
//! reports, shows within one requeue). While the password is refused, the
//! Secret is read again on each reconcile (one GET per 30 s for that bridge
//! only), so a fixed Secret is probed at once.

use crate::desired::{self, config};
use crate::error::Result;
use crate::secrets::Secrets;
use crate::stats;
use crate::validate::Bridge;
use cachebridge_api::CacheBridge;
use k8s_openapi::jiff::Timestamp;
use kube::runtime::reflector::ObjectRef;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

/// How long connecting, logging in and PING may take together.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// How long a success is trusted.
pub const RECHECK_OK: Duration = Duration::from_secs(300);
/// How long a failure stands before the next try: less than the requeue of
/// a bridge whose probe failed, so each requeue tries again.
pub const RECHECK_FAILED: Duration = Duration::from_secs(25);

/// What the probe found, for `RedisReady`.
#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    /// Not an external Redis, or the operator may not talk to Redis (`--no-stats`).
    NotAsked,
    /// PING answered, as `user` at `url`.
    Answered {
        url: String,
        user: String,
    },
    Failed(ProbeError),
}

/// Why an external Redis is not usable, each with what to check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "no password to log in to Redis with: Secret {secret} has no key {key:?} (redis.external.passwordSecret)"
    )]
    PasswordMissing { secret: String, key: String },
    #[error(
        "no Redis primary to probe yet: {why} (redis.external.sentinel: check the Sentinels' addresses and masterName)"
    )]
    NoPrimary { why: String },
    #[error(
        "Redis at {url} refused the password of user {user}: check key {key:?} of Secret {secret} against that user's password on the server (ACL SETUSER), and redis.external.username"
    )]
    WrongPassword {
        url: String,
        user: String,
        secret: String,
        key: String,
    },
    #[error(
        "Redis at {url} took the login of user {user} but refused PING ({detail}): give the user the ACL rule in docs/security.md"
    )]
    NotPermitted {
        url: String,
        user: String,
        detail: String,
    },
    #[error(
        "cannot reach Redis at {url} ({detail}): check the host and port in redis.external.url, that the operator may connect to it (chart networkPolicy.extraEgress), and use rediss:// if the server speaks only TLS"
    )]
    Unreachable { url: String, detail: String },
    #[error(
        "TLS with Redis at {url} failed ({detail}): the server must speak TLS on that port and its certificate must be valid for the host and trusted by the operator (system store, or SSL_CERT_FILE); use redis:// for a plain-text server"
    )]
    Tls { url: String, detail: String },
    #[error(
        "Redis at {url} did not answer within {timeout:?}: check the host, the port, and firewalls or NetworkPolicies that drop the connection"
    )]
    Timeout { url: String, timeout: Duration },
    #[error("Redis at {url} answered PING with an error: {detail}")]
    Refused { url: String, detail: String },
}

impl ProbeError {
    /// The reason of the `RedisReady` condition.
    pub fn reason(&self) -> &'static str {
        match self {
            ProbeError::PasswordMissing { .. } => "PasswordMissing",
            ProbeError::NoPrimary { .. } => "PrimaryUnknown",
            ProbeError::WrongPassword { .. } => "AuthenticationFailed",
            ProbeError::NotPermitted { .. } => "PermissionDenied",
            ProbeError::Unreachable { .. } => "Unreachable",
            ProbeError::Tls { .. } => "TLSFailed",
            ProbeError::Timeout { .. } => "Timeout",
            ProbeError::Refused { .. } => "ProbeFailed",
        }
    }
}

/// Where and as whom to probe.
pub struct Target<'a> {
    pub url: &'a str,
    pub user: Option<&'a str>,
    pub password: &'a str,
    /// Where the password came from, for the message.
    pub secret: &'a str,
    pub key: &'a str,
}

impl Target<'_> {
    fn user_name(&self) -> String {
        self.user.unwrap_or("default").to_string()
    }

    /// Identifies what a kept result was found for.
    fn fingerprint(&self) -> u64 {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (self.url, self.user, self.password).hash(&mut hasher);
        hasher.finish()
    }
}

/// PINGs `target` as its user, within [`TIMEOUT`].
pub async fn ping(target: &Target<'_>) -> std::result::Result<(), ProbeError> {
    cachebridge_dataplane::tls::install_crypto_provider();
    let attempt = async {
        let client = stats::client(target.url, target.user, Some(target.password))?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await
    };
    match tokio::time::timeout(TIMEOUT, attempt).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(classify(target, &e)),
        Err(_) => Err(ProbeError::Timeout {
            url: target.url.to_string(),
            timeout: TIMEOUT,
        }),
    }
}

/// Names the cause of a failed probe from the client's error.
fn classify(target: &Target<'_>, e: &redis::RedisError) -> ProbeError {
    let url = target.url.to_string();
    let detail = e.to_string();
    let tls = target.url.starts_with("rediss://");
    if e.kind() == redis::ErrorKind::AuthenticationFailed || e.code() == Some("WRONGPASS") {
        ProbeError::WrongPassword {
            url,
            user: target.user_name(),
            secret: target.secret.to_string(),
            key: target.key.to_string(),
        }
    } else if e.code() == Some("NOPERM") {
        ProbeError::NotPermitted {
            url,
            user: target.user_name(),
            detail,
        }
    } else if e.is_timeout() {
        ProbeError::Timeout {
            url,
            timeout: TIMEOUT,
        }
    } else if tls && !e.is_connection_refusal() && (e.is_io_error() || mentions_tls(&detail)) {
        ProbeError::Tls { url, detail }
    } else if e.is_io_error() || e.is_connection_refusal() || e.is_connection_dropped() {
        ProbeError::Unreachable { url, detail }
    } else {
        ProbeError::Refused { url, detail }
    }
}

fn mentions_tls(detail: &str) -> bool {
    let detail = detail.to_lowercase();
    ["tls", "certificate", "handshake", "corrupt message"]
        .iter()
        .any(|word| detail.contains(word))
}

/// Results kept per bridge, with what and when they were found for.
#[derive(Default)]
pub struct Probes {
    kept: Mutex<HashMap<ObjectRef<CacheBridge>, Kept>>,
}

struct Kept {
    fingerprint: u64,
    at: Timestamp,
    /// The URL that answered, or why none did.
    result: std::result::Result<String, ProbeError>,
}

impl Probes {
    /// The kept result for `fingerprint`, if still fresh at `now`.
    fn fresh(
        &self,
        key: &ObjectRef<CacheBridge>,
        fingerprint: u64,
        now: Timestamp,
    ) -> Option<std::result::Result<String, ProbeError>> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let k = kept.get(key).filter(|k| k.fingerprint == fingerprint)?;
        let trusted_for = match k.result {
            Ok(_) => RECHECK_OK,
            Err(_) => RECHECK_FAILED,
        };
        (now.duration_since(k.at).unsigned_abs() < trusted_for).then(|| k.result.clone())
    }

    fn keep(
        &self,
        key: ObjectRef<CacheBridge>,
        fingerprint: u64,
        now: Timestamp,
        result: std::result::Result<String, ProbeError>,
    ) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.insert(
            key,
            Kept {
                fingerprint,
                at: now,
                result,
            },
        );
    }
}

/// The probe of bridge `b`'s external Redis at `url` (the URL, or the
/// primary the Sentinels named): kept, or made now. Fails only when its
/// Secret cannot be read from the API.
pub async fn external(
    probes: &Probes,
    secrets: &Secrets,
    key: ObjectRef<CacheBridge>,
    b: &Bridge,
    url: Option<&str>,
    now: Timestamp,
) -> Result<Probe> {
    let Some(url) = url else {
        return Ok(Probe::Failed(ProbeError::NoPrimary {
            why: "no Sentinel has named it".into(),
        }));
    };
    any_of(probes, secrets, key, b, &[url.to_string()], now).await
}

/// The probe of an external Redis Cluster: a PING as the bridge's user on
/// its seed nodes in turn, until one answers (any node does; clients learn
/// the others from it). When none does, the first node's failure is shown.
pub async fn cluster(
    probes: &Probes,
    secrets: &Secrets,
    key: ObjectRef<CacheBridge>,
    b: &Bridge,
    nodes: &[String],
    now: Timestamp,
) -> Result<Probe> {
    let urls: Vec<String> = nodes.iter().map(|n| format!("redis://{n}")).collect();
    any_of(probes, secrets, key, b, &urls, now).await
}

/// PINGs the first of `urls` that answers, with the kept result reused
/// while fresh (see [`Probes`]).
async fn any_of(
    probes: &Probes,
    secrets: &Secrets,
    key: ObjectRef<CacheBridge>,
    b: &Bridge,
    urls: &[String],
    now: Timestamp,
) -> Result<Probe> {
    let (secret, secret_key) = desired::password_secret(b);
    let Some(password) = secrets.read_key(&b.namespace, &secret, &secret_key).await? else {
        // Read again next time: the user may be about to create it.
        secrets.forget(&b.namespace, &secret);
        return Ok(Probe::Failed(ProbeError::PasswordMissing {
            secret,
            key: secret_key,
        }));
    };
    let user = config::redis_username(b);
    let target = |url| Target {
        url,
        user: user.as_deref(),
        password: &password,
        secret: &secret,
        key: &secret_key,
    };
    let all = urls.join(",");
    let fingerprint = target(&all).fingerprint();
    let result = match probes.fresh(&key, fingerprint, now) {
        Some(kept) => kept,
        None => {
            let result = first_answer(urls.iter().map(|u| target(u))).await;
            if let Err(e) = &result {
                tracing::info!(bridge = %b.name, namespace = %b.namespace, reason = e.reason(), error = %e, "external Redis probe failed");
            }
            probes.keep(key, fingerprint, now, result.clone());
            result
        }
    };
    if let Err(ProbeError::WrongPassword { .. }) = &result {
        // The Secret may be fixed any time: read it again next time (a new
        // password is a new fingerprint, probed at once).
        secrets.forget(&b.namespace, &secret);
    }
    Ok(match result {
        Ok(url) => Probe::Answered {
            url,
            user: target("").user_name(),
        },
        Err(e) => Probe::Failed(e),
    })
}

/// The URL of the first target that answers PING, or the first failure.
async fn first_answer<'a>(
    targets: impl Iterator<Item = Target<'a>>,
) -> std::result::Result<String, ProbeError> {
    let mut first_failure = None;
    for target in targets {
        match ping(&target).await {
            Ok(()) => return Ok(target.url.to_string()),
            Err(e) => {
                first_failure.get_or_insert(e);
            }
        }
    }
    Err(first_failure.unwrap_or(ProbeError::NoPrimary {
        why: "no address to probe".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ObjectRef<CacheBridge> {
        ObjectRef::new("quotes").within("prod")
    }

    #[test]
    fn results_are_kept_until_they_age_or_what_they_were_for_changes() {
        let probes = Probes::default();
        let t = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let answered = || Ok("redis://r:6379".to_string());
        probes.keep(key(), 1, t(0), answered());
        assert_eq!(probes.fresh(&key(), 1, t(299)), Some(answered()));
        assert_eq!(probes.fresh(&key(), 1, t(300)), None, "a success ages");
        assert_eq!(probes.fresh(&key(), 2, t(1)), None, "another password");
        let failed = ProbeError::Timeout {
            url: "redis://r:6379".into(),
            timeout: TIMEOUT,
        };
        probes.keep(key(), 1, t(0), Err(failed.clone()));
        assert_eq!(probes.fresh(&key(), 1, t(24)), Some(Err(failed)));
        assert_eq!(
            probes.fresh(&key(), 1, t(25)),
            None,
            "a failure ages sooner"
        );
    }

    #[test]
    fn the_fingerprint_covers_url_user_and_password() {
        let target = |url, user, password| Target {
            url,
            user,
            password,
            secret: "s",
            key: "password",
        };
        let base = target("redis://r:6379", Some("u"), "p").fingerprint();
        assert_eq!(base, target("redis://r:6379", Some("u"), "p").fingerprint());
        for other in [
            target("rediss://r:6379", Some("u"), "p"),
            target("redis://r:6379", None, "p"),
            target("redis://r:6379", Some("u"), "q"),
        ] {
            assert_ne!(base, other.fingerprint());
        }
    }

    #[test]
    fn every_failure_has_a_reason_and_says_what_to_check() {
        let wrong = ProbeError::WrongPassword {
            url: "redis://r:6379".into(),
            user: "orders-bridge".into(),
            secret: "creds".into(),
            key: "password".into(),
        };
        assert_eq!(wrong.reason(), "AuthenticationFailed");
        let message = wrong.to_string();
        assert!(message.contains("orders-bridge") && message.contains("Secret creds"));
    }
}
