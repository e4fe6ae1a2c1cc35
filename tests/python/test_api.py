"""The HTTP API against its OpenAPI document, checked by tools made for that.

`cachebridge-dataplane local` (the reader API plus the writer's `POST /ingest` on one
port) serves its document at /api/v1/openapi.json, generated from the handlers:
- openapi-spec-validator must accept it as an OpenAPI 3.1 document;
- schemathesis generates requests from it (valid and invalid ones) against that running
  `local` and checks every response: no 5xx, and a documented status, content type,
  headers and body schema. It is bounded for CI: SCHEMATHESIS_MAX_EXAMPLES cases per
  operation (default 25) with a fixed seed (SCHEMATHESIS_SEED, default 1309) so a failure
  reproduces; on failure the seed and schemathesis' report (each failing request as a
  curl command) are printed.
(That the committed docs/openapi*.json are what the servers serve is checked by
dataplane/tests/web_clients.rs.)"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from dataplane_process import get, running_local

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
SEED = int(os.environ.get("SCHEMATHESIS_SEED", "1309"))
CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
])


@pytest.fixture(scope="module")
def local() -> str:
    with running_local() as base:
        yield base


def test_the_served_document_is_valid_openapi_3_1(local):
    document = json.loads(get(f"{local}/api/v1/openapi.json"))
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises with the first violation
    assert "/ingest" in document["paths"] and "/api/v1/market/tickers/{symbol}" in document["paths"]


def schemathesis() -> str:
    """The `st` of the Python running these tests (the virtualenv of scripts/test)."""
    path = Path(sys.executable).parent / "st"
    return str(path) if path.exists() else shutil.which("st") or pytest.fail("schemathesis is not installed")


def test_schemathesis_finds_no_response_the_document_does_not_describe(local, tmp_path):
    command = [
        schemathesis(), "run", f"{local}/api/v1/openapi.json",
        "--checks", CHECKS,
        "--mode", "all",
        "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(SEED),
        # One worker: with two threads, Hypothesis' lambda descriptions (ast.parse) trip CPython
        # 3.11's "AST constructor recursion depth mismatch" (gh-106905, fixed in 3.12) now and then.
        "--workers", "1",
        "--request-timeout", "10",
        "--no-color",
    ]
    # The hooks module (an NDJSON serializer for POST /ingest) is found next to this file.
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    report = result.stdout + result.stderr
    assert result.returncode == 0, (
        f"schemathesis found responses the document does not describe (seed {SEED}; rerun with "
        f"SCHEMATHESIS_SEED={SEED}):\n{report[-20000:]}")
