//! Finds the Redis primary through Sentinel, and hears when it moves.
//!
//! The dataplane does not keep a Sentinel connection open for look-ups: a
//! primary is looked up only when the store has a reason to doubt the one it
//! uses (a dropped connection, a `READONLY` reply, a `+switch-master`
//! announcement, or the periodic check). Each look-up asks the Sentinels in
//! turn, starting with the one that answered last, and confirms with the
//! named server itself that it is a primary: a Sentinel may still name the
//! old primary for a moment after a failover.
//!
//! Failover announcements arrive on a pub/sub connection to one Sentinel
//! ([`Sentinels::watch`]); when that Sentinel goes away the watcher moves on
//! to the next one and, since it may have missed an announcement meanwhile,
//! reports a possible switch.

use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Why no primary could be found (yet).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SentinelError {
    #[error("no Sentinel answered: {0}")]
    Unreachable(String),
    #[error("no Sentinel names a reachable primary for {master:?}: {reason}")]
    NoPrimary { master: String, reason: String },
}

/// How to log in somewhere: Redis and Sentinel can each have their own.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Login {
    pub username: Option<String>,
    pub password: Option<String>,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Opens a client for `url` with the given login (never taken from the URL,
/// so passwords stay out of anything that prints URLs).
pub fn open_client(url: &str, login: &Login) -> redis::RedisResult<redis::Client> {
    use redis::IntoConnectionInfo;
    let info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &login.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &login.password {
        settings = settings.set_password(password);
    }
    redis::Client::open(info.set_redis_settings(settings))
}

/// The Sentinels that monitor one primary.
#[derive(Debug)]
pub struct Sentinels {
    servers: Vec<String>,
    master: String,
    login: Login,
    redis_login: Login,
    timeout: Duration,
    /// The Sentinel to ask first: the one that answered last.
    preferred: AtomicUsize,
}

/// A primary as found: its `HOST:PORT`.
pub type PrimaryAddr = String;

impl Sentinels {
    /// `servers` are `HOST:PORT`; `login` is for the Sentinels, `redis_login`
    /// for the primary they name (used to confirm its role).
    pub fn new(
        servers: Vec<String>,
        master: String,
        login: Login,
        redis_login: Login,
        timeout: Duration,
    ) -> Self {
        Sentinels {
            servers,
            master,
            login,
            redis_login,
            timeout,
            preferred: AtomicUsize::new(0),
        }
    }

    pub fn master(&self) -> &str {
        &self.master
    }

    /// The Sentinels in the order to try them.
    fn in_turn(&self) -> impl Iterator<Item = (usize, &str)> {
        let first = self.preferred.load(Ordering::Relaxed);
        let n = self.servers.len();
        (0..n).map(move |i| {
            let at = (first + i) % n;
            (at, self.servers[at].as_str())
        })
    }

    /// The current primary, confirmed by the primary itself.
    pub async fn primary(&self) -> Result<PrimaryAddr, SentinelError> {
        let mut reasons = Vec::new();
        let mut answered = false;
        for (at, sentinel) in self.in_turn() {
            match self.ask(sentinel).await {
                Ok(Some(addr)) => {
                    answered = true;
                    match self.confirm(&addr).await {
                        Ok(()) => {
                            self.preferred.store(at, Ordering::Relaxed);
                            return Ok(addr);
                        }
                        Err(e) => reasons.push(format!("{sentinel} names {addr}: {e}")),
                    }
                }
                Ok(None) => {
                    answered = true;
                    reasons.push(format!("{sentinel} does not monitor it"));
                }
                Err(e) => reasons.push(format!("{sentinel}: {e}")),
            }
        }
        let reason = reasons.join("; ");
        if answered {
            Err(SentinelError::NoPrimary {
                master: self.master.clone(),
                reason,
            })
        } else {
            Err(SentinelError::Unreachable(reason))
        }
    }

    /// `SENTINEL get-master-addr-by-name` on one Sentinel.
    async fn ask(&self, sentinel: &str) -> Result<Option<PrimaryAddr>, String> {
        let client =
            open_client(&format!("redis://{sentinel}"), &self.login).map_err(|e| e.to_string())?;
        let reply: Option<(String, u16)> = bounded(self.timeout, async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&self.master)
                .query_async(&mut conn)
                .await
        })
        .await?;
        Ok(reply.map(|(host, port)| join_host_port(&host, port)))
    }

    /// Asks the named server whether it really is a primary.
    async fn confirm(&self, addr: &str) -> Result<(), String> {
        let client = open_client(&format!("redis://{addr}"), &self.redis_login)
            .map_err(|e| e.to_string())?;
        let info: String = bounded(self.timeout, async {
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("INFO")
                .arg("replication")
                .query_async(&mut conn)
                .await
        })
        .await?;
        match info_field(&info, "role") {
            Some("master") => Ok(()),
            Some(role) => Err(format!("it is a {role}")),
            None => Err("it does not report its role".into()),
        }
    }

    /// Calls `on_switch` whenever the primary may have moved: on every
    /// `+switch-master` for this master and whenever the watched Sentinel is
    /// lost (an announcement may have been missed). Runs until dropped.
    pub async fn watch(&self, on_switch: impl Fn()) {
        let mut failures = 0u32;
        loop {
            for (_, sentinel) in self.in_turn() {
                match self.listen(sentinel, &on_switch).await {
                    Ok(()) => {
                        failures = 0;
                        tracing::info!(sentinel, "lost the Sentinel's announcements; switching");
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::debug!(sentinel, error = %e, "cannot listen to Sentinel");
                    }
                }
                on_switch();
                // Do not spin while every Sentinel is away.
                let pause = Duration::from_millis(100 * u64::from(failures.min(10)));
                tokio::time::sleep(pause).await;
            }
        }
    }

    /// Follows one Sentinel's `+switch-master` channel until it ends.
    async fn listen(&self, sentinel: &str, on_switch: &impl Fn()) -> Result<(), String> {
        let client =
            open_client(&format!("redis://{sentinel}"), &self.login).map_err(|e| e.to_string())?;
        let mut pubsub = bounded(self.timeout, client.get_async_pubsub()).await?;
        bounded(self.timeout, pubsub.subscribe("+switch-master")).await?;
        tracing::debug!(sentinel, "listening for failovers");
        let mut messages = pubsub.into_on_message();
        while let Some(msg) = messages.next().await {
            let payload: String = msg.get_payload().unwrap_or_default();
            // "<master name> <old ip> <old port> <new ip> <new port>"
            if payload.split(' ').next() == Some(self.master.as_str()) {
                tracing::info!(sentinel, announcement = %payload, "Sentinel announced a failover");
                on_switch();
            }
        }
        Ok(())
    }
}

/// A field of an `INFO` reply (`name:value` lines).
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim_end())
    })
}

/// `HOST:PORT`, with brackets around an IPv6 host.
pub(crate) fn join_host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn bounded<T>(
    timeout: Duration,
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, String> {
    match tokio::time::timeout(timeout, call).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_fields_are_read_line_by_line() {
        let info = "# Replication\r\nrole:master\r\nmaster_replid:abc123\r\n";
        assert_eq!(info_field(info, "role"), Some("master"));
        assert_eq!(info_field(info, "master_replid"), Some("abc123"));
        assert_eq!(info_field(info, "nothing"), None);
    }

    #[test]
    fn hosts_and_ports_join_like_urls_want_them() {
        assert_eq!(join_host_port("10.0.0.1", 6379), "10.0.0.1:6379");
        assert_eq!(join_host_port("::1", 6379), "[::1]:6379");
    }

    #[test]
    fn passwords_never_print() {
        let login = Login {
            username: Some("u".into()),
            password: Some("hunter2".into()),
        };
        assert!(!format!("{login:?}").contains("hunter2"));
    }
}
