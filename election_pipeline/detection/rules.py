"""Every detection rule, and :func:`run_rules` which runs them all.

Rules are plain functions over pandas frames, so they can be tested on hand-built data:

* ``hourly``: one row per constituency and UTC hour: ``constituency_id``, ``hour``,
  ``bulletins_issued``, ``votes_cast``, ``revote_count``, ``rejected_count``,
  ``transaction_count``, ``cumulative_bulletins``, ``cumulative_votes``
  (as built by :mod:`election_pipeline.stages.hourly`).
* ``constituencies``: ``id``, ``election_id``, ``region``, ``registered``, ``in_reference``, ``name``.
* ``totals``: whole-election figures per ``constituency_id``: ``bulletins_issued``,
  ``votes_cast`` (distinct voters), ``transaction_count``, ``voting_finished`` (the
  accepted ``finishVoting`` instant or empty).
* ``elections``: ``id``, ``start_date``, ``end_date`` (naive UTC), ``timezone`` (IANA).
* ``late``: candidate vote/bulletin transactions near or outside the window:
  ``constituency_id``, ``tx_id``, ``ts``, ``operation``, ``rejected``.
* ``conflicts``: every copy of each transaction id stored with one content and seen again
  with another (:data:`election_pipeline.detection.conflicts.CONFLICT_COLUMNS`: the stored
  copy with ``stored`` true, each differing copy with ``stored`` false).

| rule | severity | fires when |
|---|---|---|
| votes_exceed_bulletins | critical | cumulative distinct voters > cumulative bulletins at the end of an hour |
| bulletins_exceed_registered | critical | bulletins or distinct voters > registered voters |
| vote_after_close | critical | an accepted vote/bulletin after the contract's finishVoting |
| outside_voting_window | critical | an accepted vote/bulletin before the window or at/after its end |
| conflicting_transaction | critical | a transaction id seen with two (or more) different contents |
| unusual_spike | warning/critical | scan z of a run of 1-12 hours' votes (own level × shape neighbours' shape) > 4.5 (> 3 from 17 constituencies) / > 7; or one hour > 25% of the total |
| night_activity | warning | a run of 00:00-06:00 local hours: scan z > 3 (≥ 10 votes); or an hour above 0.5 × the daytime median (≥ 10 votes) |
| low_participation | warning | participation < 0.3 (pro-rated before the close), after the first day |
| high_rejection_rate | warning | rejected share of a run of 1-12 hours > 1%, significantly |
| high_revote_rate | warning | revote share of a run of 1-12 hours' accepted votes > 10%, significantly |
| issued_not_voted_gap | warning | at close, unused bulletins > 5% of those issued, significantly |
| constituency_offline | warning | ≥ 2 silent whole hours in the window while peers were active |
| integer_percentage | info | at close, turnout is a whole-number percentage (units ≥ 100 voters) |
| unknown_constituency | warning | transactions for a contract missing from the reference data |
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from .activity import constituency_offline, night_activity, unusual_spike
from .conflicts import conflicting_transaction
from .context import closed_constituencies, constituency_windows, utc_now
from .findings import Finding
from .invariants import (
    bulletins_exceed_registered,
    outside_voting_window,
    unknown_constituency,
    vote_after_close,
    votes_exceed_bulletins,
)
from .rates import high_rejection_rate, high_revote_rate, issued_not_voted_gap, low_participation
from .stats import MAD_SCALE, MEANAD_SCALE, robust_z
from .thresholds import DetectionThresholds, SpikeThresholds
from .turnout import integer_percentage

#: Every rule and its severity (``warning/critical`` rules pick per finding).
RULES: dict[str, str] = {
    "votes_exceed_bulletins": "critical",
    "bulletins_exceed_registered": "critical",
    "vote_after_close": "critical",
    "outside_voting_window": "critical",
    "conflicting_transaction": "critical",
    "unusual_spike": "warning/critical",
    "night_activity": "warning",
    "low_participation": "warning",
    "high_rejection_rate": "warning",
    "high_revote_rate": "warning",
    "issued_not_voted_gap": "warning",
    "constituency_offline": "warning",
    "integer_percentage": "info",
    "unknown_constituency": "warning",
}

_TOTALS_COLUMNS = ["constituency_id", "bulletins_issued", "votes_cast", "transaction_count", "voting_finished"]


def run_rules(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    totals: pd.DataFrame,
    thresholds: DetectionThresholds,
    *,
    elections: pd.DataFrame | None = None,
    late: pd.DataFrame | None = None,
    conflicts: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Run every rule at instant ``now`` (default: the current UTC time).

    ``now`` decides what is "over" (rules at close), which hours are whole for
    ``constituency_offline`` and how far ``low_participation`` pro-rates its threshold.
    """
    now = now or utc_now()
    if totals is None or totals.empty:
        totals = pd.DataFrame(columns=_TOTALS_COLUMNS)
    windows = constituency_windows(constituencies, elections)
    closed = closed_constituencies(constituencies, totals, windows, now)
    findings: list[Finding] = []
    findings += votes_exceed_bulletins(hourly, constituencies)
    findings += bulletins_exceed_registered(constituencies, totals)
    findings += vote_after_close(late, totals, constituencies)
    findings += outside_voting_window(late, windows, constituencies)
    findings += conflicting_transaction(conflicts, constituencies, windows)
    findings += unusual_spike(hourly, constituencies, thresholds.spike, closed, windows, now)
    findings += night_activity(hourly, constituencies, windows, thresholds, now)
    findings += constituency_offline(hourly, constituencies, windows, thresholds, now)
    findings += high_rejection_rate(hourly, constituencies, thresholds, windows)
    findings += high_revote_rate(hourly, constituencies, thresholds, windows)
    findings += issued_not_voted_gap(constituencies, totals, closed, thresholds)
    findings += low_participation(constituencies, totals, windows, closed, thresholds, now)
    findings += integer_percentage(constituencies, totals, closed, thresholds)
    findings += unknown_constituency(constituencies, totals)
    return findings


__all__ = [
    "MAD_SCALE",
    "MEANAD_SCALE",
    "RULES",
    "DetectionThresholds",
    "Finding",
    "SpikeThresholds",
    "bulletins_exceed_registered",
    "conflicting_transaction",
    "constituency_offline",
    "high_rejection_rate",
    "high_revote_rate",
    "integer_percentage",
    "issued_not_voted_gap",
    "low_participation",
    "night_activity",
    "outside_voting_window",
    "robust_z",
    "run_rules",
    "unknown_constituency",
    "unusual_spike",
    "vote_after_close",
    "votes_exceed_bulletins",
]
