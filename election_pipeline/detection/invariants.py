"""Critical rules: hard invariants of the voting protocol. Any one of them sets the
constituency's anomaly score to 1.

* ``votes_exceed_bulletins``: more distinct voters than bulletins issued, cumulatively.
* ``bulletins_exceed_registered``: more bulletins or voters than registered voters.
* ``vote_after_close``: an accepted vote or bulletin after the contract's ``finishVoting``.
* ``outside_voting_window``: an accepted vote or bulletin before the election's start or
  at/after its end.

Plus ``unknown_constituency`` (a warning): transactions for a contract no reference file knows.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from election_pipeline.vocabulary import Operation

from .context import HOUR, VotingWindow, constituency_names, finish_times, hour_floor, label, to_naive_instant
from .findings import Finding

#: Operations that cast or enable a vote; only these are checked against the window.
VOTING_OPERATIONS = (Operation.VOTE, Operation.BLIND_SIG_ISSUE)


def _fmt(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _names_of(constituencies: pd.DataFrame | None) -> dict[str, str]:
    return constituency_names(constituencies) if constituencies is not None else {}


def votes_exceed_bulletins(hourly: pd.DataFrame, constituencies: pd.DataFrame | None = None) -> list[Finding]:
    """Critical: more distinct voters than bulletins issued, cumulatively.

    Votes lag issuance inside an hour, so the comparison is cumulative: at the end of
    every hour, voters so far must not exceed bulletins so far (equal is fine). One alert
    per constituency spans the hours where the invariant is broken.
    """
    findings: list[Finding] = []
    if hourly.empty:
        return findings
    names = _names_of(constituencies)
    ordered = hourly.sort_values("hour")
    broken = ordered.loc[ordered["cumulative_votes"] > ordered["cumulative_bulletins"], "constituency_id"].unique()
    for cid, rows in ordered[ordered["constituency_id"].isin(broken)].groupby("constituency_id", sort=True):
        bad = rows[rows["cumulative_votes"] > rows["cumulative_bulletins"]]
        if bad.empty:
            continue
        excess = bad["cumulative_votes"] - bad["cumulative_bulletins"]
        worst = bad.loc[excess.idxmax()]
        first = bad.iloc[0]
        last = rows.iloc[-1]
        hours = [to_naive_instant(h) for h in bad["hour"]]
        findings.append(
            Finding(
                rule="votes_exceed_bulletins",
                severity="critical",
                constituency_id=str(cid),
                title=f"More voters than bulletins issued in {label(names, str(cid))}",
                description=(
                    f"From {hours[0]:%Y-%m-%d %H:00} UTC the number of distinct voters "
                    f"({int(first['cumulative_votes'])}) exceeds the bulletins issued so far "
                    f"({int(first['cumulative_bulletins'])}). At worst ({to_naive_instant(worst['hour']):%Y-%m-%d %H:00} UTC) "
                    f"{int(excess.max())} votes have no bulletin. Every vote needs an issued bulletin: "
                    "check the vote transactions of these hours for ballot stuffing or a missing export."
                ),
                window_start=hours[0],
                window_end=hours[-1] + HOUR,
                statistic=float(excess.max()),
                expected=0.0,
                threshold=0.0,
                hours=hours,
                figures={
                    "first_hour": hours[0].isoformat(),
                    "cumulative_votes_at_first_hour": int(first["cumulative_votes"]),
                    "cumulative_bulletins_at_first_hour": int(first["cumulative_bulletins"]),
                    "worst_hour": to_naive_instant(worst["hour"]).isoformat(),
                    "max_excess_votes": int(excess.max()),
                    "total_votes": int(last["cumulative_votes"]),
                    "total_bulletins": int(last["cumulative_bulletins"]),
                    "hours_in_breach": len(hours),
                },
                evidence_kind="vote",
            )
        )
    return findings


def bulletins_exceed_registered(constituencies: pd.DataFrame, totals: pd.DataFrame) -> list[Finding]:
    """Critical: more bulletins issued, or more distinct voters, than registered voters
    (participation above 100%; exactly 100% is allowed). Skipped when no registered-voter
    figure is known."""
    t = totals.set_index("constituency_id") if len(totals) else None
    names = _names_of(constituencies)
    findings = []
    for rec in constituencies.itertuples(index=False):
        if t is None or rec.id not in t.index or rec.registered <= 0:
            continue
        bulletins = int(t.at[rec.id, "bulletins_issued"])
        voters = int(t.at[rec.id, "votes_cast"])
        worst = max(bulletins, voters)
        if worst <= rec.registered:
            continue
        findings.append(
            Finding(
                rule="bulletins_exceed_registered",
                severity="critical",
                constituency_id=rec.id,
                title=f"More bulletins or voters than registered voters in {label(names, str(rec.id))}",
                description=(
                    f"{bulletins} bulletins issued and {voters} distinct voters for {int(rec.registered)} "
                    f"registered voters (participation {voters / rec.registered:.1%}). Neither may exceed "
                    "the register: check the register (reference file or addVotersList) and the issuance."
                ),
                statistic=float(worst),
                expected=float(rec.registered),
                threshold=float(rec.registered),
                figures={"bulletins_issued": bulletins, "voters": voters, "registered_voters": int(rec.registered)},
                evidence_kind="bulletin",
            )
        )
    return findings


def _accepted_voting(late: pd.DataFrame | None) -> pd.DataFrame:
    """The accepted ``vote``/``blindSigIssue`` rows of ``late`` (tx_id, ts, operation...)."""
    if late is None or late.empty:
        return pd.DataFrame(columns=["constituency_id", "tx_id", "ts", "operation", "rejected"])
    frame = late[late["operation"].isin(VOTING_OPERATIONS)]
    if "rejected" in frame.columns:
        frame = frame[~frame["rejected"].astype(bool)]
    return frame.assign(ts=pd.to_datetime(frame["ts"])).sort_values(["constituency_id", "ts", "tx_id"])


def _late_finding(
    rule: str,
    cid: str,
    rows: pd.DataFrame,
    title: str,
    description: str,
    key: str,
    reference: datetime,
    figures: dict,
) -> Finding:
    times = [to_naive_instant(t) for t in rows["ts"]]
    hours = sorted({hour_floor(t) for t in times})
    counts = rows["operation"].value_counts().to_dict()
    return Finding(
        rule=rule,
        severity="critical",
        constituency_id=cid,
        title=title,
        description=description,
        window_start=hours[0],
        window_end=hours[-1] + HOUR,
        statistic=float(len(rows)),
        expected=0.0,
        threshold=0.0,
        hours=hours,
        figures={
            "transactions": len(rows),
            "votes": int(counts.get(Operation.VOTE, 0)),
            "bulletin_transactions": int(counts.get(Operation.BLIND_SIG_ISSUE, 0)),
            "first": times[0].isoformat(),
            "last": times[-1].isoformat(),
            "reference_instant": reference.isoformat(),
            **figures,
        },
        evidence_tx_ids=[str(t) for t in rows["tx_id"][:20]],
        window_key=key,
    )


def vote_after_close(
    late: pd.DataFrame | None,
    totals: pd.DataFrame,
    constituencies: pd.DataFrame | None = None,
) -> list[Finding]:
    """Critical: accepted votes or bulletins dated after the contract's ``finishVoting``.

    ``late`` holds candidate transactions (``constituency_id, tx_id, ts, operation,
    rejected``); a transaction at exactly the ``finishVoting`` instant is not "after".
    Rejected transactions are the contract doing its job and are ignored.
    """
    finished = finish_times(totals)
    frame = _accepted_voting(late)
    names = _names_of(constituencies)
    findings = []
    for cid, rows in frame.groupby("constituency_id", sort=True):
        finish = finished.get(str(cid))
        if finish is None:
            continue
        after = rows[rows["ts"] > pd.Timestamp(finish)]
        if after.empty:
            continue
        n = len(after)
        findings.append(
            _late_finding(
                "vote_after_close",
                str(cid),
                after,
                f"{n} vote transaction(s) accepted after voting closed in {label(names, str(cid))}",
                (
                    f"The contract recorded finishVoting at {_fmt(finish)}, yet accepted {n} vote/bulletin "
                    f"transaction(s) after it, the first at {_fmt(to_naive_instant(after['ts'].iloc[0]))}. No vote may "
                    "come after finishVoting: check these transactions and the contract's state."
                ),
                "after_finish",
                finish,
                {"finish_voting_at": finish.isoformat()},
            )
        )
    return findings


def outside_voting_window(
    late: pd.DataFrame | None,
    windows: dict[str, VotingWindow],
    constituencies: pd.DataFrame | None = None,
) -> list[Finding]:
    """Critical: accepted votes or bulletins before the election's start, or at/after its
    end (``[start_date, end_date)`` of ``elections.csv``). One alert per constituency and
    side (``before``/``after``)."""
    frame = _accepted_voting(late)
    names = _names_of(constituencies)
    findings = []
    for cid, rows in frame.groupby("constituency_id", sort=True):
        window = windows.get(str(cid))
        if window is None:
            continue
        sides = (
            ("before", rows[rows["ts"] < pd.Timestamp(window.start)], window.start, "before the voting window opened"),
            ("after", rows[rows["ts"] >= pd.Timestamp(window.end)], window.end, "after the voting window closed"),
        )
        for key, part, reference, words in sides:
            if part.empty:
                continue
            n = len(part)
            local_ref = window.local(reference)
            findings.append(
                _late_finding(
                    "outside_voting_window",
                    str(cid),
                    part,
                    f"{n} vote transaction(s) {words} in {label(names, str(cid))}",
                    (
                        f"{n} accepted vote/bulletin transaction(s) are dated {words} "
                        f"({_fmt(reference)}, {local_ref:%Y-%m-%d %H:%M} local time, {window.timezone}); the first at "
                        f"{_fmt(to_naive_instant(part['ts'].iloc[0]))}. Check the export and the election's dates in elections.csv."
                    ),
                    key,
                    reference,
                    {
                        "window_start": window.start.isoformat(),
                        "window_end": window.end.isoformat(),
                        "timezone": window.timezone,
                        "side": key,
                    },
                )
            )
    return findings


def unknown_constituency(constituencies: pd.DataFrame, totals: pd.DataFrame) -> list[Finding]:
    """Warning: transactions arrived for a contract that no reference file knows.

    Its figures are counted, but with no registered voters its participation is 0 and it
    belongs to no election: add it to ``constituencies.csv`` or find where the file came from.
    """
    counts = dict(zip(totals["constituency_id"], totals["transaction_count"], strict=False)) if len(totals) else {}
    findings = []
    for rec in constituencies.itertuples(index=False):
        if rec.in_reference:
            continue
        n = int(counts.get(rec.id, 0))
        findings.append(
            Finding(
                rule="unknown_constituency",
                severity="warning",
                constituency_id=rec.id,
                title=f"Transactions for unknown contract {rec.id}",
                description=(
                    f"{n} transactions were received for contract {rec.id}, which is not in the "
                    "reference data (data/reference/constituencies.csv). They are counted, but the "
                    "constituency has no election and no registered voters, so its participation is 0."
                ),
                statistic=float(n),
                expected=0.0,
                threshold=0.0,
                strength=0.5,
                figures={"transactions": n},
                evidence_kind="any",
            )
        )
    return findings
