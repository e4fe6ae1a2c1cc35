//! Throughput benchmark: is the reader's hot path at platform speed?
//!
//! The reader binary (`cachebridge-dataplane reader`, as users run it) is
//! compared, case by case, with bare axum references answering the same
//! bytes: from memory for the L1 cases, from one Redis `GET` for the Redis
//! path (L1 off, no Memcached). Reader and reference run one at a time on
//! the same CPU with one tokio worker each, under the same load from the
//! other CPU, in interleaved rounds; the report gives each case's maximum
//! throughput (closed loop, `wrk`), p99 at half the reader's maximum (open
//! loop, at a fixed rate), the reader/reference ratios, and the reader's L1
//! hit ratio from its own metrics, against the targets of issue 7.
//!
//! Run: `cargo bench -p cachebridge-dataplane --bench throughput`; it needs
//! `redis-server`, `memcached` and `wrk` (Debian packages). It prints the
//! report; with `CACHEBRIDGE_BENCH_WRITE=1` it also rewrites its section of
//! `BENCHMARKS.md`. `CACHEBRIDGE_BENCH_QUICK=1` runs one short round per
//! case (a smoke run; its figures are not for the record).

#[path = "../support/report.rs"]
mod report;

mod cases;
mod open_loop;
mod process;
mod reference;
mod render;
mod rig;
mod scrape;
mod wrk;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    // The bench executable is also the reference servers and the open-loop
    // generator, started by itself on the right CPU.
    match args.get(1).map(String::as_str) {
        Some(kind @ (reference::STATIC | reference::REDIS)) => {
            return reference::main(kind, &args[2..]);
        }
        Some(open_loop::COMMAND) => return open_loop::main(&args[2..]),
        _ => {}
    }
    if !wrk::available() {
        eprintln!("error: {}", wrk::WrkError::Missing);
        return ExitCode::from(2);
    }
    let settings = cases::Settings::from_env();
    let run = rig::run_all(&settings);
    let printed = render::report(&run, &settings);
    report::publish(
        "throughput",
        &printed,
        &render::section(&printed, &settings),
    );
    ExitCode::SUCCESS
}
