//! The one place that makes a pod restricted.
//!
//! Every builder passes its pod spec through [`restricted`], so no pod can
//! forget a setting: non-root with a fixed uid, read-only root filesystem,
//! every capability dropped, no privilege escalation, seccomp RuntimeDefault,
//! no service links, and a ServiceAccount token only when the pod asks the
//! API for something (writer and readers read their CacheBridge).

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, PodSpec, SeccompProfile, SecurityContext,
};

/// Whether the pod gets a ServiceAccount token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiAccess {
    /// Servers (Redis, Memcached) never talk to the API: no token to steal.
    None,
    /// Writer and readers read their CacheBridge and the password Secret.
    ServiceAccountToken,
}

/// Returns `pod` with the restricted Pod Security Standard applied, running as `uid`.
pub fn restricted(mut pod: PodSpec, uid: i64, access: ApiAccess) -> PodSpec {
    pod.security_context = Some(PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(uid),
        run_as_group: Some(uid),
        fs_group: Some(uid),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    });
    pod.automount_service_account_token = Some(access == ApiAccess::ServiceAccountToken);
    // Service links inject every Service of the namespace as env vars: noise at best.
    pod.enable_service_links = Some(false);
    for container in pod
        .containers
        .iter_mut()
        .chain(pod.init_containers.iter_mut().flatten())
    {
        container.security_context = Some(container_context());
    }
    pod
}

fn container_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        privileged: Some(false),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Default::default()
        }),
        seccomp_profile: Some(runtime_default()),
        ..Default::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..Default::default()
    }
}
