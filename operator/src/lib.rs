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

/// The field manager of every server-side apply this operator makes.
pub const FIELD_MANAGER: &str = "cachebridge-operator";
