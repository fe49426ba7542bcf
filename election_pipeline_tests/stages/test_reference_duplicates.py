"""Reference files that are wrong in ways a row-by-row check misses: an id listed twice, and
an invalid election whose constituencies would each be reported again.

Real ``elections.csv`` / ``constituencies.csv`` in a workspace under ``tmp_path``, loaded by
the real ``load_reference`` into the operational database (SQLite, then PostgreSQL).
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from election_pipeline.db.models import Constituency, Election
from election_pipeline.stages.reference import ReferenceDataError

from .conftest import C1, C2, C3

MOSCOW = "Europe/Moscow"


def election(eid: str = "e1", start: str = "2024-09-06T08:00:00", end: str = "2024-09-08T20:00:00", **kw: str) -> str:
    values = {"name": f"Election {eid}", "timezone": MOSCOW, **kw}
    return f"{eid},{values['name']},Exampleland,local,{start},{end},{values['timezone']},active,test"


def constituency(cid: str, eid: str = "e1", voters: int = 100) -> str:
    return f"{cid},{eid},District {cid},North,urban,{voters},active"


def problems(exc: pytest.ExceptionInfo[ReferenceDataError]) -> list[str]:
    """The problems listed in the error, one per ``- `` line."""
    return [line[2:] for line in str(exc.value).splitlines() if line.startswith("- ")]


def stored(ws) -> dict[str, list]:
    with ws.engine.connect() as conn:
        return {
            "elections": [tuple(r) for r in conn.execute(select(Election.id, Election.start_date, Election.end_date))],
            "constituencies": [tuple(r) for r in conn.execute(select(Constituency.id, Constituency.election_id))],
        }


# --------------------------------------------------------------------------------------
# The same id on two lines
# --------------------------------------------------------------------------------------


def test_duplicate_election_id_is_refused_naming_both_lines_and_nothing_is_stored(ws):
    with pytest.raises(ReferenceDataError) as exc:
        ws.write_reference(
            [election("e1"), election("e2"), election("e1", "2024-09-07T08:00:00", "2024-09-09T20:00:00")],
            [constituency(C1), constituency(C2, "e2")],
        )
    assert problems(exc) == ["elections.csv lines 2, 4: election id 'e1' is listed more than once"]
    assert stored(ws) == {"elections": [], "constituencies": []}  # not even the valid rows


def test_duplicate_election_id_cannot_move_a_stored_voting_window(ws):
    """Before, the first copy was stored and the second replaced it on the next load."""
    ws.write_reference([election("e1")], [constituency(C1)])
    before = stored(ws)
    assert before["elections"][0][1].isoformat() == "2024-09-06T05:00:00"  # 08:00 Moscow time, as UTC

    moved = election("e1", "2024-09-07T08:00:00", "2024-09-09T20:00:00")
    for _ in range(2):  # the second load is the one that used to apply the second copy
        with pytest.raises(ReferenceDataError, match=r"elections\.csv lines 2, 3: election id 'e1'"):
            ws.write_reference([election("e1"), moved], [constituency(C1)])
    assert stored(ws) == before


def test_duplicate_constituency_id_is_refused_naming_every_line(ws):
    with pytest.raises(ReferenceDataError) as exc:
        ws.write_reference([election("e1")], [constituency(C1), constituency(C2), constituency(C1, voters=5)])
    assert problems(exc) == ["constituencies.csv lines 2, 4: constituency id 'CtrNorth1' is listed more than once"]
    assert stored(ws) == {"elections": [], "constituencies": []}


def test_duplicates_in_both_files_are_listed_together(ws):
    with pytest.raises(ReferenceDataError) as exc:
        ws.write_reference(
            [election("e1"), election("e1"), election("e1")],
            [constituency(C1), constituency(C1), constituency(C3), constituency(C3)],
        )
    assert problems(exc) == [
        "elections.csv lines 2, 3, 4: election id 'e1' is listed more than once",
        "constituencies.csv lines 2, 3: constituency id 'CtrNorth1' is listed more than once",
        "constituencies.csv lines 4, 5: constituency id 'CtrEast3' is listed more than once",
    ]


def test_a_duplicate_is_reported_even_when_one_copy_is_invalid(ws):
    with pytest.raises(ReferenceDataError) as exc:
        ws.write_reference([election("e1"), election("e1", timezone="Mars/Olympus")], [constituency(C1)])
    found = problems(exc)
    assert len(found) == 2
    assert found[0].startswith("elections.csv line 3, timezone:")
    assert found[1] == "elections.csv lines 2, 3: election id 'e1' is listed more than once"


# --------------------------------------------------------------------------------------
# One invalid election: one error, not one more per constituency
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "row, field",
    [
        (election("e1", timezone="Mars/Olympus"), "timezone"),
        (election("e1", start="6 September 2024"), "start_date"),
        (election("e1", end="2024-09-31T20:00:00"), "end_date"),
        (election("e1", start="2024-09-08T08:00:00", end="2024-09-06T20:00:00"), "row"),  # ends before it starts
    ],
)
def test_an_invalid_election_row_gives_exactly_one_error(ws, row, field):
    with pytest.raises(ReferenceDataError) as exc:
        ws.write_reference([row], [constituency(C1), constituency(C2), constituency(C3)])
    [problem] = problems(exc)
    assert problem.startswith(f"elections.csv line 2, {field}:"), problem
    assert problem.endswith("(3 row(s) of constituencies.csv belong to this election)")
    assert "is not in elections.csv" not in str(exc.value)
    assert str(exc.value).startswith("1 problem(s) in the reference data")
    assert stored(ws) == {"elections": [], "constituencies": []}


def test_a_constituency_of_an_election_missing_from_the_file_is_still_reported(ws):
    with pytest.raises(ReferenceDataError) as exc:
        ws.write_reference(
            [election("e1", timezone="Mars/Olympus"), election("e2")],
            [constituency(C1), constituency(C2, "e2"), constituency(C3, "nowhere")],
        )
    found = problems(exc)
    assert len(found) == 2
    assert found[0].startswith("elections.csv line 2, timezone:")
    assert found[0].endswith("(1 row(s) of constituencies.csv belong to this election)")
    assert found[1] == "constituencies.csv line 4: election_id 'nowhere' is not in elections.csv"


def test_an_election_row_without_an_id_is_a_problem_not_a_database_error(ws):
    with pytest.raises(ReferenceDataError) as exc:
        ws.write_reference([election(""), election("e2")], [constituency(C1, "e2")])
    assert problems(exc) == ["elections.csv line 2, id: an election id is required"]
    assert stored(ws) == {"elections": [], "constituencies": []}
