//! The CacheBridge custom resource: the one place its Rust types live.
//!
//! Both the operator (which reconciles it) and the dataplane (which reads its
//! status in `--bridge` mode) depend on this crate, so the schema cannot drift
//! between them.

pub mod v1alpha1;

pub use v1alpha1::{CacheBridge, CacheBridgeSpec, CacheBridgeStatus};
