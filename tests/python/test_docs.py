"""The install walk-through (docs/helm.md, and the README once it carries one) matches
what the chart renders: release, namespace, object names, the example and the
condition it waits for, the image build commands. docs/security.md matches the code
where it quotes it (the Redis ACL rule, the TLS status)."""

from __future__ import annotations

import re
import shlex
import tempfile
from pathlib import Path

import helm_python as helm
import pytest
import yaml

import repo

HELM_MD = repo.ROOT / "docs" / "helm.md"
SECURITY_MD = repo.ROOT / "docs" / "security.md"
README = repo.ROOT / "README.md"


def shell_lines(path: Path) -> list[list[str]]:
    """Commands of the ```sh blocks of a Markdown file, split like a shell would."""
    lines = []
    for block in re.findall(r"```(?:sh|bash|console)\n(.*?)```", path.read_text(), re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(shlex.split(line))
    return lines


def option(words: list[str], *names: str) -> str | None:
    for i, w in enumerate(words):
        for name in names:
            if w == name and i + 1 < len(words):
                return words[i + 1]
            if w.startswith(name + "="):
                return w.split("=", 1)[1]
    return None


def walkthroughs() -> list[Path]:
    docs = [HELM_MD]
    if "helm install" in README.read_text():
        docs.append(README)
    return docs


@pytest.mark.parametrize("doc", walkthroughs(), ids=lambda p: p.name)
def test_walkthrough_matches_the_chart(doc, chart, operator_binary):
    commands = shell_lines(doc)
    installs = [c for c in commands if c[:2] == ["helm", "install"]]
    assert installs, f"{doc.name}: no `helm install` command"
    seen = set()
    for install in installs:
        release, chart_path = install[2], install[3]
        assert (repo.ROOT / chart_path).resolve() == repo.CHART
        namespace = option(install, "--namespace", "-n") or "default"
        values: dict = {}
        for expression in [install[i + 1] for i, w in enumerate(install) if w == "--set"]:
            values = chart.merge_values({**values, **helm.parse_set_string(expression)})
        docs = repo.render_chart(chart, values, release=release, namespace=namespace)
        crd = repo.one(docs, "CustomResourceDefinition")
        applied: list[dict] = []
        for words in commands:
            if words[:2] == ["helm", "upgrade"] or words[:2] == ["helm", "uninstall"]:
                assert words[2] == release and option(words, "--namespace", "-n") == namespace, words
                seen.add(words[1])
            elif words[0] == "kubectl" and "rollout" in words:
                target = words[words.index("status") + 1]
                kind, name = target.split("/")
                assert kind in ("deployment", "deploy")
                assert option(words, "-n", "--namespace") == namespace
                repo.one(docs, "Deployment", name)
                seen.add("rollout")
            elif words[:2] == ["kubectl", "apply"]:
                path = repo.ROOT / option(words, "-f")
                applied += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "CacheBridge"]
                assert applied, f"{path} holds no CacheBridge"
                seen.add("apply")
            elif words[:2] == ["kubectl", "get"] and len(words) > 2 and words[2] in ("cb", "cachebridges", "cachebridge"):
                names = crd["spec"]["names"]
                assert words[2] in [names["plural"], names["singular"], *names.get("shortNames", [])]
                seen.add("get")
            elif words[:2] == ["kubectl", "wait"]:
                condition = option(words, "--for").split("=", 1)[1]
                kind, name = words[-1].split("/") if "/" in words[-1] else next(
                    w.split("/") for w in words if w.startswith("cachebridge/"))
                assert kind == crd["spec"]["names"]["singular"]
                assert name in [d["metadata"]["name"] for d in applied], f"{name} is not in the applied example"
                status_rs = (repo.ROOT / "api" / "src" / "v1alpha1" / "status.rs").read_text()
                assert f'pub const READY: &str = "{condition}";' in status_rs
                seen.add("wait")
            elif words[:3] == ["kubectl", "delete", "crd"]:
                assert words[3] == crd["metadata"]["name"]
            elif words[:3] in (["kubectl", "label", "crd"], ["kubectl", "annotate", "crd"]):
                assert words[3] == crd["metadata"]["name"]
                for w in words[4:]:
                    if w.startswith("meta.helm.sh/release-name="):
                        assert w.split("=", 1)[1] == release
                    if w.startswith("meta.helm.sh/release-namespace="):
                        assert w.split("=", 1)[1] == namespace
    assert {"rollout", "apply", "get", "wait"} <= seen, seen


def test_image_build_commands_build_what_the_chart_pulls(chart):
    values = chart.values
    app_version = chart.metadata["appVersion"]
    wanted = {
        "operator": f"{values['image']['repository']}:{app_version}",
        "dataplane": f"{values['dataplaneImage']['repository']}:{app_version}",
    }
    builds = [c for doc in walkthroughs() for c in shell_lines(doc) if c[:2] == ["docker", "build"]]
    assert builds
    built = {}
    for words in builds:
        dockerfile = option(words, "-f", "--file")
        assert (repo.ROOT / dockerfile).is_file(), dockerfile
        assert words[-1] == ".", "the build context is the repository root"
        built[Path(dockerfile).name.split(".")[0]] = option(words, "-t", "--tag")
    assert built == wanted


def test_object_table_lists_what_the_chart_renders(default_render):
    rows = re.findall(r"^\| ([A-Za-z +]+) \| `([^`]+)` \|", HELM_MD.read_text(), re.M)
    listed = set()
    for kinds, name in rows:
        for kind in kinds.split(" + "):
            listed.add((kind.strip(), name))
    rendered = {(d["kind"], d["metadata"]["name"]) for d in default_render}
    assert rendered <= listed, sorted(rendered - listed)
    assert listed - rendered == {("ServiceMonitor", "cachebridge-operator")}


def test_options_table_names_real_values(chart):
    values = chart.values
    section = HELM_MD.read_text().split("## 3. Options", 1)[1].split("\n## ", 1)[0]
    names = re.findall(r"^\| `([a-zA-Z][\w.]*)`", section, re.M)
    names += re.findall(r"^\| `[^`]+` / `([a-zA-Z][\w.]*)`", section, re.M)
    assert len(names) >= 10
    for name in names:
        node = values
        for part in name.split("."):
            assert isinstance(node, dict) and part in node, f"docs/helm.md names `{name}`, values.yaml has no such value"
            node = node[part]


def test_security_doc_acl_rule_is_the_operators(operator_binary):
    """The ACL rule docs/security.md tells users to create is the one the operator
    gives a managed Redis for the same bridge."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write("apiVersion: cachebridge.dev/v1alpha1\nkind: CacheBridge\nmetadata: {name: orders, namespace: trading}\n")
        f.flush()
        out = repo.run_operator(operator_binary, "render", "-f", f.name)
    operator_rule = re.search(r"user cachebridge on >\S+ (resetkeys [^\"\n]*)", out)
    assert operator_rule, "no ACL rule in the managed Redis"
    doc_rule = re.search(r"ACL SETUSER orders-bridge on >\S+ (resetkeys .*)", SECURITY_MD.read_text())
    assert doc_rule and doc_rule.group(1).strip() == operator_rule.group(1).strip()


def test_security_doc_tells_the_truth_about_tls():
    cargo = (repo.ROOT / "Cargo.toml").read_text()
    redis = re.search(r"^redis\s*=\s*\{([^}]*)\}", cargo, re.M)
    assert redis
    tls_built = bool(re.search(r'"(tls-rustls|tokio-rustls-comp|tls-native-tls|tokio-native-tls-comp)"', redis.group(1)))
    says_broken = "TLS does not work yet" in SECURITY_MD.read_text()
    assert tls_built != says_broken, (
        "docs/security.md must say TLS does not work exactly when the redis crate is built without TLS")
