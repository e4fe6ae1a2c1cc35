//! `cachebridge-dataplane`: parses the command line and runs `local`,
//! `writer` or `reader` until Ctrl-C or SIGTERM.

use cachebridge_dataplane::app::{self, Running};
use cachebridge_dataplane::bridge;
use cachebridge_dataplane::cli::{Cli, Role};
use cachebridge_dataplane::telemetry;
use clap::Parser;
use std::process::ExitCode;

/// jemalloc with background purging: memory freed after a burst of
/// connections goes back to the system within seconds. With glibc's malloc a
/// reader kept most of a burst's peak for good (10 MB at rest, 131 MB after
/// one burst of 2000 connections, creeping up with every burst), which adds
/// up to an OOM kill under the default 256Mi limit; with jemalloc it settles
/// near 25 MB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format, &cli.log_level);
    let bridge = cli.bridge();
    let (role, config) = match cli.into_config() {
        Ok(parsed) => parsed,
        Err(e) => return fail(&e),
    };
    if let Some((namespace, name, poll)) = bridge {
        let role = if role == Role::Writer {
            app::Role::Writer
        } else {
            app::Role::Reader
        };
        return run_bridge(role, &config, &namespace, &name, poll).await;
    }
    let started = match role {
        Role::ShowConfig => {
            let yaml = serde_yaml::to_string(&config).unwrap_or_default();
            let _ = std::io::Write::write_all(&mut std::io::stdout(), yaml.as_bytes());
            return ExitCode::SUCCESS;
        }
        Role::Local => app::start_local(&config).await,
        Role::Writer => app::start_writer(&config).await,
        Role::Reader => app::start_reader(&config).await,
    };
    let mut running = match started {
        Ok(running) => running,
        Err(e) => return fail(&e),
    };
    if role == Role::Local {
        announce_local(&running, config.redis.is_configured());
    }
    tokio::select! {
        _ = running.wait() => {
            tracing::error!("stopping: a component failed");
            return ExitCode::FAILURE;
        }
        _ = shutdown_signal() => {}
    }
    tracing::info!("shutting down: finishing in-flight requests");
    running.stop().await;
    ExitCode::SUCCESS
}

/// Writer or reader configured from a CacheBridge's status.
async fn run_bridge(
    role: app::Role,
    config: &cachebridge_dataplane::config::Config,
    namespace: &str,
    name: &str,
    poll: std::time::Duration,
) -> ExitCode {
    let source = match bridge::Source::connect(namespace, name).await {
        Ok(source) => source,
        Err(e) => return fail(&e),
    };
    match bridge::run(role, config, source, poll, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn announce_local(running: &Running, external: bool) {
    let Some(addr) = running.addr else { return };
    let store = if external {
        "your Redis"
    } else {
        "an embedded in-memory store"
    };
    let text = format!(
        "CacheBridge local is running on {store}.\n  \
         dashboard: http://{addr}/\n  \
         API:       http://{addr}/api/v1/market/overview  (also /tickers, /movers, /api/v1/signals, /api/v1/dashboard)\n  \
         ingest:    curl -X POST --data-binary @ticks.ndjson http://{addr}/ingest\n  \
         metrics:   http://{addr}/metrics\n\
         Press Ctrl-C to stop.\n"
    );
    // A closed stdout (piped into `head`, say) must not stop the server.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(2)
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => return std::future::pending().await,
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
