"""Critical rule ``conflicting_transaction``: one transaction id, two different transactions.

A transaction id (the export's ``nestedTxId``) names exactly one transaction. When another
line arrives under a stored id with different content (type, version, timestamp,
operation, sender, ``FAIL`` or not, bulletins, voters added), one of the exports was
altered or corrupted. The raw store keeps every such copy (``raw_conflicts``) next to the
stored one, and no copy of the id is counted in any figure, so the figures do not depend on
which copy arrived first. This rule turns each such id into evidence an observer can judge
from the alert alone: every copy, where it came from, and what it says.

It is a hard invariant: the constituency's anomaly score is 1.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from .context import HOUR, VotingWindow, constituency_names, hour_floor, label, to_naive_instant
from .findings import Finding

RULE = "conflicting_transaction"

#: The columns of the ``conflicts`` frame: one row per copy of a conflicting id, the stored
#: copy (``stored`` true, from ``raw_transactions``) and every differing copy (from
#: ``raw_conflicts``). ``constituency_id`` is the contract of the file the copy came from.
CONFLICT_COLUMNS = [
    "tx_id",
    "stored",
    "constituency_id",
    "tx_type",
    "version",
    "ts",
    "operation",
    "sender",
    "rejected",
    "bulletins",
    "voters_added",
    "source",
    "line_number",
    "file_hash",
    "seq",
]

#: What makes two copies "the same transaction", with the words an observer reads.
CONTENT_FIELDS: dict[str, str] = {
    "tx_type": "type",
    "version": "version",
    "ts": "timestamp",
    "operation": "operation",
    "sender": "sender",
    "rejected": "FAIL",
    "bulletins": "bulletins",
    "voters_added": "voters added",
}

#: At most this many copies of one id are listed in an alert (the stored copy first); the
#: counts always cover every copy.
MAX_COPIES_LISTED = 20
#: Of those, at most this many are spelled out in the description (all are in the figures).
MAX_COPIES_DESCRIBED = 5

_TITLE_LIMIT = 255  # alerts.title


def _present(value: Any) -> bool:
    return value is not None and not pd.isna(value)


def _int(value: Any) -> int | None:
    return int(value) if _present(value) else None


def _text(value: Any) -> str | None:
    return str(value) if _present(value) else None


def _copy(rec: dict[str, Any]) -> dict[str, Any]:
    """One copy as plain JSON values (the alert's ``details.figures.copies``)."""
    ts = to_naive_instant(rec["ts"])
    return {
        "stored": bool(rec["stored"]),
        "constituency_id": str(rec["constituency_id"]),
        "source": str(rec["source"]),
        "line_number": _int(rec["line_number"]),
        "file_hash": _text(rec.get("file_hash")),
        "tx_type": _int(rec["tx_type"]),
        "version": _int(rec.get("version")),
        "operation": str(rec["operation"]),
        "ts": ts.isoformat(timespec="milliseconds"),
        "sender": _text(rec.get("sender")),
        "rejected": bool(rec["rejected"]),
        "bulletins": _int(rec["bulletins"]),
        "voters_added": _int(rec.get("voters_added")),
    }


def _content(copy: dict[str, Any]) -> tuple:
    return tuple(copy[f] for f in CONTENT_FIELDS)


def _when(ts_iso: str, window: VotingWindow | None) -> str:
    moment = datetime.fromisoformat(ts_iso)
    utc = f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d} UTC"
    if window is None:
        return utc
    local = window.local(moment)
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} local ({utc})"


def _say(copy: dict[str, Any], window: VotingWindow | None) -> str:
    """What one copy says, in words."""
    version = copy["version"] if copy["version"] is not None else "none"
    sender = copy["sender"] or "none"
    voters = copy["voters_added"] if copy["voters_added"] is not None else "none"
    verdict = "rejected by the contract (FAIL)" if copy["rejected"] else "accepted (no FAIL)"
    return (
        f"{copy['source']} line {copy['line_number']} (file of contract {copy['constituency_id']}): "
        f"type {copy['tx_type']}, version {version}, operation {copy['operation']} at "
        f"{_when(copy['ts'], window)}, sender {sender}, {verdict}, {copy['bulletins']} bulletin(s), "
        f"voters added {voters}"
    )


def _times(n: int) -> str:
    return "twice" if n == 2 else f"{n} times"


def conflicting_transaction(
    conflicts: pd.DataFrame | None,
    constituencies: pd.DataFrame | None = None,
    windows: dict[str, VotingWindow] | None = None,
) -> list[Finding]:
    """Critical: a transaction id stored with one content and seen again with another.

    ``conflicts`` has :data:`CONFLICT_COLUMNS`, one row per copy. Every id with at least one
    differing copy gives one finding on the constituency of the stored copy and one on the
    constituency of each other contract a differing copy came from (the id is evidence in
    both places). When ``constituencies`` is given, only its ids get a finding (an alert
    needs a known constituency); the copies of other contracts are still listed. An id
    whose stored copy is missing from the frame is judged on its differing copies alone.
    ``windows`` (per constituency) adds local times to the description.
    """
    if conflicts is None or conflicts.empty:
        return []
    known = {str(c) for c in constituencies["id"]} if constituencies is not None else None
    names = constituency_names(constituencies) if constituencies is not None else {}
    windows = windows or {}
    frame = conflicts.assign(stored=conflicts["stored"].astype(bool))
    for column in ("version", "sender", "voters_added", "file_hash", "seq"):
        if column not in frame.columns:
            frame[column] = None
    # The stored copy first, then the others in the order they arrived (then by file line).
    frame = frame.sort_values(
        ["tx_id", "stored", "seq", "source", "line_number"],
        ascending=[True, False, True, True, True],
        na_position="last",
    )
    findings: list[Finding] = []
    for tx_id, rows in frame.groupby("tx_id", sort=True):
        others_frame = rows[~rows["stored"]]
        if others_frame.empty:
            continue  # only the stored copy: nothing conflicts with it
        ordered = pd.concat([rows[rows["stored"]].head(1), others_frame])
        copies = [_copy(rec) for rec in ordered.to_dict("records")]
        stored = copies[0] if copies[0]["stored"] else None
        differing = [f for f in CONTENT_FIELDS if len({c[f] for c in copies}) > 1]
        versions = len({_content(c) for c in copies})
        contracts = list(dict.fromkeys(c["constituency_id"] for c in copies))
        targets = [stored["constituency_id"]] if stored else []
        targets += [c["constituency_id"] for c in copies if not c["stored"]]
        targets = [cid for cid in dict.fromkeys(targets) if known is None or cid in known]
        if not targets:
            continue
        n = len(copies)
        times = sorted(to_naive_instant(t) for t in ordered["ts"])
        hours = sorted({hour_floor(t) for t in times})
        listed = copies[:MAX_COPIES_LISTED]
        figures: dict[str, Any] = {
            "tx_id": str(tx_id),
            "copies_seen": n,
            "distinct_versions": versions,
            "differing_fields": [CONTENT_FIELDS[f] for f in differing],
            "contracts": contracts,
            "stored_copy_found": stored is not None,
            "counted": False,
            "copies_listed": len(listed),
            "copies": listed,
        }
        title = f"Transaction {tx_id} appears {_times(n)} with different content"
        if len(title) > _TITLE_LIMIT:
            title = title[: _TITLE_LIMIT - 1] + "…"
        for cid in targets:
            window = windows.get(cid)
            lines = []
            for i, c in enumerate(listed[:MAX_COPIES_DESCRIBED], start=1):
                role = "stored first" if c["stored"] else "differing copy"
                lines.append(f"Copy {i} ({role}): {_say(c, window)}.")
            more = n - min(len(listed), MAX_COPIES_DESCRIBED)
            if more:
                lines.append(f"{more} more cop{'y' if more == 1 else 'ies'}: see details.figures.copies.")
            where = (
                f"The copies come from the files of {len(contracts)} contracts ({', '.join(contracts)}); "
                "the same alert is raised on each of them that the pipeline knows. "
                if len(contracts) > 1
                else ""
            )
            missing = (
                ""
                if stored
                else "The copy stored first was not found in the raw store; only the differing copies are listed. "
            )
            description = (
                f"In {label(names, cid)}, transaction id {tx_id} was exported {_times(n)} with "
                f"{versions} different contents: " + " ".join(lines) + " "
                f"They differ in: {', '.join(CONTENT_FIELDS[f] for f in differing) or 'nothing listed'}. "
                + where
                + missing
                + "An id names exactly one transaction, so one of these exports was altered or corrupted. "
                "No copy of this id is counted in any figure (bulletins, votes, participation) while the "
                "conflict stands. Compare the files with the node's own record of this transaction and "
                "find where each file came from."
            )
            findings.append(
                Finding(
                    rule=RULE,
                    severity="critical",
                    constituency_id=cid,
                    title=title,
                    description=description,
                    window_start=hours[0],
                    window_end=hours[-1] + HOUR,
                    statistic=float(n),
                    expected=1.0,
                    threshold=1.0,
                    hours=hours,
                    figures=dict(figures),
                    evidence_tx_ids=[str(tx_id)],
                    window_key=str(tx_id),
                )
            )
    return findings
