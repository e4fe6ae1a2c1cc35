//! A Redis primary with two replicas, watched by three Sentinels: the
//! smallest setup in which a quorum of Sentinels elects a new primary.
//!
//! Every server is protected the way a real deployment is: the dataplane
//! logs in as the ACL user [`CLIENT_USER`], replicas as their own user,
//! Sentinels monitor as another one and ask their own clients for
//! [`SENTINEL_PASSWORD`]. Tests poke at the servers as the `default` user
//! with [`ADMIN_PASSWORD`]. Timings are short so a failover takes a second
//! or two instead of the production half minute.

use crate::Server;

/// The name the Sentinels monitor the primary under.
pub const MASTER: &str = "cache";
/// The dataplane's ACL user on every Redis, and its password.
pub const CLIENT_USER: &str = "dataplane";
pub const CLIENT_PASSWORD: &str = "client-secret";
/// What clients of the Sentinels authenticate with (no user name).
pub const SENTINEL_PASSWORD: &str = "sentinel-secret";
/// The `default` user's password on every Redis.
pub const ADMIN_PASSWORD: &str = "admin-secret";
/// The user replicas replicate as; turning it off cuts replication.
pub const REPLICATION_USER: &str = "replication";
const REPLICATION_PASSWORD: &str = "replication-secret";
const MONITOR_USER: &str = "monitor";
const MONITOR_PASSWORD: &str = "monitor-secret";

/// Sentinel timings: how long a primary may be silent before it counts as
/// down, and the failover timeout.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub down_after_ms: u64,
    pub failover_timeout_ms: u64,
}

impl Timing {
    /// Fast enough for tests; `down-after-milliseconds` 1000 as in the benchmark target.
    pub fn fast() -> Timing {
        Timing {
            down_after_ms: 1000,
            failover_timeout_ms: 2000,
        }
    }
}

/// Three Redis (`redis[0]` starts as the primary) and three Sentinels.
pub struct SentinelGroup {
    pub redis: Vec<Server>,
    pub sentinels: Vec<Server>,
    pub timing: Timing,
}

impl SentinelGroup {
    pub fn start(timing: Timing) -> SentinelGroup {
        let primary = Server::redis_args(&redis_args(None));
        let mut redis = vec![primary];
        let primary_port = redis[0].port;
        for _ in 0..2 {
            redis.push(Server::redis_args(&redis_args(Some(primary_port))));
        }
        let sentinels = (0..3)
            .map(|_| Server::sentinel(|port| sentinel_conf(port, primary_port, timing)))
            .collect();
        SentinelGroup {
            redis,
            sentinels,
            timing,
        }
    }

    /// `HOST:PORT` of every Sentinel.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(Server::addr).collect()
    }

    /// The Redis process on this port.
    pub fn redis_on(&mut self, port: u16) -> &mut Server {
        self.redis
            .iter_mut()
            .find(|r| r.port == port)
            .unwrap_or_else(|| panic!("no Redis of this group on port {port}"))
    }
}

fn redis_args(replica_of: Option<u16>) -> Vec<&'static str> {
    let mut args = vec!["--requirepass", ADMIN_PASSWORD];
    let users = [
        format!("{CLIENT_USER} on >{CLIENT_PASSWORD} ~* &* +@all"),
        format!("{REPLICATION_USER} on >{REPLICATION_PASSWORD} +psync +replconf +ping"),
        format!("{MONITOR_USER} on >{MONITOR_PASSWORD} ~* &* +@all"),
    ];
    for user in users {
        args.push("--user");
        args.extend(leak(user).split(' '));
    }
    args.extend([
        "--masteruser",
        REPLICATION_USER,
        "--masterauth",
        REPLICATION_PASSWORD,
        "--repl-diskless-sync",
        "yes",
        "--repl-diskless-sync-delay",
        "0",
    ]);
    if let Some(port) = replica_of {
        args.extend(["--replicaof", "127.0.0.1", leak(port.to_string())]);
    }
    args
}

/// Arguments live as long as the test process; a handful of short strings.
fn leak(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn sentinel_conf(port: u16, primary: u16, t: Timing) -> String {
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         dir .\n\
         requirepass {SENTINEL_PASSWORD}\n\
         sentinel sentinel-pass {SENTINEL_PASSWORD}\n\
         sentinel resolve-hostnames no\n\
         sentinel monitor {MASTER} 127.0.0.1 {primary} 2\n\
         sentinel auth-user {MASTER} {MONITOR_USER}\n\
         sentinel auth-pass {MASTER} {MONITOR_PASSWORD}\n\
         sentinel down-after-milliseconds {MASTER} {}\n\
         sentinel failover-timeout {MASTER} {}\n\
         sentinel parallel-syncs {MASTER} 2\n",
        t.down_after_ms, t.failover_timeout_ms
    )
}
