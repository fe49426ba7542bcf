"""The stage tests' workspace (real SQLite and DuckDB files in tmp_path) for the detection
tests that run the real stages."""

from election_pipeline_tests.stages.conftest import workspace_factory, ws  # noqa: F401
