"""Hand-built frames in the shapes the detection rules read (see
``election_pipeline.detection.rules``), so each rule can be tested on figures computed by hand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import pandas as pd

ELECTION = "e1"
#: 2024-09-06 08:00 to 2024-09-08 20:00 Moscow time (UTC+3), in naive UTC.
START = datetime(2024, 9, 6, 5)
END = datetime(2024, 9, 8, 17)
H = timedelta(hours=1)

HOURLY_COLUMNS = ["bulletins_issued", "votes_cast", "revote_count", "rejected_count", "transaction_count"]


def hourly(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows with ``constituency_id``, ``hour`` and any of :data:`HOURLY_COLUMNS` (0 when
    left out). ``transaction_count`` defaults to bulletins + votes + revotes + rejected;
    cumulative columns are computed per constituency in hour order."""
    records = []
    for r in rows:
        rec = {c: r.get(c, 0) for c in HOURLY_COLUMNS}
        rec["constituency_id"] = r["constituency_id"]
        rec["hour"] = pd.Timestamp(r["hour"])
        if "transaction_count" not in r:
            rec["transaction_count"] = (
                rec["bulletins_issued"] + rec["votes_cast"] + rec["revote_count"] + rec["rejected_count"]
            )
        records.append(rec)
    frame = pd.DataFrame(records, columns=["constituency_id", "hour", *HOURLY_COLUMNS])
    if frame.empty:
        return frame.assign(cumulative_bulletins=pd.Series(dtype="int64"), cumulative_votes=pd.Series(dtype="int64"))
    frame = frame.sort_values(["constituency_id", "hour"]).reset_index(drop=True)
    frame["cumulative_bulletins"] = frame.groupby("constituency_id")["bulletins_issued"].cumsum()
    frame["cumulative_votes"] = frame.groupby("constituency_id")["votes_cast"].cumsum()
    return frame


def constituencies(specs: Iterable[tuple], election: str | None = ELECTION) -> pd.DataFrame:
    """``(id, registered)`` or ``(id, registered, region)`` tuples."""
    rows = []
    for spec in specs:
        cid, registered = spec[0], spec[1]
        region = spec[2] if len(spec) > 2 else "North"
        rows.append(
            {
                "id": cid,
                "election_id": election,
                "region": region,
                "registered": registered,
                "in_reference": election is not None,
                "name": f"District {cid}",
            }
        )
    return pd.DataFrame(rows, columns=["id", "election_id", "region", "registered", "in_reference", "name"])


def elections(timezone: str = "Europe/Moscow", start: datetime = START, end: datetime = END) -> pd.DataFrame:
    return pd.DataFrame([{"id": ELECTION, "start_date": start, "end_date": end, "timezone": timezone}])


def totals(rows: Iterable[dict]) -> pd.DataFrame:
    """Rows with ``constituency_id`` and any of ``bulletins_issued``, ``votes_cast``,
    ``transaction_count``, ``voting_finished``."""
    records = [
        {
            "constituency_id": r["constituency_id"],
            "bulletins_issued": r.get("bulletins_issued", 0),
            "votes_cast": r.get("votes_cast", 0),
            "transaction_count": r.get("transaction_count", 0),
            "voting_finished": r.get("voting_finished"),
        }
        for r in rows
    ]
    return pd.DataFrame(
        records, columns=["constituency_id", "bulletins_issued", "votes_cast", "transaction_count", "voting_finished"]
    )


def late(rows: Iterable[tuple]) -> pd.DataFrame:
    """``(constituency_id, tx_id, ts, operation[, rejected])`` tuples."""
    records = [
        {
            "constituency_id": r[0],
            "tx_id": r[1],
            "ts": pd.Timestamp(r[2]),
            "operation": r[3],
            "rejected": r[4] if len(r) > 4 else False,
        }
        for r in rows
    ]
    return pd.DataFrame(records, columns=["constituency_id", "tx_id", "ts", "operation", "rejected"])
