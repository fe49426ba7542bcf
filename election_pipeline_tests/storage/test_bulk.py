"""The bulk writers on both engines: COPY on PostgreSQL from COPY_MIN_ROWS rows, executemany
otherwise; keyed, so repeating a write changes nothing."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from election_pipeline.db import bulk
from election_pipeline.db.models import Constituency, HourlyStats, Transaction
from election_pipeline.db.session import get_engine, upgrade_database

T0 = datetime(2024, 9, 6, 8)


@pytest.fixture
def engine(db_url):
    engine = get_engine(db_url)
    upgrade_database(engine)
    with engine.begin() as conn:
        conn.execute(
            Constituency.__table__.insert(),
            [
                {
                    "id": cid,
                    "name": cid,
                    "region": "",
                    "type": "urban",
                    "registered_voters": 100,
                    "registered_voters_source": "reference",
                    "status": "active",
                    "in_reference": True,
                    "bulletins_issued": 0,
                    "votes_cast": 0,
                    "revote_count": 0,
                    "transaction_count": 0,
                    "rejected_count": 0,
                    "participation_rate": 0.0,
                    "anomaly_score": 0.0,
                    "created_at": T0,
                    "updated_at": T0,
                }
                for cid in ("C1", "C2")
            ],
        )
    return engine


def tx_rows(n: int, start: int = 0) -> list[dict]:
    return [
        {
            "id": f"id-{i}",
            "tx_id": f"tx-{i}",
            "constituency_id": "C1" if i % 2 else "C2",
            "block_height": None,
            "timestamp": T0 + timedelta(seconds=i),
            "type": "vote",
            "sender": f"voter;{i}",
            "is_rejected": i % 7 == 0,
            "is_rolled_back": False,
            "bulletins": 0,
            "source_file": "f.csv",
            "raw_data": {"params": [{"key": "text", "stringValue": 'semi;colon "quoted"\ttab\\back'}], "n": i},
            "operation_data": {"operation": "vote", "line_number": i},
            "created_at": T0,
            "updated_at": T0,
        }
        for i in range(start, start + n)
    ]


@pytest.mark.parametrize("n", [3, bulk.COPY_MIN_ROWS + 50])
def test_insert_ignore_stores_each_key_once_with_json_intact(engine, n):
    rows = tx_rows(n)
    with engine.begin() as conn:
        copy_used = bulk.uses_copy(conn, rows)
        bulk.insert_ignore(conn, Transaction.__table__, rows, ["tx_id"])
        # The same rows again, and a batch with keys repeated inside it: nothing new.
        bulk.insert_ignore(conn, Transaction.__table__, rows + rows[:5], ["tx_id"])
    assert copy_used == (engine.dialect.name == "postgresql" and n >= bulk.COPY_MIN_ROWS)
    with engine.connect() as conn:
        stored = {r.tx_id: r for r in conn.execute(select(Transaction.__table__))}
    assert len(stored) == n
    sample = stored["tx-1"]
    assert sample.raw_data == rows[1]["raw_data"]
    assert sample.operation_data == {"operation": "vote", "line_number": 1}
    assert sample.timestamp == T0 + timedelta(seconds=1) and sample.sender == "voter;1"
    assert stored["tx-0"].is_rejected is True and stored["tx-1"].is_rejected is False
    assert sample.block_height is None


def hourly_rows(n: int, votes: int) -> list[dict]:
    return [
        {
            "id": f"h-{i}-{votes}",
            "constituency_id": "C1",
            "election_id": None,
            "hour": T0 + timedelta(hours=i),
            "timestamp": T0 + timedelta(hours=i, minutes=59),
            "bulletins_issued": votes,
            "votes_cast": votes,
            "revote_count": 0,
            "rejected_count": 0,
            "transaction_count": votes,
            "cumulative_bulletins": votes,
            "cumulative_votes": votes,
            "bulletin_velocity": votes / 60,
            "vote_velocity": votes / 60,
            "participation_rate": 1.5,
            "anomaly_count": 0,
            "created_at": T0,
            "updated_at": T0,
        }
        for i in range(n)
    ]


FIGS = ["votes_cast", "bulletins_issued", "transaction_count", "vote_velocity", "updated_at"]


@pytest.mark.parametrize("n", [4, bulk.COPY_MIN_ROWS + 10])
def test_upsert_and_update_by_key_overwrite_only_the_given_columns(engine, n):
    key = ["constituency_id", "hour"]
    with engine.begin() as conn:
        bulk.upsert(conn, HourlyStats.__table__, hourly_rows(n, 5), key, FIGS)
    with engine.begin() as conn:
        changed = hourly_rows(n, 9)
        bulk.upsert(conn, HourlyStats.__table__, changed, key, FIGS)
    with engine.connect() as conn:
        rows = conn.execute(select(HourlyStats.__table__).order_by(HourlyStats.hour)).mappings().all()
    assert len(rows) == n
    assert {r["votes_cast"] for r in rows} == {9}
    assert {r["id"] for r in rows} == {f"h-{i}-5" for i in range(n)}  # kept: not in the updated columns
    assert rows[0]["vote_velocity"] == pytest.approx(9 / 60)

    updates = [{"constituency_id": "C1", "hour": T0 + timedelta(hours=i), "anomaly_count": i} for i in range(n)]
    updates.append({"constituency_id": "C2", "hour": T0, "anomaly_count": 99})  # no such row: ignored
    with engine.begin() as conn:
        bulk.update_by_key(conn, HourlyStats.__table__, updates, key, ["anomaly_count"])
    with engine.connect() as conn:
        counts = dict(conn.execute(select(HourlyStats.hour, HourlyStats.anomaly_count)).all())
        total = conn.execute(select(HourlyStats.id)).all()
    assert counts == {T0 + timedelta(hours=i): i for i in range(n)}
    assert len(total) == n


def test_a_failed_transaction_leaves_nothing_behind(engine):
    rows = tx_rows(bulk.COPY_MIN_ROWS + 1)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        bulk.insert_ignore(conn, Transaction.__table__, rows, ["tx_id"])
        raise RuntimeError("killed")
    with engine.connect() as conn:
        assert conn.execute(select(Transaction.id)).all() == []
