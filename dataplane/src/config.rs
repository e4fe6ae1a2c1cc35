//! The one configuration struct of the dataplane.
//!
//! Every setting has a default, can come from a YAML file (`--config FILE`),
//! and can be overridden by a command-line flag or its `CACHEBRIDGE_*`
//! environment variable (see `cli.rs`). The operator renders this same struct
//! into the ConfigMap it mounts into writer and reader pods, so the field names
//! here are a contract: rename nothing without a migration.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Everything a writer, a reader or `local` needs to run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct Config {
    /// The bridge this process belongs to; names the default key prefix.
    pub bridge: BridgeRef,
    /// Overrides the default key prefix `cb:{namespace}:{name}:`.
    pub key_prefix: Option<String>,
    pub redis: RedisConfig,
    pub memcached: MemcachedConfig,
    pub cache: CacheConfig,
    pub coherence: CoherenceConfig,
    pub writer: WriterConfig,
    pub reader: ReaderConfig,
    /// Limits of every HTTP server of the process (API, ingest, status).
    pub http: HttpConfig,
}

/// Namespace and name of the CacheBridge this process serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BridgeRef {
    pub namespace: String,
    pub name: String,
}

/// L3, the source of truth: one fixed server (`url`), the primary the
/// Sentinels name (`sentinel` and `master`), or the node of a Redis Cluster
/// that serves the bridge's hash slot (`cluster`). None of them means the
/// embedded in-memory store (only `local` accepts that).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct RedisConfig {
    /// `redis://host:port[/db]`, without a password.
    pub url: Option<String>,
    /// A file holding the password (a mounted Secret). The password itself is
    /// never part of this struct, so it can never end up in a ConfigMap or a log.
    pub password_file: Option<PathBuf>,
    /// An ACL user name, when the server uses one.
    pub username: Option<String>,
    /// `HOST:PORT` of each Sentinel: find the primary through them and
    /// follow its failovers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sentinel: Vec<String>,
    /// The name the Sentinels monitor the primary under.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// `HOST:PORT` of some nodes of a Redis Cluster (seeds): the bridge's
    /// keys get a hash tag and live on the node serving its slot, followed
    /// across reshardings and failovers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    /// An ACL user name for the Sentinels, when they use one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_username: Option<String>,
    /// A file holding the Sentinels' password (a mounted Secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_password_file: Option<PathBuf>,
    /// Replicas the writer waits for after each batch (`WAIT`); 0 does not
    /// wait. See the README for the trade-off.
    #[serde(skip_serializing_if = "is_zero")]
    pub wait_replicas: u32,
    /// The longest the writer waits for them.
    #[serde(with = "humantime_serde", skip_serializing_if = "is_default_wait")]
    pub wait_timeout: Duration,
}

/// L2. An empty list disables the tier.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MemcachedConfig {
    /// `host:port` of every server; keys are spread by a stable rendezvous hash.
    pub servers: Vec<String>,
}

/// Sizes, lifetimes and time budgets of the cache tiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CacheConfig {
    /// Upper bound of L1 memory, in bytes of cached payload.
    pub l1_max_bytes: u64,
    /// L1 time-to-live: only a safety net, coherence messages do the real work.
    #[serde(with = "humantime_serde")]
    pub l1_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub l2_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub l3_ttl: Duration,
    /// Data older than this is still served, but marked stale.
    #[serde(with = "humantime_serde")]
    pub staleness_budget: Duration,
    /// How long one L2 or L3 call may take before it counts as a failure.
    #[serde(with = "humantime_serde")]
    pub tier_timeout: Duration,
    /// Consecutive failures that open a tier's circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before letting one probe through.
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
}

/// How readers keep their L1 coherent with the writer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct CoherenceConfig {
    /// The writer announces its sequence this often; readers that hear
    /// nothing for three intervals assume they lost messages and resync.
    #[serde(with = "humantime_serde")]
    pub heartbeat_interval: Duration,
    /// Approximate length of the Redis Stream kept for replay.
    pub stream_max_len: u64,
}

/// The trading-service side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct WriterConfig {
    pub source: Source,
    /// Where `POST /ingest` listens; none disables HTTP ingest.
    pub ingest_listen: Option<SocketAddr>,
    /// Where `/healthz`, `/readyz` and `/metrics` listen (also served on the
    /// ingest address); none serves them only there.
    pub status_listen: Option<SocketAddr>,
    /// Seed of the synthetic feed: the same seed gives the same ticks.
    pub seed: u64,
    /// Synthetic ticks per second.
    pub tick_rate: u32,
    /// Number of synthetic symbols.
    pub symbols: usize,
    /// How often views are computed and published.
    #[serde(with = "humantime_serde")]
    pub publish_interval: Duration,
    /// Entries in each movers list.
    pub movers: usize,
    /// Replay pace: 1.0 follows the file's timestamps, 0 replays at once.
    pub replay_speed: f64,
    /// A file holding the bearer token `POST /ingest` requires (a mounted
    /// Secret, re-read when it changes). The token itself is never part of
    /// this struct. None leaves ingest unauthenticated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ingest_token_file: Option<PathBuf>,
}

/// What a client may hold of an HTTP server: how long it may take to send a
/// request, how long it may stay idle, how many connections and how large a
/// body. Slow or silent clients are closed, not waited for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpConfig {
    /// From the first byte of a request to the end of its header.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// From the end of a request's header to the end of its body.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// How long a connection may wait for its next request (or its first).
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// How long a response may wait for a client that does not read it (the
    /// socket's send buffer full, no progress); then the connection closes.
    #[serde(with = "humantime_serde")]
    pub write_timeout: Duration,
    /// Open connections per server; more are answered 503 and closed.
    pub max_connections: usize,
    /// Largest request body; a larger `Content-Length` is refused with 413
    /// before the body is read.
    pub max_body_bytes: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_connections: 2048,
            max_body_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Where the writer's ticks come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in seeded random-walk feed.
    Synthetic,
    /// An NDJSON or CSV tick file.
    Replay(PathBuf),
    /// Nothing built in: ticks arrive only through `POST /ingest`.
    None,
}

/// The web side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
pub struct ReaderConfig {
    pub listen: SocketAddr,
    /// Origins (`https://app.example.com`) whose pages may call the API
    /// (CORS); `*` allows any. Empty, the default: no other origin.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cors_allowed_origins: Vec<String>,
    /// Concurrent `/api/v1/stream` clients; more are answered 503. Each one
    /// also holds one of `http.maxConnections`, so keep it below that.
    #[serde(rename = "maxStreams", skip_serializing_if = "is_default_max_streams")]
    pub max_streams: usize,
}

/// Streams a reader serves at once unless told otherwise: half the default
/// connection cap, so streams can never crowd out plain requests.
pub const DEFAULT_MAX_STREAMS: usize = 1024;

fn is_default_max_streams(n: &usize) -> bool {
    *n == DEFAULT_MAX_STREAMS
}

impl Default for BridgeRef {
    fn default() -> Self {
        BridgeRef {
            namespace: "default".into(),
            name: "local".into(),
        }
    }
}

/// How long the writer waits for replicas by default, when asked to wait.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_millis(100);

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_default_wait(d: &Duration) -> bool {
    *d == DEFAULT_WAIT_TIMEOUT
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: None,
            password_file: None,
            username: None,
            sentinel: Vec::new(),
            master: None,
            cluster: Vec::new(),
            sentinel_username: None,
            sentinel_password_file: None,
            wait_replicas: 0,
            wait_timeout: DEFAULT_WAIT_TIMEOUT,
        }
    }
}

impl RedisConfig {
    /// Whether the primary is found through Sentinel.
    pub fn uses_sentinel(&self) -> bool {
        !self.sentinel.is_empty()
    }

    /// Whether the bridge lives on a Redis Cluster.
    pub fn uses_cluster(&self) -> bool {
        !self.cluster.is_empty()
    }

    /// Whether any Redis (fixed, through Sentinel, or a cluster) is configured.
    pub fn is_configured(&self) -> bool {
        self.url.is_some() || self.uses_sentinel() || self.uses_cluster()
    }

    fn validate(&self) -> Result<(), String> {
        let modes = [
            self.url.is_some(),
            self.uses_sentinel(),
            self.uses_cluster(),
        ];
        if modes.iter().filter(|m| **m).count() > 1 {
            return Err(
                "give one of a Redis URL (--redis), Sentinels (--redis-sentinel) or cluster nodes (--redis-cluster)"
                    .into(),
            );
        }
        if let Some(bad) = self.cluster.iter().find(|s| !is_host_port(s)) {
            return Err(format!("Redis Cluster node {bad:?} is not HOST:PORT"));
        }
        let named = self.master.as_deref().is_some_and(|m| !m.is_empty());
        if self.uses_sentinel() != named {
            return Err(
                "Sentinel mode needs both the Sentinels (--redis-sentinel) and the master name (--redis-master)"
                    .into(),
            );
        }
        if let Some(bad) = self.sentinel.iter().find(|s| !is_host_port(s)) {
            return Err(format!("Sentinel {bad:?} is not HOST:PORT"));
        }
        if self.wait_replicas > 0 && self.wait_timeout.is_zero() {
            return Err(
                "waiting for replicas needs a wait timeout above zero (WAIT 0 blocks forever)"
                    .into(),
            );
        }
        Ok(())
    }
}

/// A CORS origin as browsers send it: `*`, or `http(s)://host[:port]`
/// without a path (a trailing `/` would never match).
pub fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    let bad = |why: &str| {
        Err(format!(
            "CORS origin {origin:?} {why} (e.g. https://app.example.com or http://localhost:3000)"
        ))
    };
    match host {
        None => bad("must start with http:// or https://"),
        Some("") => bad("names no host"),
        Some(h) if h.contains('/') => bad("must not have a path or a trailing /"),
        Some(h)
            if !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b)) =>
        {
            bad("holds a character no origin has")
        }
        Some(_) => Ok(()),
    }
}

/// `HOST:PORT` with a numeric port.
fn is_host_port(s: &str) -> bool {
    s.rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            l1_max_bytes: 64 * 1024 * 1024,
            l1_ttl: Duration::from_secs(30),
            l2_ttl: Duration::from_secs(300),
            l3_ttl: Duration::from_secs(24 * 3600),
            staleness_budget: Duration::from_secs(10),
            tier_timeout: Duration::from_millis(250),
            breaker_failures: 3,
            breaker_cooldown: Duration::from_secs(2),
        }
    }
}

impl Default for CoherenceConfig {
    fn default() -> Self {
        CoherenceConfig {
            heartbeat_interval: Duration::from_secs(1),
            stream_max_len: 10_000,
        }
    }
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            source: Source::Synthetic,
            ingest_listen: None,
            status_listen: None,
            seed: 42,
            tick_rate: 500,
            symbols: 175,
            publish_interval: Duration::from_millis(250),
            movers: 10,
            replay_speed: 1.0,
            ingest_token_file: None,
        }
    }
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            cors_allowed_origins: Vec::new(),
            max_streams: DEFAULT_MAX_STREAMS,
        }
    }
}

/// A configuration that cannot work, said in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_yaml::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Reads a YAML file; fields it leaves out keep their defaults.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source,
        })
    }

    /// The key prefix every key of this bridge starts with; on a Redis
    /// Cluster it carries a hash tag (added if the given prefix has none).
    pub fn key_prefix(&self) -> String {
        let prefix = match &self.key_prefix {
            Some(prefix) => prefix.clone(),
            None => format!("cb:{}:{}:", self.bridge.namespace, self.bridge.name),
        };
        if self.redis.uses_cluster() {
            crate::keys::with_hash_tag(&prefix)
        } else {
            prefix
        }
    }

    /// Checks what serde cannot: ranges and combinations.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        let prefix = self.key_prefix();
        if prefix.is_empty()
            || prefix.len() > 100
            || prefix.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return bad(format!(
                "key prefix {prefix:?} must be 1-100 characters without spaces (memcached keys cannot hold them)"
            ));
        }
        if self.writer.publish_interval.is_zero() || self.coherence.heartbeat_interval.is_zero() {
            return bad("publish interval and heartbeat interval must be above zero".into());
        }
        if self.cache.tier_timeout.is_zero() {
            return bad("tier timeout must be above zero".into());
        }
        if self.writer.symbols == 0 || self.writer.tick_rate == 0 {
            return bad(
                "the synthetic feed needs at least one symbol and one tick per second".into(),
            );
        }
        if !(self.writer.replay_speed.is_finite() && self.writer.replay_speed >= 0.0) {
            return bad("replay speed must be 0 (as fast as possible) or a positive factor".into());
        }
        let http = &self.http;
        if [
            http.header_read_timeout,
            http.body_read_timeout,
            http.idle_timeout,
            http.write_timeout,
        ]
        .iter()
        .any(Duration::is_zero)
            || http.max_connections == 0
            || http.max_body_bytes == 0
            || self.reader.max_streams == 0
        {
            return bad(
                "HTTP timeouts, the connection limit, the stream limit (reader.maxStreams) and the body size limit must be above zero"
                    .into(),
            );
        }
        for server in &self.memcached.servers {
            if !is_host_port(server) {
                return bad(format!("memcached server {server:?} is not HOST:PORT"));
            }
        }
        for origin in &self.reader.cors_allowed_origins {
            check_origin(origin).map_err(ConfigError::Invalid)?;
        }
        self.redis.validate().map_err(ConfigError::Invalid)
    }
}

impl std::str::FromStr for Source {
    type Err = String;

    /// `synthetic`, `replay:PATH` or `none`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "synthetic" => Ok(Source::Synthetic),
            "none" => Ok(Source::None),
            _ => match s.strip_prefix("replay:") {
                Some(path) if !path.is_empty() => Ok(Source::Replay(path.into())),
                _ => Err(format!(
                    "unknown source {s:?}: use `synthetic`, `replay:PATH` or `none`"
                )),
            },
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Synthetic => f.write_str("synthetic"),
            Source::None => f.write_str("none"),
            Source::Replay(path) => write!(f, "replay:{}", path.display()),
        }
    }
}

impl Serialize for Source {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Source {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_names_the_bridge() {
        let mut config = Config::default();
        assert_eq!(config.key_prefix(), "cb:default:local:");
        config.bridge.namespace = "prod".into();
        config.bridge.name = "quotes".into();
        assert_eq!(config.key_prefix(), "cb:prod:quotes:");
        config.key_prefix = Some("x:".into());
        assert_eq!(config.key_prefix(), "x:");
    }

    #[test]
    fn yaml_round_trip_keeps_every_field() {
        let mut config = Config::default();
        config.redis.url = Some("redis://r:6379".into());
        config.memcached.servers = vec!["m-0:11211".into(), "m-1:11211".into()];
        config.writer.source = Source::Replay("/data/ticks.csv".into());
        config.cache.staleness_budget = Duration::from_millis(1500);
        let yaml = serde_yaml::to_string(&config).unwrap();
        assert!(yaml.contains("stalenessBudget: 1s 500ms"), "{yaml}");
        assert_eq!(serde_yaml::from_str::<Config>(&yaml).unwrap(), config);
    }

    #[test]
    fn partial_yaml_keeps_defaults_and_typos_are_rejected() {
        let config: Config = serde_yaml::from_str("writer:\n  seed: 7\n").unwrap();
        assert_eq!(config.writer.seed, 7);
        assert_eq!(config.writer.tick_rate, WriterConfig::default().tick_rate);
        let err = serde_yaml::from_str::<Config>("writer:\n  sead: 7\n").unwrap_err();
        assert!(err.to_string().contains("sead"), "{err}");
    }

    #[test]
    fn source_parses_and_rejects_garbage() {
        assert_eq!("synthetic".parse::<Source>(), Ok(Source::Synthetic));
        assert_eq!(
            "replay:a.csv".parse::<Source>(),
            Ok(Source::Replay("a.csv".into()))
        );
        assert!("replay:".parse::<Source>().is_err());
        assert!("kafka".parse::<Source>().unwrap_err().contains("kafka"));
    }

    #[test]
    fn sentinel_mode_needs_servers_and_a_name_and_no_url() {
        let mut config = Config::default();
        config.redis.sentinel = vec!["s-0:26379".into(), "s-1:26379".into()];
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("--redis-master"), "{err}");
        config.redis.master = Some("cache".into());
        assert!(config.validate().is_ok());
        config.redis.url = Some("redis://r:6379".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("give one of")
        );
        config.redis.url = None;
        config.redis.sentinel.push("nope".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("\"nope\"")
        );
        config.redis.sentinel.pop();
        let yaml = serde_yaml::to_string(&config).unwrap();
        assert!(yaml.contains("master: cache"), "{yaml}");
        assert_eq!(serde_yaml::from_str::<Config>(&yaml).unwrap(), config);
    }

    #[test]
    fn cluster_mode_tags_the_prefix_and_excludes_other_modes() {
        let mut config: Config =
            serde_yaml::from_str("redis:\n  cluster: [n-0:6379, n-1:6379]\n").unwrap();
        assert!(config.redis.uses_cluster() && config.validate().is_ok());
        assert_eq!(config.key_prefix(), "{cb:default:local}:");
        config.key_prefix = Some("{team}:quotes:".into());
        assert_eq!(config.key_prefix(), "{team}:quotes:");
        config.redis.url = Some("redis://r:6379".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("--redis-cluster"), "{err}");
        config.redis.url = None;
        config.redis.cluster.push("no-port".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("\"no-port\""), "{err}");
    }

    #[test]
    fn unused_redis_options_stay_out_of_the_rendered_file() {
        let yaml = serde_yaml::to_string(&Config::default()).unwrap();
        for absent in ["sentinel", "master", "wait", "cluster"] {
            assert!(!yaml.contains(absent), "{yaml}");
        }
    }

    #[test]
    fn cors_origins_are_checked_and_kept_in_the_file() {
        let mut config = Config::default();
        assert!(!serde_yaml::to_string(&config).unwrap().contains("cors"));
        config.reader.cors_allowed_origins = vec![
            "https://app.example.com".into(),
            "http://localhost:3000".into(),
        ];
        assert!(config.validate().is_ok());
        let yaml = serde_yaml::to_string(&config).unwrap();
        assert!(yaml.contains("corsAllowedOrigins"), "{yaml}");
        assert_eq!(serde_yaml::from_str::<Config>(&yaml).unwrap(), config);
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://",
            "https://a b",
        ] {
            config.reader.cors_allowed_origins = vec![bad.into()];
            let err = config.validate().unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
        config.reader.cors_allowed_origins = vec!["*".into()];
        assert!(config.validate().is_ok());
    }

    #[test]
    fn validate_names_the_problem() {
        let mut config = Config::default();
        assert!(config.validate().is_ok());
        config.memcached.servers = vec!["no-port".into()];
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("no-port")
        );
        config.memcached.servers.clear();
        config.key_prefix = Some("has space".into());
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("without spaces")
        );
    }
}
