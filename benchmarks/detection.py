"""Detection benchmark: recall per anomaly type and size, false alarms per rule.

Default (``varied``): 24 independently generated elections (``benchmarks/detection_elections.py``:
3-40 constituencies in regions of 3-6, twelve time zones, honest turnout 32-80 %, urban and
rural daily shapes in local time, 1-3 day windows, several bulletins per issuing transaction,
eleven kinds of anomaly, small and large), built directly as the frames the rules read and
passed to :func:`election_pipeline.detection.rules.run_rules`, the function the
``constituency_metrics`` asset calls. Prints:

* recall per anomaly type and size: the share of planted anomalies for which the expected
  rule raised a finding on that constituency, overlapping the planted hours;
* false alarms per rule: the share of honest constituencies (nothing planted) with a
  warning or critical finding of each rule, and with a critical one;
* findings without their evidence (statistic, expected value, threshold), which must be none.

``--sample-pipeline`` runs the former benchmark instead: sample elections
(``election_pipeline.sample``) through the real asset graph with ``dagster.materialize``
(the same assets, checks and resources as ``election-pipeline run``, SQLite + DuckDB in a
temporary folder), compared with their ground truth in the operational database. To keep
that run short, the hourly ``.csv`` files of each contract are concatenated into one
file per contract before the run (what the rules see does not depend on how the lines were
split into files).

Run it from the repository root::

    .venv/bin/python benchmarks/detection.py                 # 24 varied elections, a few seconds
    .venv/bin/python benchmarks/detection.py --quick         # the first 8
    .venv/bin/python benchmarks/detection.py --elections 100 --first-seed 7000   # other elections
    .venv/bin/python benchmarks/detection.py --sample-pipeline [--quick]

Timings are printed for information; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT, ROOT / "benchmarks"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import dagster as dg  # noqa: E402
from detection_elections import default_specs, generate_election  # noqa: E402
from sqlalchemy import select  # noqa: E402

from election_pipeline.db.models import Alert  # noqa: E402
from election_pipeline.db.session import get_engine  # noqa: E402
from election_pipeline.defs.assets import (  # noqa: E402
    alerts,
    constituency_metrics,
    hourly_stats,
    raw_transactions,
    reference_data,
)
from election_pipeline.defs.checks import ALL_CHECKS  # noqa: E402
from election_pipeline.defs.resources import build_resources  # noqa: E402
from election_pipeline.detection.findings import Finding  # noqa: E402
from election_pipeline.detection.rules import run_rules  # noqa: E402
from election_pipeline.detection.stats import tail_to_z  # noqa: E402
from election_pipeline.detection.thresholds import DetectionThresholds  # noqa: E402
from election_pipeline.sample.generator import ANOMALY_KINDS, SampleSummary, generate_sample  # noqa: E402
from election_pipeline.settings import load_settings  # noqa: E402
from election_pipeline.vocabulary import Severity  # noqa: E402

#: Rules whose findings must carry statistic, expected value and threshold (every rule but
#: the invariants without a figure to compare: unknown contracts, conflicting copies).
EVIDENCE_RULES = {
    "unusual_spike",
    "night_activity",
    "constituency_offline",
    "high_rejection_rate",
    "high_revote_rate",
    "issued_not_voted_gap",
    "low_participation",
}

ASSETS = [reference_data, raw_transactions, hourly_stats, constituency_metrics, alerts, *ALL_CHECKS]


@dataclass(frozen=True)
class ElectionSpec:
    name: str
    seed: int
    constituencies: int
    voters: tuple[int, int]
    timezone: str
    copies: int


ELECTIONS = (
    ElectionSpec("moscow-40", 101, 40, (300, 900), "Europe/Moscow", 2),
    ElectionSpec("kolkata-60-small", 303, 60, (150, 600), "Asia/Kolkata", 2),
    ElectionSpec("new-york-30-large", 202, 30, (1500, 4000), "America/New_York", 1),
    ElectionSpec("vladivostok-20", 404, 20, (600, 1500), "Asia/Vladivostok", 1),
    ElectionSpec("lisbon-24", 505, 24, (300, 1200), "Europe/Lisbon", 1),
)
QUICK = ("moscow-40", "vladivostok-20")


@dataclass
class AlertRow:
    constituency_id: str
    rule: str
    severity: str
    start: datetime | None
    end: datetime | None
    title: str = ""


@dataclass
class ElectionResult:
    spec: ElectionSpec
    truth: SampleSummary
    alerts: list[AlertRow]
    seconds_generate: float
    seconds_pipeline: float
    success: bool


def _parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def merge_hourly_files(input_dir: Path) -> int:
    """Concatenate each contract's ``.csv`` files (in name order, i.e. hour order) into one
    ``<contract>_all.csv``; returns the number of files left."""
    by_contract: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(input_dir.glob("*.csv")):
        by_contract[path.name.split("_", 1)[0]].append(path)
    for contract, paths in by_contract.items():
        target = input_dir / f"{contract}_all.csv.part"
        with target.open("wb") as out:
            for path in paths:
                out.write(path.read_bytes())
                path.unlink()
        target.rename(input_dir / f"{contract}_all.csv")
    return len(list(input_dir.iterdir()))


def run_election(spec: ElectionSpec, workdir: Path) -> ElectionResult:
    root = workdir / spec.name
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.perf_counter()
    truth = generate_sample(
        root / "input",
        root / "reference",
        seed=spec.seed,
        constituencies=spec.constituencies,
        voters_per_constituency=spec.voters,
        ballot_bytes=32,
        timezone_name=spec.timezone,
        anomalies=ANOMALY_KINDS,
        anomaly_copies=spec.copies,
    )
    merge_hourly_files(root / "input")
    t1 = time.perf_counter()
    for sub in ("processed", "quarantine"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    settings = load_settings(
        input_dir=str(root / "input"),
        reference_dir=str(root / "reference"),
        processed_dir=str(root / "processed"),
        quarantine_dir=str(root / "quarantine"),
        database_url=f"sqlite:///{root / 'ops.db'}",
        duckdb_path=str(root / "warehouse.duckdb"),
        file_settle_seconds=0.0,
    )
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(ASSETS, resources=build_resources(settings), instance=instance, raise_on_error=False)
    t2 = time.perf_counter()
    engine = get_engine(settings.database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Alert.constituency_id, Alert.type, Alert.severity, Alert.details, Alert.title)).all()
    found = [
        AlertRow(
            cid,
            rule,
            sev,
            _parse((details or {}).get("window_start")),
            _parse((details or {}).get("window_end")),
            title,
        )
        for cid, rule, sev, details, title in rows
    ]
    engine.dispose()
    return ElectionResult(spec, truth, found, t1 - t0, t2 - t1, result.success)


def _overlaps(a: AlertRow, start: datetime | None, end: datetime | None) -> bool:
    if start is None or end is None or a.start is None or a.end is None:
        return True
    return a.start < end and start < a.end


def evaluate(results: list[ElectionResult]) -> dict:
    planted: Counter = Counter()
    hit: Counter = Counter()
    missed: list[str] = []
    clean = clean_critical = clean_warning = clean_info = 0
    false_by_rule: Counter = Counter()
    false_alerts: list[str] = []
    for r in results:
        by_constituency: dict[str, list[AlertRow]] = defaultdict(list)
        for a in r.alerts:
            by_constituency[a.constituency_id].append(a)
        for anomaly in r.truth.anomalies:
            for rule in anomaly.rules:
                planted[rule] += 1
                if any(
                    a.rule == rule and _overlaps(a, anomaly.start, anomaly.end)
                    for a in by_constituency[anomaly.constituency_id]
                ):
                    hit[rule] += 1
                else:
                    missed.append(
                        f"{r.spec.name}: {anomaly.kind} in {anomaly.constituency_id[:10]} "
                        f"({anomaly.start} - {anomaly.end}) not found by {rule}"
                    )
        for cid in r.truth.clean_contract_ids:
            clean += 1
            found = by_constituency[cid]
            severities = {a.severity for a in found}
            clean_critical += Severity.CRITICAL in severities
            clean_warning += bool(severities & {Severity.CRITICAL, Severity.WARNING})
            clean_info += Severity.INFO in severities
            for rule in sorted({a.rule for a in found}):
                false_by_rule[rule] += 1
            false_alerts += [f"{r.spec.name}: [{a.severity}] {a.title}" for a in found]
    return {
        "planted": planted,
        "hit": hit,
        "missed": missed,
        "clean": clean,
        "clean_critical": clean_critical,
        "clean_warning": clean_warning,
        "clean_info": clean_info,
        "false_by_rule": false_by_rule,
        "false_alerts": false_alerts,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer elections")
    parser.add_argument("--sample-pipeline", action="store_true", help="the sample elections through dagster")
    parser.add_argument("--elections", type=int, default=24, help="varied elections to generate (default 24)")
    parser.add_argument("--keep", metavar="DIR", help="--sample-pipeline: work in DIR and keep the databases")
    parser.add_argument("--verbose", action="store_true", help="list the alerts raised on clean constituencies")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=1000,
        help="seed of the first varied election (default 1000; other seeds give elections the rules were not tried on)",
    )
    args = parser.parse_args(argv)
    if not args.sample_pipeline:
        return run_varied(8 if args.quick else args.elections, verbose=args.verbose, first_seed=args.first_seed)
    specs = [s for s in ELECTIONS if not args.quick or s.name in QUICK]

    with tempfile.TemporaryDirectory(prefix="detection-bench-") as tmp:
        workdir = Path(args.keep) if args.keep else Path(tmp)
        results = []
        print(
            f"{'election':<20} {'tz':<18} {'units':>5} {'clean':>5} {'planted':>7} {'tx lines':>9} "
            f"{'alerts':>6} {'gen s':>6} {'run s':>6}"
        )
        for spec in specs:
            r = run_election(spec, workdir)
            results.append(r)
            print(
                f"{spec.name:<20} {spec.timezone:<18} {spec.constituencies:>5} {len(r.truth.clean_contract_ids):>5} "
                f"{len(r.truth.anomalies):>7} {r.truth.line_count:>9} {len(r.alerts):>6} "
                f"{r.seconds_generate:>6.1f} {r.seconds_pipeline:>6.1f}" + ("" if r.success else "  RUN FAILED")
            )
        e = evaluate(results)

    print("\nRecall per rule (planted anomalies found by the rule expected to find them):")
    for rule in sorted(e["planted"]):
        n, k = e["planted"][rule], e["hit"][rule]
        print(f"  {rule:<28} {k:>3}/{n:<3} {k / n:6.1%}")
    total_n, total_k = sum(e["planted"].values()), sum(e["hit"].values())
    print(f"  {'all':<28} {total_k:>3}/{total_n:<3} {total_k / total_n:6.1%}")
    for line in e["missed"]:
        print(f"  missed: {line}")
    clean = e["clean"]
    print(f"\nClean constituencies: {clean}")
    print(f"  with a critical alert:            {e['clean_critical']:>3} ({e['clean_critical'] / clean:.1%})")
    print(f"  with a warning or critical alert: {e['clean_warning']:>3} ({e['clean_warning'] / clean:.1%})")
    print(f"  with an info alert:               {e['clean_info']:>3} ({e['clean_info'] / clean:.1%})")
    if e["false_by_rule"]:
        print(
            "  clean constituencies alerted, by rule: "
            + ", ".join(f"{rule} {n}" for rule, n in sorted(e["false_by_rule"].items()))
        )
    if args.verbose:
        for line in e["false_alerts"]:
            print(f"  on a clean constituency: {line}")
    ok = (
        total_k == total_n
        and e["clean_critical"] == 0
        and e["clean_warning"] <= 0.05 * clean
        and all(r.success for r in results)
    )
    print(
        "\nAim (every anomaly found, no clean constituency critical, at most 5% with a warning): "
        + ("met" if ok else "NOT met")
    )
    return 0


# --------------------------------------------------------------------------------------
# varied elections, straight through the rules
# --------------------------------------------------------------------------------------


def _finding_overlaps(f: Finding, start: datetime | None, end: datetime | None) -> bool:
    if start is None or end is None or f.window_start is None or f.window_end is None:
        return True
    return f.window_start < end and start < f.window_end


#: The false-alarm rate per constituency at which an anomaly counts as findable at all: the
#: stated warning rate of each statistical rule (README, "Calibration").
ORACLE_RATE = 0.005


def oracle_findable(oracle_p: float | None, runs: int) -> bool:
    """Whether a scan over ``runs`` runs of hours, told each hour's true expected count,
    would flag the planted hours at :data:`ORACLE_RATE` (Bonferroni); an invariant anomaly
    (no oracle) always is."""
    return oracle_p is None or oracle_p * runs <= ORACLE_RATE


def _scan_z(p: float, runs: int) -> float:
    """An oracle's z scanning ``runs`` runs (Bonferroni)."""
    return tail_to_z(min(1.0, p * runs))


def _oracle_note(oracle_p: float | None, runs: int) -> str:
    if oracle_p is None:
        return ""
    verdict = "findable" if oracle_findable(oracle_p, runs) else "below the limit"
    return f" (oracle z {tail_to_z(oracle_p):.1f} told the hours, {_scan_z(oracle_p, runs):.1f} scanning: {verdict})"


def run_varied(count: int, *, verbose: bool = False, first_seed: int = 1000) -> int:
    thresholds = DetectionThresholds()
    planted: Counter = Counter()
    hit: Counter = Counter()
    crit_hit: Counter = Counter()
    findable: Counter = Counter()  # planted that even the true-model scan finds at the warning rate
    findable_hit: Counter = Counter()
    missed: list[str] = []
    clean = clean_warning = clean_critical = 0
    warn_by_rule: Counter = Counter()
    crit_by_rule: Counter = Counter()
    false_lines: list[str] = []
    without_evidence = 0
    findings_total = 0
    # vote-count anomalies: how many each oracle finds, and the z the blind one loses on the misses
    vote_counts: Counter[str] = Counter()
    blind_drops: list[float] = []
    t0 = time.perf_counter()
    print(f"{'election':<6} {'tz':<20} {'units':>5} {'days':>4} {'planted':>7} {'findings':>8} {'var/mean':>8}")
    if first_seed != 1000:
        print(f"seeds {first_seed}-{first_seed + count - 1}")
    for spec in default_specs(count, first_seed):
        el = generate_election(spec.name, spec.seed, spec.constituencies, spec.timezone, spec.days)
        found = run_rules(el.hourly, el.constituencies, el.totals, thresholds, elections=el.elections, now=el.now)
        findings_total += len(found)
        without_evidence += sum(
            f.rule in EVIDENCE_RULES and (f.statistic is None or f.expected is None or f.threshold is None)
            for f in found
        )
        print(
            f"{spec.name:<6} {spec.timezone:<20} {spec.constituencies:>5} {spec.days:>4} {len(el.planted):>7} "
            f"{len(found):>8} {el.dispersion:>8.2f}"
        )
        by_cid: dict[str, list[Finding]] = defaultdict(list)
        for f in found:
            by_cid[f.constituency_id].append(f)
        for p in el.planted:
            key = (p.kind, p.size)
            planted[key] += 1
            matching = [
                f for f in by_cid[p.constituency_id] if f.rule in p.rules and _finding_overlaps(f, p.start, p.end)
            ]
            can = oracle_findable(p.oracle_p, p.runs)
            findable[key] += can
            if p.blind_p is not None:
                blind = oracle_findable(p.blind_p, p.runs)
                vote_counts.update(planted=1, oracle=can, blind=blind, both=can and blind)
            if matching:
                hit[key] += 1
                findable_hit[key] += can
                crit_hit[key] += any(f.severity == Severity.CRITICAL for f in matching)
            else:
                if can and p.blind_p is not None and p.oracle_p is not None:
                    blind_drops.append(_scan_z(p.oracle_p, p.runs) - _scan_z(p.blind_p, p.runs))
                missed.append(
                    f"{spec.name} ({spec.constituencies} units): {p.kind} {p.size} in {p.constituency_id}"
                    + _oracle_note(p.oracle_p, p.runs)
                )
        for cid in el.clean_ids:
            clean += 1
            mine = [f for f in by_cid[cid] if f.severity in (Severity.WARNING, Severity.CRITICAL)]
            clean_warning += bool(mine)
            clean_critical += any(f.severity == Severity.CRITICAL for f in mine)
            for rule in {f.rule for f in mine}:
                warn_by_rule[rule] += 1
            for rule in {f.rule for f in mine if f.severity == Severity.CRITICAL}:
                crit_by_rule[rule] += 1
            false_lines += [f"{spec.name}: [{f.severity}] {f.title} (statistic {f.statistic})" for f in mine]
    seconds = time.perf_counter() - t0

    print("\nRecall per anomaly type and size (findable: what a scan told the true expected counts finds at")
    print(f"the {ORACLE_RATE:.1%} warning rate, oracle p x runs <= {ORACLE_RATE:g}; found of those):")
    print(f"  {'kind':<24} {'size':<24} {'found':>9} {'recall':>7} {'critical':>8} {'findable':>8} {'found':>6}")
    for key in sorted(planted):
        n, k = planted[key], hit[key]
        print(
            f"  {key[0]:<24} {key[1]:<24} {k:>4}/{n:<4} {k / n:7.0%} {crit_hit[key]:>8} "
            f"{findable[key]:>8} {findable_hit[key]:>6}"
        )
    total_n, total_k = sum(planted.values()), sum(hit.values())
    can_n, can_k = sum(findable.values()), sum(findable_hit.values())
    print(f"  {'all':<49} {total_k:>4}/{total_n:<4} {total_k / total_n:7.1%} {'':>8} {can_n:>8} {can_k:>6}")
    print(f"  findable anomalies found: {can_k}/{can_n} ({can_k / can_n:.1%})")
    for line in missed:
        print(f"  missed: {line}")
    if vote_counts["planted"]:
        print(
            f"  vote-count anomalies (spikes, stuffing, night runs): {vote_counts['planted']}; findable by the oracle "
            f"{vote_counts['oracle']}, by one not told each station's own habits {vote_counts['blind']} "
            f"(by both {vote_counts['both']})"
            + (f"; its scanning z on the findable misses at most {max(blind_drops):.1f} lower" if blind_drops else "")
        )
    print(f"\nHonest constituencies: {clean}")
    print(f"  with a warning or critical: {clean_warning:>4} ({clean_warning / clean:.1%})")
    print(f"  with a critical:            {clean_critical:>4} ({clean_critical / clean:.1%})")
    for rule in sorted(set(warn_by_rule) | set(crit_by_rule)):
        print(
            f"  {rule:<28} warning or critical {warn_by_rule[rule]:>3} ({warn_by_rule[rule] / clean:.1%}), "
            f"critical {crit_by_rule[rule]:>3}"
        )
    if verbose:
        for line in false_lines:
            print(f"  on an honest constituency: {line}")
    print(f"\nFindings: {findings_total}; without statistic/expected/threshold: {without_evidence}; {seconds:.1f} s")
    ok = total_k >= 0.99 * total_n and clean_warning <= 0.02 * clean and clean_critical == 0 and not without_evidence
    print(
        "Targets (recall >= 99%, honest with a warning <= 2%, no false critical, evidence): "
        + ("met" if ok else "NOT met")
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
