//! `--bridge NAMESPACE/NAME`: take connection settings from a CacheBridge.
//!
//! In a cluster the operator decides where Redis and Memcached live, which
//! ACL user and key prefix a bridge gets, and which Secret holds the
//! password; it publishes all of that in the resource's status. Writer and
//! reader pods started with `--bridge` read the status and the Secret
//! through the Kubernetes API, wait (saying why) until the operator has
//! filled them in, and keep checking: when the endpoints or the password
//! change, the process reconnects in place instead of needing a restart.
//!
//! When the status names Sentinels (`endpoints.sentinel`), the primary is
//! found and followed through them, and `endpoints.redis` (the primary as
//! the operator last saw it) is ignored: a failover must not look like a
//! change of settings, which would restart the process.
//!
//! When the status names Redis Cluster seed nodes (`endpoints.redisCluster`)
//! the bridge's slot is found and followed through them likewise, and the
//! key prefix gets its hash tag (see `keys.rs`).
//!
//! A change of the Memcached servers alone (the pool was resized) is applied
//! in place: the running process switches its L2 to the new list
//! (`Running::resize_memcached`) and keeps its L1, its Redis connections
//! and its coherence position, so only the keys the rendezvous hash moves
//! miss L2 once.

use crate::app::{self, Credentials, Role, Running, StartError};
use crate::config::Config;
use cachebridge_api::CacheBridge;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use std::time::Duration;

/// Everything the status decides about how to reach the tiers.
#[derive(Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The fixed Redis, when there are no Sentinels and no cluster.
    pub redis_url: Option<String>,
    pub sentinel: Option<SentinelTarget>,
    /// Seed nodes of a Redis Cluster; empty when not on a cluster.
    pub redis_cluster: Vec<String>,
    pub redis_username: Option<String>,
    pub memcached: Vec<String>,
    pub key_prefix: Option<String>,
    pub credentials: Credentials,
}

impl std::fmt::Debug for Resolved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolved")
            .field("redis_url", &self.redis_url)
            .field("sentinel", &self.sentinel)
            .field("redis_cluster", &self.redis_cluster)
            .field("redis_username", &self.redis_username)
            .field("memcached", &self.memcached)
            .field("key_prefix", &self.key_prefix)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// The Sentinels to find the primary through (they take no user name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentinelTarget {
    pub servers: Vec<String>,
    pub master_name: String,
}

impl Resolved {
    /// Where Redis is, for logs.
    pub fn redis(&self) -> String {
        if !self.redis_cluster.is_empty() {
            return format!("Redis Cluster via {}", self.redis_cluster.join(","));
        }
        match (&self.sentinel, &self.redis_url) {
            (Some(s), _) => format!(
                "Sentinel master {} via {}",
                s.master_name,
                s.servers.join(",")
            ),
            (None, Some(url)) => url.clone(),
            (None, None) => "nowhere".into(),
        }
    }
}

/// Why the settings cannot be had (yet), in words an operator can act on.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    #[error("cannot reach the Kubernetes API: {0}")]
    Client(String),
    #[error("CacheBridge {0} does not exist")]
    NotFound(String),
    #[error("not allowed to read {what}: check the pod's ServiceAccount and Role ({source})")]
    Forbidden { what: String, source: kube::Error },
    #[error("waiting for the operator: {0}")]
    NotReady(String),
    #[error("reading {what}: {source}")]
    Api { what: String, source: kube::Error },
}

impl BridgeError {
    /// Worth waiting for (the operator is still at work), or final.
    pub fn is_transient(&self) -> bool {
        matches!(self, BridgeError::NotReady(_) | BridgeError::Api { .. })
    }
}

/// Where to find the resource and its Secret.
#[derive(Clone)]
pub struct Source {
    bridges: Api<CacheBridge>,
    secrets: Api<Secret>,
    namespace: String,
    name: String,
}

impl Source {
    pub fn new(client: kube::Client, namespace: &str, name: &str) -> Self {
        Source {
            bridges: Api::namespaced(client.clone(), namespace),
            secrets: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// A client from the pod's ServiceAccount, or the local kubeconfig.
    pub async fn connect(namespace: &str, name: &str) -> Result<Self, BridgeError> {
        crate::tls::install_crypto_provider();
        let client = kube::Client::try_default()
            .await
            .map_err(|e| BridgeError::Client(e.to_string()))?;
        Ok(Source::new(client, namespace, name))
    }

    fn what(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// Reads the status and the password Secret once.
    pub async fn resolve(&self) -> Result<Resolved, BridgeError> {
        let bridge = self
            .bridges
            .get(&self.name)
            .await
            .map_err(|e| self.error(e, "cachebridges"))?;
        let status = bridge.status.ok_or_else(|| {
            BridgeError::NotReady(format!("CacheBridge {} has no status yet", self.what()))
        })?;
        let cluster = status.endpoints.redis_cluster.clone().unwrap_or_default();
        let (redis_url, sentinel, sentinel_password) = match &status.endpoints.sentinel {
            _ if !cluster.is_empty() => (None, None, None),
            Some(s) if s.servers.is_empty() => {
                return Err(BridgeError::NotReady(format!(
                    "CacheBridge {} names no Sentinels in its status yet",
                    self.what()
                )));
            }
            Some(s) => {
                let target = SentinelTarget {
                    servers: s.servers.clone(),
                    master_name: s.master_name.clone(),
                };
                (
                    None,
                    Some(target),
                    self.secret(s.password_secret.as_ref()).await?,
                )
            }
            None => {
                let url = status.endpoints.redis.clone().ok_or_else(|| {
                    BridgeError::NotReady(format!(
                        "CacheBridge {} has no Redis endpoint in its status yet",
                        self.what()
                    ))
                })?;
                (Some(url), None, None)
            }
        };
        Ok(Resolved {
            redis_url,
            sentinel,
            redis_cluster: cluster,
            redis_username: status.redis_username.clone(),
            memcached: status.endpoints.memcached.clone(),
            key_prefix: (!status.key_prefix.is_empty()).then(|| status.key_prefix.clone()),
            credentials: Credentials {
                redis_password: self.secret(status.password_secret.as_ref()).await?,
                sentinel_password,
            },
        })
    }

    async fn secret(
        &self,
        selector: Option<&cachebridge_api::v1alpha1::SecretKeySelector>,
    ) -> Result<Option<String>, BridgeError> {
        match selector {
            Some(selector) => Ok(Some(self.password(&selector.name, &selector.key).await?)),
            None => Ok(None),
        }
    }

    async fn password(&self, secret: &str, key: &str) -> Result<String, BridgeError> {
        let found = self
            .secrets
            .get(secret)
            .await
            .map_err(|e| self.error(e, "secrets"))?;
        let bytes = found
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .ok_or_else(|| {
                BridgeError::NotReady(format!(
                    "Secret {}/{secret} has no key {key:?}",
                    self.namespace
                ))
            })?;
        String::from_utf8(bytes.0.clone()).map_err(|_| {
            BridgeError::NotReady(format!(
                "Secret {}/{secret} key {key:?} is not UTF-8",
                self.namespace
            ))
        })
    }

    fn error(&self, e: kube::Error, what: &str) -> BridgeError {
        match &e {
            kube::Error::Api(status) if status.code == 404 && what == "cachebridges" => {
                BridgeError::NotFound(self.what())
            }
            kube::Error::Api(status) if status.code == 404 => {
                BridgeError::NotReady(format!("{what} of {} not found yet", self.what()))
            }
            kube::Error::Api(status) if status.code == 403 => BridgeError::Forbidden {
                what: format!("{what} of {}", self.what()),
                source: e,
            },
            _ => BridgeError::Api {
                what: format!("{what} of {}", self.what()),
                source: e,
            },
        }
    }
}

/// The base configuration with the resolved settings applied.
pub fn configure(base: &Config, resolved: &Resolved) -> Config {
    let mut config = base.clone();
    config.redis.url = resolved.redis_url.clone();
    config.redis.username = resolved.redis_username.clone();
    config.redis.password_file = None;
    config.redis.sentinel = resolved
        .sentinel
        .as_ref()
        .map(|s| s.servers.clone())
        .unwrap_or_default();
    config.redis.master = resolved.sentinel.as_ref().map(|s| s.master_name.clone());
    config.redis.cluster = resolved.redis_cluster.clone();
    config.redis.sentinel_username = None;
    config.redis.sentinel_password_file = None;
    config.memcached.servers = resolved.memcached.clone();
    if resolved.key_prefix.is_some() {
        config.key_prefix = resolved.key_prefix.clone();
    }
    config
}

/// Waits until the settings can be resolved, retrying transient failures.
async fn resolve_patiently(source: &Source, poll: Duration) -> Result<Resolved, BridgeError> {
    loop {
        match source.resolve().await {
            Ok(resolved) => return Ok(resolved),
            Err(e) if e.is_transient() => {
                tracing::info!(reason = %e, retry_in = ?poll, "CacheBridge settings not available yet");
                tokio::time::sleep(poll).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Runs `role` with settings from the CacheBridge, restarting it in place
/// whenever they change, until `shutdown` completes (then it drains
/// in-flight requests) or a final error.
pub async fn run(
    role: Role,
    base: &Config,
    source: Source,
    poll: Duration,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    tokio::pin!(shutdown);
    let mut current = tokio::select! {
        resolved = resolve_patiently(&source, poll) => resolved?,
        _ = &mut shutdown => return Ok(()),
    };
    loop {
        let config = configure(base, &current);
        let mut running: Running = app::start(role, &config, &current.credentials).await?;
        tracing::info!(redis = %current.redis(), memcached = ?current.memcached, "connected from CacheBridge status");
        let changed = loop {
            tokio::select! {
                _ = running.wait() => return Err(RunError::Stopped),
                _ = &mut shutdown => {
                    running.stop().await;
                    return Ok(());
                }
                _ = tokio::time::sleep(poll) => {}
            }
            match source.resolve().await {
                Ok(latest) if resized_only(&current, &latest) && running.has_memcached() => {
                    running.resize_memcached(&latest.memcached);
                    tracing::info!(memcached = ?latest.memcached, "Memcached pool resized; switched in place");
                    current = latest;
                }
                Ok(latest) if latest != current => break latest,
                Ok(_) => {}
                // Keep serving with what we have; the API may be briefly away.
                Err(e) => {
                    tracing::warn!(reason = %e, "cannot re-read the CacheBridge; keeping current settings")
                }
            }
        };
        tracing::info!(redis = %changed.redis(), "CacheBridge settings changed; reconnecting");
        running.stop().await;
        current = changed;
    }
}

/// Whether only the Memcached server list differs, and L2 stays on: that is
/// switched in place instead of restarting the process.
pub fn resized_only(current: &Resolved, latest: &Resolved) -> bool {
    let same_rest = Resolved {
        memcached: current.memcached.clone(),
        ..latest.clone()
    };
    same_rest == *current
        && latest.memcached != current.memcached
        && !latest.memcached.is_empty()
        && !current.memcached.is_empty()
}

/// Why bridge mode ended.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Bridge(#[from] BridgeError),
    #[error(transparent)]
    Start(#[from] StartError),
    #[error("a component stopped unexpectedly")]
    Stopped,
}
