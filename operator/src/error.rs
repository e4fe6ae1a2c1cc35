//! The operator's one error type, and the metric label of each kind.
//!
//! Reconcile failures are counted by kind (`reconcile_errors_total{kind}`),
//! so every variant maps to a short, stable label.

use crate::validate::InvalidSpec;

/// Everything that can make a reconcile fail.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource asks for something that cannot work; retrying will not help.
    #[error("invalid spec: {0}")]
    InvalidSpec(#[from] InvalidSpec),
    /// A call to the Kubernetes API failed.
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// An object could not be turned into (or read from) JSON.
    #[error("serialization: {0}")]
    Serialization(#[from] serde_json::Error),
    /// The ConfigMap's YAML could not be written.
    #[error("rendering the dataplane config: {0}")]
    Yaml(#[from] serde_yaml::Error),
    /// The resource lacks something the API server always sets (name, namespace, uid).
    #[error("the resource has no {0}; was it read from the API server?")]
    MissingObjectKey(&'static str),
    /// The Secret the operator generates exists but was made by someone else.
    #[error(
        "Secret {name} exists without key {missing:?}; the operator generates it only when absent: delete it to have a new password generated"
    )]
    ForeignSecret { name: String, missing: String },
    /// Reading cache figures from Redis failed (never fails a reconcile on its own).
    #[error("reading cache figures from Redis: {0}")]
    Stats(String),
    /// Asking the Sentinels for the primary failed (never fails a reconcile on its own).
    #[error("asking Sentinel for the Redis primary: {0}")]
    Sentinel(String),
}

impl Error {
    /// The `kind` label of `reconcile_errors_total`.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::InvalidSpec(_) => "invalid_spec",
            Error::Kube(kube::Error::Api(_)) => "kube_api",
            Error::Kube(_) => "kube_client",
            Error::Serialization(_) => "serialization",
            Error::Yaml(_) => "yaml",
            Error::MissingObjectKey(_) => "missing_object_key",
            Error::ForeignSecret { .. } => "foreign_secret",
            Error::Stats(_) => "stats",
            Error::Sentinel(_) => "sentinel",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
