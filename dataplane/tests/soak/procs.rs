//! The soak's processes — a writer and two readers of the built binary,
//! each a real process so its RSS and descriptors are its own — and how
//! they are measured from outside: `/proc/PID/status`, `/proc/PID/fd` and
//! the `cachebridge_runtime_tasks` gauge of their `/metrics`.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cachebridge-dataplane");
/// `MALLOC_CONF` of the binary's jemalloc (tikv-jemallocator prefixes its
/// symbols with `_rjem_`, and the variable's name with them).
const JEMALLOC_CONF_VAR: &str = "_RJEM_MALLOC_CONF";

/// One dataplane process, killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    /// Where its `/metrics` is served.
    pub metrics: String,
    /// Port → name of the servers it talks to and its own listener.
    ports: Vec<(u16, &'static str)>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one process looked like at one moment.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub rss_kib: u64,
    pub fds: u64,
    pub tasks: u64,
    /// Open descriptors by what they are (see [`kinds`]), to explain a growth.
    pub kinds: BTreeMap<String, u64>,
}

/// Why a process could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("{0} has exited: {1}")]
    Exited(String, std::process::ExitStatus),
    #[error("cannot read /proc for {0}: {1}")]
    Proc(String, std::io::Error),
    #[error("{0}'s /metrics: {1}")]
    Metrics(String, String),
}

impl Proc {
    pub fn spawn(
        name: &str,
        args: &[String],
        metrics: String,
        ports: Vec<(u16, &'static str)>,
    ) -> Proc {
        let child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            // jemalloc returns freed pages at once instead of over its 10 s
            // decay, so RSS follows live memory (what a leak raises) rather
            // than where the writer's publish sawtooth was when it was read.
            .env(JEMALLOC_CONF_VAR, "dirty_decay_ms:0,muzzy_decay_ms:0")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            metrics,
            ports,
        }
    }

    /// Looks at `/proc` over ten seconds (RSS: the lowest; descriptors: the median), so neither one
    /// reconnect under way nor the moment in the writer's publish cycle
    /// decides the verdict (its RSS swings between ~42 and ~66 MB within each
    /// second: every price history, ~3.5 MB, is serialized and copied on its
    /// way to Redis and Memcached once a second); then the task count
    /// (scraped last, so the scrape's own connection is not among the
    /// descriptors; its task is, the same in every sample).
    pub async fn settled_sample(&mut self, http: &reqwest::Client) -> Result<Sample, SampleError> {
        let mut looks = Vec::new();
        for _ in 0..50 {
            looks.push(self.look()?);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let median = |f: fn(&Sample) -> u64| {
            let mut v: Vec<u64> = looks.iter().map(f).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        // RSS: the lowest look, the floor of the writer's sawtooth, which is
        // what a leak raises; its peaks only say where in the cycle a look fell.
        let rss_kib = looks.iter().map(|s| s.rss_kib).min().unwrap_or(0);
        let fds = median(|s| s.fds);
        let kinds = looks
            .into_iter()
            .find(|s| s.fds == fds)
            .map(|s| s.kinds)
            .unwrap_or_default();
        Ok(Sample {
            rss_kib,
            fds,
            tasks: self.tasks(http).await?,
            kinds,
        })
    }

    /// RSS and descriptors, from `/proc` (tasks are left at 0).
    fn look(&mut self) -> Result<Sample, SampleError> {
        if let Ok(Some(status)) = self.child.try_wait() {
            return Err(SampleError::Exited(self.name.clone(), status));
        }
        let proc_dir = format!("/proc/{}", self.child.id());
        let io = |e| SampleError::Proc(self.name.clone(), e);
        let status = std::fs::read_to_string(format!("{proc_dir}/status")).map_err(io)?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0);
        let io = |e| SampleError::Proc(self.name.clone(), e);
        let kinds = kinds(&proc_dir, &self.ports).map_err(io)?;
        Ok(Sample {
            rss_kib,
            fds: kinds.values().sum(),
            tasks: 0,
            kinds,
        })
    }

    async fn tasks(&self, http: &reqwest::Client) -> Result<u64, SampleError> {
        let fail = |e: String| SampleError::Metrics(self.name.clone(), e);
        let text = http
            .get(&self.metrics)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?
            .text()
            .await
            .map_err(|e| fail(e.to_string()))?;
        text.lines()
            .find_map(|l| l.strip_prefix("cachebridge_runtime_tasks "))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| fail("no cachebridge_runtime_tasks gauge".into()))
    }
}

/// Counts a process's descriptors by kind: listening TCP sockets, other TCP
/// sockets by the named port at either end (`redis`, `memcached`, `listen`
/// for connections to its own port…), other sockets, and by link target for
/// the rest (`pipe`, `anon_inode:[eventfd]`, files).
fn kinds(proc_dir: &str, ports: &[(u16, &'static str)]) -> std::io::Result<BTreeMap<String, u64>> {
    let tcp = tcp_ports(proc_dir);
    let mut kinds = BTreeMap::new();
    for entry in std::fs::read_dir(format!("{proc_dir}/fd"))? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue; // closed while listed
        };
        let target = target.to_string_lossy().into_owned();
        let kind = match target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
        {
            Some(inode) => match tcp.get(inode) {
                Some(&(_, _, true)) => "tcp listening".to_owned(),
                Some((local, remote, false)) => ports
                    .iter()
                    .find(|(p, _)| p == local || p == remote)
                    .map_or("tcp, other".to_owned(), |(_, name)| format!("tcp {name}")),
                None => "socket, not tcp".to_owned(),
            },
            None if target.starts_with("pipe:") => "pipe".to_owned(),
            None if target.starts_with('/') => "file".to_owned(),
            None => target,
        };
        *kinds.entry(kind).or_insert(0) += 1;
    }
    Ok(kinds)
}

/// Socket inode → (local port, remote port, listening?) of every TCP socket
/// the process sees.
fn tcp_ports(proc_dir: &str) -> BTreeMap<String, (u16, u16, bool)> {
    let mut out = BTreeMap::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("{proc_dir}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| {
                addr.rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
            };
            // The fourth column is the state; 0A is LISTEN.
            let listening = cols.get(3) == Some(&"0A");
            if let (Some(local), Some(remote), Some(inode)) = (
                cols.get(1).and_then(|a| port(a)),
                cols.get(2).and_then(|a| port(a)),
                cols.get(9),
            ) {
                out.insert((*inode).to_owned(), (local, remote, listening));
            }
        }
    }
    out
}
