"""Validation of manifests against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: a field the schema does not know is an error, as with `kubectl apply`'s
default strict field validation), and of the two kinds that are no Kubernetes
built-in: CacheBridge (against the CRD's own schema) and ServiceMonitor."""

from __future__ import annotations

import copy
import re
from functools import lru_cache
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

import repo


def kube_versions() -> list[str]:
    """The release k8s-openapi is compiled for (the `v1_NN` feature in Cargo.toml) and the
    newest release kubernetes-validate knows."""
    cargo = (repo.ROOT / "Cargo.toml").read_text()
    feature = re.search(r'k8s-openapi\s*=\s*\{[^}]*features\s*=\s*\[[^\]]*"v(\d+)_(\d+)"', cargo)
    assert feature, "no v1_NN feature of k8s-openapi in Cargo.toml"
    versions = {f"{feature.group(1)}.{feature.group(2)}", kubernetes_validate.latest_version()}
    return sorted(versions, key=lambda v: tuple(int(p) for p in v.split(".")[:2]))


def _strict(schema: Any) -> Any:
    """A CRD's structural schema as the API server applies it with strict field
    validation: an object with `properties` rejects any other field unless it says
    x-kubernetes-preserve-unknown-fields."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if ("properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@lru_cache(maxsize=None)
def _crd_schemas() -> dict[tuple[str, str], dict[str, Any]]:
    crd = yaml.safe_load(repo.CRD_FILE.read_text())
    group = crd["spec"]["group"]
    kind = crd["spec"]["names"]["kind"]
    return {
        (f"{group}/{v['name']}", kind): _strict(v["schema"]["openAPIV3Schema"])
        for v in crd["spec"]["versions"]
    }


# The part of prometheus-operator's ServiceMonitor (monitoring.coreos.com/v1) that
# this chart renders, written from its API reference: the CRD itself is not available
# offline. Any field outside this subset fails, so the template cannot grow a typo.
_SELECTOR = {
    "type": "object", "additionalProperties": False,
    "properties": {
        "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
        "matchExpressions": {"type": "array"},
    },
}
SERVICE_MONITOR_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": {
            "type": "object", "required": ["name", "namespace"],
            "properties": {
                "name": {"type": "string"}, "namespace": {"type": "string"},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "additionalProperties": False,
        },
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": _SELECTOR,
                "namespaceSelector": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}},
                },
                "jobLabel": {"type": "string"},
                "endpoints": {
                    "type": "array", "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "port": {"type": "string"},
                            "targetPort": {"type": ["string", "integer"]},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "scrapeTimeout": {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"},
                            "honorLabels": {"type": "boolean"},
                        },
                    },
                },
            },
        },
    },
}


def validate(doc: dict[str, Any], version: str) -> None:
    """Raises (with the path of the offending field) if `doc` is not a valid object
    of its kind for Kubernetes `version`."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if (api_version, kind) == ("monitoring.coreos.com/v1", "ServiceMonitor"):
        jsonschema.Draft202012Validator(SERVICE_MONITOR_SCHEMA).validate(doc)
        return
    crd_schema = _crd_schemas().get((api_version, kind))
    if crd_schema is not None:
        body = copy.deepcopy(doc)
        # apiVersion, kind and metadata (ObjectMeta) are the API server's, not the CRD schema's.
        for key in ("apiVersion", "kind", "metadata"):
            body.pop(key, None)
        jsonschema.Draft202012Validator(crd_schema).validate(body)
        return
    # kubernetes-validate raises SchemaNotFoundError for an unknown kind: that fails too.
    kubernetes_validate.validate(doc, version, strict=True)


def describe(error: Exception) -> str:
    path = "/".join(str(p) for p in getattr(error, "absolute_path", []) or [])
    message = getattr(error, "message", None) or str(error)
    return f"{path or '(root)'}: {message}"
