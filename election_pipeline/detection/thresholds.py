"""Thresholds of the detection rules, with their documented defaults.

Each value is an ``ELECTION_*`` setting (see the README, "Detection"); the pipeline builds
a :class:`DetectionThresholds` from the settings through the ``detection`` resource.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True)
class SpikeThresholds:
    """Thresholds of ``unusual_spike`` (settings ``ELECTION_SPIKE_*``).

    ``relative_spread`` is the spread of turnout that honest constituencies show between
    each other (0.25: ±25%); with Poisson counting noise it is the least dispersion a
    robust z-score is computed against, so a handful of peers that happen to agree closely
    cannot turn an ordinary hour into a spike.
    """

    warning_z: float = 3.5
    critical_z: float = 6.0
    hour_share: float = 0.25
    min_votes: int = 20
    relative_spread: float = 0.25


@dataclass(frozen=True)
class DetectionThresholds:
    """Every threshold of every rule. Defaults are the documented ones."""

    # unusual_spike
    spike_warning_z: float = 3.5
    spike_critical_z: float = 6.0
    spike_hour_share: float = 0.25
    spike_min_votes: int = 20
    spike_relative_spread: float = 0.25
    # night_activity: a night hour (00:00-06:00 local) above this share of the daytime median
    night_share: float = 0.5
    night_min_votes: int = 10
    # low_participation: final participation below this fraction (pro-rated before the close)
    low_participation: float = 0.3
    # high_rejection_rate / high_revote_rate / issued_not_voted_gap
    rejection_rate: float = 0.01
    revote_rate: float = 0.10
    issued_not_voted_gap: float = 0.05
    #: a rate rule fires only when the excess is also statistically significant:
    #: one-sided binomial test against the threshold rate, p-value at most this (about 70
    #: hours are tested per constituency and rule: at most ~0.07% false alerts)
    rate_alpha: float = 1e-5
    # constituency_offline: this many whole hours of silence (rounded up to whole hours)
    offline_hours: float = 2.0
    #: peers must predict at least this many votes for the silent hours: an honest
    #: constituency is that silent with probability e^-12 ≈ 6e-6 (about 30 such windows
    #: per constituency and election, and the prediction is itself uncertain)
    offline_min_expected: float = 12.0
    # integer_percentage
    integer_min_voters: int = 100

    def __post_init__(self) -> None:
        problems = []
        for name in ("rejection_rate", "revote_rate", "issued_not_voted_gap", "rate_alpha"):
            value = getattr(self, name)
            if not 0 < value < 1:
                problems.append(f"{name} must be between 0 and 1 (exclusive), got {value}")
        if not 0 < self.low_participation <= 1:
            problems.append(f"low_participation must be in (0, 1], got {self.low_participation}")
        if self.spike_critical_z < self.spike_warning_z:
            problems.append("spike_critical_z must not be below spike_warning_z")
        if not 0 < self.spike_hour_share <= 1:
            problems.append(f"spike_hour_share must be in (0, 1], got {self.spike_hour_share}")
        if self.offline_hours <= 0:
            problems.append(f"offline_hours must be positive, got {self.offline_hours}")
        for name in ("night_share", "spike_relative_spread", "offline_min_expected"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if problems:
            raise ValueError("invalid detection thresholds: " + "; ".join(problems))

    @property
    def spike(self) -> SpikeThresholds:
        return SpikeThresholds(
            self.spike_warning_z,
            self.spike_critical_z,
            self.spike_hour_share,
            self.spike_min_votes,
            self.spike_relative_spread,
        )

    @classmethod
    def from_spike(cls, spike: SpikeThresholds) -> DetectionThresholds:
        """Default thresholds with the spike ones taken from ``spike``."""
        return cls(
            spike_warning_z=spike.warning_z,
            spike_critical_z=spike.critical_z,
            spike_hour_share=spike.hour_share,
            spike_min_votes=spike.min_votes,
            spike_relative_spread=spike.relative_spread,
        )

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
