"""Validation of manifests against the Kubernetes OpenAPI schemas (kubernetes-validate,
strict: a field the schema does not know is an error, as with `kubectl apply`'s
default strict field validation), and of the kinds that are no Kubernetes built-in:
CacheBridge (against the CRD's own schema) and prometheus-operator's ServiceMonitor,
PodMonitor and PrometheusRule (against its CRDs, through generated models)."""

from __future__ import annotations

import copy
import json
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


class NotRoundTripped(ValueError):
    """An object whose model lost or changed fields: unknown to the CRD."""


def _validate_prometheus_operator(doc: dict[str, Any]) -> None:
    """prometheus-operator's kinds (ServiceMonitor, PodMonitor, PrometheusRule) against
    its CRD schemas, as the typed models cloudcoil-models-prometheus-operator generates
    from them (the CRD YAML itself is not available offline). The models ignore unknown
    fields, so the object must come back unchanged from a round trip: a misspelt field
    disappears, and fails."""
    from cloudcoil.models.prometheus_operator import v1

    model = getattr(v1, doc["kind"])
    back = model.model_validate(doc).model_dump(mode="json", by_alias=True, exclude_unset=True)
    if back != doc:
        raise NotRoundTripped(f"fields unknown to prometheus-operator's {doc['kind']}: "
                              f"{json.dumps(doc, sort_keys=True)} came back as {json.dumps(back, sort_keys=True)}")


def validate(doc: dict[str, Any], version: str) -> None:
    """Raises (with the path of the offending field) if `doc` is not a valid object
    of its kind for Kubernetes `version`."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if api_version == "monitoring.coreos.com/v1":
        _validate_prometheus_operator(doc)
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
