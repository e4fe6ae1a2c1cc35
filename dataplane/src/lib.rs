//! CacheBridge dataplane: carries live market data from a trading service (the
//! writer) to web readers through a shared L1 (in-process) → L2 (Memcached) →
//! L3 (Redis) cache, with coherent L1s across reader replicas.
//!
//! Where things live:
//! - [`cache`]: the tiers, the value envelope and the read-through logic;
//! - [`writer`]: tick sources, `POST /ingest`, and publishing to the tiers;
//! - [`reader`]: the web API, response headers, and L1 coherence;
//! - [`market`]: the pure market logic (ticks, book, views, signals);
//! - [`config`] and [`cli`]: the one config struct and how flags fill it;
//! - [`app`]: wiring a config into running tasks;
//! - [`serve`]: the HTTP server loop and its limits on clients;
//! - [`openapi`]: the servers' OpenAPI documents, generated from the handlers;
//! - [`bridge`]: `--bridge`, settings from a CacheBridge's status.

pub mod app;
pub mod bridge;
pub mod cache;
pub mod cli;
pub mod config;
pub mod keys;
pub mod market;
pub mod metrics;
pub mod openapi;
pub mod probes;
pub mod reader;
pub mod serve;
pub mod telemetry;
pub mod tls;
pub mod writer;
