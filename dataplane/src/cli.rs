//! The command line: subcommands, flags and their `CACHEBRIDGE_*`
//! environment variables. Flags only fill in the one [`Config`]; precedence
//! is flag or environment variable, then `--config FILE`, then defaults.

use crate::config::{Config, Source};
use crate::telemetry::LogFormat;
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "cachebridge-dataplane",
    version,
    about = "Carries live market data from a trading service to web readers through a shared L1 → Memcached → Redis cache.",
    long_about = "Carries live market data from a trading service to web readers through a shared \
multi-tier cache: L1 in each reader's memory, L2 Memcached, L3 Redis (the source of truth).\n\n\
Start with `cachebridge-dataplane local`: the writer and the reader in one process, on an \
embedded store, no servers needed. In a deployment, run one `writer` and any number of `reader`s \
against the same Redis (and Memcached).\n\n\
Every flag can also be set through the environment variable named in its help, or in a YAML file \
given with --config (see `show-config` for its shape). Flags win over the file. The Redis password \
is read from CACHEBRIDGE_REDIS_PASSWORD or --redis-password-file, never from a flag (the Sentinel \
password likewise from CACHEBRIDGE_REDIS_SENTINEL_PASSWORD or --redis-sentinel-password-file).\n\n\
With --redis-sentinel and --redis-master instead of --redis, writer and readers find the Redis \
primary through Sentinel and follow its failovers without a restart. With --redis-cluster, they \
use the node of a Redis Cluster that serves the bridge's hash slot and follow reshardings."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// YAML configuration file; flags and environment variables override it.
    #[arg(long, global = true, env = "CACHEBRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format: `text` for terminals, `json` for log collectors.
    #[arg(
        long,
        global = true,
        env = "CACHEBRIDGE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `cachebridge_dataplane=debug` (RUST_LOG wins if set).
    #[arg(
        long,
        global = true,
        env = "CACHEBRIDGE_LOG_LEVEL",
        default_value = "info"
    )]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Writer and reader in one process; an embedded store unless --redis/--memcached are given.
    Local {
        #[command(flatten)]
        tiers: TierArgs,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        writer: WriterArgs,
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// The trading-service side: ingests ticks and publishes market views into the cache.
    Writer {
        #[command(flatten)]
        tiers: TierArgs,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        writer: WriterArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// The web side: serves market views from L1 → Memcached → Redis over HTTP.
    Reader {
        #[command(flatten)]
        tiers: TierArgs,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Prints the effective configuration as YAML (a starting point for --config).
    ShowConfig {
        #[command(flatten)]
        tiers: TierArgs,
        #[command(flatten)]
        cache: CacheArgs,
        #[command(flatten)]
        writer: WriterArgs,
        #[command(flatten)]
        listen: ListenArgs,
        #[command(flatten)]
        http: HttpArgs,
    },
}

/// Where the shared tiers are.
#[derive(Debug, Args)]
pub struct TierArgs {
    /// Redis URL, `redis://HOST:PORT[/DB]` (no password: see CACHEBRIDGE_REDIS_PASSWORD).
    #[arg(long, env = "CACHEBRIDGE_REDIS", value_name = "URL")]
    pub redis: Option<String>,
    /// Redis ACL user name.
    #[arg(long, env = "CACHEBRIDGE_REDIS_USERNAME", value_name = "USER")]
    pub redis_username: Option<String>,
    /// File holding the Redis password (e.g. a mounted Secret).
    #[arg(long, env = "CACHEBRIDGE_REDIS_PASSWORD_FILE", value_name = "FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// Sentinels to find the Redis primary through (instead of --redis), comma-separated.
    #[arg(
        long,
        env = "CACHEBRIDGE_REDIS_SENTINEL",
        value_name = "HOST:PORT[,...]",
        value_delimiter = ','
    )]
    pub redis_sentinel: Option<Vec<String>>,
    /// With --redis-sentinel: the name the Sentinels monitor the primary under.
    #[arg(long, env = "CACHEBRIDGE_REDIS_MASTER", value_name = "NAME")]
    pub redis_master: Option<String>,
    /// Some nodes of a Redis Cluster (instead of --redis), comma-separated; the
    /// key prefix gets a hash tag so every key of the bridge lives in one slot.
    #[arg(
        long,
        env = "CACHEBRIDGE_REDIS_CLUSTER",
        value_name = "HOST:PORT[,...]",
        value_delimiter = ','
    )]
    pub redis_cluster: Option<Vec<String>>,
    /// Sentinel ACL user name.
    #[arg(long, env = "CACHEBRIDGE_REDIS_SENTINEL_USERNAME", value_name = "USER")]
    pub redis_sentinel_username: Option<String>,
    /// File holding the Sentinel password.
    #[arg(
        long,
        env = "CACHEBRIDGE_REDIS_SENTINEL_PASSWORD_FILE",
        value_name = "FILE"
    )]
    pub redis_sentinel_password_file: Option<PathBuf>,
    /// Memcached servers, comma-separated; keys are spread by a stable hash.
    #[arg(
        long,
        env = "CACHEBRIDGE_MEMCACHED",
        value_name = "HOST:PORT[,...]",
        value_delimiter = ','
    )]
    pub memcached: Option<Vec<String>>,
    /// Key prefix of this bridge [default: cb:{namespace}:{name}:].
    #[arg(long, env = "CACHEBRIDGE_KEY_PREFIX", value_name = "PREFIX")]
    pub key_prefix: Option<String>,
    /// Take Redis, Memcached, ACL user, key prefix and password from the status of the
    /// CacheBridge NAMESPACE/NAME (and its Secret) through the Kubernetes API, and follow changes.
    #[arg(long, env = "CACHEBRIDGE_BRIDGE", value_name = "NAMESPACE/NAME", value_parser = parse_bridge)]
    pub bridge: Option<(String, String)>,
    /// With --bridge: how often the CacheBridge is re-read for changes.
    #[arg(long, env = "CACHEBRIDGE_BRIDGE_POLL", value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "5s")]
    pub bridge_poll: Duration,
}

/// Cache sizes and time budgets.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Upper bound of L1 memory in bytes [default: 67108864].
    #[arg(long, env = "CACHEBRIDGE_L1_MAX_BYTES", value_name = "BYTES")]
    pub l1_max_bytes: Option<u64>,
    /// L1 time-to-live, a safety net behind coherence [default: 30s].
    #[arg(long, env = "CACHEBRIDGE_L1_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub l1_ttl: Option<Duration>,
    /// Memcached time-to-live [default: 5m].
    #[arg(long, env = "CACHEBRIDGE_L2_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub l2_ttl: Option<Duration>,
    /// Redis time-to-live [default: 24h].
    #[arg(long, env = "CACHEBRIDGE_L3_TTL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub l3_ttl: Option<Duration>,
    /// Data older than this is served but marked stale [default: 10s].
    #[arg(long, env = "CACHEBRIDGE_STALENESS_BUDGET", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub staleness_budget: Option<Duration>,
    /// Longest one Memcached or Redis call may take [default: 250ms].
    #[arg(long, env = "CACHEBRIDGE_TIER_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub tier_timeout: Option<Duration>,
    /// Writer heartbeat; readers resync after three silent intervals [default: 1s].
    #[arg(long, env = "CACHEBRIDGE_HEARTBEAT_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Option<Duration>,
}

/// The writer's source and pace.
#[derive(Debug, Args)]
pub struct WriterArgs {
    /// Tick source: `synthetic`, `replay:PATH` (NDJSON or .csv), or `none` (ingest only) [default: synthetic].
    #[arg(long, env = "CACHEBRIDGE_SOURCE", value_name = "SOURCE")]
    pub source: Option<Source>,
    /// Serve `POST /ingest` (NDJSON ticks) on this address.
    #[arg(long, env = "CACHEBRIDGE_INGEST_LISTEN", value_name = "ADDR")]
    pub ingest_listen: Option<SocketAddr>,
    /// Serve the writer's /healthz, /readyz (Redis reachable, nothing held back) and /metrics here.
    #[arg(long, env = "CACHEBRIDGE_STATUS_LISTEN", value_name = "ADDR")]
    pub status_listen: Option<SocketAddr>,
    /// Seed of the synthetic feed; the same seed gives the same ticks [default: 42].
    #[arg(long, env = "CACHEBRIDGE_SEED")]
    pub seed: Option<u64>,
    /// Synthetic ticks per second [default: 500].
    #[arg(long, env = "CACHEBRIDGE_TICK_RATE", value_name = "PER_SECOND")]
    pub tick_rate: Option<u32>,
    /// Number of synthetic symbols [default: 175].
    #[arg(long, env = "CACHEBRIDGE_SYMBOLS", value_name = "COUNT")]
    pub symbols: Option<usize>,
    /// How often market views are published [default: 250ms].
    #[arg(long, env = "CACHEBRIDGE_PUBLISH_INTERVAL", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub publish_interval: Option<Duration>,
    /// Replay pace: 1 follows the file's timestamps, 0 replays at once [default: 1].
    #[arg(long, env = "CACHEBRIDGE_REPLAY_SPEED", value_name = "FACTOR")]
    pub replay_speed: Option<f64>,
    /// Replicas that must acknowledge each batch (Redis WAIT) before the next; 0 does not wait [default: 0].
    #[arg(long, env = "CACHEBRIDGE_REDIS_WAIT_REPLICAS", value_name = "COUNT")]
    pub redis_wait_replicas: Option<u32>,
    /// The longest to wait for them [default: 100ms].
    #[arg(long, env = "CACHEBRIDGE_REDIS_WAIT_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub redis_wait_timeout: Option<Duration>,
    /// File holding the bearer token POST /ingest requires (a mounted Secret; re-read when it changes).
    #[arg(long, env = "CACHEBRIDGE_INGEST_TOKEN_FILE", value_name = "FILE")]
    pub ingest_token_file: Option<PathBuf>,
}

/// Limits every HTTP server of the process applies to its clients.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Longest a client may take from a request's first byte to the end of its header [default: 10s].
    #[arg(long, env = "CACHEBRIDGE_HTTP_HEADER_READ_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub http_header_read_timeout: Option<Duration>,
    /// Longest a client may take to send a request body after its header [default: 30s].
    #[arg(long, env = "CACHEBRIDGE_HTTP_BODY_READ_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub http_body_read_timeout: Option<Duration>,
    /// Longest a connection may wait for its next request [default: 60s].
    #[arg(long, env = "CACHEBRIDGE_HTTP_IDLE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub http_idle_timeout: Option<Duration>,
    /// Longest a response may wait on a client that stops reading it [default: 30s].
    #[arg(long, env = "CACHEBRIDGE_HTTP_WRITE_TIMEOUT", value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub http_write_timeout: Option<Duration>,
    /// Open connections per server; more are answered 503 and closed [default: 2048].
    #[arg(long, env = "CACHEBRIDGE_HTTP_MAX_CONNECTIONS", value_name = "COUNT")]
    pub http_max_connections: Option<usize>,
    /// Largest request body; a larger Content-Length gets 413 at once [default: 16777216].
    #[arg(long, env = "CACHEBRIDGE_HTTP_MAX_BODY_BYTES", value_name = "BYTES")]
    pub http_max_body_bytes: Option<u64>,
}

/// Where the HTTP API listens, and who may call it from a browser.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address of the web API and dashboard [default: 127.0.0.1:8080].
    #[arg(long, env = "CACHEBRIDGE_LISTEN", value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Concurrent /api/v1/stream clients; more get 503 with Retry-After [default: 1024].
    #[arg(long, env = "CACHEBRIDGE_MAX_STREAMS", value_name = "COUNT")]
    pub max_streams: Option<usize>,
    /// An origin whose pages may call the API (CORS), e.g. https://app.example.com; repeat
    /// the flag or separate with commas; `*` allows any [default: none].
    #[arg(
        long,
        env = "CACHEBRIDGE_CORS_ALLOW_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    pub cors_allow_origin: Option<Vec<String>>,
}

fn parse_bridge(s: &str) -> Result<(String, String), String> {
    match s.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((ns.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{s:?} is not NAMESPACE/NAME")),
    }
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

impl TierArgs {
    pub fn apply(self, c: &mut Config) {
        if let Some((namespace, name)) = self.bridge {
            c.bridge.namespace = namespace;
            c.bridge.name = name;
        }
        c.redis.url = self.redis.or(c.redis.url.take());
        c.redis.username = self.redis_username.or(c.redis.username.take());
        c.redis.password_file = self.redis_password_file.or(c.redis.password_file.take());
        set(&mut c.redis.sentinel, self.redis_sentinel);
        c.redis.master = self.redis_master.or(c.redis.master.take());
        set(&mut c.redis.cluster, self.redis_cluster);
        c.redis.sentinel_username = self
            .redis_sentinel_username
            .or(c.redis.sentinel_username.take());
        c.redis.sentinel_password_file = self
            .redis_sentinel_password_file
            .or(c.redis.sentinel_password_file.take());
        set(&mut c.memcached.servers, self.memcached);
        c.key_prefix = self.key_prefix.or(c.key_prefix.take());
    }
}

impl CacheArgs {
    pub fn apply(self, c: &mut Config) {
        set(&mut c.cache.l1_max_bytes, self.l1_max_bytes);
        set(&mut c.cache.l1_ttl, self.l1_ttl);
        set(&mut c.cache.l2_ttl, self.l2_ttl);
        set(&mut c.cache.l3_ttl, self.l3_ttl);
        set(&mut c.cache.staleness_budget, self.staleness_budget);
        set(&mut c.cache.tier_timeout, self.tier_timeout);
        set(&mut c.coherence.heartbeat_interval, self.heartbeat_interval);
    }
}

impl WriterArgs {
    pub fn apply(self, c: &mut Config) {
        set(&mut c.writer.source, self.source);
        c.writer.ingest_listen = self.ingest_listen.or(c.writer.ingest_listen);
        c.writer.status_listen = self.status_listen.or(c.writer.status_listen);
        set(&mut c.writer.seed, self.seed);
        set(&mut c.writer.tick_rate, self.tick_rate);
        set(&mut c.writer.symbols, self.symbols);
        set(&mut c.writer.publish_interval, self.publish_interval);
        set(&mut c.writer.replay_speed, self.replay_speed);
        set(&mut c.redis.wait_replicas, self.redis_wait_replicas);
        set(&mut c.redis.wait_timeout, self.redis_wait_timeout);
        c.writer.ingest_token_file = self.ingest_token_file.or(c.writer.ingest_token_file.take());
    }
}

impl HttpArgs {
    pub fn apply(self, c: &mut Config) {
        let h = &mut c.http;
        set(&mut h.header_read_timeout, self.http_header_read_timeout);
        set(&mut h.body_read_timeout, self.http_body_read_timeout);
        set(&mut h.idle_timeout, self.http_idle_timeout);
        set(&mut h.write_timeout, self.http_write_timeout);
        set(&mut h.max_connections, self.http_max_connections);
        set(&mut h.max_body_bytes, self.http_max_body_bytes);
    }
}

impl ListenArgs {
    pub fn apply(self, c: &mut Config) {
        set(&mut c.reader.listen, self.listen);
        set(&mut c.reader.max_streams, self.max_streams);
        set(&mut c.reader.cors_allowed_origins, self.cors_allow_origin);
    }
}

/// Which process to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Local,
    Writer,
    Reader,
    ShowConfig,
}

impl Cli {
    /// `--bridge NAMESPACE/NAME` and its poll interval, for writer and reader.
    pub fn bridge(&self) -> Option<(String, String, Duration)> {
        match &self.command {
            Command::Writer { tiers, .. } | Command::Reader { tiers, .. } => tiers
                .bridge
                .clone()
                .map(|(ns, name)| (ns, name, tiers.bridge_poll)),
            _ => None,
        }
    }

    /// The role and its configuration: defaults, then the file, then flags.
    pub fn into_config(self) -> Result<(Role, Config), crate::config::ConfigError> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        let role = match self.command {
            Command::Local {
                tiers,
                cache,
                writer,
                listen,
                http,
            } => {
                apply_all(&mut config, tiers, cache, writer, listen);
                http.apply(&mut config);
                Role::Local
            }
            Command::ShowConfig {
                tiers,
                cache,
                writer,
                listen,
                http,
            } => {
                apply_all(&mut config, tiers, cache, writer, listen);
                http.apply(&mut config);
                Role::ShowConfig
            }
            Command::Writer {
                tiers,
                cache,
                writer,
                http,
            } => {
                tiers.apply(&mut config);
                cache.apply(&mut config);
                writer.apply(&mut config);
                http.apply(&mut config);
                Role::Writer
            }
            Command::Reader {
                tiers,
                cache,
                listen,
                http,
            } => {
                tiers.apply(&mut config);
                cache.apply(&mut config);
                listen.apply(&mut config);
                http.apply(&mut config);
                Role::Reader
            }
        };
        config.validate()?;
        Ok((role, config))
    }
}

fn apply_all(
    config: &mut Config,
    tiers: TierArgs,
    cache: CacheArgs,
    writer: WriterArgs,
    listen: ListenArgs,
) {
    tiers.apply(config);
    cache.apply(config);
    writer.apply(config);
    listen.apply(config);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> (Role, Config) {
        Cli::try_parse_from(args).unwrap().into_config().unwrap()
    }

    #[test]
    fn flags_fill_the_config() {
        let (role, config) = parse(&[
            "cachebridge-dataplane",
            "writer",
            "--redis",
            "redis://r:6379",
            "--memcached",
            "a:11211,b:11211",
            "--source",
            "replay:ticks.csv",
            "--publish-interval",
            "100ms",
        ]);
        assert_eq!(role, Role::Writer);
        assert_eq!(config.redis.url.as_deref(), Some("redis://r:6379"));
        assert_eq!(config.memcached.servers, ["a:11211", "b:11211"]);
        assert_eq!(config.writer.source, Source::Replay("ticks.csv".into()));
        assert_eq!(config.writer.publish_interval, Duration::from_millis(100));
    }

    #[test]
    fn flags_override_the_file_and_the_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.yaml");
        std::fs::write(
            &path,
            "redis:\n  url: redis://file:6379\nwriter:\n  seed: 9\n",
        )
        .unwrap();
        let file = path.to_str().unwrap();
        let (_, config) = parse(&["x", "--config", file, "writer", "--seed", "5"]);
        assert_eq!(config.redis.url.as_deref(), Some("redis://file:6379"));
        assert_eq!(config.writer.seed, 5);
        let (_, config) = parse(&["x", "--config", file, "reader"]);
        assert_eq!(config.redis.url.as_deref(), Some("redis://file:6379"));
    }

    #[test]
    fn sentinel_flags_fill_the_config() {
        let (role, config) = parse(&[
            "x",
            "writer",
            "--redis-sentinel",
            "s-0:26379,s-1:26379",
            "--redis-master",
            "cache",
            "--redis-wait-replicas",
            "1",
            "--redis-wait-timeout",
            "20ms",
        ]);
        assert_eq!(role, Role::Writer);
        assert_eq!(config.redis.sentinel, ["s-0:26379", "s-1:26379"]);
        assert_eq!(config.redis.master.as_deref(), Some("cache"));
        assert_eq!(config.redis.wait_replicas, 1);
        assert_eq!(config.redis.wait_timeout, Duration::from_millis(20));
        let (_, reader) = parse(&[
            "x",
            "reader",
            "--redis-sentinel",
            "s:1",
            "--redis-master",
            "m",
        ]);
        assert!(reader.redis.uses_sentinel());
        let err = Cli::try_parse_from(["x", "reader", "--redis-sentinel", "s:1"])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("--redis-master"), "{err}");
    }

    #[test]
    fn cluster_flag_fills_the_config_for_every_role() {
        for role in ["writer", "reader", "local"] {
            let (_, config) = parse(&["x", role, "--redis-cluster", "n-0:7000,n-1:7001"]);
            assert_eq!(config.redis.cluster, ["n-0:7000", "n-1:7001"]);
            assert!(config.key_prefix().starts_with('{'));
        }
        let err = Cli::try_parse_from([
            "x",
            "reader",
            "--redis-cluster",
            "n:1",
            "--redis",
            "redis://r",
        ])
        .unwrap()
        .into_config()
        .unwrap_err()
        .to_string();
        assert!(err.contains("give one of"), "{err}");
    }

    #[test]
    fn http_limits_and_the_token_file_come_from_flags() {
        let (_, config) = parse(&[
            "x",
            "writer",
            "--http-header-read-timeout",
            "2s",
            "--http-body-read-timeout",
            "3s",
            "--http-idle-timeout",
            "4s",
            "--http-write-timeout",
            "7s",
            "--http-max-connections",
            "5",
            "--http-max-body-bytes",
            "6",
            "--ingest-token-file",
            "/run/token",
        ]);
        let http = &config.http;
        assert_eq!(http.header_read_timeout, Duration::from_secs(2));
        assert_eq!(http.body_read_timeout, Duration::from_secs(3));
        assert_eq!(http.idle_timeout, Duration::from_secs(4));
        assert_eq!(http.write_timeout, Duration::from_secs(7));
        assert_eq!((http.max_connections, http.max_body_bytes), (5, 6));
        assert_eq!(
            config.writer.ingest_token_file.as_deref(),
            Some(std::path::Path::new("/run/token"))
        );
        let err = Cli::try_parse_from(["x", "reader", "--http-max-connections", "0"])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("connection limit"), "{err}");
        let (_, config) = parse(&["x", "reader", "--max-streams", "7"]);
        assert_eq!(config.reader.max_streams, 7);
        let yaml = serde_yaml::to_string(&config).unwrap();
        assert!(yaml.contains("maxStreams: 7"), "{yaml}");
    }

    #[test]
    fn cors_origins_come_from_repeated_or_listed_flags() {
        let (_, config) = parse(&[
            "x",
            "reader",
            "--cors-allow-origin",
            "https://a.example,https://b.example",
            "--cors-allow-origin",
            "http://localhost:3000",
        ]);
        assert_eq!(
            config.reader.cors_allowed_origins,
            [
                "https://a.example",
                "https://b.example",
                "http://localhost:3000"
            ]
        );
        let err = Cli::try_parse_from(["x", "local", "--cors-allow-origin", "a.example"])
            .unwrap()
            .into_config()
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://"), "{err}");
    }

    #[test]
    fn bad_values_are_explained() {
        let err = Cli::try_parse_from(["x", "writer", "--source", "kafka"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("kafka"), "{err}");
        let err = Cli::try_parse_from(["x", "reader", "--bridge", "nope"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("NAMESPACE/NAME"), "{err}");
    }
}
