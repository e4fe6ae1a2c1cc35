//! Who the Redis primary is, as the Sentinels say: for `status`.
//!
//! Sentinel alone chooses the primary; the operator never moves it. It asks
//! the bridge's Sentinels (`SENTINEL GET-MASTER-ADDR-BY-NAME`), in the order
//! the status lists them, the first answer wins, and the status reports it
//! (`redisPrimary`, `endpoints.redis`). A Sentinel that cannot be reached
//! or knows no primary is skipped; when none answers, the status keeps the
//! primary last observed and the reason is logged: it never fails a reconcile.

use crate::desired::config;
use crate::error::{Error, Result};
use crate::secrets::Secrets;
use crate::stats;
use crate::validate::Bridge;
use cachebridge_api::v1alpha1::SentinelEndpoints;
use std::time::Duration;

/// How long one Sentinel may take to answer.
const TIMEOUT: Duration = Duration::from_secs(2);

/// The Sentinels to ask, and the password their default user needs.
pub struct SentinelTarget {
    pub servers: Vec<String>,
    pub master_name: String,
    /// Kept out of `Debug`: this struct may end up in a log line.
    pub password: Option<String>,
}

impl std::fmt::Debug for SentinelTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelTarget")
            .field("servers", &self.servers)
            .field("master_name", &self.master_name)
            .finish_non_exhaustive()
    }
}

/// A primary as a Sentinel names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Primary {
    pub host: String,
    pub port: u16,
}

impl Primary {
    /// `redis://HOST:PORT`, what clients of a bridge without Sentinel would use.
    pub fn url(&self) -> String {
        format!("redis://{}:{}", self.host, self.port)
    }
}

/// What a reconcile learned about the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// The bridge has no Sentinel, or the operator may not talk to it.
    NotAsked,
    Found(Primary),
    /// No Sentinel answered with a primary; why.
    Unanswered(String),
}

/// The bridge's Sentinels with their password, or `None` without Sentinel.
pub async fn target(secrets: &Secrets, b: &Bridge) -> Result<Option<SentinelTarget>> {
    let Some(SentinelEndpoints {
        servers,
        master_name,
        password_secret,
    }) = config::sentinel_endpoints(b)
    else {
        return Ok(None);
    };
    let password = match password_secret {
        Some(s) => Some(
            secrets
                .read_key(&b.namespace, &s.name, &s.key)
                .await?
                .ok_or_else(|| {
                    Error::Sentinel(format!("Secret {} has no key {:?}", s.name, s.key))
                })?,
        ),
        None => None,
    };
    Ok(Some(SentinelTarget {
        servers,
        master_name,
        password,
    }))
}

/// Asks the Sentinels in order; the first that names a primary wins.
pub async fn ask(target: &SentinelTarget) -> Result<Primary> {
    let mut problems = Vec::new();
    for server in &target.servers {
        match tokio::time::timeout(TIMEOUT, ask_one(server, target)).await {
            Ok(Ok(Some(primary))) => return Ok(primary),
            Ok(Ok(None)) => problems.push(format!(
                "{server} knows no primary named {:?}",
                target.master_name
            )),
            Ok(Err(e)) => problems.push(format!("{server}: {e}")),
            Err(_) => problems.push(format!("{server}: no answer within {TIMEOUT:?}")),
        }
    }
    Err(Error::Sentinel(if problems.is_empty() {
        "no Sentinel to ask".into()
    } else {
        problems.join("; ")
    }))
}

async fn ask_one(server: &str, target: &SentinelTarget) -> redis::RedisResult<Option<Primary>> {
    let client = stats::client(
        &format!("redis://{server}"),
        None,
        target.password.as_deref(),
    )?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let answer: Option<(String, u16)> = redis::cmd("SENTINEL")
        .arg("GET-MASTER-ADDR-BY-NAME")
        .arg(&target.master_name)
        .query_async(&mut conn)
        .await?;
    Ok(answer.map(|(host, port)| Primary { host, port }))
}

/// Asks the bridge's Sentinels, if it has any; failures become `Unanswered`.
pub async fn observe(secrets: &Secrets, b: &Bridge) -> Observation {
    let found = async {
        match target(secrets, b).await? {
            Some(target) => ask(&target).await.map(Some),
            None => Ok(None),
        }
    };
    match found.await {
        Ok(Some(primary)) => Observation::Found(primary),
        Ok(None) => Observation::NotAsked,
        Err(e) => Observation::Unanswered(e.to_string()),
    }
}
