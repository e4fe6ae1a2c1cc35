//! Unit checks of the benchmarks' own helpers (section replacement, number
//! formatting, reading `wrk`'s and the reader's output, the open-loop
//! generator's plan), run with the ordinary tests: a bench with
//! `harness = false` never compiles its `#[cfg(test)]` modules. Nothing
//! here starts a server or measures anything.

#![allow(dead_code)]

#[path = "../throughput/open_loop.rs"]
mod open_loop;
#[path = "report.rs"]
mod report;
#[path = "../throughput/scrape.rs"]
mod scrape;
#[path = "../throughput/wrk.rs"]
mod wrk;
