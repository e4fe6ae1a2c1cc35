//! The processes of a run: the reader and writer binaries, the reference
//! servers and the load generators, each pinned to its CPU when `taskset`
//! works, with its output in a log file (a pipe nobody reads could block
//! it), and killed when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The CPU the measured servers run on, and the one the load comes from.
pub const SERVER_CPU: usize = 0;
pub const LOAD_CPU: usize = 1;

/// Whether processes can be pinned to CPUs here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// `taskset -c` works and there are at least two CPUs.
    Pinned,
    /// Everything runs unpinned; the report says so.
    Unpinned(&'static str),
}

impl Pinning {
    pub fn detect() -> Pinning {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        if cpus < 2 {
            return Pinning::Unpinned("fewer than two CPUs");
        }
        let works = Command::new("taskset")
            .args(["-c", &LOAD_CPU.to_string(), "true"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if works {
            Pinning::Pinned
        } else {
            Pinning::Unpinned("`taskset -c` is missing or not allowed")
        }
    }

    /// A command running `program`, on `cpu` when pinning works.
    pub fn command(self, cpu: usize, program: impl AsRef<Path>) -> Command {
        match self {
            Pinning::Pinned => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg(program.as_ref());
                command
            }
            Pinning::Unpinned(_) => Command::new(program.as_ref()),
        }
    }

    /// Moves a running process (every thread of it) to `cpu`, when pinning works.
    pub fn pin(self, pid: u32, cpu: usize) {
        if self == Pinning::Pinned {
            let status = Command::new("taskset")
                .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
                .stdout(Stdio::null())
                .status();
            assert!(
                status.is_ok_and(|s| s.success()),
                "taskset could not move process {pid} to CPU {cpu}"
            );
        }
    }

    pub fn describe(self) -> String {
        match self {
            Pinning::Pinned => format!(
                "pinned with `taskset`: the server under test on CPU {SERVER_CPU}; the load generator, the writer and Memcached on CPU {LOAD_CPU}; Redis unpinned (the Redis path's reference needs it as much as the reader)"
            ),
            Pinning::Unpinned(why) => format!("**not pinned** ({why}): figures are noisier"),
        }
    }
}

/// A long-running child process; killed (and reaped) on drop.
pub struct Process {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `command` with stdout and stderr going to `NAME.log` in `logs`.
    pub fn spawn(name: &str, mut command: Command, logs: &Path) -> Process {
        let log = logs.join(format!("{name}.log"));
        let file = std::fs::File::create(&log).expect("create a log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone the log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Process {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with the end of the log if the process has exited.
    pub fn check_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); the end of its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// How many threads the process runs (from `/proc`), if readable.
    pub fn threads(&self) -> Option<usize> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.pid())).ok()?;
        Some(tasks.count())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a command to completion and returns its stdout; panics with its
/// stderr if it fails.
pub fn output(what: &str, mut command: Command) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
