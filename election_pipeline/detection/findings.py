"""What a detection rule produces: a :class:`Finding`, the evidence behind a future alert."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from election_pipeline.vocabulary import SEVERITY_RANK, SeverityName

#: Which transactions back a finding (the pipeline looks up to 20 of them in the raw store,
#: inside the finding's window):
#:   ``vote`` accepted votes · ``revote`` accepted votes that are not a key's first ·
#:   ``rejected`` transactions the contract rejected (``FAIL``) · ``bulletin`` accepted
#:   ``blindSigIssue`` · ``any`` every standing transaction · ``around`` the last
#:   transaction before the window and the first one after it.
EVIDENCE_KINDS = ("vote", "revote", "rejected", "bulletin", "any", "around")


@dataclass
class Finding:
    """One rule firing for one constituency and one hour (or window).

    ``fingerprint`` identifies the alert it becomes: the same rule, constituency and window
    always give the same fingerprint, so re-running detection updates the alert in place.
    ``statistic``/``expected``/``threshold`` are the figures a person needs to judge it
    (``higher_is_worse`` says which way the statistic gets worse); ``strength`` in [0, 1]
    feeds the anomaly score; ``hours`` are the UTC hours it concerns.
    """

    rule: str
    severity: SeverityName
    constituency_id: str
    title: str
    description: str
    window_start: datetime | None = None
    window_end: datetime | None = None
    statistic: float | None = None
    expected: float | None = None
    threshold: float | None = None
    strength: float = 1.0
    hours: list[datetime] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    evidence_kind: str | None = None
    evidence_tx_ids: list[str] = field(default_factory=list)
    #: The block height of each evidence transaction read from a block dump.
    evidence_blocks: dict[str, int] = field(default_factory=dict)
    window_key: str = ""
    higher_is_worse: bool = True

    def __post_init__(self) -> None:
        if self.severity not in SEVERITY_RANK:
            raise ValueError(f"severity must be one of {', '.join(SEVERITY_RANK)} (got {self.severity!r})")
        if self.evidence_kind is not None and self.evidence_kind not in EVIDENCE_KINDS:
            raise ValueError(f"evidence_kind must be one of {', '.join(EVIDENCE_KINDS)} (got {self.evidence_kind!r})")

    @property
    def fingerprint(self) -> str:
        return f"{self.rule}|{self.constituency_id}|{self.window_key or 'all'}"

    def details(self) -> dict[str, Any]:
        """The alert's ``details``: rule, window, figures, threshold and evidence."""
        details = {
            "rule": self.rule,
            "window_start": self.window_start.isoformat() if self.window_start else None,
            "window_end": self.window_end.isoformat() if self.window_end else None,
            "hours": [h.isoformat() for h in self.hours[:48]],
            "statistic": self.statistic,
            "expected": self.expected,
            "threshold": self.threshold,
            "worse_when": "higher" if self.higher_is_worse else "lower",
            "figures": self.figures,
            "evidence_tx_ids": self.evidence_tx_ids[:20],
        }
        shown = {t: self.evidence_blocks[t] for t in self.evidence_tx_ids[:20] if t in self.evidence_blocks}
        if shown:
            details["evidence_blocks"] = shown
        return details
