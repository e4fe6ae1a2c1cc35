"""The chart, rendered and linted by the real Helm library (helm-python-sdk: Helm v4's
Go SDK), for the defaults and every case of the option matrix in repo.CASES."""

from __future__ import annotations

import re

import helm_python as helm
import pytest
import yaml

import repo
from repo import CASES, find, one, operator_container, env_of

CASE_IDS = [c.id for c in CASES]


def case(case_id: str) -> repo.Case:
    return next(c for c in CASES if c.id == case_id)


def test_helm_library_is_the_pinned_real_helm():
    assert helm.helm_sdk_version().startswith("v4."), helm.helm_sdk_version()


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_lint_is_clean_in_strict_mode(c):
    report = helm.lint(str(repo.CHART), c.values, strict=True, namespace=c.namespace)
    assert report["errors"] == [], report
    assert report["total_charts_linted"] == 1
    serious = [m for m in report["messages"] if m["severity"] >= 2]
    assert serious == [], serious


def test_default_install_objects(default_render):
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in default_render)
    assert kinds == sorted([
        ("CustomResourceDefinition", "cachebridges.cachebridge.dev"),
        ("ClusterRole", "cachebridge-operator"),
        ("ClusterRoleBinding", "cachebridge-operator"),
        ("Role", "cachebridge-operator-leader-election"),
        ("RoleBinding", "cachebridge-operator-leader-election"),
        ("ServiceAccount", "cachebridge-operator"),
        ("Deployment", "cachebridge-operator"),
        ("Service", "cachebridge-operator-metrics"),
        ("NetworkPolicy", "cachebridge-operator"),
    ])
    for d in default_render:
        if d["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"):
            assert d["metadata"]["namespace"] == repo.RELEASE_NAMESPACE, d["metadata"]


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_every_object_carries_the_release_labels(c, renders):
    for d in renders[c.id]:
        labels = d["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == c.release, d["metadata"]
        assert labels.get("app.kubernetes.io/managed-by") == "Helm", d["metadata"]


def test_default_images_follow_app_version(chart, default_render):
    app_version = chart.metadata["appVersion"]
    container = operator_container(default_render)
    assert container["image"] == f"ghcr.io/cachebridge/operator:{app_version}"
    assert env_of(container)["DATAPLANE_IMAGE"] == f"ghcr.io/cachebridge/dataplane:{app_version}"


def test_app_version_is_the_workspace_version(chart):
    cargo = (repo.ROOT / "Cargo.toml").read_text()
    workspace_version = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', cargo, re.M | re.S)
    assert workspace_version, "no [workspace.package] version in Cargo.toml"
    assert chart.metadata["appVersion"] == workspace_version.group(1)


def test_custom_images_and_digest(renders):
    container = operator_container(renders["everything-set"])
    assert container["image"] == "registry.example.com/cb/operator:1.2.3"
    assert container["imagePullPolicy"] == "Always"
    assert env_of(container)["DATAPLANE_IMAGE"] == "registry.example.com/cb/dataplane:1.2.3"
    pod = one(renders["everything-set"], "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    pinned = operator_container(renders["pinned-digest"])
    assert pinned["image"] == "ghcr.io/cachebridge/operator@sha256:" + "ab" * 32


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_log_level_format_and_listen(c, renders):
    container = operator_container(renders[c.id])
    env = env_of(container)
    values = c.values
    port = values.get("metrics", {}).get("port", 8080)
    assert env["LOG_LEVEL"] == values.get("logLevel", "info")
    assert env["LOG_FORMAT"] == values.get("logFormat", "json")
    assert env["LISTEN"] == f"0.0.0.0:{port}"
    assert env["POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_probes_and_metrics_service_use_the_listen_port(c, renders):
    docs = renders[c.id]
    container = operator_container(docs)
    port = c.values.get("metrics", {}).get("port", 8080)
    assert container["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    service = one(docs, "Service")
    assert service["spec"]["ports"] == [{"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_watch_namespace_decides_role_or_cluster_role(c, renders):
    docs = renders[c.id]
    env = env_of(operator_container(docs))
    watch = c.values.get("watchNamespace", "")
    if watch:
        assert env["WATCH_NAMESPACE"] == watch
        assert find(docs, "ClusterRole") == [] and find(docs, "ClusterRoleBinding") == []
        role = one(docs, "Role", f"{c.release}-operator")
        binding = one(docs, "RoleBinding", f"{c.release}-operator")
        assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == watch
    else:
        assert "WATCH_NAMESPACE" not in env
        one(docs, "ClusterRole")
        one(docs, "ClusterRoleBinding")
        assert find(docs, "Role", f"{c.release}-operator") == []


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_leader_election_and_replicas(c, renders):
    docs = renders[c.id]
    deployment = one(docs, "Deployment")
    args = operator_container(docs)["args"]
    assert args[0] == "run"
    assert deployment["spec"]["replicas"] == c.values.get("replicaCount", 1)
    lease = f"{c.release}-operator"
    if c.values.get("leaderElection", {}).get("enabled", True):
        assert f"--lease-name={lease}" in args and "--no-leader-election" not in args
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        role = one(docs, "Role", f"{c.release}-operator-leader-election")
        assert role["metadata"]["namespace"] == c.namespace
    else:
        assert "--no-leader-election" in args and not any(a.startswith("--lease-name") for a in args)
        # Never two unelected operators at once, not even during a rollout.
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        assert find(docs, "Role", f"{c.release}-operator-leader-election") == []


def test_several_replicas_need_leader_election(chart):
    with pytest.raises(helm.HelmError) as failure:
        repo.render_chart(chart, {"replicaCount": 2, "leaderElection": {"enabled": False}})
    assert "replicaCount > 1 needs leaderElection.enabled=true" in str(failure.value)


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_cache_stats_flag(c, renders):
    args = operator_container(renders[c.id])["args"]
    assert ("--no-stats" in args) == (not c.values.get("cacheStats", {}).get("enabled", True))


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_service_monitor_only_when_enabled(c, renders):
    docs = renders[c.id]
    wanted = c.values.get("serviceMonitor", {}).get("enabled", False)
    monitors = find(docs, "ServiceMonitor")
    assert len(monitors) == (1 if wanted else 0)
    if wanted:
        sm = monitors[0]
        service = one(docs, "Service")
        assert sm["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert sm["spec"]["namespaceSelector"] == {"matchNames": [c.namespace]}
        [endpoint] = sm["spec"]["endpoints"]
        assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
        for key, value in c.values["serviceMonitor"].get("labels", {}).items():
            assert sm["metadata"]["labels"][key] == value


def test_everything_set_reaches_the_pod(renders):
    docs = renders["everything-set"]
    pod = one(docs, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"example.com/team": "markets"}
    assert pod["metadata"]["labels"]["team"] == "markets"
    spec = pod["spec"]
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert spec["tolerations"][0]["key"] == "dedicated"
    assert "nodeAffinity" in spec["affinity"]
    assert operator_container(docs)["resources"] == {
        "requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"cpu": 1, "memory": "512Mi"}}
    sa = one(docs, "ServiceAccount")
    assert sa["metadata"]["annotations"] == {"iam.example.com/role": "cachebridge"}


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_service_account_token_only_in_the_operator_pod(c, renders):
    docs = renders[c.id]
    assert one(docs, "ServiceAccount")["automountServiceAccountToken"] is False
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]


@pytest.mark.parametrize("c", CASES, ids=CASE_IDS)
def test_network_policy(c, renders):
    docs = renders[c.id]
    values = c.values.get("networkPolicy", {})
    policies = find(docs, "NetworkPolicy")
    if values.get("enabled", True) is False:
        assert policies == []
        return
    [np] = policies
    spec = np["spec"]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert sorted(spec["policyTypes"]) == ["Egress", "Ingress"]
    # Ingress: the metrics port only, from metrics.from.
    peers = values.get("metrics", {}).get("from", [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}])
    if peers:
        assert spec["ingress"] == [{"ports": [{"port": "metrics", "protocol": "TCP"}], "from": peers}]
    else:
        assert spec["ingress"] == []  # no rule: nothing gets in
    egress = spec["egress"]
    ports = lambda rule: sorted((p["port"], p["protocol"]) for p in rule["ports"])  # noqa: E731
    assert ports(egress[0]) == [(53, "TCP"), (53, "UDP")]
    api = values.get("apiServer", {})
    assert ports(egress[1]) == sorted((p, "TCP") for p in api.get("ports", [443, 6443]))
    assert egress[1].get("to", []) == [{"ipBlock": {"cidr": cidr}} for cidr in api.get("cidrs", [])]
    rest = egress[2:]
    if c.values.get("cacheStats", {}).get("enabled", True):
        redis = rest.pop(0)
        assert ports(redis) == sorted((p, "TCP") for p in values.get("redis", {}).get("ports", [6379]))
        [peer] = redis["to"]
        assert peer["podSelector"] == {"matchLabels": {
            "app.kubernetes.io/component": "redis", "app.kubernetes.io/managed-by": "cachebridge-operator"}}
        watch = c.values.get("watchNamespace")
        assert peer["namespaceSelector"] == ({"matchLabels": {"kubernetes.io/metadata.name": watch}} if watch else {})
        sentinel = rest.pop(0)
        assert ports(sentinel) == [(26379, "TCP")]
        assert sentinel["to"] == [{**peer, "podSelector": {"matchLabels": {
            "app.kubernetes.io/component": "sentinel", "app.kubernetes.io/managed-by": "cachebridge-operator"}}}]
    assert rest == values.get("extraEgress", [])


def test_operator_pods_are_admitted_by_the_redis_policy_the_operator_builds(default_render, operator_renders):
    """The operator fences every managed Redis with a NetworkPolicy that admits the
    operator's pods by label and namespace: the chart's pods must carry exactly those."""
    pod_labels = one(default_render, "Deployment")["spec"]["template"]["metadata"]["labels"]
    children = operator_renders["minimal.yaml"]
    redis_policy = next(d for d in find(children, "NetworkPolicy")
                        if d["metadata"]["labels"].get("app.kubernetes.io/component") == "redis")
    peers = [p for rule in redis_policy["spec"]["ingress"] for p in rule["from"] if "namespaceSelector" in p]
    assert len(peers) == 1, peers
    [peer] = peers
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": repo.RELEASE_NAMESPACE}}
    assert peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    # ...and the chart's egress rule reaches those Redis pods.
    redis_pod_labels = next(d for d in find(children, "StatefulSet")
                            if d["metadata"]["labels"].get("app.kubernetes.io/component") == "redis"
                            )["spec"]["template"]["metadata"]["labels"]
    egress = one(default_render, "NetworkPolicy")["spec"]["egress"]
    redis_rule = next(r for r in egress if any("podSelector" in p for p in r.get("to", [])))
    assert redis_rule["to"][0]["podSelector"]["matchLabels"].items() <= redis_pod_labels.items()
    assert {"port": 6379, "protocol": "TCP"} in redis_rule["ports"]


def test_operator_pods_reach_and_are_admitted_by_the_sentinels_the_operator_builds(default_render, operator_renders):
    """A replicated Redis (examples/full.yaml) gets Sentinels; the operator asks them for
    the primary, so their policy must admit the chart's pods and the chart's egress reach them."""
    pod_labels = one(default_render, "Deployment")["spec"]["template"]["metadata"]["labels"]
    children = operator_renders["full.yaml"]
    def of_sentinel(kind):
        return [d for d in find(children, kind) if d["metadata"]["labels"].get("app.kubernetes.io/component") == "sentinel"]
    [policy] = of_sentinel("NetworkPolicy")
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": 26379, "protocol": "TCP"}]
    [peer] = [p for p in rule["from"] if "namespaceSelector" in p]
    assert peer["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": repo.RELEASE_NAMESPACE}}
    assert peer["podSelector"]["matchLabels"].items() <= pod_labels.items()
    components = {p["podSelector"]["matchLabels"].get("app.kubernetes.io/component") for p in rule["from"]}
    assert components >= {"writer", "reader", "redis", "sentinel"}
    [sts] = of_sentinel("StatefulSet")
    sentinel_pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    egress = one(default_render, "NetworkPolicy")["spec"]["egress"]
    sentinel_rule = next(r for r in egress if {"port": 26379, "protocol": "TCP"} in r.get("ports", []))
    assert sentinel_rule["to"][0]["podSelector"]["matchLabels"].items() <= sentinel_pod_labels.items()
    # Both Services, both budgets: the objects a failover needs.
    names = {(d["kind"], d["metadata"]["name"]) for d in children}
    assert {("Service", "markets-sentinel"), ("Service", "markets-sentinel-headless"),
            ("PodDisruptionBudget", "markets-sentinel"), ("PodDisruptionBudget", "markets-redis")} <= names
    assert sts["spec"]["replicas"] == 3
    # The minimal bridge has one Redis pod: no Sentinel at all.
    assert not [d for d in operator_renders["minimal.yaml"]
                if d["metadata"]["labels"].get("app.kubernetes.io/component") == "sentinel"]


def _help_contract(text: str) -> tuple[set[str], set[str]]:
    flags = set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z][a-z0-9-]*)", text))
    envs = set(re.findall(r"\[env:\s+([A-Z_][A-Z0-9_]*)=", text))
    return flags, envs


def test_operator_accepts_every_flag_and_variable_the_chart_sets(renders, operator_binary):
    """What the chart passes (in any case of the matrix) must be something
    `cachebridge-operator run` reads: an unknown flag crashes the pod, an unknown
    variable is silently ignored."""
    flags, envs = _help_contract(repo.run_operator(operator_binary, "run", "--help"))
    assert "--namespace" in flags and "WATCH_NAMESPACE" in envs, "cannot parse `run --help`"
    args: set[str] = set()
    variables: set[str] = set()
    for c in CASES:
        container = operator_container(renders[c.id])
        assert container["args"][0] == "run"
        args |= {a.split("=", 1)[0] for a in container["args"][1:]}
        variables |= set(env_of(container))
    assert {"--lease-name", "--no-leader-election", "--no-stats"} <= args
    assert sorted(args - flags) == [], "the chart passes flags `cachebridge-operator run` does not accept"
    unread = sorted(variables - envs)
    assert unread == [], (
        f"the chart sets {unread} but `cachebridge-operator run --help` reads no such variable "
        "(DATAPLANE_IMAGE: the operator needs a --dataplane-image flag with env DATAPLANE_IMAGE, "
        "used for bridges that do not set spec.writer.image / spec.reader.image)"
    )


@pytest.mark.parametrize("case_id", ["defaults", "everything-set"])
def test_dataplane_image_reaches_the_bridge_pods(case_id, renders, operator_binary):
    """The chart's dataplaneImage, through the operator's DATAPLANE_IMAGE, is the image
    of the writer and readers of a bridge that names none (examples/minimal.yaml)."""
    image = env_of(operator_container(renders[case_id]))["DATAPLANE_IMAGE"]
    out = repo.run_operator(operator_binary, "render", "-f", "examples/minimal.yaml", env={"DATAPLANE_IMAGE": image})
    deployments = [d for d in yaml.safe_load_all(out) if d and d["kind"] == "Deployment"]
    assert len(deployments) == 2
    for d in deployments:
        assert [c["image"] for c in d["spec"]["template"]["spec"]["containers"]] == [image]


def test_chart_and_operator_default_to_the_same_dataplane_image(default_render, operator_binary):
    help_text = repo.run_operator(operator_binary, "run", "--help")
    default = re.search(r"--dataplane-image <[A-Z_]+>.*?\[default:\s+([^\]]+)\]", help_text, re.S)
    assert default, "no default shown for --dataplane-image"
    assert env_of(operator_container(default_render))["DATAPLANE_IMAGE"] == default.group(1).strip()


def test_notes_tell_the_next_steps(chart):
    notes = repo.render_notes(chart, {})
    assert "rollout status deployment/cachebridge-operator" in notes
    assert "kubectl apply -f examples/minimal.yaml" in notes
