"""A small, deterministic sample election in the official export format (docs/input-format.md).

:func:`generate_sample` writes one ``.csv`` per constituency (contract) per UTC hour into the
drop folder, packs a few of them into ``.zip`` archives (one nested one level), and writes the
reference files ``elections.csv`` and ``constituencies.csv``. The same seed always gives
byte-identical files.

The sample is meant to exercise the pipeline, so it carries the irregularities of a real
export, all deterministic: rejected transactions (``FAIL_...`` diff keys), revotes, rollback
lines (one of them in a later hour's file than the transaction it cancels), transactions
repeated in the next hour's file, a handful of malformed lines, operation names in odd letter
case, a ``;`` inside a JSON string, a contract that no reference file knows, and one
constituency with ballot stuffing (many more accepted votes than issued bulletins for a few
night hours).

It also plants **labelled anomalies** for the detection rules, each in a named constituency
and time window (see :data:`ANOMALY_KINDS`): ballot stuffing, a vote spike, a night-time
burst, an offline gap, a burst of rejected transactions, a burst of revotes, a turnout set to
an exact whole percentage and, on request, votes after the close. Constituencies without a
planted anomaly are clean: their figures follow the same diurnal curve and noise as a real
count. The list of anomalies is returned in :attr:`SampleSummary.anomalies` and written to
``ground_truth.json`` next to the reference files. The election's time zone is a parameter
(default ``Europe/Moscow``); the voting window is 08:00 local on day 1 to 20:00 local on day 3.

The returned :class:`SampleSummary` holds the ground truth, computed from the generator's own
list of transactions (never by reading the files back): per constituency and UTC hour the
bulletins issued, votes cast, revotes and transaction count the pipeline must arrive at when it
follows the counting rules of docs/input-format.md#counting-rules.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import itertools
import json
import os
import random
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "ANOMALY_KINDS",
    "ANOMALY_RULES",
    "CONSTITUENCIES_HEADER",
    "DEFAULT_ANOMALIES",
    "ELECTIONS_HEADER",
    "ELECTION_COUNTRY",
    "ELECTION_NAME",
    "ELECTION_TIMEZONE",
    "ELECTION_TYPE",
    "GROUND_TRUTH_FILE",
    "ConstituencyTotals",
    "HourlyFigures",
    "MalformedLine",
    "PlantedAnomaly",
    "SampleConstituency",
    "SampleSummary",
    "generate_sample",
    "has_input_files",
]

ELECTION_NAME = "Sample regional election"
ELECTION_COUNTRY = "Exampleland"
ELECTION_TYPE = "local"
ELECTION_TIMEZONE = "Europe/Moscow"
#: The first voting day (local); voting runs 08:00 local on it to 20:00 local two days later.
FIRST_VOTING_DAY = date(2024, 9, 6)
_OPEN_LOCAL = time(8, 0)
_CLOSE_LOCAL = time(20, 0)
_VOTING_DAYS = 3

#: Name of the ground-truth file written next to the reference files.
GROUND_TRUTH_FILE = "ground_truth.json"
#: The anomalies the generator can plant, in planting order, with the detection rule(s)
#: expected to find each one.
ANOMALY_RULES: dict[str, tuple[str, ...]] = {
    "stuffing": ("votes_exceed_bulletins",),
    "spike": ("unusual_spike",),
    "night_burst": ("night_activity",),
    "offline_gap": ("constituency_offline",),
    "high_rejection": ("high_rejection_rate",),
    "revote_burst": ("high_revote_rate",),
    "integer_turnout": ("integer_percentage",),
    "late_votes": ("vote_after_close", "outside_voting_window"),
}
ANOMALY_KINDS: tuple[str, ...] = tuple(ANOMALY_RULES)
#: Planted unless asked otherwise (``late_votes`` only on request: the default sample keeps
#: every vote inside the window).
DEFAULT_ANOMALIES: tuple[str, ...] = ANOMALY_KINDS[:-1]

ELECTIONS_HEADER = (
    "id",
    "name",
    "country",
    "type",
    "start_date",
    "end_date",
    "timezone",
    "status",
    "description",
)
CONSTITUENCIES_HEADER = (
    "id",
    "election_id",
    "name",
    "region",
    "type",
    "registered_voters",
    "status",
)

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_HOUR_MS = 3_600_000
_EPOCH = datetime(1970, 1, 1)
_TX_VERSION = "4"
_CALL_EXTRA = {"contractVersion": 1}
_CONTRACT_IMAGE = "registry.example.org/evoting/blockchain-voting-contract:1.4.2"

#: Relative activity by local hour of day (0-23): quiet at night, peaks morning and evening.
_DIURNAL = (
    0.08,
    0.04,
    0.03,
    0.03,
    0.04,
    0.08,
    0.25,
    0.60,
    0.90,
    1.10,
    1.20,
    1.00,
    0.85,
    0.80,
    0.80,
    0.85,
    1.00,
    1.20,
    1.30,
    1.15,
    0.80,
    0.55,
    0.35,
    0.18,
)
_PLACES = (
    "Riverside",
    "Old Town",
    "Northgate",
    "Pine Hills",
    "Lakeshore",
    "Millbrook",
    "Stonebridge",
    "Westfield",
    "Cedar Valley",
    "Harbour",
    "Greenfield",
    "Ashford",
)
_REGIONS = ("Northern Province", "Southern Province", "Coastal Province")
_TYPES = ("urban", "rural", "suburban")
_CANDIDATES = 4


# --------------------------------------------------------------------------------------
# Public result types
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class HourlyFigures:
    """Ground truth for one constituency and one UTC hour (docs/input-format.md#counting-rules)."""

    bulletins_issued: int = 0
    votes_cast: int = 0
    revotes: int = 0
    transaction_count: int = 0
    rejected_count: int = 0


@dataclass(slots=True)
class ConstituencyTotals:
    """Ground truth for one constituency over the whole sample."""

    bulletins_issued: int = 0
    votes_cast: int = 0
    revotes: int = 0
    transaction_count: int = 0
    rejected_count: int = 0
    registered_voters: int = 0

    @property
    def participation_rate(self) -> float:
        return self.votes_cast / self.registered_voters * 100 if self.registered_voters else 0.0


@dataclass(slots=True)
class SampleConstituency:
    """One contract of the sample. ``in_reference`` is false for the unknown contract;
    ``anomalies`` lists the kinds planted in it (empty: a clean constituency)."""

    id: str
    name: str
    region: str
    type: str
    registered_voters: int
    in_reference: bool = True
    stuffed: bool = False
    anomalies: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PlantedAnomaly:
    """One labelled anomaly: what was planted, where, when (naive UTC ``[start, end)``, or
    None for a whole-election property) and which rule(s) should find it."""

    kind: str
    constituency_id: str
    rules: tuple[str, ...]
    start: datetime | None
    end: datetime | None
    description: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rules"] = list(self.rules)
        data["start"] = self.start.isoformat() if self.start else None
        data["end"] = self.end.isoformat() if self.end else None
        return data


@dataclass(slots=True)
class MalformedLine:
    """A line written on purpose so that it cannot be parsed.

    ``source`` is named as :func:`election_pipeline.ingest.export_files.iter_export_lines`
    names it (the file name, or ``archive.zip::member.csv``); ``line_number`` is 1-based.
    """

    source: str
    line_number: int
    kind: str


@dataclass
class SampleSummary:
    """What was written, and the figures the pipeline must compute from it.

    ``hourly[contract_id][hour]`` (``hour`` = naive UTC hour start) holds every hour with at
    least one standing transaction. ``expected_hourly`` is the same as a sorted list of dicts
    with keys ``constituency_id, hour, bulletins_issued, votes_cast, revotes,
    transaction_count``.
    """

    seed: int
    input_dir: Path
    reference_dir: Path
    election_id: str
    election_name: str
    timezone: str
    window_start: datetime
    window_end: datetime
    constituencies: list[SampleConstituency]
    unknown_contract_id: str
    stuffed_contract_id: str
    zipped_contract_id: str
    hourly: dict[str, dict[datetime, HourlyFigures]]
    totals: dict[str, ConstituencyTotals]
    expected_hourly: list[dict[str, Any]]
    files: list[Path]
    reference_files: list[Path]
    malformed: list[MalformedLine]
    line_count: int
    total_bytes: int
    rollback_lines: int
    duplicated_lines: int
    anomalies: list[PlantedAnomaly] = field(default_factory=list)
    ground_truth_file: Path | None = None

    @property
    def malformed_lines(self) -> int:
        """Number of malformed lines written."""
        return len(self.malformed)

    @property
    def contract_ids(self) -> list[str]:
        """Every contract of the sample, the unknown one included."""
        return [c.id for c in self.constituencies]

    @property
    def reference_contract_ids(self) -> list[str]:
        """The contracts listed in ``constituencies.csv``."""
        return [c.id for c in self.constituencies if c.in_reference]

    @property
    def registered_voters(self) -> dict[str, int]:
        return {c.id: c.registered_voters for c in self.constituencies}

    @property
    def clean_contract_ids(self) -> list[str]:
        """Reference constituencies in which nothing was planted."""
        return [c.id for c in self.constituencies if c.in_reference and not c.anomalies]

    def ground_truth(self) -> dict[str, Any]:
        """The content of ``ground_truth.json``."""
        return {
            "seed": self.seed,
            "election_id": self.election_id,
            "timezone": self.timezone,
            "window_start": self.window_start.isoformat(),
            "window_end": self.window_end.isoformat(),
            "constituencies": [
                {
                    "id": c.id,
                    "name": c.name,
                    "region": c.region,
                    "registered_voters": c.registered_voters,
                    "in_reference": c.in_reference,
                    "anomalies": list(c.anomalies),
                }
                for c in self.constituencies
            ],
            "anomalies": [a.to_json() for a in self.anomalies],
        }


# --------------------------------------------------------------------------------------
# Internal event model
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tx:
    tx_id: str
    ts_ms: int
    operation: str  # canonical spelling
    sender: str
    rejected: bool
    bulletins: int
    line: str
    seq: int
    rolled_back: bool = False
    keys: tuple[str, ...] = ()  # blindSigIssue: the voter keys its bulletins went to


@dataclass(slots=True)
class _Voter:
    user_id: str
    key: str
    address: str


@dataclass
class _Contract:
    info: SampleConstituency
    service_key: str
    txs: list[_Tx] = field(default_factory=list)


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _hour_of(ts_ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ts_ms - ts_ms % _HOUR_MS)


def _ms(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@dataclass(frozen=True)
class _Calendar:
    """The election's time zone and voting window (naive UTC)."""

    tz: ZoneInfo
    name: str
    start: datetime
    end: datetime

    @classmethod
    def of(cls, tz_name: str) -> _Calendar:
        try:
            tz = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"timezone must be an IANA time zone name such as 'Europe/Moscow' (got {tz_name!r})"
            ) from None
        last = FIRST_VOTING_DAY + timedelta(days=_VOTING_DAYS - 1)
        return cls(
            tz,
            tz_name,
            _to_utc(datetime.combine(FIRST_VOTING_DAY, _OPEN_LOCAL), tz),
            _to_utc(datetime.combine(last, _CLOSE_LOCAL), tz),
        )

    def utc(self, day: int, hour: int, minute: int = 0) -> datetime:
        """Naive UTC of ``hour:minute`` local on voting day ``day`` (0 = the first)."""
        return _to_utc(datetime.combine(FIRST_VOTING_DAY + timedelta(days=day), time(hour, minute)), self.tz)

    def utc_hour(self, day: int, hour: int) -> datetime:
        """The UTC hour bucket holding ``hour:00`` local on voting day ``day``."""
        moment = self.utc(day, hour)
        return moment.replace(minute=0, second=0, microsecond=0)

    def local(self, moment: datetime) -> datetime:
        return moment.replace(tzinfo=UTC).astimezone(self.tz).replace(tzinfo=None)

    def iso_local(self, moment: datetime) -> str:
        """``2024-09-06T08:00:00+03:00``: the instant in local time with its offset."""
        return moment.replace(tzinfo=UTC).astimezone(self.tz).isoformat(timespec="seconds")


def _to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    return local.replace(tzinfo=tz).astimezone(UTC).replace(tzinfo=None)


def _file_stem(contract_id: str, first_hour: datetime, hours: int = 1) -> str:
    end = first_hour + timedelta(hours=hours)
    return f"{contract_id}_{first_hour:%Y-%m-%d}_{first_hour:%H%M}-{end:%H%M}"


class _Builder:
    """Creates ids, keys and lines from one seeded random stream."""

    def __init__(self, seed: int, ballot_bytes: int) -> None:
        self.rng = random.Random(f"election-sample:{seed}")
        self.ballot_bytes = ballot_bytes
        self._ids: set[str] = set()
        self._seq = 0

    def b58(self, length: int) -> str:
        return "".join(self.rng.choices(_B58, k=length))

    def unique_id(self, length: int = 44) -> str:
        while True:
            value = self.b58(length)
            if value not in self._ids:
                self._ids.add(value)
                return value

    def address(self) -> str:
        return "3N" + self.b58(33)

    def b64(self, size: int) -> str:
        return base64.b64encode(self.rng.randbytes(size)).decode("ascii")

    def hexs(self, size: int) -> str:
        return self.rng.randbytes(size).hex()

    def spelled(self, operation: str, odd_share: float = 0.03) -> str:
        """The operation name, now and then in a different letter case."""
        if self.rng.random() >= odd_share:
            return operation
        capitalised = operation[0].upper() + operation[1:]
        return self.rng.choice((operation.upper(), operation.lower(), capitalised))

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def line(
        self,
        tx_id: str,
        tx_type: int,
        ts_ms: int,
        sender: str,
        params: list[dict[str, Any]],
        diff: list[dict[str, Any]],
        extra: dict[str, Any],
    ) -> str:
        """One export line in the 12-field format, rollback field empty."""
        signature = self.b58(88)
        fields = (
            tx_id,
            str(tx_type),
            signature,
            _TX_VERSION,
            str(ts_ms),
            sender,
            "0",
            "",
            _j(params),
            _j(diff),
            _j(extra),
            "",
        )
        return ";".join(fields)

    # ---- transactions -------------------------------------------------------------

    def call(
        self,
        contract: _Contract,
        operation: str,
        ts_ms: int,
        sender: str,
        params: list[dict[str, Any]],
        diff: list[dict[str, Any]],
        *,
        rejected: bool = False,
        bulletins: int = 0,
        tx_id: str | None = None,
        spelled: str | None = None,
    ) -> _Tx:
        """A type-104 call of ``operation`` (written as ``spelled``), recorded on ``contract``."""
        tx_id = tx_id or self.unique_id()
        op_entry = {"key": "operation", "stringValue": spelled or operation}
        line = self.line(tx_id, 104, ts_ms, sender, [op_entry, *params], diff, _CALL_EXTRA)
        tx = _Tx(tx_id, ts_ms, operation, sender, rejected, bulletins, line, self.next_seq())
        contract.txs.append(tx)
        return tx

    def masked_sig(self, with_semicolon: bool = False) -> str:
        if with_semicolon:  # an "r;s" pair: a ';' inside a JSON string value
            return f"{self.hexs(32)};{self.hexs(32)}"
        return self.hexs(64)

    def blind_sig_issue(
        self,
        contract: _Contract,
        ts_ms: int,
        voters: list[_Voter],
        *,
        rejected: bool = False,
        semicolon_first: bool = False,
    ) -> _Tx:
        tx_id = self.unique_id()
        data = []
        for i, voter in enumerate(voters):
            semicolon = (semicolon_first and i == 0) or self.rng.random() < 0.02
            data.append({"userId": voter.user_id, "maskedSig": self.masked_sig(semicolon)})
        if rejected:
            reason = "bulletin already issued for this userId"
            diff: list[dict[str, Any]] = [{"key": f"FAIL_{tx_id}_blindSig", "stringValue": reason}]
        else:
            diff = [{"key": f"BLINDSIG_{v.user_id}", "boolValue": True} for v in voters]
        tx = self.call(
            contract,
            "blindSigIssue",
            ts_ms,
            contract.service_key,
            [{"key": "data", "stringValue": _j(data)}],
            diff,
            rejected=rejected,
            bulletins=len(voters),
            tx_id=tx_id,
            spelled=self.spelled("blindSigIssue"),
        )
        tx.keys = tuple(v.key for v in voters)
        return tx

    def vote(self, contract: _Contract, ts_ms: int, voter: _Voter, *, rejected: bool = False) -> _Tx:
        tx_id = self.unique_id()
        params = [
            {"key": "vote", "binaryValue": self.b64(self.ballot_bytes)},
            {"key": "blindSig", "binaryValue": self.b64(128)},
        ]
        if rejected:
            reason = "blind signature verification failed"
            diff = [{"key": f"FAIL_{voter.address}_{tx_id}_vote", "stringValue": reason}]
        else:
            diff = [{"key": f"VOTE_{voter.address}", "stringValue": tx_id}]
        return self.call(
            contract,
            "vote",
            ts_ms,
            voter.key,
            params,
            diff,
            rejected=rejected,
            tx_id=tx_id,
            spelled=self.spelled("vote"),
        )

    def new_voter(self, user_id: str | None = None) -> _Voter:
        return _Voter(user_id or self.hexs(32), self.unique_id(), self.address())


# --------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------


def _window_weights(cal: _Calendar) -> list[float]:
    hours = int((cal.end - cal.start) / timedelta(hours=1))
    return [_DIURNAL[cal.local(cal.start + timedelta(hours=index)).hour] for index in range(hours)]


def _cumulative(weights: list[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _random_window_ts(rng: random.Random, cum: list[float], cal: _Calendar) -> int:
    """A moment inside the voting window, following the diurnal curve."""
    index = rng.choices(range(len(cum)), cum_weights=cum)[0]
    return _ms(cal.start) + index * _HOUR_MS + max(rng.randrange(_HOUR_MS), 2_000)


#: Moves a timestamp out of a planted offline gap (identity when there is none).
_Place = Callable[[int], int]


def _no_gap(ts: int) -> int:
    return ts


# --------------------------------------------------------------------------------------
# One constituency
# --------------------------------------------------------------------------------------


def _lifecycle_before(b: _Builder, c: _Contract, voters: list[_Voter], cal: _Calendar) -> None:
    """createContract, addVotersList and addMainKey in the three hours before the window,
    startVoting exactly at its start."""
    rng = b.rng
    start_ms = _ms(cal.start)
    # createContract (type 103): its transaction id is the contract id, as on the real chain.
    ts = start_ms - 3 * _HOUR_MS + rng.randrange(60_000, 3_000_000)
    poll_id = c.info.id[:12]
    params: list[dict[str, Any]] = [
        {"key": "pollId", "stringValue": poll_id},
        {"key": "title", "stringValue": f"{ELECTION_NAME}: {c.info.name}"},
        {"key": "dateStart", "intValue": start_ms // 1000},
        {"key": "dateEnd", "intValue": _ms(cal.end) // 1000},
        {"key": "blindSigModulo", "stringValue": b.hexs(64)},
    ]
    diff: list[dict[str, Any]] = [{"key": "VOTING_BASE", "stringValue": _j({"pollId": poll_id, "status": "created"})}]
    extra = {
        "image": _CONTRACT_IMAGE,
        "imageHash": hashlib.sha256(_CONTRACT_IMAGE.encode()).hexdigest(),
        "contractName": "voting",
        "apiVersion": "1.0",
    }
    line = b.line(c.info.id, 103, ts, c.service_key, params, diff, extra)
    c.txs.append(_Tx(c.info.id, ts, "createContract", c.service_key, False, 0, line, b.next_seq()))

    hashes = [v.user_id for v in voters]
    ts = start_ms - 2 * _HOUR_MS + rng.randrange(60_000, 3_000_000)
    params = [
        {"key": "userIdHashes", "stringValue": _j(hashes)},
        {"key": "votersCount", "intValue": len(hashes)},
    ]
    diff = [{"key": "VOTERS_LIST_SIZE", "intValue": len(hashes)}]
    b.call(c, "addVotersList", ts, c.service_key, params, diff)
    ts = start_ms - _HOUR_MS + rng.randrange(60_000, 3_000_000)
    main_key = b.hexs(33)
    b.call(
        c,
        "addMainKey",
        ts,
        c.service_key,
        [{"key": "mainKey", "stringValue": main_key}],
        [{"key": "MAIN_KEY", "stringValue": main_key}],
    )
    b.call(c, "startVoting", start_ms, c.service_key, [], [{"key": "STATUS", "stringValue": "active"}])


def _lifecycle_after(b: _Builder, c: _Contract, votes: int, cal: _Calendar) -> None:
    """finishVoting exactly at the window end, then decryption and results in the next two hours."""
    rng = b.rng
    end_ms = _ms(cal.end)
    b.call(
        c,
        "finishVoting",
        end_ms,
        c.service_key,
        [],
        [{"key": "STATUS", "stringValue": "finished"}],
        spelled=b.spelled("finishVoting", 0.2),
    )
    ts = end_ms + rng.randrange(300_000, 900_000)
    for member in range(1, 4):
        ts += rng.randrange(60_000, 600_000)
        share = _j({"member": member, "share": b.hexs(24)})
        b.call(
            c,
            "commissionDecryption",
            ts,
            b.b58(44),
            [{"key": "decryption", "stringValue": share}],
            [{"key": f"COMMISSION_DECRYPTION_{member}", "boolValue": True}],
        )
    ts = end_ms + 45 * 60_000 + rng.randrange(0, 600_000)
    b.call(
        c,
        "decryption",
        ts,
        c.service_key,
        [{"key": "decryption", "stringValue": _j([b.hexs(24)])}],
        [{"key": "DECRYPTION", "boolValue": True}],
    )
    shares = [rng.random() + 0.2 for _ in range(_CANDIDATES)]
    counts = [int(votes * s / sum(shares)) for s in shares]
    counts[0] += votes - sum(counts)
    ts = end_ms + _HOUR_MS + rng.randrange(60_000, 1_800_000)
    b.call(
        c,
        "results",
        ts,
        c.service_key,
        [{"key": "results", "stringValue": _j([counts])}],
        [{"key": "RESULTS", "stringValue": _j([counts])}],
    )


def _batches(rng: random.Random, items: list[Any]) -> list[list[Any]]:
    """Split into bulletin batches: mostly one bulletin per transaction, sometimes 2-5."""
    out, i = [], 0
    while i < len(items):
        size = 1 if rng.random() < 0.78 else rng.randint(2, 5)
        out.append(items[i : i + size])
        i += size
    return out


def _voting(
    b: _Builder,
    c: _Contract,
    voters: list[_Voter],
    cum: list[float],
    cal: _Calendar,
    place: _Place = _no_gap,
) -> list[tuple[int, _Voter]]:
    """Bulletins, votes, rejections and revotes of one constituency.

    ``place`` moves any moment that falls in a planted offline gap to after it. Returns the
    (time, voter) of every first vote cast (before rollbacks)."""
    rng = b.rng
    start_ms, end_ms = _ms(cal.start), _ms(cal.end)
    hours = len(cum)
    timed = sorted(((place(_random_window_ts(rng, cum, cal)), v) for v in voters), key=lambda item: item[0])

    issued: list[tuple[_Tx, list[_Voter]]] = []
    votes: list[tuple[int, _Voter]] = []
    for n, batch in enumerate(_batches(rng, timed)):
        ts = batch[-1][0]
        group = [v for _, v in batch]
        tx = b.blind_sig_issue(c, ts, group, semicolon_first=n == 0)
        issued.append((tx, group))
        for voter in group:
            if rng.random() < 0.02:
                continue  # took a bulletin, never voted
            vote_ts = place(ts + 10_000 + min(int(rng.expovariate(1 / 90_000)), 1_800_000))
            if vote_ts < end_ms:
                votes.append((vote_ts, voter))
                b.vote(c, vote_ts, voter)

    # ~1% of bulletin transactions rejected: a repeated request for an already issued userId.
    for _ in range(max(1, round(0.01 * len(issued)))):
        tx, group = rng.choice(issued)
        ts = place(tx.ts_ms + rng.randrange(30_000, 900_000))
        if ts < end_ms:
            b.blind_sig_issue(c, ts, [rng.choice(group)], rejected=True)

    # ~1% of votes rejected: a failed attempt just before a good one, or a key with no bulletin.
    for _ in range(max(1, round(0.01 * len(votes)))):
        if votes and rng.random() < 0.5:
            ts, voter = rng.choice(votes)
            b.vote(c, place(ts - rng.randrange(2_000, 8_000)), voter, rejected=True)
        else:
            b.vote(c, place(_random_window_ts(rng, cum, cal)), b.new_voter(), rejected=True)

    # ~2% of voters revote, in a later hour.
    for ts, voter in rng.sample(votes, k=round(0.02 * len(votes))):
        first_hour = (ts - start_ms) // _HOUR_MS
        if first_hour >= hours - 1:
            continue
        hour = rng.randint(first_hour + 1, min(hours - 1, first_hour + 12))
        revote_ts = place(start_ms + hour * _HOUR_MS + rng.randrange(_HOUR_MS))
        if ts < revote_ts < end_ms:
            b.vote(c, revote_ts, voter)
    return votes


def _stuffing(b: _Builder, c: _Contract, natural_votes: int, cal: _Calendar) -> PlantedAnomaly:
    """Ballot stuffing: four night hours (01:00-05:00 local on day 2) with many accepted votes
    from keys that never received a bulletin. Kept under ~90% participation overall."""
    rng = b.rng
    first_hour = cal.utc_hour(1, 1)
    first = _ms(first_hour)
    room = max(int(0.9 * c.info.registered_voters) - natural_votes, 4 * 12)
    scale = max(1.0, c.info.registered_voters / 900)
    stuffed = 0
    for hour in range(4):
        for _ in range(min(round(rng.randint(30, 60) * scale), room // 4)):
            b.vote(c, first + hour * _HOUR_MS + rng.randrange(_HOUR_MS), b.new_voter())
            stuffed += 1
    return PlantedAnomaly(
        "stuffing",
        c.info.id,
        ANOMALY_RULES["stuffing"],
        first_hour,
        first_hour + timedelta(hours=4),
        f"{stuffed} accepted votes from keys that never received a bulletin, 01:00-05:00 local on day 2",
        {"stuffed_votes": stuffed},
    )


def _issue_and_vote(
    b: _Builder,
    c: _Contract,
    voters: list[_Voter],
    lo_ms: int,
    hi_ms: int,
    end_ms: int | None = None,
) -> int:
    """Ordinary bulletins and votes for ``voters`` between ``lo_ms`` and ``hi_ms``; each vote
    follows its bulletin by 10 s to 2 min (and stays before ``end_ms`` when given)."""
    rng = b.rng
    timed = sorted(((rng.randrange(lo_ms, hi_ms), v) for v in voters), key=lambda item: item[0])
    cast = 0
    for batch in _batches(rng, timed):
        ts = batch[-1][0]
        b.blind_sig_issue(c, ts, [v for _, v in batch])
        for _, voter in batch:
            vote_ts = ts + rng.randrange(10_000, 120_000)
            if end_ms is None or vote_ts < end_ms:
                b.vote(c, vote_ts, voter)
                cast += 1
    return cast


def _take(spare: list[_Voter], n: int) -> list[_Voter]:
    taken = spare[-n:] if n else []
    del spare[len(spare) - len(taken) :]
    return taken


def _plant_spike(b: _Builder, c: _Contract, cal: _Calendar, spare: list[_Voter]) -> PlantedAnomaly | None:
    """10% of the register (at least 30 voters) get a bulletin and vote within one hour
    (14:00 local on day 1), on top of the usual traffic."""
    n = min(len(spare), max(30, round(0.10 * c.info.registered_voters)))
    if n < 30:
        return None
    hour = cal.utc_hour(0, 14)
    lo = _ms(hour) + 120_000
    cast = _issue_and_vote(b, c, _take(spare, n), lo, lo + 40 * 60_000)
    return PlantedAnomaly(
        "spike",
        c.info.id,
        ANOMALY_RULES["spike"],
        hour,
        hour + timedelta(hours=1),
        f"{cast} extra voters in the hour from {cal.local(hour):%H:%M} local on day 1",
        {"extra_votes": cast},
    )


def _plant_night_burst(b: _Builder, c: _Contract, cal: _Calendar, spare: list[_Voter]) -> PlantedAnomaly | None:
    """Two night hours (02:00-04:00 local on day 3) with 4% of the register (at least 12)
    voting in each, with properly issued bulletins."""
    per_hour = max(12, round(0.04 * c.info.registered_voters))
    if len(spare) < 2 * per_hour:
        return None
    first = cal.utc_hour(2, 2)
    cast = 0
    for k in range(2):
        lo = _ms(first) + k * _HOUR_MS + 120_000
        cast += _issue_and_vote(b, c, _take(spare, per_hour), lo, lo + 45 * 60_000)
    return PlantedAnomaly(
        "night_burst",
        c.info.id,
        ANOMALY_RULES["night_burst"],
        first,
        first + timedelta(hours=2),
        f"{cast} votes between {cal.local(first):%H:%M} and "
        f"{cal.local(first + timedelta(hours=2)):%H:%M} local on day 3",
        {"night_votes": cast},
    )


def _offline_gap(
    cal: _Calendar,
    rng: random.Random,
    cum: list[float],
    voters: int,
) -> tuple[datetime, datetime, _Place]:
    """Silent hours from 11:00 local on day 2: four, or as many more (up to eight) as it
    takes for about 15 voters to be expected in them, so that the silence is
    distinguishable from chance; whatever would have happened then happens in the five
    hours after (voters come back later)."""
    start = cal.utc_hour(1, 11)
    first = int((start - cal.start) / timedelta(hours=1))
    weights = [cum[0]] + [b - a for a, b in itertools.pairwise(cum)]
    per_weight = voters / cum[-1]
    hours = 4
    while hours < 8 and per_weight * sum(weights[first : first + hours]) < 15:
        hours += 1
    end = start + timedelta(hours=hours)
    lo, hi = _ms(start), _ms(end)
    backlog = min(5 * _HOUR_MS, _ms(cal.end) - 3_600_000 - hi)

    def place(ts: int) -> int:
        if lo <= ts < hi:
            return hi + 60_000 + rng.randrange(max(backlog, 60_000))
        return ts

    return start, end, place


def _plant_rejections(b: _Builder, c: _Contract, cal: _Calendar, issued_to: list[_Voter]) -> PlantedAnomaly:
    """One hour (16:00 local on day 2) with 3% of the register (at least 8) in rejected
    transactions: votes from keys without a bulletin and repeated bulletin requests."""
    rng = b.rng
    n = max(8, round(0.03 * c.info.registered_voters))
    hour = cal.utc_hour(1, 16)
    lo = _ms(hour) + 60_000
    for k in range(n):
        ts = lo + rng.randrange(57 * 60_000)
        if k % 2 == 0 or not issued_to:
            b.vote(c, ts, b.new_voter(), rejected=True)
        else:
            b.blind_sig_issue(c, ts, [rng.choice(issued_to)], rejected=True)
    return PlantedAnomaly(
        "high_rejection",
        c.info.id,
        ANOMALY_RULES["high_rejection"],
        hour,
        hour + timedelta(hours=1),
        f"{n} rejected transactions in the hour from {cal.local(hour):%H:%M} local on day 2",
        {"rejected": n},
    )


def _plant_revotes(
    b: _Builder,
    c: _Contract,
    cal: _Calendar,
    votes: list[tuple[int, _Voter]],
) -> PlantedAnomaly | None:
    """One hour (11:00 local on day 3) in which 4% of the register (at least 10) who had
    already voted vote again."""
    rng = b.rng
    hour = cal.utc_hour(2, 11)
    earlier = sorted({v.key: v for ts, v in votes if ts < _ms(hour)}.values(), key=lambda v: v.key)
    n = min(len(earlier), max(10, round(0.04 * c.info.registered_voters)))
    if n < 10:
        return None
    lo = _ms(hour) + 60_000
    for voter in rng.sample(earlier, k=n):
        b.vote(c, lo + rng.randrange(57 * 60_000), voter)
    return PlantedAnomaly(
        "revote_burst",
        c.info.id,
        ANOMALY_RULES["revote_burst"],
        hour,
        hour + timedelta(hours=1),
        f"{n} revotes in the hour from {cal.local(hour):%H:%M} local on day 3",
        {"revotes": n},
    )


def _plant_late_votes(b: _Builder, c: _Contract, cal: _Calendar, spare: list[_Voter]) -> PlantedAnomaly | None:
    """5-10 voters get a bulletin in the last 20 minutes and vote after finishVoting."""
    rng = b.rng
    n = min(len(spare), rng.randint(5, 10))
    if n < 5:
        return None
    end_ms = _ms(cal.end)
    first: int | None = None
    last: int | None = None
    for voter in _take(spare, n):
        b.blind_sig_issue(c, end_ms - rng.randrange(120_000, 1_200_000), [voter])
        ts = end_ms + rng.randrange(60_000, 2_400_000)
        b.vote(c, ts, voter)
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
    assert first is not None and last is not None  # n >= 5 votes were cast
    start = _hour_of(first)
    return PlantedAnomaly(
        "late_votes",
        c.info.id,
        ANOMALY_RULES["late_votes"],
        start,
        _hour_of(last) + timedelta(hours=1),
        f"{n} votes accepted after finishVoting",
        {"late_votes": n},
    )


def _accepted_voters(c: _Contract) -> dict[str, list[_Tx]]:
    """Accepted vote transactions by voter key."""
    out: dict[str, list[_Tx]] = {}
    for tx in c.txs:
        if tx.operation == "vote" and not tx.rejected:
            out.setdefault(tx.sender, []).append(tx)
    return out


def _plant_integer_turnout(
    b: _Builder,
    c: _Contract,
    cal: _Calendar,
    cum: list[float],
    spare: list[_Voter],
    protected: set[str],
) -> PlantedAnomaly | None:
    """Bring the number of distinct voters to exactly k% of the register, k a multiple of 5
    between 45 and 75 (the register is a multiple of 20, so k% is a whole number of
    voters): voters are added (bulletin and vote) or removed (their only bulletin and
    votes) as needed."""
    rng = b.rng
    registered = c.info.registered_voters
    voted = _accepted_voters(c)
    have = len(voted)
    options = [k for k in range(45, 80, 5) if (k * registered) % 100 == 0]
    if registered < 100 or not options:
        return None
    k = min(options, key=lambda o: (abs(o * registered // 100 - have), o))
    target = k * registered // 100
    end_ms = _ms(cal.end)
    if target > have:
        if len(spare) < target - have:
            return None
        for voter in _take(spare, target - have):
            ts = min(_random_window_ts(rng, cum, cal), end_ms - 200_000)
            b.blind_sig_issue(c, ts, [voter])
            b.vote(c, ts + rng.randrange(10_000, 120_000), voter)
    elif target < have:
        singles = {
            tx.keys[0]: tx for tx in c.txs if tx.operation == "blindSigIssue" and not tx.rejected and len(tx.keys) == 1
        }
        removable = sorted(
            key for key, txs in voted.items() if len(txs) == 1 and key in singles and key not in protected
        )
        if len(removable) < have - target:
            return None
        drop_keys = set(rng.sample(removable, k=have - target))
        drop = {id(singles[key]) for key in drop_keys}
        c.txs = [tx for tx in c.txs if id(tx) not in drop and not (tx.operation == "vote" and tx.sender in drop_keys)]
    return PlantedAnomaly(
        "integer_turnout",
        c.info.id,
        ANOMALY_RULES["integer_turnout"],
        None,
        None,
        f"turnout set to exactly {k}% ({target} of {registered} registered voters)",
        {"voters": target, "registered_voters": registered, "percent": k},
    )


def _unknown_contract(b: _Builder, c: _Contract, cal: _Calendar) -> None:
    """A contract no reference file knows: three busy hours of ordinary bulletins and votes."""
    rng = b.rng
    first = _ms(cal.utc_hour(1, 10))
    for hour in range(3):
        voters = [b.new_voter() for _ in range(rng.randint(15, 30))]
        timed = sorted(
            ((first + hour * _HOUR_MS + rng.randrange(_HOUR_MS - 600_000), v) for v in voters),
            key=lambda item: item[0],
        )
        for batch in _batches(rng, timed):
            ts = batch[-1][0]
            b.blind_sig_issue(c, ts, [v for _, v in batch])
            for _, voter in batch:
                b.vote(c, ts + rng.randrange(15_000, 240_000), voter)


# --------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------

_Entry = tuple[str, str | None]  # (line text, malformed kind or None)


def _malformed_samples(b: _Builder, ts_ms: int) -> list[tuple[str, str]]:
    """Lines that must be rejected: wrong field counts, bad JSON, non-numeric ts, unknown
    operation. Each has a transaction id of its own, used nowhere else."""
    voter = b.new_voter()

    def good(operation: str = "vote") -> tuple[str, list[str]]:
        tx_id = b.unique_id()
        params = [
            {"key": "operation", "stringValue": operation},
            {"key": "vote", "binaryValue": b.b64(48)},
            {"key": "blindSig", "binaryValue": b.b64(32)},
        ]
        diff = [{"key": f"VOTE_{voter.address}", "stringValue": tx_id}]
        line = b.line(tx_id, 104, ts_ms, voter.key, params, diff, _CALL_EXTRA)
        return line, line.split(";", 8)  # the 8 head fields, then params;diff;extra;rollback

    truncated = ";".join(good()[1][:6])
    _, head = good()
    cut_params = '[{"key":"operation","stringValue":"vote"},{"key":"vote","binaryValue":"'
    bad_json = ";".join(head[:8]) + ";" + cut_params + b.b64(30) + ';[];{"contractVersion":1};'
    _, head = good()
    head[4] = (_EPOCH + timedelta(milliseconds=ts_ms)).strftime("%Y-%m-%d %H:%M:%S")
    non_numeric_ts = ";".join(head)
    unknown_op, _ = good("updateVotersList")
    extra_field = good()[0] + "-1;0"
    _, head = good()
    params_text = head[8].split(";[", 1)[0]
    cut_diff = '[{"key":"VOTE_x","stringValue":"oops}]'
    bad_diff = ";".join(head[:8]) + ";" + params_text + ";" + cut_diff + ';{"contractVersion":1};'
    return [
        (truncated, "wrong field count (line cut short)"),
        (bad_json, "bad JSON in params"),
        (non_numeric_ts, "non-numeric ts"),
        (unknown_op, "unknown operation"),
        (extra_field, "wrong field count (13 fields)"),
        (bad_diff, "bad JSON in diff"),
    ]


def _zip_bytes(members: list[tuple[str, bytes, datetime]]) -> bytes:
    """A zip archive with fixed member metadata, so that the same input gives the same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data, moment in members:
            info = zipfile.ZipInfo(name, date_time=moment.timetuple()[:6])
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    """Write ``path.part`` and rename it into place (a watcher ignores ``*.part``)."""
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _encode(entries: list[_Entry]) -> bytes:
    return "".join(text + "\n" for text, _ in entries).encode("utf-8")


def _hour_files(c: _Contract) -> tuple[dict[datetime, list[_Tx]], dict[datetime, list[_Entry]]]:
    """The contract's transactions by UTC hour, and the lines of each hourly file."""
    c.txs.sort(key=lambda t: (t.ts_ms, t.seq))
    buckets: dict[datetime, list[_Tx]] = {}
    for tx in c.txs:
        buckets.setdefault(_hour_of(tx.ts_ms), []).append(tx)
    entries: dict[datetime, list[_Entry]] = {hour: [(t.line, None) for t in txs] for hour, txs in buckets.items()}
    return buckets, entries


def _add_duplicates(
    rng: random.Random, buckets: dict[datetime, list[_Tx]], entries: dict[datetime, list[_Entry]]
) -> set[str]:
    """Overlapping exports: the last one or two transactions of two hours again at the top of
    the next hour's file. Returns the ids of the repeated transactions."""
    inner = [h for h in sorted(buckets) if h + timedelta(hours=1) in buckets]
    repeated: set[str] = set()
    for hour in rng.sample(inner, k=min(2, len(inner))):
        tail = buckets[hour][-rng.randint(1, 2) :]
        entries[hour + timedelta(hours=1)][0:0] = [(t.line, None) for t in tail]
        repeated.update(t.tx_id for t in tail)
    return repeated


def _add_rollbacks(
    rng: random.Random,
    c: _Contract,
    entries: dict[datetime, list[_Entry]],
    avoid: set[str],
) -> int:
    """Two rollbacks (the same line with last field ``-1``) of accepted bulletins or votes: the
    first in a later hour's file than the transaction it cancels, the second further down the
    same file. The cancelled transactions are marked ``rolled_back``.

    Only transactions whose cancellation leaves a consistent count are picked: a vote of a
    key that voted more than once (the key still counts as one voter), or a bulletin
    transaction none of whose voters voted. Cancelling the bulletin of someone who voted
    would leave a vote without a bulletin, which no honest constituency shows.
    """
    hours = sorted(entries)
    standing_votes = {key: len(txs) for key, txs in _accepted_voters(c).items()}
    candidates = [
        t
        for t in c.txs
        if t.operation in ("vote", "blindSigIssue")
        and not t.rejected
        and t.tx_id not in avoid
        and _hour_of(t.ts_ms) != hours[-1]
    ]
    picked: list[_Tx] = []
    for t in rng.sample(candidates, k=len(candidates)):
        if len(picked) == 2:
            break
        if t.operation == "vote":
            if standing_votes.get(t.sender, 0) < 2:
                continue
            standing_votes[t.sender] -= 1
        elif any(k in standing_votes for k in t.keys):
            continue
        picked.append(t)
    for n, tx in enumerate(picked):
        tx.rolled_back = True
        hour = _hour_of(tx.ts_ms)
        rollback = (tx.line + "-1", None)
        if n == 0:
            target = entries[rng.choice([h for h in hours if h > hour][:3])]
            target.insert(rng.randint(0, len(target)), rollback)
        else:
            target = entries[hour]
            position = next(i for i, (text, _) in enumerate(target) if text == tx.line)
            target.insert(rng.randint(position + 1, len(target)), rollback)
    return len(picked)


# --------------------------------------------------------------------------------------
# Ground truth
# --------------------------------------------------------------------------------------


def _ground_truth(c: _Contract) -> tuple[dict[datetime, HourlyFigures], ConstituencyTotals]:
    """The counting rules (docs/input-format.md#counting-rules) over the generator's own
    transactions (rollbacks already marked)."""
    hourly: dict[datetime, HourlyFigures] = {}
    standing = [tx for tx in c.txs if not tx.rolled_back]
    for tx in standing:
        figures = hourly.setdefault(_hour_of(tx.ts_ms), HourlyFigures())
        figures.transaction_count += 1
        if tx.rejected:
            figures.rejected_count += 1
        elif tx.operation == "blindSigIssue":
            figures.bulletins_issued += tx.bulletins
    accepted_votes = sorted(
        (t for t in standing if t.operation == "vote" and not t.rejected),
        key=lambda t: (t.ts_ms, t.seq),
    )
    seen: set[str] = set()
    for tx in accepted_votes:
        figures = hourly[_hour_of(tx.ts_ms)]
        if tx.sender in seen:
            figures.revotes += 1
        else:
            seen.add(tx.sender)
            figures.votes_cast += 1
    totals = ConstituencyTotals(registered_voters=c.info.registered_voters)
    for figures in hourly.values():
        totals.bulletins_issued += figures.bulletins_issued
        totals.votes_cast += figures.votes_cast
        totals.revotes += figures.revotes
        totals.transaction_count += figures.transaction_count
        totals.rejected_count += figures.rejected_count
    return dict(sorted(hourly.items())), totals


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------


@dataclass
class _Written:
    files: list[Path] = field(default_factory=list)
    malformed: list[MalformedLine] = field(default_factory=list)
    line_count: int = 0
    total_bytes: int = 0

    def note_malformed(self, source: str, entries: list[_Entry]) -> None:
        for number, (_, kind) in enumerate(entries, start=1):
            if kind is not None:
                self.malformed.append(MalformedLine(source, number, kind))

    def put(self, path: Path, data: bytes) -> None:
        _write_atomic(path, data)
        self.files.append(path)
        self.total_bytes += len(data)


def _choose_zip_hours(
    rng: random.Random,
    entries: dict[datetime, list[_Entry]],
    cal: _Calendar,
) -> list[datetime]:
    """Four consecutive hours with files, starting between 09:00 and 13:00 local on day 2."""
    starts = [
        h
        for h in (cal.utc_hour(1, hour) for hour in range(9, 14))
        if all(h + timedelta(hours=k) in entries for k in range(4))
    ]
    if not starts:
        return []
    first = rng.choice(starts)
    return [first + timedelta(hours=k) for k in range(4)]


def _write_zips(
    out: _Written,
    input_dir: Path,
    cid: str,
    hours: list[datetime],
    members: dict[datetime, bytes],
    entries: dict[datetime, list[_Entry]],
) -> None:
    """Hours h0, h1 in one archive; h2 plus a nested archive holding h3 in a second one."""
    h0, h1, h2, h3 = hours

    def csv_name(hour: datetime) -> str:
        return _file_stem(cid, hour) + ".csv"

    def stamp(hour: datetime) -> datetime:  # when the export of that hour was made
        return hour + timedelta(hours=1, minutes=2)

    outer1 = _file_stem(cid, h0, 2) + ".zip"
    outer2 = _file_stem(cid, h2, 2) + ".zip"
    nested_name = _file_stem(cid, h3) + ".zip"
    nested = _zip_bytes([(csv_name(h3), members[h3], stamp(h3))])
    out.put(input_dir / outer1, _zip_bytes([(csv_name(h), members[h], stamp(h)) for h in (h0, h1)]))
    out.put(
        input_dir / outer2,
        _zip_bytes(
            [
                (csv_name(h2), members[h2], stamp(h2)),
                (nested_name, nested, stamp(h3)),
            ]
        ),
    )
    for hour, outer in ((h0, outer1), (h1, outer1), (h2, outer2)):
        out.note_malformed(f"{outer}::{csv_name(hour)}", entries[hour])
    out.note_malformed(f"{outer2}::{nested_name}::{csv_name(h3)}", entries[h3])


def _write_reference(
    elections_csv: Path,
    constituencies_csv: Path,
    election_id: str,
    seed: int,
    constituencies: list[SampleConstituency],
    cal: _Calendar,
) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(ELECTIONS_HEADER)
    writer.writerow(
        [
            election_id,
            ELECTION_NAME,
            ELECTION_COUNTRY,
            ELECTION_TYPE,
            cal.iso_local(cal.start),
            cal.iso_local(cal.end),
            cal.name,
            "completed",
            f"Synthetic sample election (seed {seed}): {len(constituencies)} constituencies, remote electronic voting",
        ]
    )
    _write_atomic(elections_csv, buffer.getvalue().encode("utf-8"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CONSTITUENCIES_HEADER)
    for c in constituencies:
        row = [c.id, election_id, c.name, c.region, c.type, c.registered_voters, "active"]
        writer.writerow(row)
    _write_atomic(constituencies_csv, buffer.getvalue().encode("utf-8"))


# --------------------------------------------------------------------------------------
# Public functions
# --------------------------------------------------------------------------------------


def has_input_files(input_dir: Path) -> bool:
    """True when the drop folder holds at least one ``.csv`` or ``.zip`` export (top level only;
    hidden files and ``*.tmp``/``*.part`` copies do not count)."""
    input_dir = Path(input_dir)
    if not input_dir.is_dir():
        return False
    for path in input_dir.iterdir():
        name = path.name
        if (
            path.is_file()
            and not name.startswith(".")
            and not name.endswith((".tmp", ".part"))
            and name.lower().endswith((".csv", ".zip"))
        ):
            return True
    return False


def generate_sample(
    input_dir: Path,
    reference_dir: Path,
    *,
    seed: int = 7,
    constituencies: int = 6,
    voters_per_constituency: tuple[int, int] = (300, 900),
    ballot_bytes: int = 256,
    write_reference: bool = True,
    overwrite_reference: bool = False,
    timezone_name: str = ELECTION_TIMEZONE,
    anomalies: Sequence[str] | None = None,
    anomaly_copies: int = 1,
) -> SampleSummary:
    """Write the sample election's export files into ``input_dir`` and, when
    ``write_reference``, ``elections.csv``, ``constituencies.csv`` and ``ground_truth.json``
    into ``reference_dir``.

    Export files with the same names are replaced (the same seed writes the same bytes); each
    is written as ``<name>.part`` and renamed into place. Existing reference files raise
    :class:`FileExistsError` (before anything is written) unless ``overwrite_reference``.

    ``timezone_name`` is the election's IANA time zone (the window is 08:00 local on
    2024-09-06 to 20:00 local on 2024-09-08). ``anomalies`` lists the kinds to plant
    (default :data:`DEFAULT_ANOMALIES`; ``[]`` for none), each ``anomaly_copies`` times. They
    go to distinct constituencies while at least two (or a third, in larger elections) stay
    clean; with fewer constituencies several kinds share one, at different times.
    Returns the ground truth as a :class:`SampleSummary`.
    """
    plan = _SamplePlan.of(
        input_dir,
        reference_dir,
        seed=seed,
        constituencies=constituencies,
        voters_per_constituency=voters_per_constituency,
        ballot_bytes=ballot_bytes,
        write_reference=write_reference,
        overwrite_reference=overwrite_reference,
        timezone_name=timezone_name,
        anomalies=anomalies,
        anomaly_copies=anomaly_copies,
    )
    # One random stream for the whole sample: the steps below draw from it in this order.
    b = _Builder(plan.seed, plan.ballot_bytes)
    cast = _cast(b, plan)
    cum = _cumulative(_window_weights(plan.cal))
    planted: list[PlantedAnomaly] = []
    for c in cast.contracts:
        planted += _emit_constituency(b, c, cast.anomalies.get(c.info.id, []), c is cast.stuffed, plan, cum)
    _unknown_contract(b, cast.unknown, plan.cal)
    files = _lay_out_files(b, cast, plan.cal)
    return _write_sample(plan, cast, files, planted)


# ---- plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _SamplePlan:
    """The arguments of :func:`generate_sample`, checked, and what follows from them alone."""

    input_dir: Path
    reference_dir: Path
    seed: int
    constituencies: int
    voters: tuple[int, int]  # (low, high) registered voters per constituency
    ballot_bytes: int
    write_reference: bool
    kinds: list[str]
    anomaly_copies: int
    cal: _Calendar
    election_id: str

    @property
    def elections_csv(self) -> Path:
        return self.reference_dir / "elections.csv"

    @property
    def constituencies_csv(self) -> Path:
        return self.reference_dir / "constituencies.csv"

    @property
    def truth_json(self) -> Path:
        return self.reference_dir / GROUND_TRUTH_FILE

    @classmethod
    def of(
        cls,
        input_dir: Path,
        reference_dir: Path,
        *,
        seed: int,
        constituencies: int,
        voters_per_constituency: tuple[int, int],
        ballot_bytes: int,
        write_reference: bool,
        overwrite_reference: bool,
        timezone_name: str,
        anomalies: Sequence[str] | None,
        anomaly_copies: int,
    ) -> _SamplePlan:
        """Check the arguments (``ValueError``; ``FileExistsError`` for reference files that
        exist and may not be replaced), before anything is written."""
        if constituencies < 1:
            raise ValueError("constituencies must be at least 1")
        low, high = voters_per_constituency
        if not 20 <= low <= high:
            raise ValueError("voters_per_constituency must be (low, high) with 20 <= low <= high")
        if ballot_bytes < 1:
            raise ValueError("ballot_bytes must be positive")
        kinds = list(DEFAULT_ANOMALIES if anomalies is None else anomalies)
        unknown_kinds = [k for k in kinds if k not in ANOMALY_RULES]
        if unknown_kinds:
            raise ValueError(f"unknown anomaly kind(s) {', '.join(unknown_kinds)}; known: {', '.join(ANOMALY_KINDS)}")
        if anomaly_copies < 1:
            raise ValueError("anomaly_copies must be at least 1")
        digest = hashlib.sha256(f"election:{seed}".encode()).digest()
        plan = cls(
            input_dir=Path(input_dir),
            reference_dir=Path(reference_dir),
            seed=seed,
            constituencies=constituencies,
            voters=(low, high),
            ballot_bytes=ballot_bytes,
            write_reference=write_reference,
            kinds=kinds,
            anomaly_copies=anomaly_copies,
            cal=_Calendar.of(timezone_name),
            election_id=str(uuid.UUID(bytes=digest[:16], version=4)),
        )
        if write_reference and not overwrite_reference:
            existing = [p for p in (plan.elections_csv, plan.constituencies_csv, plan.truth_json) if p.exists()]
            if existing:
                raise FileExistsError(
                    "reference file(s) already exist: "
                    + ", ".join(str(p) for p in existing)
                    + "; pass overwrite_reference=True to replace them, "
                    "or write_reference=False to keep them"
                )
        return plan


@dataclass
class _Cast:
    """Who is who: the constituencies with their contracts, the anomalies each one gets (in
    planting order), and the constituencies picked for the irregularities of the files."""

    contracts: list[_Contract]
    anomalies: dict[str, list[str]]
    stuffed: _Contract | None
    zipped: _Contract
    malformed_owners: list[int]  # indexes into ``contracts``
    unknown: _Contract  # the contract no reference file knows

    @property
    def all_contracts(self) -> list[_Contract]:
        return [*self.contracts, self.unknown]


def _cast(b: _Builder, plan: _SamplePlan) -> _Cast:
    rng = b.rng
    n = plan.constituencies
    low, high = plan.voters
    n_regions = 3 if n >= 3 else 2
    regions = list(_REGIONS[:n_regions])
    rng.shuffle(regions)
    places = rng.sample(_PLACES, k=min(n, len(_PLACES)))
    types = list(_TYPES)
    rng.shuffle(types)
    contracts: list[_Contract] = []
    for i in range(n):
        place = places[i] if i < len(places) else f"District {i + 1}"
        info = SampleConstituency(
            id=b.unique_id(),
            name=f"{place} constituency No. {i + 1}",
            region=regions[i % n_regions],
            type=types[i % len(types)],
            registered_voters=rng.randint(low, high),
        )
        contracts.append(_Contract(info, b.unique_id()))
    roles = rng.sample(range(n), k=n)
    anomalies = _plan_anomalies(contracts, roles, plan.kinds, plan.anomaly_copies, plan.voters)
    stuffed = next((c for c in contracts if "stuffing" in anomalies.get(c.info.id, ())), None)
    if stuffed is not None:
        stuffed.info.stuffed = True
    unknown_info = SampleConstituency(b.unique_id(), "Unknown contract", "", "unknown", 0, in_reference=False)
    return _Cast(
        contracts=contracts,
        anomalies=anomalies,
        stuffed=stuffed,
        zipped=contracts[roles[1 % n]],
        malformed_owners=list(dict.fromkeys(roles[k % n] for k in (2, 3))),
        unknown=_Contract(unknown_info, b.unique_id()),
    )


# ---- emit ----------------------------------------------------------------------------


def _emit_constituency(
    b: _Builder,
    c: _Contract,
    todo: list[str],
    stuffed: bool,
    plan: _SamplePlan,
    cum: list[float],
) -> list[PlantedAnomaly]:
    """Every transaction of one constituency (its lifecycle, its voters' bulletins and votes,
    and the anomalies ``todo``, in that order); returns the anomalies planted."""
    rng, cal = b.rng, plan.cal
    voters = [
        b.new_voter(hashlib.sha256(f"{plan.seed}:{c.info.id}:{n}".encode()).hexdigest())
        for n in range(c.info.registered_voters)
    ]
    _lifecycle_before(b, c, voters, cal)
    if stuffed:
        share = rng.uniform(0.43, 0.55)
    elif todo:
        share = rng.uniform(0.43, 0.60)
    else:
        share = rng.uniform(0.43, 0.78)
    chosen = rng.sample(voters, k=round(share * len(voters)))
    picked = {v.key for v in chosen}
    spare = [v for v in voters if v.key not in picked]
    place: _Place = _no_gap
    gap = None
    if "offline_gap" in todo:
        gap = _offline_gap(cal, rng, cum, len(chosen))
        place = gap[2]
    votes = _voting(b, c, chosen, cum, cal, place)
    found: list[PlantedAnomaly | None] = []
    protected: set[str] = set()  # senders of the anomalies planted so far
    for kind in todo:
        before = {id(t) for t in c.txs}
        if kind == "stuffing":
            found.append(_stuffing(b, c, len(votes), cal))
        elif kind == "spike":
            found.append(_plant_spike(b, c, cal, spare))
        elif kind == "night_burst":
            found.append(_plant_night_burst(b, c, cal, spare))
        elif kind == "offline_gap" and gap is not None:
            found.append(_offline_gap_anomaly(c, cal, gap[0], gap[1]))
        elif kind == "high_rejection":
            found.append(_plant_rejections(b, c, cal, [v for _, v in votes]))
        elif kind == "revote_burst":
            found.append(_plant_revotes(b, c, cal, votes))
        elif kind == "late_votes":
            found.append(_plant_late_votes(b, c, cal, spare))
        elif kind == "integer_turnout":
            found.append(_plant_integer_turnout(b, c, cal, cum, spare, protected))
        protected |= {t.sender for t in c.txs if id(t) not in before}
    planted = [anomaly for anomaly in found if anomaly is not None]
    c.info.anomalies += [anomaly.kind for anomaly in planted]
    _lifecycle_after(b, c, len(_accepted_voters(c)), cal)
    return planted


def _offline_gap_anomaly(c: _Contract, cal: _Calendar, start: datetime, end: datetime) -> PlantedAnomaly:
    return PlantedAnomaly(
        "offline_gap",
        c.info.id,
        ANOMALY_RULES["offline_gap"],
        start,
        end,
        f"no transaction from {cal.local(start):%H:%M} to {cal.local(end):%H:%M} local on day 2; "
        "the voters come back in the hours after",
        {"silent_hours": int((end - start) / timedelta(hours=1))},
    )


@dataclass
class _HourFiles:
    """The lines of every hourly file, per contract id and UTC hour."""

    lines: dict[str, dict[datetime, list[_Entry]]]
    zip_hours: list[datetime]  # the hours of the zipped contract that go into archives
    rollback_lines: int
    duplicated_lines: int


def _lay_out_files(b: _Builder, cast: _Cast, cal: _Calendar) -> _HourFiles:
    """The transactions of each contract as lines of hourly files, with transactions repeated
    in the next hour's file, rollback lines and, in two constituencies, malformed lines."""
    rng = b.rng
    per_file: dict[str, dict[datetime, list[_Entry]]] = {}
    rollback_lines = duplicated_lines = 0
    for c in cast.all_contracts:
        buckets, entries = _hour_files(c)
        per_file[c.info.id] = entries
        if c is not cast.unknown:
            repeated = _add_duplicates(rng, buckets, entries)
            duplicated_lines += len(repeated)
            rollback_lines += _add_rollbacks(rng, c, entries, repeated)
    zip_hours = _choose_zip_hours(rng, per_file[cast.zipped.info.id], cal)

    # Malformed lines: three each in one window-hour file of two constituencies (never zipped).
    samples = _malformed_samples(b, _ms(cal.utc_hour(1, 15)))
    chunks = [samples[:3], samples[3:]] if len(cast.malformed_owners) > 1 else [samples]
    for index, chunk in zip(cast.malformed_owners, chunks, strict=False):
        c = cast.contracts[index]
        entries = per_file[c.info.id]
        options = sorted(h for h in entries if cal.start <= h < cal.end and not (c is cast.zipped and h in zip_hours))
        target = entries[rng.choice(options)]
        for text, kind in chunk:
            target.insert(rng.randint(1, len(target)), (text, kind))
    return _HourFiles(per_file, zip_hours, rollback_lines, duplicated_lines)


# ---- write ---------------------------------------------------------------------------


def _write_sample(plan: _SamplePlan, cast: _Cast, files: _HourFiles, planted: list[PlantedAnomaly]) -> SampleSummary:
    """Write the export files and, when asked, the reference files and the ground truth."""
    out = _write_exports(plan.input_dir, cast, files)
    reference_files: list[Path] = []
    if plan.write_reference:
        plan.reference_dir.mkdir(parents=True, exist_ok=True)
        _write_reference(
            plan.elections_csv,
            plan.constituencies_csv,
            plan.election_id,
            plan.seed,
            [c.info for c in cast.contracts],
            plan.cal,
        )
        reference_files = [plan.elections_csv, plan.constituencies_csv]
    summary = _summary(plan, cast, files, planted, out, reference_files)
    if plan.write_reference:
        payload = json.dumps(summary.ground_truth(), indent=2, ensure_ascii=False) + "\n"
        _write_atomic(plan.truth_json, payload.encode("utf-8"))
        summary.ground_truth_file = plan.truth_json
    return summary


def _write_exports(input_dir: Path, cast: _Cast, files: _HourFiles) -> _Written:
    """One ``.csv`` per contract and hour; the zipped contract's zip hours go into archives."""
    input_dir.mkdir(parents=True, exist_ok=True)
    out = _Written()
    for c in cast.all_contracts:
        entries = files.lines[c.info.id]
        zip_members: dict[datetime, bytes] = {}
        for hour in sorted(entries):
            lines = entries[hour]
            out.line_count += len(lines)
            data = _encode(lines)
            if c is cast.zipped and hour in files.zip_hours:
                zip_members[hour] = data
                continue
            name = _file_stem(c.info.id, hour) + ".csv"
            out.note_malformed(name, lines)
            out.put(input_dir / name, data)
        if zip_members:
            _write_zips(out, input_dir, c.info.id, files.zip_hours, zip_members, entries)
    return out


def _summary(
    plan: _SamplePlan,
    cast: _Cast,
    files: _HourFiles,
    planted: list[PlantedAnomaly],
    out: _Written,
    reference_files: list[Path],
) -> SampleSummary:
    """The ground truth, from the generator's own transactions (never read back from the files)."""
    hourly: dict[str, dict[datetime, HourlyFigures]] = {}
    totals: dict[str, ConstituencyTotals] = {}
    for c in cast.all_contracts:
        hourly[c.info.id], totals[c.info.id] = _ground_truth(c)
    expected = [
        {
            "constituency_id": cid,
            "hour": hour,
            "bulletins_issued": f.bulletins_issued,
            "votes_cast": f.votes_cast,
            "revotes": f.revotes,
            "transaction_count": f.transaction_count,
        }
        for cid in sorted(hourly)
        for hour, f in hourly[cid].items()
    ]
    return SampleSummary(
        seed=plan.seed,
        input_dir=plan.input_dir,
        reference_dir=plan.reference_dir,
        election_id=plan.election_id,
        election_name=ELECTION_NAME,
        timezone=plan.cal.name,
        window_start=plan.cal.start,
        window_end=plan.cal.end,
        constituencies=[c.info for c in cast.all_contracts],
        unknown_contract_id=cast.unknown.info.id,
        stuffed_contract_id=cast.stuffed.info.id if cast.stuffed is not None else "",
        zipped_contract_id=cast.zipped.info.id if files.zip_hours else "",
        hourly=hourly,
        totals=totals,
        expected_hourly=expected,
        files=sorted(out.files),
        reference_files=reference_files,
        malformed=sorted(out.malformed, key=lambda m: (m.source, m.line_number)),
        line_count=out.line_count,
        total_bytes=out.total_bytes,
        rollback_lines=files.rollback_lines,
        duplicated_lines=files.duplicated_lines,
        anomalies=planted,
    )


def _plan_anomalies(
    contracts: list[_Contract],
    roles: list[int],
    kinds: list[str],
    copies: int,
    voters: tuple[int, int],
) -> dict[str, list[str]]:
    """Which kinds go to which constituency (in planting order).

    Hosts are taken in ``roles`` order. As many hosts as planted anomalies while
    ``max(2, n // 3)`` constituencies stay clean (fewer when there are fewer than four);
    with fewer hosts, kinds are dealt round-robin, so that one host holds anomalies at
    different times. An ``integer_turnout`` host gets a register that is a multiple of 20
    (inside ``voters`` when possible).
    """
    n = len(contracts)
    wanted = [k for _ in range(copies) for k in ANOMALY_KINDS if k in kinds]
    if not wanted:
        return {}
    keep_clean = max(2, n // 3) if n >= 4 else (1 if n >= 2 else 0)
    hosts = max(1, min(len(wanted), n - keep_clean))
    plan: dict[str, list[str]] = {}
    for i, kind in enumerate(wanted):
        c = contracts[roles[i % hosts]]
        todo = plan.setdefault(c.info.id, [])
        if kind not in todo:
            todo.append(kind)
    low, high = voters
    for c in contracts:
        todo = plan.get(c.info.id, [])
        todo.sort(key=ANOMALY_KINDS.index)
        if "integer_turnout" in todo:
            # integer_turnout last among the kinds that change who votes
            todo.remove("integer_turnout")
            todo.append("integer_turnout")
            lo20, hi20 = -(-low // 20) * 20, high // 20 * 20
            r = c.info.registered_voters
            c.info.registered_voters = min(max(round(r / 20) * 20, lo20), hi20) if lo20 <= hi20 else round(r / 20) * 20
    return plan
