//! The Secret that will hold the managed Redis passwords.
//!
//! The builder describes the Secret without its data: the passwords are
//! random, so they are generated once by `apply` when the Secret is created
//! and never again (a pure builder cannot, and should not, make them up).
//! The Secret is owned by the bridge, so it goes when the bridge goes.

use super::common::meta;
use super::labels::{Component, GENERATED_KEYS};
use super::names::{self, ADMIN_PASSWORD_KEY, PASSWORD_KEY};
use crate::validate::Bridge;
use k8s_openapi::api::core::v1::Secret;
use std::collections::BTreeMap;

/// The keys `apply` fills with generated passwords.
pub const GENERATED: [&str; 2] = [PASSWORD_KEY, ADMIN_PASSWORD_KEY];

pub fn password_secret(b: &Bridge) -> Secret {
    let mut metadata = meta(b, names::redis_secret(b), Component::Redis);
    metadata.annotations = Some(BTreeMap::from([(
        GENERATED_KEYS.to_string(),
        GENERATED.join(","),
    )]));
    Secret {
        metadata,
        type_: Some("Opaque".into()),
        // Immutable Secrets cannot be changed by accident, and kubelets stop watching them.
        immutable: Some(true),
        ..Default::default()
    }
}
