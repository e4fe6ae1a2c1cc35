"""The chart's observability options (podMonitor, prometheusRule, grafanaDashboard):
rendered only when enabled; every alert and dashboard expression parses as PromQL (the
promql-parser package, Prometheus' grammar) and names only metrics the code exports,
as read from a running `cachebridge-dataplane local` (writer and reader in one process;
families without a series yet from the registrations in dataplane/src/metrics.rs, which
the scrape checks) and from `cachebridge-operator metrics`; the PodMonitor selects the pods and port the
operator builds, and the NetworkPolicy the operator gives each writer admits the
scrapers the chart names. (The objects are checked against prometheus-operator's CRD
schemas in test_schemas.py, through k8s_schema.validate.)"""

from __future__ import annotations

import json
import re

import promql_parser
import pytest
import yaml

import repo
from dataplane_process import get, running_local
from repo import CASES, env_of, find, one, operator_container

ALERTS = {
    "CacheBridgeNotReady",
    "CacheBridgeDataStale",
    "CacheBridgeHitRatioLow",
    "CacheBridgeCoherenceResyncs",
    "CacheBridgeCircuitBreakerOpen",
    "CacheBridgeReconcileErrors",
}
MONITORING_KINDS = {"PodMonitor", "PrometheusRule"}


def fullname(case: repo.Case) -> str:
    return case.release if case.release.endswith("operator") else f"{case.release}-operator"


def monitoring_objects(docs):
    return [d for d in docs if d["kind"] in MONITORING_KINDS
            or (d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))]


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_each_object_only_when_enabled(c, renders):
    docs = renders[c.id]
    wanted = set()
    for option, (kind, name) in repo.MONITORING_OBJECTS.items():
        if c.values.get(option, {}).get("enabled"):
            wanted.add((kind, name.format(fullname=fullname(c))))
    got = {(d["kind"], d["metadata"]["name"]) for d in monitoring_objects(docs)}
    assert got == wanted
    scrapers = env_of(operator_container(docs)).get("METRICS_SCRAPERS")
    assert (scrapers is not None) == c.values.get("podMonitor", {}).get("enabled", False)


def alerts(docs):
    rule = one(docs, "PrometheusRule")
    return {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}


def dashboard(docs):
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
    return cm, json.loads(cm["data"]["cachebridge.json"])


def dashboard_exprs(board):
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    return exprs


def test_the_six_alerts_carry_runbooks_and_the_chosen_settings(renders):
    rules = alerts(renders["monitoring"])
    assert set(rules) == ALERTS
    for name, r in rules.items():
        annotations = r["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert len(annotations["runbook"]) > 200, f"{name}: a runbook says what to check"
        assert r["labels"]["severity"] in {"critical", "warning"}
    assert rules["CacheBridgeNotReady"]["for"] == "10m", "prometheusRule.for reaches the rule"
    assert rules["CacheBridgeHitRatioLow"]["for"] == "10m"
    assert "< 0.9" in rules["CacheBridgeHitRatioLow"]["expr"]
    defaults = alerts(renders["prometheus-rule"])
    assert defaults["CacheBridgeNotReady"]["for"] == "5m"
    assert "< 0.95" in defaults["CacheBridgeHitRatioLow"]["expr"]
    # Prometheus' own templates survive Helm's.
    assert "{{ $labels.bridge }}" in defaults["CacheBridgeNotReady"]["annotations"]["summary"]


def test_the_dashboard_is_for_the_sidecar_and_covers_the_figures(renders):
    cm, board = dashboard(renders["monitoring"])
    assert cm["metadata"]["namespace"] == "grafana"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "CacheBridge"}
    assert board["uid"] == "cachebridge" and board["title"] == "CacheBridge"
    text = " ".join(dashboard_exprs(board))
    # Per-bridge request rate, tier hit ratios, data age, fetch latency per tier,
    # coherence, reconcile figures.
    for metric in ["cachebridge_requests_total", "cachebridge_cache_lookups_total",
                   "cachebridge_data_age_seconds", "cachebridge_tier_fetch_seconds_bucket",
                   "cachebridge_coherence_synced", "cachebridge_coherence_resyncs_total",
                   "cachebridge_operator_reconciles_total", "cachebridge_operator_reconcile_errors_total"]:
        assert metric in text, metric
    assert "by (namespace, bridge)" in text
    default_cm, _ = dashboard(renders["grafana-dashboard"])
    assert default_cm["metadata"]["namespace"] == repo.RELEASE_NAMESPACE


def all_exprs(renders):
    rules = alerts(renders["monitoring"])
    _, board = dashboard(renders["monitoring"])
    return [(f"alert {n}", r["expr"]) for n, r in rules.items()] + [
        (f"panel {i}", e) for i, e in enumerate(dashboard_exprs(board))]


def metric_names(expr: str) -> set[str]:
    names: set[str] = set()

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def test_every_expression_parses_as_promql(renders):
    exprs = all_exprs(renders)
    assert len(exprs) >= 21
    for where, expr in exprs:
        try:
            promql_parser.parse(expr)
        except ValueError as error:
            pytest.fail(f"{where}: {error}\n{expr}")
    with pytest.raises(ValueError):
        promql_parser.parse("sum(rate(cachebridge_requests_total[5m])")


def exposed_names(exposition: str) -> set[str]:
    """Sample names an exposition (Prometheus or OpenMetrics text) has, or would have:
    `# TYPE` lines name families that have no sample yet."""
    suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"], "gauge": [""]}
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            names |= {family + s for s in suffixes.get(kind, [""])}
        elif line and not line.startswith("#"):
            names.add(line.split("{")[0].split(" ")[0])
    return names


@pytest.fixture(scope="module")
def dataplane_metrics() -> str:
    """/metrics of a running writer and reader (`local`), after a few requests."""
    with running_local() as base:
        for _ in range(3):
            get(f"{base}/api/v1/market/overview")
        return get(f"{base}/metrics")


def registered_names() -> set[str]:
    """Sample names of every family dataplane/src/metrics.rs registers: a family with
    labels shows on /metrics only once it has a series, and a short `local` run has no
    resync, gap or open breaker. Each `r.register("name", …, m.field)` is typed by the
    field's declaration (`pub field: Family<…, Counter>`)."""
    source = (repo.ROOT / "dataplane" / "src" / "metrics.rs").read_text()
    types = dict(re.findall(r"pub (\w+): (?:Family<\w+, )?(Counter|Gauge|Histogram)", source))
    registered = re.findall(r'r\.register\(\s*"(\w+)",\s*"[^"]*",\s*m\.(\w+)\.clone\(\)', source)
    assert len(registered) >= 15, "cannot read the registrations in dataplane/src/metrics.rs"
    lines = [f"# TYPE cachebridge_{name} {types[field].lower()}" for name, field in registered]
    return exposed_names("\n".join(lines))


@pytest.fixture(scope="module")
def exported(dataplane_metrics, operator_binary) -> set[str]:
    scraped = exposed_names(dataplane_metrics)
    registered = registered_names()
    # The reading of the source agrees with what the running process shows.
    assert scraped <= registered, sorted(scraped - registered)
    assert {"cachebridge_requests_total", "cachebridge_cache_lookups_total",
            "cachebridge_tier_fetch_seconds_bucket", "cachebridge_coherence_synced"} <= scraped
    names = registered | exposed_names(repo.run_operator(operator_binary, "metrics"))
    assert "cachebridge_operator_reconciles_total" in names
    return names


def test_expressions_name_only_exported_metrics(renders, exported):
    used = set()
    for where, expr in all_exprs(renders):
        names = metric_names(expr)
        assert names, f"{where} names no metric"
        assert names <= exported, f"{where} names {sorted(names - exported)}, which nothing exports"
        used |= names
    # Each of the six alerts and the dashboard's figures stand on real series.
    assert {"cachebridge_operator_bridge_ready", "cachebridge_stale_responses_total",
            "cachebridge_breaker_state", "cachebridge_coherence_resyncs_total"} <= used


def test_the_dataplane_exposes_what_the_podmonitor_relabels_by(dataplane_metrics):
    # Series carry no namespace/bridge/component/pod of their own: the PodMonitor adds them.
    for label in ("bridge=", "component=", "pod="):
        assert label not in dataplane_metrics


def selects(selector: dict, labels: dict) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        assert e["operator"] == "In"
        if labels.get(e["key"]) not in e["values"]:
            return False
    return True


def test_the_podmonitor_selects_the_writer_and_reader_pods_on_their_metrics_port(renders, operator_renders):
    monitor = one(renders["monitoring"], "PodMonitor")
    spec = monitor["spec"]
    assert spec["namespaceSelector"] == {"matchNames": ["markets"]}
    assert one(renders["pod-monitor"], "PodMonitor")["spec"]["namespaceSelector"] == {"any": True}
    endpoint = spec["podMetricsEndpoints"][0]
    assert endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
    assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"namespace", "bridge", "component", "pod"}
    selected = []
    for d in find(operator_renders["minimal.yaml"], "Deployment") + find(operator_renders["minimal.yaml"], "StatefulSet"):
        template = d["spec"]["template"]
        if selects(spec["selector"], template["metadata"]["labels"]):
            selected.append(template["metadata"]["labels"]["app.kubernetes.io/component"])
            ports = {p["name"] for c in template["spec"]["containers"] for p in c.get("ports", [])}
            assert endpoint["port"] in ports, d["metadata"]["name"]
    assert sorted(selected) == ["reader", "writer"]


def test_the_writer_admits_the_scrapers_the_chart_names(renders, operator_binary):
    """The chart's podMonitor.scrapers reach the operator (METRICS_SCRAPERS), which puts
    them into each writer's NetworkPolicy, for the writer's metrics port."""
    docs = renders["monitoring"]
    scrapers = env_of(operator_container(docs))["METRICS_SCRAPERS"]
    assert json.loads(scrapers) == CASES[[c.id for c in CASES].index("monitoring")].values["podMonitor"]["scrapers"]
    example = str(repo.ROOT / "examples" / "minimal.yaml")
    with_scrapers = [d for d in yaml.safe_load_all(repo.run_operator(
        operator_binary, "render", "-f", example, env={"METRICS_SCRAPERS": scrapers})) if d]
    without = [d for d in yaml.safe_load_all(repo.run_operator(operator_binary, "render", "-f", example)) if d]

    def writer_policy(objects):
        return next(d for d in objects if d["kind"] == "NetworkPolicy"
                    and d["metadata"]["labels"]["app.kubernetes.io/component"] == "writer")

    writer = next(d for d in with_scrapers if d["kind"] == "Deployment"
                  and d["metadata"]["labels"]["app.kubernetes.io/component"] == "writer")
    http = next(p["containerPort"] for c in writer["spec"]["template"]["spec"]["containers"]
                for p in c["ports"] if p["name"] == "http")
    assert writer_policy(with_scrapers)["spec"]["ingress"] == [
        {"from": json.loads(scrapers), "ports": [{"port": http, "protocol": "TCP"}]}]
    assert "ingress" not in writer_policy(without)["spec"], "without scrapers the writer admits nothing"


def test_a_bad_scrapers_value_is_refused_clearly(operator_binary):
    example = str(repo.ROOT / "examples" / "minimal.yaml")
    with pytest.raises(RuntimeError, match="NetworkPolicyPeer"):
        repo.run_operator(operator_binary, "render", "-f", example, env={"METRICS_SCRAPERS": "{not json"})
