"""The CRD the chart installs is crds/cachebridge.yaml, which is what the operator's
`crd` subcommand prints: a drift anywhere in that chain fails here.

Mechanism (docs/helm.md): the CRD is a template (templates/crd.yaml renders
files/crds/cachebridge.yaml), so every `helm upgrade` applies the current CRD; Helm
never upgrades CRDs from a chart's crds/ folder. `helm.sh/resource-policy: keep` makes
`helm uninstall` leave it, and with it every CacheBridge."""

from __future__ import annotations

import copy

import yaml

import repo

CHART_COPY = repo.CHART / "files" / "crds" / "cachebridge.yaml"
FIX = "cp crds/cachebridge.yaml charts/cachebridge/files/crds/cachebridge.yaml"


def test_chart_copy_is_byte_identical_to_crds_folder():
    assert CHART_COPY.read_bytes() == repo.CRD_FILE.read_bytes(), (
        f"charts/cachebridge/files/crds/cachebridge.yaml differs from crds/cachebridge.yaml; run: {FIX}")


def test_rendered_crd_is_the_generated_one_plus_keep_annotation(default_render):
    [crd] = repo.find(default_render, "CustomResourceDefinition")
    generated = yaml.safe_load(repo.CRD_FILE.read_text())
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    stripped = copy.deepcopy(crd)
    del stripped["metadata"]["annotations"]
    del stripped["metadata"]["labels"]
    assert stripped == generated


def test_comparison_would_notice_a_change(default_render):
    """The equality above is not vacuous: one changed description breaks it."""
    [crd] = repo.find(default_render, "CustomResourceDefinition")
    changed = copy.deepcopy(crd)
    changed["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["description"] += "!"
    del changed["metadata"]["annotations"], changed["metadata"]["labels"]
    assert changed != yaml.safe_load(repo.CRD_FILE.read_text())


def test_crds_folder_is_what_the_operator_generates(operator_binary):
    printed = repo.run_operator(operator_binary, "crd")
    assert yaml.safe_load(printed) == yaml.safe_load(repo.CRD_FILE.read_text()), (
        "crds/cachebridge.yaml is not what `cachebridge-operator crd` prints: regenerate it, then " + FIX)


def test_every_case_installs_the_crd_unless_told_not_to(renders):
    for case in repo.CASES:
        crds = repo.find(renders[case.id], "CustomResourceDefinition")
        wanted = case.values.get("crds", {}).get("install", True)
        assert len(crds) == (1 if wanted else 0), case.id


def test_chart_has_no_crds_folder(chart):
    """A chart's crds/ folder is installed once and never upgraded (the complaint in
    spotahome/redis-operator#527): the CRD must come only from the template."""
    assert not (repo.CHART / "crds").exists()
    assert chart.crds == []
