//! `cachebridge.dev/v1alpha1`: the first, still-changing version of the API.
//!
//! [`crd()`] is the CustomResourceDefinition to install; everything that
//! prints or checks the CRD (the operator's `crd` subcommand, the drift test,
//! client-side CEL validation) goes through it so they all see one schema.

pub mod defaults;
mod spec;
mod status;

pub use spec::*;
pub use status::*;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

/// The CRD for `CacheBridge`, ready to apply.
///
/// The derive marks `spec` as required; a CacheBridge that is only a name
/// is valid, so the schema instead defaults `spec` to `{}` and the apiserver
/// fills in every nested default from there.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = CacheBridge::crd();
    for version in &mut crd.spec.versions {
        if let Some(root) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            make_spec_optional(root);
        }
    }
    crd
}

fn make_spec_optional(root: &mut JSONSchemaProps) {
    if let Some(required) = root.required.as_mut() {
        required.retain(|field| field != "spec");
        if required.is_empty() {
            root.required = None;
        }
    }
    if let Some(spec) = root.properties.as_mut().and_then(|p| p.get_mut("spec")) {
        spec.default = Some(
            k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(
                serde_json::json!({}),
            ),
        );
    }
}

/// The key prefix a bridge uses when its spec sets none.
pub fn default_key_prefix(namespace: &str, name: &str) -> String {
    format!("cb:{namespace}:{name}:")
}

impl CacheBridge {
    /// The effective key prefix: the spec's override or `cb:{namespace}:{name}:`.
    pub fn key_prefix(&self) -> String {
        match &self.spec.cache.key_prefix {
            Some(prefix) => prefix.clone(),
            None => default_key_prefix(
                self.metadata.namespace.as_deref().unwrap_or("default"),
                self.metadata.name.as_deref().unwrap_or_default(),
            ),
        }
    }
}
