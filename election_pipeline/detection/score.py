"""The anomaly score of a constituency, in [0, 1].

* 1 when any critical invariant is broken (``votes_exceed_bulletins``,
  ``bulletins_exceed_registered``, ``vote_after_close``, ``outside_voting_window``,
  ``conflicting_transaction``).
* Otherwise ``1 − Π(1 − wₖ·aₖ)`` over the statistical findings, where ``aₖ`` in [0, 1] is
  the finding's strength (how far past its threshold it is, see each rule) and ``wₖ`` the
  rule's weight below. Two findings of weight 0.5 at full strength give 0.75; no finding
  gives 0.
"""

from __future__ import annotations

from collections import defaultdict

from .findings import Finding

#: Rules whose any firing is a broken invariant: the score is 1.
CRITICAL_INVARIANTS = frozenset(
    {
        "votes_exceed_bulletins",
        "bulletins_exceed_registered",
        "vote_after_close",
        "outside_voting_window",
        "conflicting_transaction",
    }
)

#: Weight of each statistical rule in the score.
WEIGHTS: dict[str, float] = {
    "unusual_spike": 0.6,
    "night_activity": 0.5,
    "constituency_offline": 0.4,
    "high_rejection_rate": 0.4,
    "high_revote_rate": 0.4,
    "issued_not_voted_gap": 0.3,
    "low_participation": 0.3,
    "unknown_constituency": 0.3,
    "integer_percentage": 0.2,
}
DEFAULT_WEIGHT = 0.3


def anomaly_scores(findings: list[Finding]) -> dict[str, float]:
    """Score per constituency id that has at least one finding."""
    remaining: dict[str, float] = defaultdict(lambda: 1.0)
    critical: set[str] = set()
    for f in findings:
        if f.rule in CRITICAL_INVARIANTS:
            critical.add(f.constituency_id)
            continue
        weight = WEIGHTS.get(f.rule, DEFAULT_WEIGHT)
        remaining[f.constituency_id] *= 1.0 - weight * max(0.0, min(1.0, f.strength))
    scores = {cid: round(1.0 - r, 4) for cid, r in remaining.items()}
    for cid in critical:
        scores[cid] = 1.0
    return scores


def anomaly_counts(findings: list[Finding]) -> dict[tuple[str, object], int]:
    """How many findings concern each (constituency, hour)."""
    counts: dict[tuple[str, object], int] = defaultdict(int)
    for f in findings:
        for h in f.hours:
            counts[(f.constituency_id, h)] += 1
    return dict(counts)
