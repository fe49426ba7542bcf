"""Property-based tests of the API against its own OpenAPI schema (schemathesis): for every
operation, generated requests (valid ones, then invalid ones) on the database the pipeline
filled never get a 500, and every answer (status, content type, headers, body) is one the
schema documents.

The operations are driven through hypothesis directly (``APIOperation.as_strategy``):
schemathesis' own pytest plugin does not run under this pytest release.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from .conftest import fill, make_api

EXAMPLES = {GenerationMode.POSITIVE: 30, GenerationMode.NEGATIVE: 15}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    url = f"sqlite:///{root / 'ops.db'}"
    api = make_api(url, fill(root / "ws", url))
    return {"schema": schemathesis.openapi.from_asgi("/openapi.json", api.client.app), "api": api}


def _ordered_range(case: Any) -> bool:
    """Whether ``start_time`` is before ``end_time`` when both are given: a constraint between
    two parameters that the schema cannot state (the API answers 422 otherwise, as tested in
    test_api_figures.py), so positive cases keep to it."""
    query = case.query or {}
    start, end = query.get("start_time"), query.get("end_time")
    if not isinstance(start, str) or not isinstance(end, str):
        return True
    try:
        return datetime.fromisoformat(start.replace("Z", "+00:00")) < datetime.fromisoformat(end.replace("Z", "+00:00"))
    except ValueError:
        return True


def _run(operation: Any, mode: GenerationMode, headers: dict[str, str] | None, excluded: list) -> None:
    strategy = operation.as_strategy(generation_mode=mode)
    if mode == GenerationMode.POSITIVE:
        strategy = strategy.filter(_ordered_range)

    @settings(max_examples=EXAMPLES[mode], deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(case=strategy)
    def check(case: Any) -> None:
        case.call_and_validate(headers=headers, excluded_checks=excluded)

    try:
        check()
    except Unsatisfiable:
        # An operation without parameters or body has no invalid request to make.
        assert mode == GenerationMode.NEGATIVE, operation.label


def _operations(schema: Any) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    return operations


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_with_an_admin_token(target: dict[str, Any], mode: GenerationMode):
    headers = target["api"].headers("admin")
    for operation in _operations(target["schema"]):
        _run(operation, mode, headers, [])


@pytest.mark.slow
def test_without_a_token(target: dict[str, Any]):
    # Without a token every operation but the health check answers 401 (the schema says so).
    for operation in _operations(target["schema"]):
        _run(operation, GenerationMode.POSITIVE, None, [schemathesis.checks.ignored_auth])
