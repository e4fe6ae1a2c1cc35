"""The chart's RBAC grants exactly what the operator uses: no less (it would fail at
run time) and no more (least privilege).

"What it uses" is derived from the code, not kept by hand: rust_api_scan reads
operator/src for every Api<Kind> and the calls made on it (see its docstring for the
model), adds what libraries do on its behalf (event Recorder, Lease manager; checked
against those crates' sources below), and adds what the operator must *hold* to hand
out: the Role it builds for every bridge's dataplane (RBAC lets nobody grant a
permission it does not have). Permissions of code behind a `run` flag count only
when the chart passes that flag."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

import repo
import rust_api_scan
from rust_api_scan import Permission, ScanError, Scanner

CRD = yaml.safe_load(repo.CRD_FILE.read_text())
CRD_ARGS = (CRD["spec"]["group"], CRD["spec"]["names"]["kind"], CRD["spec"]["names"]["plural"])

# Code reached only with (True) or without (False) a `cachebridge-operator run` flag.
GATES = {
    "main.rs::apply_crd": ("--apply-crd", True),
    "leader.rs::run_when_leader": ("--no-leader-election", False),
    "stats.rs::target": ("--no-stats", False),
}
LEASES = ("coordination.k8s.io", "leases")


@pytest.fixture(scope="module")
def used() -> set[Permission]:
    return rust_api_scan.scan(repo.OPERATOR_SRC, *CRD_ARGS)


def required(used: set[Permission], args: list[str], operator_renders) -> set[tuple[str, str, str]]:
    need = set()
    for p in used:
        gate = GATES.get(p.function)
        if gate and (gate[0] in args) != gate[1]:
            continue
        need.add((p.group, p.resource, p.verb))
    for docs in operator_renders.values():
        for role in repo.find(docs, "Role"):
            need |= rule_triples(role["rules"])
    return need


def rule_triples(rules) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in rules for g in rule.get("apiGroups", [])
            for r in rule.get("resources", []) for v in rule["verbs"]}


def bound_roles(docs, case):
    """Rules bound to the operator's ServiceAccount, by (kind, namespace)."""
    sa = repo.one(docs, "ServiceAccount")["metadata"]
    out = []
    for binding in repo.find(docs, "RoleBinding") + repo.find(docs, "ClusterRoleBinding"):
        subjects = binding["subjects"]
        assert subjects == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": sa["namespace"]}]
        ref = binding["roleRef"]
        role = repo.one(docs, ref["kind"], ref["name"])
        if binding["kind"] == "RoleBinding":
            assert ref["kind"] == "Role" and role["metadata"]["namespace"] == binding["metadata"]["namespace"]
        out.append((role["kind"], role["metadata"].get("namespace"), role))
    return out


# --- the derived set is what the operator really does


def test_scan_sees_the_controller_watches_and_applies(used):
    triples = {(p.group, p.resource, p.verb) for p in used}
    assert ("cachebridge.dev", "cachebridges", "watch") in triples
    assert ("cachebridge.dev", "cachebridges/status", "patch") in triples
    assert ("apps", "deployments", "create") in triples  # server-side apply creates
    assert ("", "secrets", "list") not in triples


@pytest.mark.parametrize("c", repo.CASES, ids=[c.id for c in repo.CASES])
def test_chart_grants_exactly_what_the_operator_uses(c, renders, used, operator_renders):
    docs = renders[c.id]
    args = repo.operator_container(docs)["args"]
    need = required(used, args, operator_renders)
    granted = set()
    for _, _, role in bound_roles(docs, c):
        granted |= rule_triples(role["rules"])
    assert sorted(need - granted) == [], "the operator uses these, the chart does not grant them"
    assert sorted(granted - need) == [], "the chart grants these, the operator never uses them"


@pytest.mark.parametrize("c", repo.CASES, ids=[c.id for c in repo.CASES])
def test_scope_of_each_grant(c, renders):
    """Leases only in the release namespace (and only the one Lease, except create);
    everything else cluster-wide, or only in the watched namespace."""
    watch = c.values.get("watchNamespace", "")
    for kind, namespace, role in bound_roles(renders[c.id], c):
        lease_rules = [r for r in role["rules"] if "leases" in r["resources"]]
        if lease_rules:
            assert (kind, namespace) == ("Role", c.namespace)
            assert all(r["resources"] == ["leases"] for r in role["rules"])
            lease = next(a.split("=", 1)[1] for a in repo.operator_container(renders[c.id])["args"]
                         if a.startswith("--lease-name="))
            for rule in lease_rules:
                if rule["verbs"] != ["create"]:
                    assert rule.get("resourceNames") == [lease], rule
        elif watch:
            assert (kind, namespace) == ("Role", watch)
        else:
            assert (kind, namespace) == ("ClusterRole", None)


@pytest.mark.parametrize("c", repo.CASES, ids=[c.id for c in repo.CASES])
def test_no_wildcards_or_escalation_verbs(c, renders):
    for _, _, role in bound_roles(renders[c.id], c):
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(field, []), rule
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"]), rule
            if "secrets" in rule["resources"]:
                assert not {"list", "deletecollection"} & set(rule["verbs"]), rule


def test_gates_are_real():
    """The flags in GATES really decide whether that code runs."""
    main = rust_api_scan.strip_code((repo.OPERATOR_SRC / "main.rs").read_text())
    assert len(re.findall(r"\bapply_crd\(&", main)) == 1
    assert re.search(r"if args\.apply_crd \{\s*apply_crd\(&client\)", main)
    no_le = main.index("if args.no_leader_election {")
    assert main.index("return Ok(());", no_le) < main.index("leader::run_when_leader(")
    assert "context.read_stats = !args.no_stats;" in main
    controller = rust_api_scan.strip_code((repo.OPERATOR_SRC / "controller.rs").read_text())
    assert re.search(r"if ctx\.read_stats\s*&&[^{]*read_figures\(", controller)
    callers = [f.id for f in Scanner(repo.OPERATOR_SRC, *CRD_ARGS).functions if "stats::target(" in f.body]
    assert callers == ["controller.rs::read_figures"]


# --- the libraries' calls, from their sources at the locked versions


def _crate_dir(name: str) -> Path:
    """The unpacked source of `name` at its Cargo.lock version (the operator build, a
    fixture of the test below, has fetched it)."""
    lock = (repo.ROOT / "Cargo.lock").read_text()
    versions = re.findall(rf'\[\[package\]\]\nname = "{re.escape(name)}"\nversion = "([^"]+)"', lock)
    assert len(versions) == 1, f"{name}: versions {versions} in Cargo.lock"
    cargo_home = Path(os.environ.get("CARGO_HOME", Path.home() / ".cargo"))
    dirs = sorted(cargo_home.glob(f"registry/src/*/{name}-{versions[0]}"))
    assert dirs, f"{name}-{versions[0]} is not unpacked under {cargo_home}/registry/src"
    return dirs[0]


LIBRARY_SOURCES = {
    # entry point -> (crate, file, regex of the API calls in it, required import)
    "Recorder::new": ("kube-runtime", "src/events.rs", r"\bevents\s*\.\s*(\w+)\s*\(", "events::v1::{Event as K8sEvent"),
    "LeaseManagerBuilder::new": ("kube-lease-manager", "src/state.rs", r"\bself\.api\s*\.\s*(\w+)\s*\(", "Api<Lease>"),
}


@pytest.mark.parametrize("entry", sorted(LIBRARY_SOURCES))
def test_library_calls_match_the_crate_sources(entry, operator_binary):
    crate, file, calls, anchor = LIBRARY_SOURCES[entry]
    source = (_crate_dir(crate) / file).read_text()
    assert anchor in source
    code = rust_api_scan.strip_code(source)
    verbs = set()
    for method in re.findall(calls, code):
        assert method in rust_api_scan.API_METHODS, f"{crate} {file}: unknown call {method}"
        verbs |= set(rust_api_scan.API_METHODS[method][1])
    assert verbs == set(rust_api_scan.LIBRARY_CALLS[entry][2])


# --- the scanner, on small programs


def _scan(tmp_path: Path, code: str) -> set[tuple[str, str, str]]:
    (tmp_path / "lib.rs").write_text(code)
    return {(p.group, p.resource, p.verb) for p in rust_api_scan.scan(tmp_path, *CRD_ARGS)}


USES = """
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::apps::v1::Deployment;
use cachebridge_api::v1alpha1::CacheBridge;
use kube::api::{Api, Patch, PatchParams};
"""


def test_scanner_typed_let_and_merge_patch(tmp_path):
    assert _scan(tmp_path, USES + """
fn f(c: Client) { let s: Api<Secret> = Api::namespaced(c, "x"); s.get_opt("a"); s.patch("a", &p, &Patch::Merge(&b)); }
""") == {("", "secrets", "get"), ("", "secrets", "patch")}


def test_scanner_apply_creates(tmp_path):
    assert _scan(tmp_path, USES + """
fn f(api: &Api<ConfigMap>) { api.patch("a", &p, &Patch::Apply(&b)); }
""") == {("", "configmaps", "patch"), ("", "configmaps", "create")}


def test_scanner_follows_generic_helpers(tmp_path):
    assert _scan(tmp_path, USES + """
fn helper<K: Resource>(api: Api<K>) { api.delete("x", &dp); }
fn watch_it<K>(c: Controller<CacheBridge>) -> Controller<CacheBridge> { c.owns(scope.api::<K>(client.clone()), cfg) }
fn f(c: Client) { helper(Api::<Deployment>::all(c)); watch_it::<Secret>(ctl); Controller::new(scope.api::<CacheBridge>(c), cfg); }
fn g(c: Client) { let api = Api::<ConfigMap>::all(c); helper(api.clone()); }
""") == {("apps", "deployments", "delete"), ("", "secrets", "list"), ("", "secrets", "watch"),
         ("cachebridge.dev", "cachebridges", "list"), ("cachebridge.dev", "cachebridges", "watch"),
         ("", "configmaps", "delete")}


def test_scanner_ignores_tests_comments_and_strings(tmp_path):
    assert _scan(tmp_path, USES + """
fn f(api: Api<Secret>) { // api.delete("x")
    let _ = "api.delete(";
    api.get("x");
}
#[cfg(test)]
mod tests { fn t(api: Api<Secret>) { api.delete("x", &dp); } }
""") == {("", "secrets", "get")}


def test_scanner_refuses_what_it_cannot_attribute(tmp_path):
    with pytest.raises(ScanError, match="unknown Api method"):
        _scan(tmp_path, USES + "fn f(api: Api<Secret>) { api.frobnicate(); }")
    with pytest.raises(ScanError, match="no visible kind"):
        _scan(tmp_path, USES + "fn f(c: Client) { let x = Api::all(c); x.list(&lp); }")
    with pytest.raises(ScanError, match="cannot resolve the kind"):
        _scan(tmp_path, USES + "fn f(api: Api<Widget>) { api.list(&lp); }")
    with pytest.raises(ScanError, match="untyped"):
        _scan(tmp_path, USES + "fn f(c: Client) { let o: Api<DynamicObject> = Api::all_with(c, &ar); }")
