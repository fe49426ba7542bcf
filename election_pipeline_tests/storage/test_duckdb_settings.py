"""Settings that reach the pipeline's DuckDB connections."""


def test_duckdb_memory_is_capped_by_the_setting(tmp_path):
    """ELECTION_DUCKDB_MEMORY_LIMIT reaches the pipeline's DuckDB connections."""
    from election_pipeline.defs.resources import WarehouseResource, build_resources
    from election_pipeline_tests.builders import Workspace

    settings = Workspace(tmp_path).settings(duckdb_memory_limit="256MB")
    warehouse = build_resources(settings)["warehouse"]
    assert isinstance(warehouse, WarehouseResource)
    with warehouse.connect() as duck:
        limit = duck.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    assert limit.replace(" ", "").upper() in {"256.0MB", "244.1MIB", "256MB", "244.1MB"}, limit
