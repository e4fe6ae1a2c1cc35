"""Shared fixtures: the chart loaded once by the real Helm library, its renders over
the option matrix, and the operator binary built once for the whole session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import repo


@pytest.fixture(scope="session")
def chart():
    loaded = repo.load_chart()
    yield loaded
    loaded.close()


@pytest.fixture(scope="session")
def renders(chart) -> dict[str, list[dict[str, Any]]]:
    """Case id -> rendered objects, for every case of the option matrix."""
    return {
        case.id: repo.render_chart(chart, case.values, release=case.release, namespace=case.namespace)
        for case in repo.CASES
    }


@pytest.fixture(scope="session")
def default_render(renders) -> list[dict[str, Any]]:
    return renders["defaults"]


@pytest.fixture(scope="session")
def operator_binary() -> Path:
    """target/debug/cachebridge-operator, built once (cargo may wait for a lock)."""
    return repo.build_operator()


@pytest.fixture(scope="session")
def operator_renders(operator_binary) -> dict[str, list[dict[str, Any]]]:
    """Example file name -> every child object the operator builds for it."""
    assert repo.EXAMPLES, "no examples/*.yaml"
    return {ex.name: repo.operator_children(operator_binary, ex) for ex in repo.EXAMPLES}
