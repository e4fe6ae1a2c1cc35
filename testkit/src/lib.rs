//! Test support shared by the CacheBridge crates: real `redis-server`,
//! `redis-sentinel` and `memcached` processes on free loopback ports,
//! started per test and killed when dropped.
//!
//! Nothing here assumes a server is already running; the servers come from
//! Debian's `redis-server`, `redis-sentinel` and `memcached` packages (the
//! README's test command installs them).

pub mod cluster;
pub mod sentinel;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any awaited condition may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// Which server a [`Server`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Redis,
    Memcached,
    /// `redis-sentinel` reading a config file written into its directory.
    Sentinel,
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

    /// A Redis with fixed extra arguments, e.g. `--requirepass`.
    pub fn redis_args(extra: &[&str]) -> Server {
        Server::start(
            Kind::Redis,
            free_port(),
            extra.iter().map(|a| a.to_string()).collect(),
        )
    }

    pub fn memcached() -> Server {
        Server::start(Kind::Memcached, free_port(), Vec::new())
    }

    /// A Sentinel whose config file holds `config` (given its port).
    pub fn sentinel(config: impl FnOnce(u16) -> String) -> Server {
        let port = free_port();
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join(SENTINEL_CONF), config(port)).expect("sentinel.conf");
        Server::start_in(Kind::Sentinel, port, Vec::new(), dir)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process still runs (not killed, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn start(kind: Kind, port: u16, extra: Vec<String>) -> Server {
        Server::start_in(kind, port, extra, tempfile::tempdir().expect("temp dir"))
    }

    fn start_in(kind: Kind, port: u16, extra: Vec<String>, dir: tempfile::TempDir) -> Server {
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

    /// Freezes the process (SIGSTOP): its sockets stay open but nothing is
    /// answered, which clients see as a network stall, not a closed socket.
    pub fn pause(&mut self) {
        self.signal("STOP");
    }

    /// Lets a [`pause`](Self::pause)d process run again (SIGCONT).
    pub fn resume(&mut self) {
        self.signal("CONT");
    }

    /// Sends a signal with `kill(1)`, which keeps this crate free of libc.
    fn signal(&mut self, name: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("cannot run kill -{name}: {e}"));
        assert!(status.success(), "kill -{name} {} failed", child.id());
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

/// The Sentinel's config file, which it also rewrites as it learns.
const SENTINEL_CONF: &str = "sentinel.conf";

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
        Kind::Sentinel => ("redis-sentinel", vec![SENTINEL_CONF]),
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
