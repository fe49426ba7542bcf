"""Reference-data stage: ``elections.csv`` and ``constituencies.csv`` -> the operational database.

* ``elections.csv``: ``id,name,country,type,start_date,end_date,timezone,status,description``.
  Dates are ISO 8601; without an offset they are local time in the election's ``timezone``.
* ``constituencies.csv``: ``id,election_id,name,region,type,registered_voters,status``.
  An empty ``registered_voters`` means "take it from the chain's ``addVotersList``".

Every row is validated with the Pydantic schemas; any invalid row stops the stage with
one message listing every problem (file, line, field), and nothing is written. An id given
on more than one line of a file is such a problem too (every line is named), and so is a
constituency whose ``election_id`` is not in ``elections.csv``; a constituency whose
election is in the file but invalid is not reported again: the election's own problem
says how many constituency rows belong to it.
Rows are upserted by id; figures computed by the pipeline are left alone.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, select

from election_pipeline.db.bulk import insert_ignore, update_by_key
from election_pipeline.db.models import Constituency, Election, utcnow
from election_pipeline.db.schemas import ConstituencyCreate, ElectionCreate
from election_pipeline.vocabulary import ConstituencyStatus, ElectionStatus

ELECTION_COLUMNS = ["id", "name", "country", "type", "start_date", "end_date", "timezone", "status", "description"]
CONSTITUENCY_COLUMNS = ["id", "election_id", "name", "region", "type", "registered_voters", "status"]


class ReferenceDataError(ValueError):
    """The reference files are invalid; the message lists every problem."""


@dataclass
class ReferenceSummary:
    elections: int
    constituencies: int
    inserted: int
    updated: int
    files: list[str]


def _read(path: Path, columns: list[str], problems: list[str]) -> list[tuple[int, dict[str, str]]]:
    if not path.exists():
        return []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            problems.append(f"{path.name}: missing column(s) {', '.join(missing)}; expected header {','.join(columns)}")
            return []
        return [(n, {k: (v or "").strip() for k, v in row.items() if k}) for n, row in enumerate(reader, start=2)]


def _errors(path: Path, line: int, err: ValidationError) -> list[str]:
    return [f"{path.name} line {line}, {'.'.join(str(p) for p in e['loc']) or 'row'}: {e['msg']}" for e in err.errors()]


def _duplicates(path: Path, what: str, rows: list[tuple[int, dict[str, str]]]) -> list[str]:
    """One problem per id given on more than one line of ``path``, naming every line:
    a second row with the same id would silently replace the first on the next load."""
    lines: dict[str, list[int]] = {}
    for line, row in rows:
        if row.get("id"):
            lines.setdefault(row["id"], []).append(line)
    return [
        f"{path.name} lines {', '.join(map(str, found))}: {what} id {key!r} is listed more than once"
        for key, found in lines.items()
        if len(found) > 1
    ]


def read_reference(reference_dir: Path) -> tuple[list[ElectionCreate], list[ConstituencyCreate]]:
    """Parse and validate both files; raises :class:`ReferenceDataError` listing all problems."""
    problems: list[str] = []
    e_path, c_path = reference_dir / "elections.csv", reference_dir / "constituencies.csv"
    elections: list[ElectionCreate] = []
    e_rows = _read(e_path, ELECTION_COLUMNS, problems)
    # id of an election whose row is invalid -> index in ``problems`` of that row's last problem
    invalid: dict[str, int] = {}
    for line, row in e_rows:
        data: dict[str, Any] = {k: (row.get(k) or None) for k in ELECTION_COLUMNS}
        data["timezone"] = data["timezone"] or "UTC"
        data["status"] = data["status"] or ElectionStatus.ACTIVE
        if data["id"] is None:
            problems.append(f"{e_path.name} line {line}, id: an election id is required")
            continue
        try:
            elections.append(ElectionCreate(**data))
        except ValidationError as err:
            problems += _errors(e_path, line, err)
            invalid[data["id"]] = len(problems) - 1
    problems += _duplicates(e_path, "election", e_rows)
    known = {e.id for e in elections}
    belonging = dict.fromkeys(invalid, 0)
    constituencies: list[ConstituencyCreate] = []
    c_rows = _read(c_path, CONSTITUENCY_COLUMNS, problems)
    for line, row in c_rows:
        reg = row.get("registered_voters", "")
        data = {
            "id": row.get("id", ""),
            "election_id": row.get("election_id") or None,
            "name": row.get("name", ""),
            "region": row.get("region", ""),
            "type": row.get("type") or "urban",
            "status": row.get("status") or ConstituencyStatus.ACTIVE,
            "registered_voters": reg or 0,
            "registered_voters_source": "reference" if reg not in ("", "0") else "none",
            "in_reference": True,
        }
        try:
            item = ConstituencyCreate(**data)
        except ValidationError as err:
            problems += _errors(c_path, line, err)
            continue
        if item.election_id is not None and item.election_id not in known:
            if item.election_id in belonging:  # in the file, but its row is invalid: reported there
                belonging[item.election_id] += 1
            else:
                problems.append(f"{c_path.name} line {line}: election_id {item.election_id!r} is not in elections.csv")
            continue
        constituencies.append(item)
    for election_id, count in belonging.items():
        if count:
            problems[invalid[election_id]] += f" ({count} row(s) of {c_path.name} belong to this election)"
    problems += _duplicates(c_path, "constituency", c_rows)
    if problems:
        raise ReferenceDataError(
            f"{len(problems)} problem(s) in the reference data under {reference_dir}:\n- " + "\n- ".join(problems)
        )
    return elections, constituencies


def load_reference(reference_dir: str | Path, engine: Engine) -> ReferenceSummary:
    """Validate and upsert the reference data."""
    reference_dir = Path(reference_dir)
    elections, constituencies = read_reference(reference_dir)
    now = utcnow()
    with engine.begin() as conn:
        have_e = {r.id: r for r in conn.execute(select(Election.__table__))}
        have_c = {r.id: r for r in conn.execute(select(Constituency.__table__))}
        e_new, e_upd, c_new, c_upd = [], [], [], []
        e_cols = ["name", "country", "type", "start_date", "end_date", "timezone", "status", "description"]
        for e in elections:
            values = {c: getattr(e, c) for c in e_cols}
            old = have_e.get(e.id)
            if old is None:
                e_new.append({"id": e.id, "total_constituencies": 0, "created_at": now, "updated_at": now, **values})
            elif any(getattr(old, c) != v for c, v in values.items()):
                e_upd.append({"id": e.id, "updated_at": now, **values})
        c_cols = ["election_id", "name", "region", "type", "status", "in_reference"]
        for c in constituencies:
            values = {k: getattr(c, k) for k in c_cols}
            if c.registered_voters_source == "reference":
                values |= {"registered_voters": c.registered_voters, "registered_voters_source": "reference"}
            old = have_c.get(c.id)
            if old is None:
                c_new.append(
                    {
                        "id": c.id,
                        "registered_voters": 0,
                        "registered_voters_source": "none",
                        "bulletins_issued": 0,
                        "votes_cast": 0,
                        "revote_count": 0,
                        "transaction_count": 0,
                        "rejected_count": 0,
                        "participation_rate": 0.0,
                        "anomaly_score": 0.0,
                        "last_update_time": None,
                        "created_at": now,
                        "updated_at": now,
                        **values,
                    }
                )
            else:
                if old.registered_voters_source == "reference" and c.registered_voters_source != "reference":
                    values |= {"registered_voters": 0, "registered_voters_source": "none"}
                if any(getattr(old, k) != v for k, v in values.items()):
                    c_upd.append({"id": c.id, "updated_at": now, **values})
        insert_ignore(conn, Election.__table__, e_new, ["id"])
        for row in e_upd:
            update_by_key(conn, Election.__table__, [row], ["id"], [k for k in row if k != "id"])
        insert_ignore(conn, Constituency.__table__, c_new, ["id"])
        for row in c_upd:
            update_by_key(conn, Constituency.__table__, [row], ["id"], [k for k in row if k != "id"])
    files = [p.name for p in (reference_dir / "elections.csv", reference_dir / "constituencies.csv") if p.exists()]
    return ReferenceSummary(
        len(elections), len(constituencies), len(e_new) + len(c_new), len(e_upd) + len(c_upd), files
    )
