"""Paths of the repository and the ways tests produce manifests from it: the chart
rendered by the real Helm library, and the children the operator builds for a
CacheBridge file (its `render -f` subcommand)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cachebridge"
CRD_FILE = ROOT / "crds" / "cachebridge.yaml"
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
OPERATOR_SRC = ROOT / "operator" / "src"

# Where `helm install` puts the release in the docs, and what the operator assumes by default.
RELEASE = "cachebridge"
RELEASE_NAMESPACE = "cachebridge-system"


@dataclass
class Case:
    """One way of installing the chart: values, release name and namespace."""

    id: str
    values: dict[str, Any] = field(default_factory=dict)
    release: str = RELEASE
    namespace: str = RELEASE_NAMESPACE


# The option matrix every chart test runs over.
CASES = [
    Case("defaults"),
    Case("namespace-mode", {"watchNamespace": "trading"}),
    Case("service-monitor", {"serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}}}),
    Case("no-leader-election", {"leaderElection": {"enabled": False}}),
    Case("ha", {"replicaCount": 3}),
    Case("no-cache-stats", {"cacheStats": {"enabled": False}}),
    Case("no-network-policy", {"networkPolicy": {"enabled": False}}),
    Case("no-crds", {"crds": {"install": False}}),
    Case("metrics-closed", {"networkPolicy": {"metrics": {"from": []}}}),
    Case(
        "everything-set",
        {
            "replicaCount": 2,
            "image": {"repository": "registry.example.com/cb/operator", "tag": "1.2.3", "pullPolicy": "Always"},
            "dataplaneImage": {"repository": "registry.example.com/cb/dataplane", "tag": "1.2.3"},
            "imagePullSecrets": ["regcred"],
            "watchNamespace": "markets",
            "logLevel": "debug",
            "logFormat": "text",
            "metrics": {"port": 9100},
            "serviceMonitor": {"enabled": True, "interval": "15s", "scrapeTimeout": "5s"},
            "networkPolicy": {
                "metrics": {"from": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "prometheus"}}}]},
                "apiServer": {"ports": [6443], "cidrs": ["10.0.0.1/32"]},
                "redis": {"ports": [6379, 6380]},
                "extraEgress": [{"to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}], "ports": [{"port": 6380, "protocol": "TCP"}]}],
            },
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "512Mi"}},
            "podAnnotations": {"example.com/team": "markets"},
            "podLabels": {"team": "markets"},
            "serviceAccount": {"annotations": {"iam.example.com/role": "cachebridge"}},
            "priorityClassName": "system-cluster-critical",
            "nodeSelector": {"kubernetes.io/os": "linux"},
            "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "ops", "effect": "NoSchedule"}],
            "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
            ]}},
        },
        release="cb",
        namespace="ops",
    ),
    Case("pinned-digest", {"image": {"digest": "sha256:" + "ab" * 32}}),
    # Observability: each piece alone, then all of them with their options set.
    Case("pod-monitor", {"podMonitor": {"enabled": True}}),
    Case("prometheus-rule", {"prometheusRule": {"enabled": True}}),
    Case("grafana-dashboard", {"grafanaDashboard": {"enabled": True}}),
    Case(
        "monitoring",
        {
            "watchNamespace": "markets",
            "serviceMonitor": {"enabled": True},
            "podMonitor": {
                "enabled": True, "interval": "15s", "scrapeTimeout": "5s", "labels": {"release": "prometheus"},
                "scrapers": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                              "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}],
            },
            "prometheusRule": {"enabled": True, "labels": {"release": "prometheus"}, "hitRatioThreshold": 0.9,
                               "for": {"notReady": "10m", "dataStale": "5m", "hitRatioLow": "10m",
                                       "coherenceResyncs": "15m", "breakerOpen": "5m", "reconcileErrors": "15m"}},
            "grafanaDashboard": {"enabled": True, "namespace": "grafana",
                                 "annotations": {"grafana_folder": "CacheBridge"}},
        },
        release="cb",
        namespace="ops",
    ),
]
# The kinds and names only the observability options add.
MONITORING_OBJECTS = {
    "podMonitor": ("PodMonitor", "{fullname}-dataplane"),
    "prometheusRule": ("PrometheusRule", "{fullname}"),
    "grafanaDashboard": ("ConfigMap", "{fullname}-dashboard"),
}


def load_chart() -> helm.Chart:
    return helm.Chart.load(str(CHART))


def render_chart(chart: helm.Chart, values: dict[str, Any], *, release: str = RELEASE,
                 namespace: str = RELEASE_NAMESPACE) -> list[dict[str, Any]]:
    """The objects `helm install RELEASE charts/cachebridge -n NAMESPACE` would apply."""
    rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    docs: list[dict[str, Any]] = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(rendered[path]):
            if doc is not None:
                docs.append(doc)
    return docs


def render_notes(chart: helm.Chart, values: dict[str, Any], *, release: str = RELEASE,
                 namespace: str = RELEASE_NAMESPACE) -> str:
    rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
    return next(v for k, v in rendered.items() if k.endswith("NOTES.txt"))


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def build_operator() -> Path:
    """Builds the operator binary once (debug) and returns its path. Fails, never skips."""
    return _build("cachebridge-operator")


def build_dataplane() -> Path:
    """Builds the dataplane binary (debug) and returns its path. Fails, never skips."""
    return _build("cachebridge-dataplane")


def _build(package: str) -> Path:
    """`cargo build -p PACKAGE` (its binary has the package's name)."""
    result = subprocess.run(
        ["cargo", "build", "--locked", "-q", "-p", package],
        cwd=ROOT, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"cargo build -p {package} failed:\n{result.stderr[-4000:]}")
    binary = target_dir() / "debug" / package
    if not binary.is_file():
        raise RuntimeError(f"cargo build succeeded but {binary} is missing")
    return binary


def run_operator(binary: Path, *args: str, namespace: str = RELEASE_NAMESPACE,
                 env: dict[str, str] | None = None) -> str:
    env = {**os.environ, "POD_NAMESPACE": namespace, **(env or {})}
    result = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, cwd=ROOT)
    if result.returncode != 0:
        raise RuntimeError(f"cachebridge-operator {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def operator_children(binary: Path, example: Path, namespace: str = RELEASE_NAMESPACE) -> list[dict[str, Any]]:
    """Every object the operator would apply for the CacheBridges in `example`."""
    out = run_operator(binary, "render", "-f", str(example), "--operator-namespace", namespace)
    return [d for d in yaml.safe_load_all(out) if d is not None]


def find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind and (name is None or d["metadata"]["name"] == name)]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(docs, "Deployment")
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}
