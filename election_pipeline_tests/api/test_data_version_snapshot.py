"""The data version on PostgreSQL: reused while the snapshot is the same, read afresh (and
always equal to the full aggregates) once anything was written.

A real PostgreSQL schema (skipped, with the reason printed, where no server answers); the
writes are made on other connections, as the pipeline and the CLI make them beside the API.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from election_pipeline.api.deps import SnapshotShortcut, data_version
from election_pipeline.db.models import Election
from election_pipeline.db.session import create_tables, get_engine
from election_pipeline_tests.conftest import new_postgres_schema


@pytest.fixture
def pg() -> Iterator[Engine]:
    with new_postgres_schema() as url:
        engine = get_engine(url)
        create_tables(engine)
        yield engine


def _add_election(engine: Engine, election_id: str) -> None:
    with Session(engine) as db:
        db.add(
            Election(
                id=election_id,
                name=election_id,
                start_date=datetime(2024, 9, 6, 5),
                end_date=datetime(2024, 9, 8, 18),
                timezone="Europe/Moscow",
            )
        )
        db.commit()


def test_the_version_follows_every_committed_change(pg: Engine) -> None:
    shortcut = SnapshotShortcut()
    with Session(pg) as db:
        empty = shortcut.version(db)
        db.commit()
        assert empty == data_version(db)
        _add_election(pg, "E1")  # another connection commits a change
        one = shortcut.version(db)
        db.commit()
        assert one != empty and one == data_version(db)
        assert shortcut.computed == 2


def test_the_same_snapshot_reuses_the_version_without_the_aggregates(pg: Engine) -> None:
    _add_election(pg, "E1")
    shortcut = SnapshotShortcut()
    with Session(pg) as db:
        # In one REPEATABLE READ transaction every statement has the same snapshot, so the
        # second read must not run the aggregates, even though another connection commits
        # meanwhile: this transaction cannot see that change, and its version is unchanged.
        db.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        first = shortcut.version(db)
        _add_election(pg, "E2")
        again = shortcut.version(db)
        assert (again, shortcut.reused, shortcut.computed) == (first, 1, 1)
        db.commit()
        # A new transaction has a new snapshot holding E2: the aggregates run again.
        after = shortcut.version(db)
        db.commit()
        assert after != first and after == data_version(db) and shortcut.computed == 2


def test_a_write_elsewhere_changes_the_snapshot_but_not_the_version(pg: Engine) -> None:
    _add_election(pg, "E1")
    shortcut = SnapshotShortcut()
    with Session(pg) as db:
        before = shortcut.version(db)
        db.commit()
        with pg.begin() as other:  # a write outside the tables of the data version
            other.execute(text("CREATE TEMPORARY TABLE scratch (n int)"))
            other.execute(text("INSERT INTO scratch VALUES (1)"))
        after = shortcut.version(db)
        db.commit()
    assert after == before
    assert shortcut.computed == 2  # the snapshot changed, so the aggregates decided


def test_sqlite_always_reads_the_aggregates(tmp_path) -> None:
    engine = get_engine(f"sqlite:///{tmp_path / 'ops.db'}")
    create_tables(engine)
    shortcut = SnapshotShortcut()
    with Session(engine) as db:
        assert shortcut.version(db) == shortcut.version(db) == data_version(db)
    assert (shortcut.reused, shortcut.computed) == (0, 2)
