//! The Secrets that will hold the managed Redis passwords and the ingest
//! token.
//!
//! The builder describes a Secret without its data: the values are random,
//! so they are generated once by `apply` when the Secret is created and
//! never again (a pure builder cannot, and should not, make them up). Which
//! keys to generate is written on the Secret ([`GENERATED_KEYS`]). The
//! Secrets are owned by the bridge, so they go when the bridge goes.

use super::common::meta;
use super::labels::{Component, GENERATED_KEYS};
use super::names::{self, ADMIN_PASSWORD_KEY, INGEST_TOKEN_KEY, PASSWORD_KEY};
use crate::validate::Bridge;
use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;

/// The keys `apply` fills with generated passwords.
pub const GENERATED: [&str; 2] = [PASSWORD_KEY, ADMIN_PASSWORD_KEY];

pub fn password_secret(b: &Bridge) -> Secret {
    Secret {
        // Immutable Secrets cannot be changed by accident, and kubelets stop watching them.
        immutable: Some(true),
        ..generated(b, names::redis_secret(b), Component::Redis, &GENERATED)
    }
}

/// The bearer token trading services present to `POST /ingest`. Mutable:
/// replacing its `token` rotates it, and the kubelet updates the writer's
/// mounted copy, which the writer re-reads without a restart.
pub fn ingest_token_secret(b: &Bridge) -> Secret {
    generated(
        b,
        names::ingest_secret(b),
        Component::Writer,
        &[INGEST_TOKEN_KEY],
    )
}

fn generated(b: &Bridge, name: String, component: Component, keys: &[&str]) -> Secret {
    let mut metadata = meta(b, name, component);
    metadata.annotations = Some(BTreeMap::from([(
        GENERATED_KEYS.to_string(),
        keys.join(","),
    )]));
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        ..Default::default()
    }
}

/// The keys `apply` generates for a Secret built here.
pub fn generated_keys(secret: &Secret) -> Vec<String> {
    secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(GENERATED_KEYS))
        .map(|keys| keys.split(',').map(str::to_owned).collect())
        .unwrap_or_default()
}
