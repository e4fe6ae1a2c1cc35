//! Test harness: real `redis-server` and `memcached` processes on free
//! loopback ports, started per test and killed when dropped, plus helpers
//! to build dataplane configs against them and to await conditions.
//!
//! Nothing here assumes a server is already running; the servers come from
//! Debian's `redis-server` and `memcached` packages (the README's test
//! command installs them).

#![allow(dead_code)]

use cachebridge_dataplane::app::{Tiers, build_reader};
use cachebridge_dataplane::config::{Config, Source};
use cachebridge_dataplane::metrics::Metrics;
use cachebridge_dataplane::reader::Reader;
use cachebridge_dataplane::writer::publisher::Publisher;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long any awaited condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Which server a [`Server`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Memcached,
}

/// A server process on a loopback port; killed on drop.
pub struct Server {
    kind: Kind,
    extra: Vec<String>,
    pub port: u16,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub fn redis() -> Server {
        Server::start(Kind::Redis, free_port(), Vec::new())
    }

    /// A Redis whose default user needs this password.
    pub fn redis_with_password(password: &str) -> Server {
        Server::start(
            Kind::Redis,
            free_port(),
            vec!["--requirepass".into(), password.into()],
        )
    }

    /// A Redis with extra arguments chosen once its port is known (TLS).
    pub fn redis_with(extra: impl FnOnce(u16) -> Vec<String>) -> Server {
        let port = free_port();
        Server::start(Kind::Redis, port, extra(port))
    }

    pub fn memcached() -> Server {
        Server::start(Kind::Memcached, free_port(), Vec::new())
    }

    fn start(kind: Kind, port: u16, extra: Vec<String>) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = spawn(kind, port, dir.path(), &extra);
        wait_for_port(port, &mut child);
        Server {
            kind,
            extra,
            port,
            child: Some(child),
            _dir: dir,
        }
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server (SIGKILL: a crash, not a clean shutdown).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty.
    pub fn restart(&mut self) {
        self.kill();
        let mut child = spawn(self.kind, self.port, self._dir.path(), &self.extra);
        wait_for_port(self.port, &mut child);
        self.child = Some(child);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(kind: Kind, port: u16, dir: &Path, extra: &[String]) -> Child {
    let port_s = port.to_string();
    let (program, args): (&str, Vec<&str>) = match kind {
        Kind::Redis => (
            "redis-server",
            vec![
                "--port",
                &port_s,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ],
        ),
        // `-u` is required when running as root (CI) and ignored otherwise.
        Kind::Memcached => (
            "memcached",
            vec![
                "-p",
                &port_s,
                "-l",
                "127.0.0.1",
                "-U",
                "0",
                "-m",
                "64",
                "-u",
                "nobody",
            ],
        ),
    };
    Command::new(program)
        .args(&args)
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {program} ({e}); run the README's test command, which installs it")
        })
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

fn wait_for_port(port: u16, child: &mut Child) {
    let deadline = Instant::now() + PATIENCE;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("server for port {port} exited at start: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A config for these servers with test-friendly, fast timings.
pub fn config(redis: Option<&Server>, memcached: &[&Server]) -> Config {
    let mut config = Config::default();
    config.bridge.namespace = "test".into();
    config.bridge.name = format!("b{}", free_port());
    config.redis.url = redis.map(Server::url);
    config.memcached.servers = memcached.iter().map(|m| m.addr()).collect();
    config.reader.listen = "127.0.0.1:0".parse().unwrap();
    config.writer.source = Source::None;
    config.writer.publish_interval = Duration::from_millis(50);
    config.coherence.heartbeat_interval = Duration::from_millis(100);
    config.cache.tier_timeout = Duration::from_millis(200);
    config.cache.breaker_cooldown = Duration::from_millis(200);
    config
}

/// Awaits a condition checked by `probe`, failing the test after [`PATIENCE`].
/// Used only where the event is visible to another process (HTTP), not as
/// a substitute for awaiting an in-process signal.
pub async fn eventually<F, Fut, T>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Awaits a watch channel reaching a state.
pub async fn until<T: Clone>(
    what: &str,
    rx: &mut tokio::sync::watch::Receiver<T>,
    ok: impl Fn(&T) -> bool,
) -> T {
    tokio::time::timeout(PATIENCE, rx.wait_for(|v| ok(v)))
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
        .expect("sender alive")
        .clone()
}

/// A synchronous Redis connection for poking at the server directly.
pub fn redis_conn(server: &Server) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

/// NDJSON for one tick.
pub fn tick(symbol: &str, price: f64, volume: u64) -> String {
    format!(
        r#"{{"symbol":"{symbol}","price":{price},"volume":{volume},"ts":"2026-01-02T15:04:05Z"}}"#
    )
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// A writer's publisher over the config's tiers.
pub fn publisher(config: &Config) -> Publisher {
    let tiers = Tiers::connect(config, "test writer", false).unwrap();
    let breaker = (3, Duration::from_millis(200));
    Publisher::new(
        tiers.keys,
        tiers.l3,
        tiers.l2.map(Arc::new),
        breaker,
        Arc::new(Metrics::new()),
    )
}

/// A reader over the config's tiers; its coherence follower is not started.
pub fn reader(config: &Config) -> Reader {
    let tiers = Tiers::connect(config, "test reader", false).unwrap();
    build_reader(config, tiers, Arc::new(Metrics::new()))
}
