"""The restricted Pod Security Standard, as a checker over pod specs.

`violations(pod_spec)` returns one readable line per broken rule; an empty list
means the pod would be admitted by a namespace labelled
`pod-security.kubernetes.io/enforce: restricted` (the rules of
https://kubernetes.io/docs/concepts/security/pod-security-standards/, "Restricted"
and the "Baseline" rules it includes), plus one rule of this project that the
standard does not make: every container has a read-only root filesystem.

`pod_specs(obj)` finds the pod spec(s) in any workload object.
"""

from __future__ import annotations

from typing import Any, Iterator

# Volume types the restricted profile allows.
ALLOWED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
# Sysctls the baseline profile allows.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
ALLOWED_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}

WORKLOAD_KINDS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob", "ReplicationController"}


def pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) of every pod an object would run."""
    kind = obj.get("kind")
    name = f"{kind}/{obj.get('metadata', {}).get('name')}"
    spec = obj.get("spec") or {}
    if kind == "Pod":
        yield name, spec
    elif kind == "CronJob":
        yield name, spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind in WORKLOAD_KINDS:
        yield name, spec["template"]["spec"]


def _containers(pod: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for c in pod.get(field) or []:
            yield f"{field}[{c.get('name')}]", c


def _effective(pod_ctx: dict[str, Any], ctr_ctx: dict[str, Any], key: str) -> Any:
    """A container's value for a setting both levels have: the container's wins."""
    value = ctr_ctx.get(key)
    return pod_ctx.get(key) if value is None else value


def violations(pod: dict[str, Any]) -> list[str]:
    """Every way `pod` breaks the restricted profile (or our read-only root rule)."""
    problems: list[str] = []
    psc = pod.get("securityContext") or {}

    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(field):
            problems.append(f"pod: {field} is true")
    for vol in pod.get("volumes") or []:
        types = set(vol) - {"name"}
        if not types <= ALLOWED_VOLUME_TYPES:
            problems.append(f"pod: volume {vol.get('name')!r} has type {sorted(types - ALLOWED_VOLUME_TYPES)}")
    for sysctl in psc.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            problems.append(f"pod: unsafe sysctl {sysctl.get('name')}")
    if psc.get("runAsUser") == 0:
        problems.append("pod: runAsUser is 0")
    if (psc.get("seccompProfile") or {}).get("type") not in (None, *ALLOWED_SECCOMP):
        problems.append(f"pod: seccompProfile.type is {psc['seccompProfile'].get('type')}")
    if (psc.get("appArmorProfile") or {}).get("type") == "Unconfined":
        problems.append("pod: appArmorProfile is Unconfined")
    if (psc.get("seLinuxOptions") or {}).get("type", "") not in ALLOWED_SELINUX_TYPES:
        problems.append("pod: seLinuxOptions.type is not allowed")
    for key in ("user", "role"):
        if (psc.get("seLinuxOptions") or {}).get(key):
            problems.append(f"pod: seLinuxOptions.{key} is set")

    containers = list(_containers(pod))
    if not containers:
        problems.append("pod: no containers")
    for where, c in containers:
        sc = c.get("securityContext") or {}
        if sc.get("privileged"):
            problems.append(f"{where}: privileged is true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{where}: allowPrivilegeEscalation is not false")
        if _effective(psc, sc, "runAsNonRoot") is not True:
            problems.append(f"{where}: runAsNonRoot is not true (neither on the container nor the pod)")
        if sc.get("runAsUser") == 0:
            problems.append(f"{where}: runAsUser is 0")
        seccomp = (_effective(psc, sc, "seccompProfile") or {}).get("type")
        if seccomp not in ALLOWED_SECCOMP:
            problems.append(f"{where}: seccompProfile.type is {seccomp} (needs RuntimeDefault or Localhost)")
        caps = sc.get("capabilities") or {}
        if "ALL" not in (caps.get("drop") or []):
            problems.append(f"{where}: capabilities.drop lacks ALL")
        added = set(caps.get("add") or []) - {"NET_BIND_SERVICE"}
        if added:
            problems.append(f"{where}: capabilities.add has {sorted(added)}")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{where}: readOnlyRootFilesystem is not true")
        if sc.get("procMount") not in (None, "Default"):
            problems.append(f"{where}: procMount is {sc['procMount']}")
        if (sc.get("appArmorProfile") or {}).get("type") == "Unconfined":
            problems.append(f"{where}: appArmorProfile is Unconfined")
        if (sc.get("seLinuxOptions") or {}).get("type", "") not in ALLOWED_SELINUX_TYPES:
            problems.append(f"{where}: seLinuxOptions.type is not allowed")
        for port in c.get("ports") or []:
            if port.get("hostPort"):
                problems.append(f"{where}: hostPort {port['hostPort']}")
    return problems
