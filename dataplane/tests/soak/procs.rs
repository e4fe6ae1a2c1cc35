//! The soak's processes — a writer and two readers of the built binary,
//! each a real process so its RSS and descriptors are its own — and how
//! they are measured from outside: `/proc/PID/status`, `/proc/PID/fd` and
//! the `cachebridge_runtime_tasks` gauge of their `/metrics`.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_cachebridge-dataplane");

/// One dataplane process, killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    /// Where its `/metrics` is served.
    pub metrics: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one process looked like at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub rss_kib: u64,
    pub fds: u64,
    pub tasks: u64,
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
    pub fn spawn(name: &str, args: &[String], metrics: String) -> Proc {
        let child = Command::new(BIN)
            .args(args)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        Proc {
            name: name.to_owned(),
            child,
            metrics,
        }
    }

    /// The median of a few samples a moment apart, so one request in
    /// flight or one reconnect under way does not decide the verdict.
    pub async fn settled_sample(&mut self, http: &reqwest::Client) -> Result<Sample, SampleError> {
        let mut samples = Vec::new();
        for _ in 0..5 {
            samples.push(self.sample(http).await?);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let median = |f: fn(&Sample) -> u64| {
            let mut v: Vec<u64> = samples.iter().map(f).collect();
            v.sort_unstable();
            v[v.len() / 2]
        };
        Ok(Sample {
            rss_kib: median(|s| s.rss_kib),
            fds: median(|s| s.fds),
            tasks: median(|s| s.tasks),
        })
    }

    pub async fn sample(&mut self, http: &reqwest::Client) -> Result<Sample, SampleError> {
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
        let fds = std::fs::read_dir(format!("{proc_dir}/fd")).map_err(io)?.count() as u64;
        let tasks = self.tasks(http).await?;
        Ok(Sample {
            rss_kib,
            fds,
            tasks,
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
