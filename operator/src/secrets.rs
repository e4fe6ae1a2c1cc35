//! One key of a Secret, read when the operator must talk to a bridge's
//! servers itself (cache figures from Redis, the primary from Sentinel).

use crate::error::Result;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::Api;

/// The value of `key` in Secret `name`, or `None` when the Secret or the key is missing.
pub async fn read_key(
    client: &Client,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Option<String>> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    Ok(secrets
        .get_opt(name)
        .await?
        .and_then(|s| s.data)
        .and_then(|mut d| d.remove(key))
        .map(|bytes| String::from_utf8_lossy(&bytes.0).into_owned()))
}
