//! One TLS crypto provider for the whole process.
//!
//! The Redis client (`rediss://`) and the Kubernetes client both build
//! rustls configurations from the process-wide default provider. rustls picks
//! one by itself only when exactly one provider is compiled in; a dependency
//! that enables a second one (test tools do) would turn the first TLS
//! connection into a panic. Installing *ring* explicitly makes the choice
//! independent of what else is linked.

/// Installs ring as the default provider; later calls are no-ops.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
