"""Every pod the chart or the operator would run meets the restricted Pod Security
Standard (and has a read-only root filesystem); the checker itself is tested first:
a pod missing each setting is flagged."""

from __future__ import annotations

import copy

import pytest

import repo
from pod_security import pod_specs, violations

CASE_IDS = [c.id for c in repo.CASES]


def compliant_pod():
    return {
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumes": [{"name": "tmp", "emptyDir": {}}, {"name": "config", "configMap": {"name": "c"}}],
        "initContainers": [{"name": "init", "image": "x", "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]}}}],
        "containers": [{"name": "app", "image": "x", "ports": [{"containerPort": 8080}], "securityContext": {
            "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
    }


def test_a_compliant_pod_passes():
    assert violations(compliant_pod()) == []


def test_settings_may_live_on_the_container_instead_of_the_pod():
    pod = compliant_pod()
    del pod["securityContext"]
    for c in pod["initContainers"] + pod["containers"]:
        c["securityContext"].update({"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}})
    assert violations(pod) == []


def _del(path):
    def mutate(pod):
        *parents, last = path
        target = pod
        for p in parents:
            target = target[p]
        del target[last]
    return mutate


def _set(path, value):
    def mutate(pod):
        *parents, last = path
        target = pod
        for p in parents:
            target = target[p]
        target[last] = value
    return mutate


APP = ("containers", 0, "securityContext")
INIT = ("initContainers", 0, "securityContext")

# (what is wrong, mutation, a word the finding must contain)
BROKEN = [
    ("no runAsNonRoot", _del(("securityContext", "runAsNonRoot")), "runAsNonRoot"),
    ("runAsNonRoot false on a container", _set((*APP, "runAsNonRoot"), False), "runAsNonRoot"),
    ("runAsUser 0", _set(("securityContext", "runAsUser"), 0), "runAsUser"),
    ("runAsUser 0 on a container", _set((*APP, "runAsUser"), 0), "runAsUser"),
    ("no allowPrivilegeEscalation", _del((*APP, "allowPrivilegeEscalation")), "allowPrivilegeEscalation"),
    ("allowPrivilegeEscalation true", _set((*APP, "allowPrivilegeEscalation"), True), "allowPrivilegeEscalation"),
    ("init container escalates", _del((*INIT, "allowPrivilegeEscalation")), "initContainers"),
    ("no capabilities", _del((*APP, "capabilities")), "ALL"),
    ("drops only NET_RAW", _set((*APP, "capabilities", "drop"), ["NET_RAW"]), "ALL"),
    ("adds SYS_ADMIN", _set((*APP, "capabilities", "add"), ["SYS_ADMIN"]), "SYS_ADMIN"),
    ("no seccomp profile", _del(("securityContext", "seccompProfile")), "seccomp"),
    ("seccomp Unconfined", _set(("securityContext", "seccompProfile"), {"type": "Unconfined"}), "seccomp"),
    ("container seccomp Unconfined", _set((*APP, "seccompProfile"), {"type": "Unconfined"}), "seccomp"),
    ("no readOnlyRootFilesystem", _del((*APP, "readOnlyRootFilesystem")), "readOnlyRootFilesystem"),
    ("writable root filesystem", _set((*APP, "readOnlyRootFilesystem"), False), "readOnlyRootFilesystem"),
    ("privileged", _set((*APP, "privileged"), True), "privileged"),
    ("host network", _set(("hostNetwork",), True), "hostNetwork"),
    ("host PID", _set(("hostPID",), True), "hostPID"),
    ("hostPath volume", _set(("volumes", 0), {"name": "h", "hostPath": {"path": "/"}}), "hostPath"),
    ("host port", _set(("containers", 0, "ports", 0, "hostPort"), 80), "hostPort"),
    ("unmasked proc", _set((*APP, "procMount"), "Unmasked"), "procMount"),
    ("unsafe sysctl", _set(("securityContext", "sysctls"), [{"name": "kernel.msgmax", "value": "1"}]), "sysctl"),
    ("AppArmor unconfined", _set((*APP, "appArmorProfile"), {"type": "Unconfined"}), "appArmor"),
]


@pytest.mark.parametrize("what, mutate, word", BROKEN, ids=[b[0] for b in BROKEN])
def test_the_checker_flags_each_missing_setting(what, mutate, word):
    pod = copy.deepcopy(compliant_pod())
    mutate(pod)
    found = violations(pod)
    assert found, f"{what} was not flagged"
    assert any(word in f for f in found), found


def test_pod_specs_finds_every_workload_shape():
    pod = compliant_pod()
    template = {"spec": {"template": {"spec": pod}}}
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        assert [s for _, s in pod_specs({"kind": kind, "metadata": {"name": "x"}, **template})] == [pod]
    cron = {"kind": "CronJob", "metadata": {"name": "x"}, "spec": {"jobTemplate": template}}
    assert [s for _, s in pod_specs(cron)] == [pod]
    assert list(pod_specs({"kind": "Service", "metadata": {"name": "x"}, "spec": {}})) == []


# --- the real pods


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_chart_pods_are_restricted(case_id, renders):
    pods = [p for d in renders[case_id] for p in pod_specs(d)]
    assert len(pods) == 1, "the chart should run exactly one pod template (the operator)"
    for where, spec in pods:
        assert violations(spec) == [], where


@pytest.mark.parametrize("example", [e.name for e in repo.EXAMPLES])
def test_operator_built_pods_are_restricted(example, operator_renders):
    docs = operator_renders[example]
    pods = [p for d in docs for p in pod_specs(d)]
    workloads = [d for d in docs if d["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")]
    assert len(pods) == len(workloads) >= 2, "expected at least the writer and reader Deployments"
    for where, spec in pods:
        assert violations(spec) == [], where
