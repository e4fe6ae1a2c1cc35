//! The soak's traffic: a steady load of well-behaved clients on keep-alive
//! connections, whose every answer must be a 2xx, and connection bursts —
//! many clients at once, each on a connection of its own, for a few seconds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::task::JoinSet;

pub const PATHS: [&str; 4] = [
    "/api/v1/market/overview",
    "/api/v1/market/tickers",
    "/api/v1/market/movers",
    "/api/v1/dashboard",
];

/// Counts of the steady load.
#[derive(Default)]
pub struct Tally {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// The first few failures, to show in the report.
    pub first_failures: std::sync::Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_failures.lock().unwrap();
        if first.len() < 10 {
            first.push(what);
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("HTTP client")
}

/// `clients` clients per reader, each on a keep-alive connection of its
/// own, asking every path in turn with a pause between requests. Paused
/// while the processes are measured, so that no connection of ours is
/// counted among theirs.
pub struct Steady {
    readers: Vec<String>,
    clients: usize,
    pub tally: Arc<Tally>,
    started: tokio::time::Instant,
    stop: Arc<AtomicBool>,
    tasks: JoinSet<()>,
}

impl Steady {
    pub fn start(readers: &[String], clients: usize) -> Steady {
        let mut steady = Steady {
            readers: readers.to_vec(),
            clients,
            tally: Arc::default(),
            started: tokio::time::Instant::now(),
            stop: Arc::default(),
            tasks: JoinSet::new(),
        };
        steady.resume();
        steady
    }

    /// Stops every client and waits until each has closed its connection.
    pub async fn pause(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        while self.tasks.join_next().await.is_some() {}
    }

    pub fn resume(&mut self) {
        self.stop = Arc::default();
        for base in &self.readers {
            for c in 0..self.clients {
                let client = SteadyClient {
                    base: base.clone(),
                    tally: Arc::clone(&self.tally),
                    stop: Arc::clone(&self.stop),
                    started: self.started,
                };
                self.tasks.spawn(client.run(c));
            }
        }
    }
}

struct SteadyClient {
    base: String,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    started: tokio::time::Instant,
}

impl SteadyClient {
    async fn run(self, first: usize) {
        let http = client();
        for n in first.. {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let url = format!("{}{}", self.base, PATHS[n % PATHS.len()]);
            let at = self.started.elapsed().as_secs();
            match http.get(&url).send().await {
                Ok(r) if r.status().is_success() => {
                    let _ = r.bytes().await;
                    self.tally.ok.fetch_add(1, Ordering::Relaxed);
                }
                Ok(r) => {
                    // The body says why (a problem+json detail): keep it.
                    let status = r.status();
                    let why = r.text().await.unwrap_or_default();
                    self.tally.fail(format!("{at} s, {url}: {status} {why}"));
                }
                Err(e) => self.tally.fail(format!("{at} s, {url}: {e}")),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `connections` concurrent connections per reader for `length`, each
/// asking for the dashboard as fast as it is answered. Answers are not
/// judged: a server may refuse a burst beyond its connection cap.
pub async fn burst(readers: &[String], connections: usize, length: Duration) -> u64 {
    let answered = Arc::new(AtomicU64::new(0));
    let until = tokio::time::Instant::now() + length;
    let mut tasks = JoinSet::new();
    for base in readers {
        for _ in 0..connections {
            let (url, answered) = (format!("{base}/api/v1/dashboard"), Arc::clone(&answered));
            tasks.spawn(async move {
                // One client per task: a connection of its own.
                let http = client();
                while tokio::time::Instant::now() < until {
                    match http.get(&url).send().await {
                        Ok(r) => {
                            let _ = r.bytes().await;
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
        }
    }
    while tasks.join_next().await.is_some() {}
    answered.load(Ordering::Relaxed)
}
