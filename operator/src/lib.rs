//! CacheBridge operator: turns a `CacheBridge` resource into a running
//! Redis, Memcached, writer and readers, and reports honestly how they are.
//!
//! One reconcile is a visible pipeline, one module per stage:
//! - [`validate`]: the spec, checked against the CRD's own schema and CEL
//!   rules, becomes a [`validate::Bridge`] (pure, no client);
//! - [`desired`]: the bridge becomes [`desired::Desired`], a typed struct holding
//!   every child object (pure, no client);
//! - [`apply`]: server-side apply of what differs from the live objects, and
//!   deletion of children no longer wanted;
//! - [`status`]: conditions from the children's real readiness, written only
//!   when they change.
//!
//! [`controller`] wires the stages into a kube-runtime `Controller`;
//! [`metrics`], [`telemetry`], [`leader`] and [`server`] stay apart from it.

pub mod apply;
pub mod caches;
pub mod controller;
pub mod crdgen;
pub mod desired;
pub mod error;
pub mod events;
pub mod leader;
pub mod metrics;
pub mod primary;
pub mod probe;
pub mod render;
pub mod schema_check;
pub mod secrets;
pub mod server;
pub mod stats;
pub mod status;
pub mod telemetry;
pub mod validate;

pub use error::{Error, Result};

/// The operator binary's allocator; the benchmark counts through the same
/// one, so the memory it reports is what the binary would hold: jemalloc
/// (as the dataplane), configured by [`JEMALLOC_CONF`].
pub type Allocator = tikv_jemallocator::Jemalloc;
pub const ALLOCATOR: Allocator = tikv_jemallocator::Jemalloc;

/// jemalloc's configuration, read by jemalloc at start: freed pages go back
/// to the system at once. The operator's memory is mostly caches that
/// change little, with short bursts (a listing page, a pass of reconciles)
/// on top; returning a burst's pages right away keeps the peak near what is
/// really live (at 1000 bridges, glibc's malloc peaked at 73 MiB, jemalloc
/// with its default 10 s decay at 77 MiB, and like this at 64 MiB: see
/// operator/BENCHMARKS.md). `_RJEM_MALLOC_CONF` in the environment still
/// overrides it.
#[unsafe(export_name = "_rjem_malloc_conf")]
pub static JEMALLOC_CONF: &[u8; 34] = b"dirty_decay_ms:0,muzzy_decay_ms:0\0";

/// The field manager of every server-side apply this operator makes.
pub const FIELD_MANAGER: &str = "cachebridge-operator";
