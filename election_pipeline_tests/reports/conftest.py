"""A small operational database with hand-chosen hourly figures, for the metrics, report and
CLI tests. The rows are written through the real models into a real SQLite file, so the
functions under test read exactly what the pipeline's earlier stages would have written.

Election E1 ("Test election", Europe/Moscow = UTC+3 all year, voting window
2024-09-06 05:00 - 2024-09-08 17:00 UTC):

C1 "North One" (region North, 100 registered), hours in UTC:
  05:00  bulletins 10, votes 8, revotes 0, rejected 1, transactions 20    cum 10 / 8
  06:00  bulletins  5, votes 6, revotes 1, rejected 0, transactions 12    cum 15 / 14
  20:00  bulletins  2, votes 2,                        transactions  4    cum 17 / 16
  21:00  bulletins  0, votes 4, anomalies 1,           transactions  4    cum 17 / 20
         (21:00 UTC is 00:00 local on 7 September: a night-time hour of the next local day)
C2 "South Two" (region South, 50 registered):
  05:00  bulletins 4, votes 4, transactions 8                             cum 4 / 4
  07:00  bulletins 2, votes 1, transactions 3                             cum 6 / 5
C3 "East Three" (region North, 30 registered): no transaction yet.
C4 "West Four" (region South, 20 registered): marked ``offline`` in the reference data.
CX: a contract no reference file knows (no election), 1 hour of activity.

Alerts: C1 critical ``votes_exceed_bulletins`` (active, 20:00-22:00) and warning
``unusual_spike`` (active, 21:00-22:00); C2 critical ``unusual_spike`` (resolved) and info
``late_file`` (investigating); CX warning ``unknown_constituency`` (active).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from election_pipeline.db.models import Alert, Constituency, Election, HourlyStats
from election_pipeline.db.session import create_tables, get_engine

E1 = "election-1"
C1, C2, C3, C4, CX = "CtrNorthOne", "CtrSouthTwo", "CtrEastThree", "CtrWestFour", "CtrUnknownX"


def H(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 9, day, hour, minute)


#: (constituency, hour, bulletins, votes, revotes, rejected, transactions, anomalies, last transaction)
HOURS = [
    (C1, H(6, 5), 10, 8, 0, 1, 20, 0, H(6, 5, 50)),
    (C1, H(6, 6), 5, 6, 1, 0, 12, 0, H(6, 6, 45)),
    (C1, H(6, 20), 2, 2, 0, 0, 4, 0, H(6, 20, 30)),
    (C1, H(6, 21), 0, 4, 0, 0, 4, 1, H(6, 21, 30)),
    (C2, H(6, 5), 4, 4, 0, 0, 8, 0, H(6, 5, 20)),
    (C2, H(6, 7), 2, 1, 0, 0, 3, 0, H(6, 7, 40)),
    (CX, H(6, 9), 3, 3, 0, 0, 6, 0, H(6, 9, 10)),
]


@dataclass
class MetricsDb:
    url: str
    engine: Engine
    root: Path


def _constituency(
    cid: str, election: str | None, name: str, region: str, registered: int, status: str = "active", **totals
) -> Constituency:
    return Constituency(
        id=cid,
        election_id=election,
        name=name,
        region=region,
        type="urban",
        registered_voters=registered,
        registered_voters_source="reference" if election else "none",
        status=status,
        in_reference=election is not None,
        **totals,
    )


def build_metrics_db(root: Path, url: str | None = None) -> MetricsDb:
    """The database described above, in ``url`` (by default a SQLite file under ``root``)."""
    root.mkdir(parents=True, exist_ok=True)
    url = url or f"sqlite:///{root / 'ops.db'}"
    engine = get_engine(url)
    create_tables(engine)
    with Session(engine) as db:
        db.add(
            Election(
                id=E1,
                name="Test election",
                country="Exampleland",
                type="local",
                status="active",
                start_date=H(6, 5),
                end_date=H(8, 17),
                timezone="Europe/Moscow",
                total_constituencies=0,
            )
        )
        db.flush()
        db.add_all(
            [
                _constituency(
                    C1,
                    E1,
                    "North One",
                    "North",
                    100,
                    bulletins_issued=17,
                    votes_cast=20,
                    revote_count=1,
                    rejected_count=1,
                    transaction_count=40,
                    participation_rate=20.0,
                    anomaly_score=1.0,
                ),
                _constituency(
                    C2,
                    E1,
                    "South Two",
                    "South",
                    50,
                    bulletins_issued=6,
                    votes_cast=5,
                    transaction_count=11,
                    participation_rate=10.0,
                    anomaly_score=0.3,
                ),
                _constituency(C3, E1, "East Three", "North", 30),
                _constituency(C4, E1, "West Four", "South", 20, status="offline"),
                _constituency(
                    CX,
                    None,
                    f"Unknown contract {CX}",
                    "",
                    0,
                    status="unknown",
                    bulletins_issued=3,
                    votes_cast=3,
                    transaction_count=6,
                    anomaly_score=0.15,
                ),
            ]
        )
        db.flush()
        cum: dict[str, tuple[int, int]] = {}
        for cid, hour, b, v, rv, rj, tx, an, last in HOURS:
            cb, cv = cum.get(cid, (0, 0))
            cb, cv = cb + b, cv + v
            cum[cid] = (cb, cv)
            db.add(
                HourlyStats(
                    constituency_id=cid,
                    election_id=E1 if cid != CX else None,
                    hour=hour,
                    timestamp=last,
                    bulletins_issued=b,
                    votes_cast=v,
                    revote_count=rv,
                    rejected_count=rj,
                    transaction_count=tx,
                    cumulative_bulletins=cb,
                    cumulative_votes=cv,
                    bulletin_velocity=round(b / 60, 4),
                    vote_velocity=round(v / 60, 4),
                    participation_rate=0.0,
                    anomaly_count=an,
                )
            )

        def alert(cid, rule, severity, status, start, end, title):
            db.add(
                Alert(
                    constituency_id=cid,
                    fingerprint=f"{rule}|{cid}|{start}",
                    type=rule,
                    severity=severity,
                    status=status,
                    title=title,
                    description=title,
                    notes=[],
                    detected_at=datetime(2024, 9, 7),
                    details={
                        "window_start": start.isoformat() if start else None,
                        "window_end": end.isoformat() if end else None,
                    },
                )
            )

        alert(
            C1,
            "votes_exceed_bulletins",
            "critical",
            "active",
            H(6, 20),
            H(6, 22),
            "More voters than bulletins in North One",
        )
        alert(C1, "unusual_spike", "warning", "active", H(6, 21), H(6, 22), "Night-time spike in North One")
        alert(C2, "unusual_spike", "critical", "resolved", H(6, 7), H(6, 8), "Spike in South Two")
        alert(C2, "late_file", "info", "investigating", None, None, "Late file for South Two")
        alert(CX, "unknown_constituency", "warning", "active", None, None, "Unknown contract CtrUnknownX")
        db.commit()
    return MetricsDb(url=url, engine=engine, root=root)


@pytest.fixture
def metrics_db(tmp_path: Path) -> MetricsDb:
    """The database above in a SQLite file."""
    return build_metrics_db(tmp_path / "metrics")


@pytest.fixture
def metrics_db_any(db_url: str, tmp_path: Path) -> MetricsDb:
    """The database above on SQLite, then on the PostgreSQL server (``db_url``)."""
    return build_metrics_db(tmp_path / "metrics", db_url)
