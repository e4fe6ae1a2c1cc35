//! Assembles writers, readers and `local` from a [`Config`]: which tiers
//! exist, which tasks run, which ports listen. The binary and the tests
//! start processes through these functions only, so tests exercise the
//! same wiring users run.

use crate::cache::TieredCache;
use crate::cache::l1;
use crate::cache::l2_memcached::Memcached;
use crate::cache::l3::L3;
use crate::cache::l3::cluster::{ClusterSeeds, slot_of};
use crate::cache::l3::memory::MemoryStore;
use crate::cache::l3::redis::{Locator, RedisStore, StoreSettings};
use crate::cache::l3::sentinel::{Login, Sentinels};
use crate::config::{Config, HttpConfig, Source};
use crate::keys::Keys;
use crate::metrics::Metrics;
use crate::openapi::serve_with_document;
use crate::reader::coherence::Coherence;
use crate::reader::{Reader, cors, stats};
use crate::serve;
use crate::writer::openapi::WriterApi;
use crate::writer::publisher::{Publisher, ReplicaWait};
use crate::writer::token::{TokenError, TokenFile};
use crate::writer::{self, ingest, sources};
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

/// Environment variable holding the Redis password (from a Secret).
pub const REDIS_PASSWORD_ENV: &str = "CACHEBRIDGE_REDIS_PASSWORD";
/// Environment variable holding the Sentinel password (from a Secret).
pub const SENTINEL_PASSWORD_ENV: &str = "CACHEBRIDGE_REDIS_SENTINEL_PASSWORD";

/// Why a process could not start, in words a user can act on.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(
        "{role} needs a Redis URL: pass --redis, set CACHEBRIDGE_REDIS, or set redis.url in the config file (or name Sentinels: --redis-sentinel with --redis-master; or Redis Cluster nodes: --redis-cluster)"
    )]
    NoRedis { role: &'static str },
    #[error("cannot use Redis at {url}: {reason}")]
    Redis { url: String, reason: String },
    #[error("cannot read the password file {path}: {source}")]
    PasswordFile {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Replay(#[from] sources::ReplayError),
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Secrets a process needs, kept apart from [`Config`] so they can never
/// be serialized into a ConfigMap or printed with it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub redis_password: Option<String>,
    pub sentinel_password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = |p: &Option<String>| p.as_ref().map(|_| "<redacted>");
        f.debug_struct("Credentials")
            .field("redis_password", &shown(&self.redis_password))
            .field("sentinel_password", &shown(&self.sentinel_password))
            .finish()
    }
}

impl Credentials {
    /// Passwords come from a file (a mounted Secret) or the environment;
    /// never from the config file or a flag, which end up in logs and ConfigMaps.
    pub fn load(config: &Config) -> Result<Credentials, StartError> {
        let redis = &config.redis;
        Ok(Credentials {
            redis_password: password(redis.password_file.as_deref(), REDIS_PASSWORD_ENV)?,
            sentinel_password: password(
                redis.sentinel_password_file.as_deref(),
                SENTINEL_PASSWORD_ENV,
            )?,
        })
    }
}

/// A password from its file if one is named, else from the environment.
fn password(file: Option<&std::path::Path>, env: &str) -> Result<Option<String>, StartError> {
    match file {
        Some(path) => {
            let text =
                std::fs::read_to_string(path).map_err(|source| StartError::PasswordFile {
                    path: path.display().to_string(),
                    source,
                })?;
            Ok(Some(text.trim_end_matches(['\r', '\n']).to_owned()))
        }
        None => Ok(std::env::var(env).ok().filter(|p| !p.is_empty())),
    }
}

/// The shared tiers of one bridge, as this process sees them.
pub struct Tiers {
    pub keys: Keys,
    pub l3: Arc<L3>,
    /// Shared so the pool can be resized in place ([`Running::resize_memcached`]).
    pub l2: Option<Arc<Memcached>>,
}

impl Tiers {
    /// Redis if configured, else (only where allowed) the embedded store.
    pub fn connect(
        config: &Config,
        role: &'static str,
        allow_embedded: bool,
    ) -> Result<Tiers, StartError> {
        Tiers::connect_with(config, &Credentials::load(config)?, role, allow_embedded)
    }

    pub fn connect_with(
        config: &Config,
        credentials: &Credentials,
        role: &'static str,
        allow_embedded: bool,
    ) -> Result<Tiers, StartError> {
        config.validate()?;
        let keys = Keys::new(config.key_prefix());
        let l3 = match redis_locator(config, credentials) {
            Some(locator) => L3::Redis(Box::new(redis_store(
                config,
                credentials,
                locator,
                keys.clone(),
            )?)),
            None if allow_embedded => L3::Memory(MemoryStore::new(
                keys.clone(),
                usize::try_from(config.coherence.stream_max_len).unwrap_or(usize::MAX),
            )),
            None => return Err(StartError::NoRedis { role }),
        };
        let l2 = (!config.memcached.servers.is_empty()).then(|| {
            Arc::new(Memcached::new(
                config.memcached.servers.clone(),
                config.cache.tier_timeout,
                config.cache.l2_ttl,
            ))
        });
        Ok(Tiers {
            keys,
            l3: Arc::new(l3),
            l2,
        })
    }

    /// A second view of the same tiers (same L3 handle, own L2 pool).
    fn share(&self, config: &Config) -> Tiers {
        Tiers {
            keys: self.keys.clone(),
            l3: Arc::clone(&self.l3),
            l2: self.l2.as_ref().map(|m| {
                Arc::new(Memcached::new(
                    m.servers(),
                    config.cache.tier_timeout,
                    config.cache.l2_ttl,
                ))
            }),
        }
    }
}

/// A fixed URL, the Sentinels, the cluster, or none configured.
fn redis_locator(config: &Config, credentials: &Credentials) -> Option<Locator> {
    let redis = &config.redis;
    if redis.uses_cluster() {
        let keys = Keys::new(config.key_prefix());
        let seeds = ClusterSeeds::new(
            redis.cluster.clone(),
            slot_of(keys.seq().as_bytes()),
            redis_login(config, credentials),
            config.cache.tier_timeout,
        );
        return Some(Locator::Cluster(seeds));
    }
    if redis.uses_sentinel() {
        let sentinels = Sentinels::new(
            redis.sentinel.clone(),
            redis.master.clone().unwrap_or_default(),
            Login {
                username: redis.sentinel_username.clone(),
                password: credentials.sentinel_password.clone(),
            },
            redis_login(config, credentials),
            config.cache.tier_timeout,
        );
        return Some(Locator::Sentinel(sentinels));
    }
    redis.url.clone().map(Locator::Url)
}

fn redis_login(config: &Config, credentials: &Credentials) -> Login {
    Login {
        username: config.redis.username.clone(),
        password: credentials.redis_password.clone(),
    }
}

fn redis_store(
    config: &Config,
    credentials: &Credentials,
    locator: Locator,
    keys: Keys,
) -> Result<RedisStore, StartError> {
    let url = match &locator {
        Locator::Url(url) => url.clone(),
        Locator::Sentinel(s) => format!("Sentinel master {:?}", s.master()),
        Locator::Cluster(c) => format!("Redis Cluster {}", c.seeds().join(",")),
    };
    let settings = StoreSettings {
        timeout: config.cache.tier_timeout,
        ttl: config.cache.l3_ttl,
        stream_max_len: config.coherence.stream_max_len,
    };
    RedisStore::open(locator, redis_login(config, credentials), keys, settings).map_err(|e| {
        StartError::Redis {
            url,
            reason: e.to_string(),
        }
    })
}

/// How long in-flight HTTP requests may take to finish on shutdown.
pub const DRAIN: Duration = Duration::from_secs(10);

/// A running reader, writer or `local`; its tasks stop when it is dropped.
pub struct Running {
    /// Where the HTTP server listens (the API, or ingest for a writer).
    pub addr: Option<SocketAddr>,
    pub reader: Option<Reader>,
    pub metrics: Arc<Metrics>,
    /// Every Memcached pool of the process, for [`Running::resize_memcached`].
    l2_pools: Vec<Arc<Memcached>>,
    /// Background work: sources, publishing, coherence, stats.
    tasks: JoinSet<()>,
    /// HTTP servers, stopped gracefully by `stop`.
    servers: JoinSet<()>,
    shutdown: watch::Sender<bool>,
}

impl Running {
    fn new(reader: Option<Reader>, metrics: Arc<Metrics>) -> Self {
        Running {
            addr: None,
            reader,
            metrics,
            l2_pools: Vec::new(),
            tasks: JoinSet::new(),
            servers: JoinSet::new(),
            shutdown: watch::channel(false).0,
        }
    }

    /// Switches every Memcached pool of the process to `servers` in place
    /// (the pool was resized): L1, the Redis connections and the coherence
    /// position stay. False when the process has no L2 or already uses
    /// exactly these servers.
    pub fn resize_memcached(&self, servers: &[String]) -> bool {
        let mut changed = false;
        for pool in &self.l2_pools {
            changed |= pool.resize(servers.to_vec());
        }
        changed
    }

    /// Whether the process has an L2 it could resize.
    pub fn has_memcached(&self) -> bool {
        !self.l2_pools.is_empty()
    }

    /// Waits until something fails: a task panics or a server stops. A
    /// task that returns has finished its work (a replay that reached the
    /// end of its file), which is no failure: the rest keeps running.
    pub async fn wait(&mut self) {
        loop {
            let ended = tokio::select! {
                Some(ended) = self.tasks.join_next() => match ended {
                    Ok(()) => continue,
                    Err(e) => e,
                },
                Some(ended) = self.servers.join_next() => match ended {
                    Ok(()) => return,
                    Err(e) => e,
                },
                else => return std::future::pending().await,
            };
            tracing::error!(error = %ended, "a task stopped unexpectedly");
            return;
        }
    }

    /// Stops accepting connections, lets in-flight requests finish (at most
    /// [`DRAIN`]), then stops everything; ports are free when it returns.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        // Live streams never finish by themselves: end them, or the drain
        // would wait for them until it gives up.
        if let Some(reader) = &self.reader {
            reader.close_streams();
        }
        let servers = &mut self.servers;
        let drained = tokio::time::timeout(DRAIN, async {
            while servers.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("requests still running after the drain period; closing them");
        }
        self.servers.shutdown().await;
        self.tasks.shutdown().await;
    }

    /// Serves `router` on `addr` within `limits` until `stop`; returns the
    /// bound address.
    async fn serve(
        &mut self,
        addr: SocketAddr,
        router: Router,
        limits: &HttpConfig,
    ) -> Result<SocketAddr, StartError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Listen { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| StartError::Listen { addr, source })?;
        let router = with_request_tracing(router);
        let stopping = self.shutdown.subscribe();
        let limits = limits.clone();
        self.servers
            .spawn(async move { serve::serve(listener, router, &limits, stopping).await });
        Ok(bound)
    }
}

/// Adds per-request spans and logs when they are wanted
/// (`RUST_LOG=tower_http=debug`). Off by default: even disabled, the layer
/// times every request and wraps every body, which the hot path need not pay.
fn with_request_tracing(router: Router) -> Router {
    if !tracing::enabled!(target: "tower_http::trace", tracing::Level::DEBUG) {
        return router;
    }
    // 503 "no data yet" is an expected answer, not a server failure: log
    // failures at debug level like every other response.
    router.layer(
        tower_http::trace::TraceLayer::new_for_http()
            .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
    )
}

/// The reader's (or `local`'s) routes with their document served, behind
/// the CORS policy the config sets.
fn api_router(routes: OpenApiRouter, config: &Config) -> Router {
    let (router, _) = serve_with_document(routes);
    cors::apply(router, &config.reader.cors_allowed_origins)
}

/// Builds the reader side over given tiers (used by `reader` and `local`).
pub fn build_reader(config: &Config, tiers: Tiers, metrics: Arc<Metrics>) -> Reader {
    let l1 = l1::build(config.cache.l1_max_bytes, config.cache.l1_ttl);
    let breakers = (config.cache.breaker_failures, config.cache.breaker_cooldown);
    let cache = Arc::new(TieredCache::new(
        tiers.keys,
        l1,
        tiers.l2,
        tiers.l3,
        breakers,
        Arc::clone(&metrics),
    ));
    let coherence = Coherence::new(
        Arc::clone(&cache),
        Arc::clone(&metrics),
        config.coherence.heartbeat_interval,
    );
    Reader::new(
        cache,
        coherence,
        metrics,
        config.cache.staleness_budget,
        config.reader.max_streams,
    )
}

/// Which process to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Local,
    Writer,
    Reader,
}

/// Starts a role with explicit credentials (the `--bridge` path).
pub async fn start(
    role: Role,
    config: &Config,
    credentials: &Credentials,
) -> Result<Running, StartError> {
    match role {
        Role::Local => start_local_with(config, credentials).await,
        Role::Writer => start_writer_with(config, credentials).await,
        Role::Reader => start_reader_with(config, credentials).await,
    }
}

/// Starts a reader: the API on `reader.listen` and the coherence follower.
pub async fn start_reader(config: &Config) -> Result<Running, StartError> {
    start_reader_with(config, &Credentials::load(config)?).await
}

async fn start_reader_with(
    config: &Config,
    credentials: &Credentials,
) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::new());
    let tiers = Tiers::connect_with(config, credentials, "the reader", false)?;
    let pools: Vec<_> = tiers.l2.iter().cloned().collect();
    let reader = build_reader(config, tiers, Arc::clone(&metrics));
    let mut running = Running::new(Some(reader.clone()), metrics);
    running.l2_pools = pools;
    running.tasks.spawn(Arc::clone(&reader.coherence).run());
    running
        .tasks
        .spawn(stats::report_loop(reader.clone(), stats::instance_name()));
    let router = api_router(reader.routes(), config);
    let addr = running
        .serve(config.reader.listen, router, &config.http)
        .await?;
    tracing::info!(%addr, "reader listening");
    running.addr = Some(addr);
    Ok(running)
}

/// Starts a writer: its source, the publish loop and, if configured, ingest.
pub async fn start_writer(config: &Config) -> Result<Running, StartError> {
    start_writer_with(config, &Credentials::load(config)?).await
}

async fn start_writer_with(
    config: &Config,
    credentials: &Credentials,
) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::new());
    let tiers = Tiers::connect_with(config, credentials, "the writer", false)?;
    let mut running = Running::new(None, Arc::clone(&metrics));
    running.l2_pools = tiers.l2.iter().cloned().collect();
    let (book, healthy) = spawn_writer(config, tiers, &metrics, &mut running.tasks)?;
    let status = || {
        OpenApiRouter::with_openapi(WriterApi::openapi()).merge(writer::status::routes(
            healthy.clone(),
            Arc::clone(&metrics),
        ))
    };
    let (ingest_at, status_at) = (config.writer.ingest_listen, config.writer.status_listen);
    if let Some(listen) = ingest_at {
        let ingest = ingest::routes(book, Arc::clone(&metrics), ingest_token(config)?);
        let (router, _) = serve_with_document(status().merge(ingest));
        let addr = running.serve(listen, router, &config.http).await?;
        tracing::info!(%addr, "ingest listening: POST /ingest (and /healthz, /readyz, /metrics)");
        running.addr = Some(addr);
    }
    if let Some(listen) = status_at.filter(|s| Some(*s) != ingest_at) {
        let (router, _) = serve_with_document(status());
        let addr = running.serve(listen, router, &config.http).await?;
        tracing::info!(%addr, "status listening: /healthz, /readyz, /metrics");
    }
    Ok(running)
}

/// Writer and reader in one process, sharing one set of tiers; ingest is
/// served beside the API.
pub async fn start_local(config: &Config) -> Result<Running, StartError> {
    start_local_with(config, &Credentials::load(config)?).await
}

async fn start_local_with(
    config: &Config,
    credentials: &Credentials,
) -> Result<Running, StartError> {
    let metrics = Arc::new(Metrics::new());
    let tiers = Tiers::connect_with(config, credentials, "local", true)?;
    let reader_tiers = tiers.share(config);
    let pools: Vec<_> = tiers.l2.iter().chain(&reader_tiers.l2).cloned().collect();
    let reader = build_reader(config, reader_tiers, Arc::clone(&metrics));
    let mut running = Running::new(Some(reader.clone()), Arc::clone(&metrics));
    running.l2_pools = pools;
    // The reader's readiness speaks for `local`; the writer's is not served.
    let (book, _) = spawn_writer(config, tiers, &metrics, &mut running.tasks)?;
    running.tasks.spawn(Arc::clone(&reader.coherence).run());
    let mut routes = reader
        .routes()
        .merge(ingest::routes(book, metrics, ingest_token(config)?));
    routes.get_openapi_mut().info.title = "CacheBridge local API (reader and writer ingest)".into();
    let router = api_router(routes, config);
    running.addr = Some(
        running
            .serve(config.reader.listen, router, &config.http)
            .await?,
    );
    Ok(running)
}

/// The ingest token file, if one is configured; read once now so a wrong
/// path stops the start instead of refusing every batch later.
fn ingest_token(config: &Config) -> Result<Option<Arc<TokenFile>>, StartError> {
    let Some(path) = &config.writer.ingest_token_file else {
        return Ok(None);
    };
    Ok(Some(Arc::new(TokenFile::open(path)?)))
}

fn spawn_writer(
    config: &Config,
    tiers: Tiers,
    metrics: &Arc<Metrics>,
    tasks: &mut JoinSet<()>,
) -> Result<(writer::SharedBook, watch::Receiver<bool>), StartError> {
    let book = writer::new_book();
    let w = &config.writer;
    match &w.source {
        Source::Synthetic => {
            tasks.spawn(sources::synthetic(
                book.clone(),
                w.seed,
                w.symbols,
                w.tick_rate,
                Arc::clone(metrics),
            ));
        }
        Source::Replay(path) => {
            let ticks = sources::load_replay(path)?;
            tracing::info!(path = %path.display(), ticks = ticks.len(), "replaying tick file");
            tasks.spawn(sources::replay(
                book.clone(),
                ticks,
                w.replay_speed,
                Arc::clone(metrics),
            ));
        }
        Source::None => tracing::info!("no built-in source: waiting for POST /ingest"),
    }
    let breaker = (config.cache.breaker_failures, config.cache.breaker_cooldown);
    let wait = ReplicaWait {
        replicas: config.redis.wait_replicas,
        timeout: config.redis.wait_timeout,
    };
    let publisher = Publisher::new(tiers.keys, tiers.l3, tiers.l2, breaker, Arc::clone(metrics))
        .with_replica_wait(Some(wait));
    let (healthy, readiness) = watch::channel(false);
    tasks.spawn(writer::publish_loop(
        book.clone(),
        publisher,
        config.clone(),
        healthy,
    ));
    Ok((book, readiness))
}
