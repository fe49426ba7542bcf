"""Every ``ELECTION_*`` setting in one place, read from the environment with local defaults.

Relative paths are resolved against the current working directory (the repository root
when the pipeline is started through ``make``). The README documents each setting.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

from election_pipeline.detection.thresholds import DetectionThresholds

#: The documented default of every detection threshold (declared once, in DetectionThresholds).
_D = DetectionThresholds()


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"Setting {name} must be a whole number, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"Setting {name} must be a number, got {raw!r}") from exc


def _path(name: str, default: str) -> str:
    return str(Path(_env(name, default)).expanduser().absolute())


def _sqlite_default() -> str:
    return "sqlite:///" + str(Path("data/election_monitoring.db").absolute())


@dataclass(frozen=True)
class Settings:
    """The pipeline's configuration. Build it with :func:`load_settings`."""

    input_dir: str
    reference_dir: str
    processed_dir: str
    quarantine_dir: str
    database_url: str
    duckdb_path: str
    file_settle_seconds: float
    sensor_interval_seconds: int
    schedule_cron: str
    batch_size: int
    zip_max_total_bytes: int
    zip_max_ratio: int
    spike_warning_z: float
    spike_critical_z: float
    spike_hour_share: float
    spike_min_votes: int
    #: Where the election reports (HTML page and PNG charts) are written. Empty when the
    #: settings are built by hand (tests): ``reports/`` next to the DuckDB file.
    reports_dir: str = ""
    #: A constituency silent for longer than this before its election's latest transaction is offline.
    offline_after_hours: float = _D.offline_hours
    #: Detection thresholds (README, "Detection"); defaults from DetectionThresholds.
    spike_relative_spread: float = _D.spike_relative_spread
    night_share: float = _D.night_share
    night_min_votes: int = _D.night_min_votes
    low_participation: float = _D.low_participation
    rejection_rate: float = _D.rejection_rate
    revote_rate: float = _D.revote_rate
    issued_not_voted_gap: float = _D.issued_not_voted_gap
    rate_alpha: float = _D.rate_alpha
    offline_min_votes: float = _D.offline_min_expected
    integer_min_voters: int = _D.integer_min_voters
    #: Retention (README, "Production"): days kept after the election's end, after the hour,
    #: after the file job ended; and when the retention job runs.
    retain_transactions_days: int = 30
    retain_hourly_days: int = 365
    retain_file_jobs_days: int = 90
    retention_cron: str = "30 3 * * *"
    #: Memory DuckDB may use for its buffers (beyond it, large queries spill to disk).
    duckdb_memory_limit: str = "1GB"
    #: The blocking data-quality checks verify every constituency when their last full pass
    #: is older than this (0: on every run); in between, the constituencies changed since
    #: the check last passed.
    full_check_every_minutes: float = 60.0

    @property
    def reports_folder(self) -> str:
        """``reports_dir``, or ``reports/`` next to the DuckDB file when it is empty."""
        return self.reports_dir or str(Path(self.duckdb_path).parent / "reports")

    def describe(self) -> dict[str, str]:
        """The settings as printable strings, with any password in the database URL hidden."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = str(getattr(self, f.name))
            if f.name == "database_url":
                value = redact_url(value)
            out[f.name] = value
        return out


def redact_url(url: str) -> str:
    """Hide the password of a SQLAlchemy URL for logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


def load_settings() -> Settings:
    """Read every setting from the environment (see README, "Settings")."""
    return Settings(
        input_dir=_path("ELECTION_INPUT_DIR", "data/input"),
        reference_dir=_path("ELECTION_REFERENCE_DIR", "data/reference"),
        processed_dir=_path("ELECTION_PROCESSED_DIR", "data/processed"),
        quarantine_dir=_path("ELECTION_QUARANTINE_DIR", "data/quarantine"),
        database_url=_env("ELECTION_DATABASE_URL", _sqlite_default()),
        duckdb_path=_path("ELECTION_DUCKDB_PATH", "data/warehouse.duckdb"),
        file_settle_seconds=_env_float("ELECTION_FILE_SETTLE_SECONDS", 5.0),
        sensor_interval_seconds=_env_int("ELECTION_SENSOR_INTERVAL_SECONDS", 15),
        schedule_cron=_env("ELECTION_SCHEDULE_CRON", "*/15 * * * *"),
        batch_size=_env_int("ELECTION_BATCH_SIZE", 20_000),
        zip_max_total_bytes=_env_int("ELECTION_ZIP_MAX_TOTAL_BYTES", 4 * 1024**3),
        zip_max_ratio=_env_int("ELECTION_ZIP_MAX_RATIO", 200),
        spike_warning_z=_env_float("ELECTION_SPIKE_WARNING_Z", _D.spike_warning_z),
        spike_critical_z=_env_float("ELECTION_SPIKE_CRITICAL_Z", _D.spike_critical_z),
        spike_hour_share=_env_float("ELECTION_SPIKE_HOUR_SHARE", _D.spike_hour_share),
        spike_min_votes=_env_int("ELECTION_SPIKE_MIN_VOTES", _D.spike_min_votes),
        retain_transactions_days=_env_int("ELECTION_RETAIN_TRANSACTIONS_DAYS", 30),
        retain_hourly_days=_env_int("ELECTION_RETAIN_HOURLY_DAYS", 365),
        retain_file_jobs_days=_env_int("ELECTION_RETAIN_FILE_JOBS_DAYS", 90),
        retention_cron=_env("ELECTION_RETENTION_CRON", "30 3 * * *"),
        duckdb_memory_limit=_env("ELECTION_DUCKDB_MEMORY_LIMIT", "1GB"),
        full_check_every_minutes=_env_float("ELECTION_FULL_CHECK_EVERY_MINUTES", 60.0),
        reports_dir=_path("ELECTION_REPORTS_DIR", "data/reports"),
        offline_after_hours=_env_float("ELECTION_OFFLINE_AFTER_HOURS", _D.offline_hours),
        spike_relative_spread=_env_float("ELECTION_SPIKE_RELATIVE_SPREAD", _D.spike_relative_spread),
        night_share=_env_float("ELECTION_NIGHT_SHARE", _D.night_share),
        night_min_votes=_env_int("ELECTION_NIGHT_MIN_VOTES", _D.night_min_votes),
        low_participation=_env_float("ELECTION_LOW_PARTICIPATION", _D.low_participation),
        rejection_rate=_env_float("ELECTION_REJECTION_RATE", _D.rejection_rate),
        revote_rate=_env_float("ELECTION_REVOTE_RATE", _D.revote_rate),
        issued_not_voted_gap=_env_float("ELECTION_ISSUED_NOT_VOTED_GAP", _D.issued_not_voted_gap),
        rate_alpha=_env_float("ELECTION_RATE_ALPHA", _D.rate_alpha),
        offline_min_votes=_env_float("ELECTION_OFFLINE_MIN_VOTES", _D.offline_min_expected),
        integer_min_voters=_env_int("ELECTION_INTEGER_MIN_VOTERS", _D.integer_min_voters),
    )
