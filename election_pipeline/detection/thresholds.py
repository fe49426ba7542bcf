"""Thresholds of the detection rules, each declared once here with its documented default.

Every field is also an ``ELECTION_<FIELD>`` setting: :class:`election_pipeline.settings.Settings`
and the Dagster ``detection`` resource both inherit these fields, so a threshold's name,
default and meaning exist in this one place (the README's "Settings" table lists them).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class SpikeThresholds:
    """The ``unusual_spike`` thresholds, as the rule reads them (built by
    :attr:`DetectionThresholds.spike`).

    ``warning_z``/``critical_z`` are scan z thresholds (:mod:`~.volume`); ``large_warning_z``
    replaces ``warning_z`` in an election whose model measures its spread robustly
    (:attr:`~.volume.ElectionVolume.robust_spread`: :data:`~.volume.ROBUST_SPREAD_MIN`
    constituencies or more, whose honest tail is lighter); ``min_votes`` the least excess of
    a run over its expected votes; ``relative_spread`` the least relative
    uncertainty of the expected votes in an election too small to measure how much daily
    shapes differ (0.25: ±25%).
    """

    warning_z: float
    critical_z: float
    hour_share: float
    min_votes: int
    relative_spread: float
    large_warning_z: float | None = None

    def for_election(self, robust_spread: bool) -> SpikeThresholds:
        """The thresholds that apply in an election whose model's spread is robust
        (:attr:`~.volume.ElectionVolume.robust_spread`) or not."""
        if self.large_warning_z is None or not robust_spread:
            return self
        return replace(self, warning_z=self.large_warning_z, large_warning_z=None)


class DetectionThresholds(BaseModel):
    """Every threshold of every rule (README, "Detection and alerts")."""

    model_config = ConfigDict(frozen=True)

    spike_warning_z: float = Field(
        4.5,
        description="unusual_spike: scan z (the tail probability of a run of 1-12 hours' votes, times the "
        "number of runs tested, as a normal z) above which it is a warning in an election of fewer than 17 "
        "constituencies (calibrated: 0.47% of the 1,500 simulated honest constituencies of such elections reach 4.5)",
    )
    spike_large_warning_z: float = Field(
        3.0,
        description="unusual_spike: the warning scan z in an election of 17 or more constituencies, where "
        "the spread of daily shapes is measured robustly on many others (calibrated: 0.27% of the 3,750 "
        "simulated honest constituencies of such elections reach 3)",
    )
    spike_critical_z: float = Field(
        7.0,
        description="unusual_spike: scan z above which it is critical (calibrated: 0.04% of 5,250 simulated "
        "honest constituencies reach 7, none is critical once a small election's run is also checked against "
        "the constituency's own other days)",
    )
    spike_hour_share: float = Field(
        0.25,
        description="unusual_spike: share of a constituency's votes in one hour above which it is a warning "
        "(once voting is over)",
    )
    spike_min_votes: int = Field(
        20, description="unusual_spike: runs of hours with fewer votes than this above the expected are not flagged"
    )
    spike_relative_spread: float = Field(
        0.25,
        description="unusual_spike: the least relative uncertainty of the expected votes (±25%) when an "
        "election has too few constituencies (under 7) to measure the spread of daily shapes",
    )
    night_share: float = Field(
        0.5,
        description="night_activity: a 00:00-06:00 local hour is flagged above this share of the "
        "constituency's median daytime hour",
    )
    night_min_votes: int = Field(
        10, description="night_activity: night hours (or runs of night hours) with fewer votes are not flagged"
    )
    night_warning_z: float = Field(
        3.0,
        description="night_activity: scan z of a run of 1-6 night hours (00:00-06:00 local) against the "
        "constituency's own level × the night-time shape of the constituencies that vote like it above which it "
        "is a warning (calibrated: 0.11% of 5,250 simulated honest constituencies reach 3)",
    )
    low_participation: float = Field(
        0.3,
        description="low_participation: participation (fraction) below which it warns at the close (pro-rated before)",
    )
    rejection_rate: float = Field(
        0.01,
        description="high_rejection_rate: share of an hour's transactions rejected (FAIL) above which it warns",
    )
    revote_rate: float = Field(
        0.10,
        description="high_revote_rate: share of an hour's accepted votes that are revotes above which it warns",
    )
    issued_not_voted_gap: float = Field(
        0.05,
        description="issued_not_voted_gap: share of issued bulletins never used, at the close, above which it warns",
    )
    rate_alpha: float = Field(
        0.005,
        description="the three rate rules also need the excess to be significant: one-sided binomial p-value "
        "against the threshold rate at most this; for the two hourly rules, the p-value of a run of 1-12 hours "
        "times the number of runs tested for the constituency (so a constituency running exactly at the "
        "threshold rate is flagged at most 0.5% of the time; calibrated: no honest constituency of 5,250 "
        "simulated reaches 0.1)",
    )
    offline_after_hours: float = Field(
        2.0,
        description="a constituency silent for longer than this before its election's latest transaction "
        "counts as offline in the election metrics; the constituency_offline alert needs this many whole "
        "hours of silence (rounded up)",
    )
    offline_min_votes: float = Field(
        15.0,
        description="constituency_offline: peers must predict at least this many votes for the silent hours "
        "(calibrated: 0.29% of 5,250 simulated honest constituencies have such a silence; 12 gives 0.74%)",
    )
    integer_min_voters: int = Field(
        100, description="integer_percentage: units with fewer registered voters are skipped"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DetectionThresholds:
        problems = []
        for name in ("rejection_rate", "revote_rate", "issued_not_voted_gap", "rate_alpha"):
            value = getattr(self, name)
            if not 0 < value < 1:
                problems.append(f"{name} must be between 0 and 1 (exclusive), got {value}")
        if not 0 < self.low_participation <= 1:
            problems.append(f"low_participation must be in (0, 1], got {self.low_participation}")
        if self.spike_critical_z < max(self.spike_warning_z, self.spike_large_warning_z):
            problems.append("spike_critical_z must not be below spike_warning_z or spike_large_warning_z")
        if not 0 < self.spike_hour_share <= 1:
            problems.append(f"spike_hour_share must be in (0, 1], got {self.spike_hour_share}")
        if self.offline_after_hours <= 0:
            problems.append(f"offline_after_hours must be positive, got {self.offline_after_hours}")
        for name in ("night_share", "spike_relative_spread", "offline_min_votes"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must not be negative")
        if problems:
            raise ValueError("invalid detection thresholds: " + "; ".join(problems))
        return self

    @property
    def spike(self) -> SpikeThresholds:
        return SpikeThresholds(
            self.spike_warning_z,
            self.spike_critical_z,
            self.spike_hour_share,
            self.spike_min_votes,
            self.spike_relative_spread,
            self.spike_large_warning_z,
        )

    def thresholds(self) -> DetectionThresholds:
        """Only the thresholds (also when called on the settings or the Dagster resource,
        which carry these fields among others)."""
        return DetectionThresholds(**{name: getattr(self, name) for name in DetectionThresholds.model_fields})
