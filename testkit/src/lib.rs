//! Test support shared by the CacheBridge crates: real `redis-server`,
//! `redis-sentinel` and `memcached` processes on free loopback ports,
//! started per test and killed when dropped.
//!
//! Nothing here assumes a server is already running; the servers come from
//! Debian's `redis-server`, `redis-sentinel` and `memcached` packages (the
//! README's test command installs them).

pub mod cluster;
pub mod sentinel;

use std::net::TcpListener;
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
        Server::on_free_port(Kind::Redis, |_, _| Vec::new())
    }

    /// A Redis whose default user needs this password.
    pub fn redis_with_password(password: &str) -> Server {
        Server::on_free_port(Kind::Redis, |_, _| {
            vec!["--requirepass".into(), password.into()]
        })
    }

    /// A Redis with extra arguments chosen once its port is known (TLS).
    pub fn redis_with(extra: impl Fn(u16) -> Vec<String>) -> Server {
        Server::on_free_port(Kind::Redis, |port, _| extra(port))
    }

    /// A Redis with fixed extra arguments, e.g. `--requirepass`.
    pub fn redis_args(extra: &[&str]) -> Server {
        Server::on_free_port(Kind::Redis, |_, _| {
            extra.iter().map(|a| a.to_string()).collect()
        })
    }

    pub fn memcached() -> Server {
        Server::on_free_port(Kind::Memcached, |_, _| Vec::new())
    }

    /// A Sentinel whose config file holds `config` (given its port).
    pub fn sentinel(config: impl Fn(u16) -> String) -> Server {
        Server::on_free_port(Kind::Sentinel, |port, dir| {
            std::fs::write(dir.join(SENTINEL_CONF), config(port)).expect("sentinel.conf");
            Vec::new()
        })
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

    /// Starts a server on a port [`free_port`] found free, and on another
    /// if that one was taken meanwhile: a port is only known to be free at
    /// the moment it was asked for, and tests run in parallel. `prepare`
    /// gives the extra arguments for a port (and may write files into the
    /// server's directory).
    fn on_free_port(kind: Kind, prepare: impl Fn(u16, &Path) -> Vec<String>) -> Server {
        const TRIES: usize = 5;
        for _ in 0..TRIES {
            let port = free_port();
            let dir = tempfile::tempdir().expect("temp dir");
            let extra = prepare(port, dir.path());
            let mut child = spawn(kind, port, dir.path(), &extra);
            match await_listening(port, &mut child) {
                Ok(()) => {
                    return Server {
                        kind,
                        extra,
                        port,
                        child: Some(child),
                        _dir: dir,
                    };
                }
                Err(why) => eprintln!("testkit: {kind:?} {why}; trying another port"),
            }
        }
        panic!("{kind:?} could not start on any of {TRIES} free ports");
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
        if let Err(why) = await_listening(self.port, &mut child) {
            panic!("{:?} {why} on restart", self.kind);
        }
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

/// Waits until `child` itself listens on `port`. A connection that is
/// answered is not proof enough: another test's server may have taken the
/// port first, and this one then exits, a moment later, failing to bind.
fn await_listening(port: u16, child: &mut Child) -> Result<(), String> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited at start on port {port}: {status}"));
        }
        if owns_listener(child.id(), port) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("server on port {port} did not start within {PATIENCE:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether process `pid` holds the socket listening on loopback `port`:
/// the listening sockets' inodes from /proc/net/tcp{,6}, matched against
/// the process's descriptors.
fn owns_listener(pid: u32, port: u16) -> bool {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|table| listening_inodes(&table, port))
        .collect();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(Result::ok)
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .any(|link| {
            let link = link.to_string_lossy();
            inodes.iter().any(|i| link == format!("socket:[{i}]"))
        })
}

/// Inodes of the sockets in LISTEN state (`0A`) on `port` in a
/// /proc/net/tcp table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let port = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let listening = cols.get(3) == Some(&"0A");
            let ours = cols.get(1).is_some_and(|local| local.ends_with(&port));
            (listening && ours).then(|| cols.get(9).map(|i| i.to_string()))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_is_started_on_a_port_it_owns() {
        let mut redis = Server::redis();
        assert!(owns_listener(redis.pid().unwrap(), redis.port));
        assert!(redis.is_running());
    }

    #[test]
    fn a_taken_port_is_not_mistaken_for_the_servers_own() {
        // Another process listens on the port this one was told to use:
        // answering connections there is not this server's doing.
        let holder = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = holder.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let mut child = spawn(Kind::Memcached, port, dir.path(), &[]);
        let outcome = await_listening(port, &mut child);
        let _ = child.kill();
        assert!(outcome.is_err(), "{outcome:?}");
    }
}
