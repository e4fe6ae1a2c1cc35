"""values.schema.json: wrong values fail at install time (Helm validates them before
rendering) with a message that names the value and what is wrong; every value in
values.yaml is commented, and the schema and values.yaml describe the same keys."""

from __future__ import annotations

import json
import re

import helm_python as helm
import pytest
import yaml

import repo

SCHEMA = json.loads((repo.CHART / "values.schema.json").read_text())
VALUES_TEXT = (repo.CHART / "values.yaml").read_text()

# (id, values, words the error message must contain)
BAD_VALUES = [
    ("negative replicas", {"replicaCount": -1}, ["/replicaCount", "minimum"]),
    ("zero replicas", {"replicaCount": 0}, ["/replicaCount", "minimum"]),
    ("fractional replicas", {"replicaCount": 1.5}, ["/replicaCount", "integer"]),
    ("unknown log level", {"logLevel": "loud"}, ["/logLevel", "must be one of", "'info'"]),
    ("unknown log format", {"logFormat": "xml"}, ["/logFormat", "must be one of"]),
    ("numeric image tag", {"image": {"tag": 5}}, ["/image/tag", "want string"]),
    ("unknown top-level key", {"replicas": 2}, ["additional properties 'replicas' not allowed"]),
    ("unknown nested key", {"image": {"tga": "1.0"}}, ["/image", "additional properties 'tga' not allowed"]),
    ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}, ["/image/pullPolicy", "must be one of"]),
    ("bad digest", {"image": {"digest": "latest"}}, ["/image/digest"]),
    ("image with tag in repository", {"image": {"repository": "ghcr.io/x/operator:1.0"}}, ["/image/repository"]),
    ("bad namespace", {"watchNamespace": "Trading_Desk"}, ["/watchNamespace"]),
    ("boolean as string", {"serviceMonitor": {"enabled": "yes"}}, ["/serviceMonitor/enabled", "want boolean"]),
    ("bad interval", {"serviceMonitor": {"interval": "often"}}, ["/serviceMonitor/interval"]),
    ("port out of range", {"metrics": {"port": 70000}}, ["/metrics/port", "maximum"]),
    ("bad cpu quantity", {"resources": {"requests": {"cpu": "lots"}}}, ["/resources/requests/cpu"]),
    ("unknown resource", {"resources": {"limits": {"gpu": 1}}}, ["/resources/limits", "'gpu' not allowed"]),
    ("cidr without mask", {"networkPolicy": {"apiServer": {"cidrs": ["10.0.0.1"]}}}, ["/networkPolicy/apiServer/cidrs/0"]),
    ("selector typo", {"networkPolicy": {"metrics": {"from": [{"namespaceSelector": {"matchLabel": {}}}]}}},
     ["/networkPolicy/metrics/from/0/namespaceSelector", "'matchLabel' not allowed"]),
    ("leader election as string", {"leaderElection": {"enabled": "false"}}, ["/leaderElection/enabled", "want boolean"]),
    ("crds.install as string", {"crds": {"install": "no"}}, ["/crds/install", "want boolean"]),
]


@pytest.mark.parametrize("name, values, words", BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_values_fail_at_install_with_a_readable_message(chart, name, values, words):
    # What `helm install` / `helm upgrade` do: validate, then render.
    with pytest.raises(helm.HelmValuesError) as install:
        repo.render_chart(chart, values)
    message = str(install.value)
    for word in words:
        assert word in message, f"{name}: {word!r} not in {message!r}"
    # And the same from the schema check alone (what `helm lint` runs).
    with pytest.raises(helm.HelmValuesError) as check:
        chart.validate_schema(values)
    assert words[0] in str(check.value)


def test_lint_reports_bad_values(chart):
    report = helm.lint(str(repo.CHART), {"logLevel": "loud"}, strict=True)
    text = json.dumps(report)
    assert report["errors"] or any(m["severity"] == 3 for m in report["messages"]), report
    assert "logLevel" in text


def test_defaults_and_every_matrix_case_are_accepted(chart):
    chart.validate_schema({})
    for case in repo.CASES:
        chart.validate_schema(case.values)


def test_schema_is_closed_everywhere():
    """Every object in the schema that lists its properties rejects others, so a typo
    anywhere is an error, not a silently ignored value."""
    open_objects = []

    def walk(node, path):
        if isinstance(node, dict):
            if "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(path or "(root)")
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{path}/{i}")

    walk(SCHEMA, "")
    assert open_objects == []


def _schema_keys(node, prefix=""):
    """Dotted paths of every property the schema names (not inside FREE_FORM values)."""
    keys = set()
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        keys.add(path)
        if "properties" in sub and path not in FREE_FORM:
            keys |= _schema_keys(sub, path + ".")
    return keys


def _value_keys(values, prefix=""):
    keys = set()
    for key, value in values.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, dict) and path not in FREE_FORM:
            keys |= _value_keys(value, path + ".")
    return keys


# Values whose content is a Kubernetes object, checked by its own definition.
FREE_FORM = {"resources", "podAnnotations", "podLabels", "nodeSelector", "affinity", "serviceMonitor.labels",
             "serviceAccount.annotations", "podMonitor.labels", "prometheusRule.labels", "grafanaDashboard.labels",
             "grafanaDashboard.annotations"}


def test_schema_and_values_yaml_name_the_same_keys():
    values = yaml.safe_load(VALUES_TEXT)
    schema_keys = _schema_keys(SCHEMA) - {"global"}
    value_keys = _value_keys(values)
    assert sorted(schema_keys - value_keys) == [], "in values.schema.json but not in values.yaml"
    assert sorted(value_keys - schema_keys) == [], "in values.yaml but not in values.schema.json"


def _key_lines(text):
    """(line number, indent, key line, commented) of every mapping key in a YAML text."""
    lines = text.splitlines()
    out = []
    for i, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][\w./-]*):", line)
        if match:
            previous = next((l for l in reversed(lines[:i]) if l.strip()), "")
            out.append((i + 1, len(match.group(1)), line.strip(), previous.strip().startswith("#")))
    return out


def undocumented_keys(text):
    """Keys with no comment right above them, unless an enclosing key's comment covers
    them (resources.requests.cpu) or they only group keys that are documented (image:)."""
    keys = _key_lines(text)

    def children(k):
        indent = keys[k][1]
        child_indent, found = None, []
        for j in range(k + 1, len(keys)):
            if keys[j][1] <= indent:
                break
            child_indent = keys[j][1] if child_indent is None else child_indent
            if keys[j][1] == child_indent:
                found.append(j)
        return found

    def documented(k):
        kids = children(k)
        return keys[k][3] or (bool(kids) and all(documented(j) for j in kids))

    missing = []

    def visit(k):
        if keys[k][3]:
            return  # this comment covers the key and everything inside it
        kids = children(k)
        if not documented(k):
            missing.append(f"line {keys[k][0]}: {keys[k][2]}" + (" (and some of its keys)" if kids else ""))
        for j in kids:
            visit(j)

    for k, (_, indent, _, _) in enumerate(keys):
        if indent == 0:
            visit(k)
    return missing


def test_every_value_is_commented():
    assert undocumented_keys(VALUES_TEXT) == []


def test_comment_checker_notices_a_missing_comment():
    text = "# -- fine\na: 1\nb: 2\ngroup:\n  # -- fine\n  c: 1\n  d: 2\nok:\n  # -- fine\n  e: {x: 1}\n"
    assert undocumented_keys(text) == ["line 3: b: 2", "line 4: group: (and some of its keys)", "line 7: d: 2"]
