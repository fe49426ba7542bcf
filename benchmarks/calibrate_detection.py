"""Calibration of the statistical detection rules on simulated honest elections.

Generates elections with ``benchmarks/detection_elections.py`` with **no anomaly planted**
(3-40 constituencies in regions of 3-6, twelve time zones, urban and rural daily shapes,
1-3 days, 1-3 bulletins per issuing transaction; seeds 5000 and up, none of which the
detection benchmark uses), runs :func:`election_pipeline.detection.rules.run_rules` on them
with the thresholds lowered so that every rule reports its near misses, and keeps, for each
constituency and rule, its most extreme statistic:

* ``unusual_spike`` and ``night_activity``: the largest scan z (the tail probability of a
  run of hours, times the runs tested, as a normal z);
* ``high_rejection_rate`` and ``high_revote_rate``: the smallest p-value × runs tested of a
  run above the threshold rate.

It then prints, for a grid of thresholds, the share of honest constituencies that would get
at least one finding of the rule, and the least threshold meeting the stated false-alarm
rates per constituency and rule: **warning at most 0.5 %, critical at most 0.05 %**. The
configured thresholds (``election_pipeline/detection/thresholds.py``) are printed beside
them, and how many honest constituencies get a critical ``unusual_spike`` at the configured
thresholds (a small election's run above the critical level must also be above the warning
level against the constituency's own other days, which the lowered thresholds would not
test). With N honest constituencies a rate below 1/N cannot be measured: the critical
threshold needs about 2,000 of them; the default, 300 elections, gives 5,250, so a rate of 0.05 % is about 2.6 constituencies.

Run it from the repository root::

    .venv/bin/python benchmarks/calibrate_detection.py                # 300 elections, about 40 s
    .venv/bin/python benchmarks/calibrate_detection.py --elections 30  # quicker, coarser
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from detection_elections import TIMEZONES, generate_election  # noqa: E402

from election_pipeline.detection.rules import run_rules  # noqa: E402
from election_pipeline.detection.thresholds import DetectionThresholds  # noqa: E402
from election_pipeline.detection.volume import ROBUST_SPREAD_MIN  # noqa: E402

#: The stated false-alarm rates, per honest constituency and rule.
WARNING_RATE = 0.005
CRITICAL_RATE = 0.0005
#: Seeds of the simulated honest elections (the benchmark uses 1000-1023).
FIRST_SEED = 5000
SIZES = (4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 35, 40)
#: Thresholds low enough that the rules report their near misses.
PROBE = DetectionThresholds(
    spike_warning_z=0.5,
    spike_large_warning_z=0.5,
    spike_critical_z=100.0,
    night_warning_z=0.5,
    rate_alpha=0.999999,
    offline_min_votes=3.0,
)
Z_GRID = (2.0, 2.5, 3.0, 3.25, 3.5, 3.75, 4.0, 4.5, 5.0, 5.5, 6.0, 7.0, 8.0, 9.0, 10.0)
ALPHA_GRID = (1e-1, 1e-2, 5e-3, 1e-3, 1e-4, 1e-5, 1e-6)
#: Votes the peers predict for a silence (``constituency_offline``'s ``offline_min_votes``).
VOTES_GRID = (6.0, 9.0, 12.0, 15.0, 20.0, 25.0, 30.0, 40.0)


def simulate(count: int) -> tuple[int, dict[str, dict[str, float]], float, dict[str, int], set[str]]:
    """Honest constituencies simulated, per rule the most extreme statistic of each
    constituency that had a finding (keyed ``election/constituency``), the time taken,
    each election's number of constituencies, and the constituencies with a critical
    ``unusual_spike`` at the configured thresholds (after the own-days check of elections
    under 17 constituencies, which the lowered thresholds would not make)."""
    worst: dict[str, dict[str, float]] = defaultdict(dict)
    sizes: dict[str, int] = {}
    critical: set[str] = set()
    configured = DetectionThresholds()
    honest = 0
    t0 = time.perf_counter()
    for n in range(count):
        seed = FIRST_SEED + n
        size = SIZES[n % len(SIZES)]
        days = (1, 2, 2, 3)[n % 4]
        el = generate_election(f"h{n:03d}", seed, size, TIMEZONES[n % len(TIMEZONES)], days, anomalies=False)
        honest += len(el.clean_ids)
        sizes[el.name] = size
        for f in run_rules(el.hourly, el.constituencies, el.totals, PROBE, elections=el.elections, now=el.now):
            key = f"{el.name}/{f.constituency_id}"
            if f.rule in ("unusual_spike", "night_activity") and f.figures.get("kind") in ("scan", "night_scan"):
                worst[f.rule][key] = max(worst[f.rule].get(key, 0.0), float(f.statistic or 0.0))
            elif f.rule == "constituency_offline":
                worst[f.rule][key] = max(worst[f.rule].get(key, 0.0), float(f.expected or 0.0))
            elif f.rule in ("high_rejection_rate", "high_revote_rate"):
                q = float(f.figures["p_value"]) * int(f.figures["runs_tested"])
                worst[f.rule][key] = min(worst[f.rule].get(key, 1.0), q)
            else:
                worst[f.rule][key] = 1.0  # any other finding: counted at every threshold
        spikes = worst.get("unusual_spike", {})
        if any(v > configured.spike_critical_z for k, v in spikes.items() if k.startswith(f"{el.name}/")):
            for f in run_rules(el.hourly, el.constituencies, el.totals, configured, elections=el.elections, now=el.now):
                if f.rule == "unusual_spike" and f.severity == "critical":
                    critical.add(f"{el.name}/{f.constituency_id}")
    return honest, worst, time.perf_counter() - t0, sizes, critical


def least_z(values: list[float], honest: int, rate: float) -> float | None:
    """The least threshold of the grid at which at most ``rate`` of the honest constituencies
    have a statistic above it."""
    for z in Z_GRID:
        if sum(v > z for v in values) <= rate * honest:
            return z
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elections", type=int, default=300, help="honest elections to simulate (default 300)")
    args = parser.parse_args(argv)
    honest, worst, seconds, sizes, critical = simulate(args.elections)
    configured = DetectionThresholds()
    print(f"{args.elections} honest elections, {honest} honest constituencies, {seconds:.0f} s")
    print(
        f"stated false-alarm rates per constituency and rule: warning {WARNING_RATE:.2%}, "
        f"critical {CRITICAL_RATE:.3%} (resolution: 1 constituency = {1 / honest:.3%})\n"
    )
    large = ROBUST_SPREAD_MIN  # the elections whose model's spread is robust
    spike = worst.get("unusual_spike", {})
    in_large = {key for key in spike if sizes[key.split("/", 1)[0]] >= large}
    honest_large = sum(n for n in sizes.values() if n >= large)
    for rule, values, count, configured_w, configured_c in (
        ("unusual_spike", list(spike.values()), honest, None, configured.spike_critical_z),
        (
            f"unusual_spike, elections under {large} constituencies",
            [v for key, v in spike.items() if key not in in_large],
            honest - honest_large,
            configured.spike_warning_z,
            None,
        ),
        (
            f"unusual_spike, elections of {large} or more",
            [v for key, v in spike.items() if key in in_large],
            honest_large,
            configured.spike_large_warning_z,
            None,
        ),
        ("night_activity", list(worst.get("night_activity", {}).values()), honest, configured.night_warning_z, None),
    ):
        print(f"{rule} ({count} honest constituencies): share with a scan z above")
        print("  " + "  ".join(f"{z:>5g}" for z in Z_GRID))
        print("  " + "  ".join(f"{sum(v > z for v in values) / count:5.2%}" for z in Z_GRID))
        parts = []
        if configured_w is not None:
            w = least_z(values, count, WARNING_RATE)
            at_w = sum(v > configured_w for v in values) / count
            parts.append(f"least z for warning <= {WARNING_RATE:.1%}: {w}; configured {configured_w:g} ({at_w:.2%})")
        if configured_c is not None:
            c = least_z(values, count, CRITICAL_RATE)
            at_c = sum(v > configured_c for v in values) / count
            parts.append(f"least z for critical <= {CRITICAL_RATE:.2%}: {c}; configured {configured_c:g} ({at_c:.3%})")
            parts.append(
                f"critical after the own-days check (elections under {large}): {len(critical)} "
                f"({len(critical) / count:.3%})"
            )
        print("  " + "; ".join(parts) + "\n")
    for rule in ("high_rejection_rate", "high_revote_rate"):
        values = list(worst.get(rule, {}).values())
        print(f"{rule}: share of honest constituencies with p × runs tested at most")
        print("  " + "  ".join(f"{a:>7g}" for a in ALPHA_GRID))
        print("  " + "  ".join(f"{sum(v <= a for v in values) / honest:7.2%}" for a in ALPHA_GRID))
        at = sum(v <= configured.rate_alpha for v in values) / honest
        print(f"  configured rate_alpha {configured.rate_alpha:g}: {at:.2%}\n")
    values = list(worst.get("constituency_offline", {}).values())
    print("constituency_offline: share of honest constituencies with a silence where the peers predict at least")
    print("  " + "  ".join(f"{v:>5g}" for v in VOTES_GRID))
    print("  " + "  ".join(f"{sum(x >= v for x in values) / honest:5.2%}" for v in VOTES_GRID))
    least = next((v for v in VOTES_GRID if sum(x >= v for x in values) <= WARNING_RATE * honest), None)
    at = sum(x >= configured.offline_min_votes for x in values) / honest
    print(
        f"  least votes for warning <= {WARNING_RATE:.1%}: {least}; "
        f"configured offline_min_votes {configured.offline_min_votes:g} ({at:.2%})\n"
    )
    others = sorted(
        set(worst)
        - {"unusual_spike", "night_activity", "high_rejection_rate", "high_revote_rate", "constituency_offline"}
    )
    for rule in others:
        n = len(worst[rule])
        print(f"{rule}: {n} honest constituencies with a finding ({n / honest:.2%})")
    worst_spike = max(worst.get("unusual_spike", {}).values(), default=0.0)
    print(f"\nlargest honest scan z of unusual_spike: {worst_spike:.2f}" + (" " if math.isfinite(worst_spike) else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
