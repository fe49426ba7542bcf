"""A small election with hand-computed figures, shared by the Dagster-level tests.

Contract A (10 registered voters):
  hour 07 file: a1 issues 3 bulletins; a2 v1 votes; a3 v2 votes; a4 v3 votes but is
                rejected (FAIL); a5 issues 1 bulletin but is rejected.
  hour 08 file: a6 issues 2 bulletins; a7 v1 votes again (revote); a8 v3 votes (its first
                accepted vote); a9 v4 votes and is rolled back in the same file; a3 again
                (overlapping export).
Contract B (4 registered voters), hour 07: b1 issues 1 bulletin; b2, b3, b4 vote (w1-w3).

Expected (hand-computed):
  A 07: transactions 5 (a1-a5), bulletins 3 (a5 rejected), votes 2 (v1, v2), revotes 0, rejected 2
  A 08: transactions 3 (a6, a7, a8; a9 rolled back; a3 counted in 07), bulletins 2, votes 1 (v3),
        revotes 1 (v1), rejected 0; cumulative bulletins 5, cumulative votes 3
  A total: bulletins 5, voters 3, participation 3 / 10 × 100 = 30.0
  B 07: transactions 4, bulletins 1, votes 3 -> votes exceed bulletins (critical), participation 75.0
"""

from datetime import datetime

from .builders import CONTRACT_A, CONTRACT_B, Workspace, export_line, issue, ms, vote

A07 = f"{CONTRACT_A}_2024-09-06_0700-0800.csv"
A08 = f"{CONTRACT_A}_2024-09-06_0800-0900.csv"
B07 = f"{CONTRACT_B}_2024-09-06_0700-0800.csv"

HOUR7 = datetime(2024, 9, 6, 7)
HOUR8 = datetime(2024, 9, 6, 8)

EXPECTED_HOURLY = {
    # (constituency, hour): (transactions, bulletins, votes, revotes, rejected, cum_bulletins, cum_votes)
    (CONTRACT_A, HOUR7): (5, 3, 2, 0, 2, 3, 2),
    (CONTRACT_A, HOUR8): (3, 2, 1, 1, 0, 5, 3),
    (CONTRACT_B, HOUR7): (4, 1, 3, 0, 0, 1, 3),
}


def a07_lines() -> list[str]:
    return [
        issue("a1", ms("2024-09-06 07:05:00"), 3),
        vote("a2", ms("2024-09-06 07:10:00"), "v1"),
        vote("a3", ms("2024-09-06 07:20:00"), "v2"),
        vote("a4", ms("2024-09-06 07:30:00"), "v3", rejected=True),
        issue("a5", ms("2024-09-06 07:40:00"), 1, rejected=True),
    ]


def a08_lines() -> list[str]:
    a9 = vote("a9", ms("2024-09-06 08:30:00"), "v4")
    return [
        issue("a6", ms("2024-09-06 08:05:00"), 2),
        vote("a7", ms("2024-09-06 08:10:00"), "v1"),
        export_line("a8", "VOTE", ms("2024-09-06 08:20:00"), "v3"),
        a9,
        a9[: a9.rfind(";")] + ";-1",
        vote("a3", ms("2024-09-06 07:20:00"), "v2"),
    ]


def b07_lines() -> list[str]:
    return [
        issue("b1", ms("2024-09-06 07:01:00"), 1),
        vote("b2", ms("2024-09-06 07:02:00"), "w1"),
        vote("b3", ms("2024-09-06 07:03:00"), "w2"),
        vote("b4", ms("2024-09-06 07:04:00"), "w3"),
    ]


def drop_all(ws: Workspace) -> None:
    ws.write_reference({CONTRACT_A: 10, CONTRACT_B: 4})
    ws.drop(A07, a07_lines())
    ws.drop(A08, a08_lines())
    ws.drop(B07, b07_lines())


def hourly_figures(engine) -> dict:
    from sqlalchemy import select

    from election_pipeline.db.models import HourlyStats as H

    with engine.connect() as conn:
        rows = conn.execute(
            select(
                H.constituency_id,
                H.hour,
                H.transaction_count,
                H.bulletins_issued,
                H.votes_cast,
                H.revote_count,
                H.rejected_count,
                H.cumulative_bulletins,
                H.cumulative_votes,
            )
        ).all()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}
