import pytest
from dagster import DagsterInstance

from election_pipeline_tests.builders import Workspace, make_workspace


@pytest.fixture
def workspace(tmp_path) -> Workspace:
    return make_workspace(tmp_path / "ws")


@pytest.fixture
def instance(tmp_path):
    """A real, persistent Dagster instance in a temporary DAGSTER_HOME."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with DagsterInstance.local_temp(str(home)) as inst:
        yield inst
