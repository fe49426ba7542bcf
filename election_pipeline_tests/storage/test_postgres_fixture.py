"""The PostgreSQL half of the database tests: skipped (with its reason) only when no server
answers, and never in CI, where a missing server fails the test."""

import pytest

from election_pipeline_tests import conftest


@pytest.fixture
def no_server(monkeypatch):
    monkeypatch.setenv("ELECTION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:1/test")
    conftest.postgres_unavailable.cache_clear()
    yield
    conftest.postgres_unavailable.cache_clear()


def test_missing_server_is_skipped_locally_with_the_reason(no_server, monkeypatch, capsys):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("ELECTION_REQUIRE_POSTGRES", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL server answers at .*127.0.0.1:1"):
        conftest.require_postgres()
    assert "SKIPPING the PostgreSQL half" in capsys.readouterr().err


@pytest.mark.parametrize("variable", ["CI", "ELECTION_REQUIRE_POSTGRES"])
def test_missing_server_fails_in_ci(no_server, monkeypatch, variable):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("ELECTION_REQUIRE_POSTGRES", raising=False)
    monkeypatch.setenv(variable, "1")
    with pytest.raises(pytest.fail.Exception, match="may not be skipped"):
        conftest.require_postgres()


def test_each_postgresql_test_gets_a_schema_of_its_own(postgres_schema_url):
    from sqlalchemy import text

    from election_pipeline.db.session import get_engine

    with get_engine(postgres_schema_url).connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    assert schema.startswith("t_") and schema in postgres_schema_url
