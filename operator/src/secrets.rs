//! One key of a Secret, read when the operator must talk to a bridge's
//! servers itself (cache figures from Redis, the primary from Sentinel).
//!
//! Secrets are not watched (see `caches`): a value comes from what was last
//! seen of the Secret ([`SeenSecrets`]), read from the API at most every
//! [`crate::caches::SECRET_RECHECK`], or again after the caller found it
//! wrong and called [`Secrets::forget`] (a rotated password).

use crate::caches::SeenSecrets;
use crate::error::Result;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;
use std::sync::Arc;

/// Reads Secret keys: as last seen, else from the API.
pub struct Secrets {
    client: Client,
    seen: Arc<SeenSecrets>,
}

impl Secrets {
    pub fn new(client: Client, seen: Arc<SeenSecrets>) -> Self {
        Secrets { client, seen }
    }

    /// The value of `key` in Secret `name`, or `None` when the Secret or the key is missing.
    pub async fn read_key(&self, namespace: &str, name: &str, key: &str) -> Result<Option<String>> {
        if let Some(seen) = self.seen.get(namespace, name) {
            return Ok(seen.and_then(|s| value(&s, key)));
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        let secret = secrets.get_opt(name).await?;
        let v = secret.as_ref().and_then(|s| value(s, key));
        self.seen.remember(namespace, name, secret);
        Ok(v)
    }

    /// Forgets Secret `name`: its value proved wrong, read it again next time.
    pub fn forget(&self, namespace: &str, name: &str) {
        self.seen.forget(namespace, name);
    }
}

fn value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned())
}
