"""Every manifest the chart renders (over the option matrix) and every child object the
operator builds for the examples is valid against the Kubernetes OpenAPI schemas, in
strict mode (unknown fields are errors), for the Kubernetes release the operator is
compiled against and the newest one kubernetes-validate ships."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml

import repo
from k8s_schema import describe, kube_versions, validate

VERSIONS = kube_versions()
CASE_IDS = [c.id for c in repo.CASES]
EXAMPLE_IDS = [e.name for e in repo.EXAMPLES]


def _errors(docs, version):
    problems = []
    for doc in docs:
        try:
            validate(doc, version)
        except Exception as error:  # noqa: BLE001 - every kind of failure is reported
            problems.append(f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {describe(error)}")
    return problems


def test_versions_are_current():
    assert len(VERSIONS) >= 1
    assert VERSIONS[-1] == kubernetes_validate.latest_version()
    assert tuple(int(p) for p in VERSIONS[0].split(".")) >= (1, 30), VERSIONS


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case_id", CASE_IDS)
def test_chart_manifests_are_valid(case_id, version, renders):
    docs = renders[case_id]
    assert docs
    assert _errors(docs, version) == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("example", EXAMPLE_IDS)
def test_operator_children_are_valid(example, version, operator_renders):
    docs = operator_renders[example]
    assert any(d["kind"] == "Deployment" for d in docs), "the operator built no Deployment"
    assert _errors(docs, version) == []


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("example", EXAMPLE_IDS)
def test_examples_themselves_are_valid(example, version):
    """The files users `kubectl apply`: CacheBridges against the CRD schema (strict),
    anything else (a Secret) against Kubernetes'."""
    docs = [d for d in yaml.safe_load_all((repo.ROOT / "examples" / example).read_text()) if d]
    assert any(d["kind"] == "CacheBridge" for d in docs)
    assert _errors(docs, version) == []


# --- the validator itself rejects what it should: otherwise the tests above prove nothing.

def test_strict_mode_rejects_an_unknown_field(default_render):
    deployment = copy.deepcopy(repo.one(default_render, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    problems = _errors([deployment], VERSIONS[-1])
    assert len(problems) == 1 and "imagePullPolcy" in problems[0], problems


def test_a_wrong_type_is_rejected(default_render):
    service = copy.deepcopy(repo.one(default_render, "Service"))
    service["spec"]["ports"][0]["port"] = "eighty"
    assert _errors([service], VERSIONS[-1]) != []


def test_an_unknown_kind_is_rejected():
    bogus = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert _errors([bogus], VERSIONS[-1]) != []


def test_a_cachebridge_with_a_typo_is_rejected():
    cb = {"apiVersion": "cachebridge.dev/v1alpha1", "kind": "CacheBridge", "metadata": {"name": "q"},
          "spec": {"reader": {"replicas": 2, "prot": 8080}}}
    problems = _errors([cb], VERSIONS[-1])
    assert len(problems) == 1 and "prot" in problems[0], problems


def test_a_service_monitor_with_a_typo_is_rejected(renders):
    sm = copy.deepcopy(repo.one(renders["service-monitor"], "ServiceMonitor"))
    sm["spec"]["endpoints"][0]["intervall"] = "30s"
    assert _errors([sm], VERSIONS[-1]) != []


@pytest.mark.parametrize("version", VERSIONS)
def test_autoscaled_readers_get_a_valid_hpa_and_no_replica_count(version, operator_renders):
    """examples/reader-autoscaling.yaml: an autoscaling/v2 HorizontalPodAutoscaler aimed at
    the reader Deployment, valid against Kubernetes' schema, and a Deployment without
    `replicas` (the HPA owns the count); the PodDisruptionBudget still selects the readers."""
    docs = operator_renders["reader-autoscaling.yaml"]
    hpa = repo.one(docs, "HorizontalPodAutoscaler", "quotes-reader")
    assert hpa["apiVersion"] == "autoscaling/v2"
    validate(hpa, version)
    spec = hpa["spec"]
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "quotes-reader"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (2, 10)
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    assert spec["behavior"]["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 60}]
    reader = repo.one(docs, "Deployment", "quotes-reader")
    assert "replicas" not in reader["spec"]
    pdb = repo.one(docs, "PodDisruptionBudget", "quotes-reader")
    assert pdb["spec"]["selector"] == reader["spec"]["selector"]


def test_an_hpa_with_a_typo_is_rejected(operator_renders):
    """The schema check above would catch a misspelt HPA field."""
    hpa = copy.deepcopy(repo.one(operator_renders["reader-autoscaling.yaml"], "HorizontalPodAutoscaler"))
    hpa["spec"]["minReplica"] = hpa["spec"].pop("minReplicas")
    with pytest.raises(Exception):  # noqa: B017 - kubernetes-validate's error types vary by version
        validate(hpa, VERSIONS[-1])


def test_no_hpa_without_autoscaling(operator_renders):
    for example, docs in operator_renders.items():
        if example != "reader-autoscaling.yaml":
            assert repo.find(docs, "HorizontalPodAutoscaler") == [], example
