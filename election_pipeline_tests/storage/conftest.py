"""Fixtures of the storage tests: a workspace of folders in tmp_path and a real, persistent
Dagster instance in a temporary DAGSTER_HOME (the same as the Dagster-level tests)."""

import pytest
from dagster import DagsterInstance

from election_pipeline_tests.builders import Workspace, make_workspace


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def instance(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as inst:
        yield inst
