"""Detection rules: plain functions over the hourly and constituency frames.

Inputs are pandas frames so the rules can be tested on hand-built data:

* ``hourly``: one row per constituency and UTC hour with ``constituency_id``, ``hour``,
  ``bulletins_issued``, ``votes_cast``, ``cumulative_bulletins``, ``cumulative_votes``
  (as built by :mod:`election_pipeline.stages.hourly`).
* ``constituencies``: ``id``, ``election_id``, ``region``, ``registered``, ``in_reference``, ``name``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .findings import Finding

MAD_SCALE = 0.6745  # makes the MAD comparable to a standard deviation for normal data
MEANAD_SCALE = 1.253314  # used when the MAD is 0 (more than half the peers equal)


@dataclass(frozen=True)
class SpikeThresholds:
    """Thresholds of ``unusual_spike`` (settings ``ELECTION_SPIKE_*``)."""

    warning_z: float = 3.5
    critical_z: float = 6.0
    hour_share: float = 0.25
    min_votes: int = 20


def _ts(value) -> pd.Timestamp:
    return pd.Timestamp(value).to_pydatetime()


def votes_exceed_bulletins(hourly: pd.DataFrame) -> list[Finding]:
    """Critical: more distinct voters than bulletins issued, cumulatively.

    Votes lag issuance inside an hour, so the comparison is cumulative: at the end of
    every hour, voters so far must not exceed bulletins so far. One alert per
    constituency spans the hours where the invariant is broken.
    """
    findings: list[Finding] = []
    if hourly.empty:
        return findings
    for cid, rows in hourly.sort_values("hour").groupby("constituency_id", sort=True):
        bad = rows[rows["cumulative_votes"] > rows["cumulative_bulletins"]]
        if bad.empty:
            continue
        excess = bad["cumulative_votes"] - bad["cumulative_bulletins"]
        worst = bad.loc[excess.idxmax()]
        first = bad.iloc[0]
        last = rows.iloc[-1]
        hours = [_ts(h) for h in bad["hour"]]
        findings.append(
            Finding(
                rule="votes_exceed_bulletins",
                severity="critical",
                constituency_id=str(cid),
                title=f"More voters than bulletins issued in {cid}",
                description=(
                    f"From {hours[0]:%Y-%m-%d %H:00} UTC the number of distinct voters "
                    f"({int(first['cumulative_votes'])}) exceeds the bulletins issued so far "
                    f"({int(first['cumulative_bulletins'])}). At worst ({_ts(worst['hour']):%Y-%m-%d %H:00} UTC) "
                    f"{int(excess.max())} votes have no bulletin. Every vote needs an issued bulletin: "
                    "check the vote transactions of these hours for ballot stuffing or a missing export."
                ),
                window_start=hours[0],
                window_end=hours[-1] + pd.Timedelta(hours=1),
                statistic=float(excess.max()),
                expected=0.0,
                threshold=0.0,
                hours=hours,
                figures={
                    "first_hour": hours[0].isoformat(),
                    "cumulative_votes_at_first_hour": int(first["cumulative_votes"]),
                    "cumulative_bulletins_at_first_hour": int(first["cumulative_bulletins"]),
                    "worst_hour": _ts(worst["hour"]).isoformat(),
                    "max_excess_votes": int(excess.max()),
                    "total_votes": int(last["cumulative_votes"]),
                    "total_bulletins": int(last["cumulative_bulletins"]),
                    "hours_in_breach": len(hours),
                },
                evidence_operation="vote",
            )
        )
    return findings


def unknown_constituency(constituencies: pd.DataFrame, totals: pd.DataFrame) -> list[Finding]:
    """Warning: transactions arrived for a contract that no reference file knows.

    Its figures are counted, but with no registered voters its participation is 0 and it
    belongs to no election: add it to ``constituencies.csv`` or find where the file came from.
    """
    counts = dict(zip(totals["constituency_id"], totals["transaction_count"])) if len(totals) else {}
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
            )
        )
    return findings


def robust_z(values: np.ndarray, x: float) -> tuple[float, float]:
    """Robust z-score of ``x`` against ``values``: 0.6745·(x − median)/MAD.

    When the MAD is 0, the mean absolute deviation (×1.2533) stands in; when that is 0 too,
    the z-score is 0 (every peer identical: nothing to compare against). Returns (z, median).
    """
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    if mad > 0:
        return MAD_SCALE * (x - median) / mad, median
    mean_ad = float(np.mean(np.abs(values - median)))
    if mean_ad > 0:
        return (x - median) / (MEANAD_SCALE * mean_ad), median
    return 0.0, median


def unusual_spike(
    hourly: pd.DataFrame, constituencies: pd.DataFrame, thresholds: SpikeThresholds = SpikeThresholds()
) -> list[Finding]:
    """Warning/critical: an hour's votes far above what peer constituencies predict.

    Peers are the constituencies of the same election and region (the whole election when
    the region has fewer than 3 with registered voters). For each hour, each peer's share
    of its registered voters voting in that hour is computed; the expected votes are
    registered voters × the median peer share, and the robust z-score of the
    constituency's share is compared with the thresholds (warning above 3.5, critical
    above 6). Hours with fewer than ``min_votes`` votes are not flagged. Separately, an hour
    holding more than 25% of a constituency's total votes is a warning.
    """
    findings: list[Finding] = []
    if hourly.empty:
        return findings
    info = constituencies.set_index("id")
    known = info[(info["registered"] > 0) & info["election_id"].notna()]
    votes = hourly.pivot_table(index="constituency_id", columns="hour", values="votes_cast",
                               aggfunc="sum", fill_value=0)
    for election_id, members in known.groupby("election_id"):
        ids = [i for i in members.index if i in votes.index]
        if len(ids) < 3:
            continue
        grid = votes.loc[ids]
        shares = grid.div(members.loc[ids, "registered"], axis=0)
        for cid in ids:
            region = members.at[cid, "region"]
            peers = [i for i in ids if members.at[i, "region"] == region]
            if len(peers) < 3:
                peers = ids
            registered = float(members.at[cid, "registered"])
            for hour in grid.columns:
                n = float(grid.at[cid, hour])
                if n < thresholds.min_votes:
                    continue
                z, median = robust_z(shares.loc[peers, hour].to_numpy(dtype=float), float(shares.at[cid, hour]))
                if z <= thresholds.warning_z:
                    continue
                severity = "critical" if z > thresholds.critical_z else "warning"
                expected = registered * median
                h = _ts(hour)
                findings.append(
                    Finding(
                        rule="unusual_spike",
                        severity=severity,
                        constituency_id=str(cid),
                        title=f"Vote spike in {cid} at {h:%Y-%m-%d %H:00} UTC",
                        description=(
                            f"{int(n)} votes in the hour starting {h:%Y-%m-%d %H:00} UTC, where peers "
                            f"({len(peers)} constituencies of the same {'region' if peers is not ids else 'election'}) "
                            f"predict about {expected:.1f}. Robust z-score {z:.1f} "
                            f"(warning above {thresholds.warning_z}, critical above {thresholds.critical_z})."
                        ),
                        window_start=h,
                        window_end=h + pd.Timedelta(hours=1),
                        statistic=round(z, 3),
                        expected=round(expected, 3),
                        threshold=thresholds.critical_z if severity == "critical" else thresholds.warning_z,
                        strength=min(1.0, z / thresholds.critical_z),
                        hours=[h],
                        figures={"votes": int(n), "registered_voters": int(registered),
                                 "peer_median_share": round(median, 6), "peers": len(peers),
                                 "kind": "peer_z_score"},
                        evidence_operation="vote",
                        window_key=f"{h:%Y-%m-%dT%H}",
                    )
                )
    totals = hourly.groupby("constituency_id")["votes_cast"].sum()
    for rec in hourly.itertuples(index=False):
        total = float(totals.get(rec.constituency_id, 0))
        if total < 100 or rec.votes_cast < thresholds.min_votes:
            continue
        share = rec.votes_cast / total
        if share <= thresholds.hour_share:
            continue
        h = _ts(rec.hour)
        findings.append(
            Finding(
                rule="unusual_spike",
                severity="warning",
                constituency_id=str(rec.constituency_id),
                title=f"One hour holds {share:.0%} of the votes of {rec.constituency_id}",
                description=(
                    f"The hour starting {h:%Y-%m-%d %H:00} UTC holds {int(rec.votes_cast)} of "
                    f"{int(total)} votes ({share:.1%}), more than {thresholds.hour_share:.0%} of the "
                    "constituency's total in a single hour."
                ),
                window_start=h,
                window_end=h + pd.Timedelta(hours=1),
                statistic=round(share, 4),
                expected=round(1.0 / max(1, hourly[hourly.constituency_id == rec.constituency_id].shape[0]), 4),
                threshold=thresholds.hour_share,
                strength=min(1.0, share),
                hours=[h],
                figures={"votes": int(rec.votes_cast), "total_votes": int(total), "kind": "hour_share"},
                evidence_operation="vote",
                window_key=f"{h:%Y-%m-%dT%H}|share",
            )
        )
    return findings


def bulletins_exceed_registered(constituencies: pd.DataFrame, totals: pd.DataFrame) -> list[Finding]:
    """Critical: more bulletins issued, or more distinct voters, than registered voters
    (participation above 100%). Skipped when no registered-voter figure is known."""
    t = totals.set_index("constituency_id") if len(totals) else None
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
                title=f"More bulletins or voters than registered voters in {rec.id}",
                description=(
                    f"{bulletins} bulletins issued and {voters} distinct voters for {int(rec.registered)} "
                    f"registered voters (participation {voters / rec.registered:.1%}). Neither may exceed "
                    "the register: check the register (reference file or addVotersList) and the issuance."
                ),
                statistic=float(worst),
                expected=float(rec.registered),
                threshold=float(rec.registered),
                figures={"bulletins_issued": bulletins, "voters": voters, "registered_voters": int(rec.registered)},
            )
        )
    return findings
