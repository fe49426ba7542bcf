"""Every ``ELECTION_*`` setting, declared once, with its default and meaning.

:class:`Settings` reads them from the environment (``ELECTION_`` + the field name in capitals;
an empty variable counts as unset). Relative paths are resolved against the current working
directory (the repository root when the pipeline is started through ``make``). The detection
thresholds are declared in :class:`~election_pipeline.detection.thresholds.DetectionThresholds`
and inherited here, so they too are settings. The README's "Settings" table lists every one.

Secrets (fields marked ``secret``, such as the database URL) reach the Dagster resources
through ``dg.EnvVar`` (see ``election_pipeline/defs/resources.py``), so the Dagster UI shows
only the variable's name, never its value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.vocabulary import SeverityName

ENV_PREFIX = "ELECTION_"


def _absolute(value: str) -> str:
    return str(Path(value).expanduser().absolute()) if value else value


#: A folder or file path; a relative one is resolved against the working directory.
LocalPath = Annotated[str, AfterValidator(_absolute)]


def _sqlite_default() -> str:
    return "sqlite:///" + str(Path("data/election_monitoring.db").absolute())


class Settings(BaseSettings, DetectionThresholds):
    """The pipeline's configuration (README, "Settings")."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, str_strip_whitespace=True, frozen=True, extra="ignore"
    )

    input_dir: LocalPath = Field("data/input", description="drop folder watched for exports")
    reference_dir: LocalPath = Field("data/reference", description="folder of elections.csv and constituencies.csv")
    processed_dir: LocalPath = Field("data/processed", description="where processed files are moved")
    quarantine_dir: LocalPath = Field("data/quarantine", description="where files that failed are moved")
    database_url: str = Field(
        default_factory=_sqlite_default,
        description="SQLAlchemy URL of the operational database (for PostgreSQL: "
        "postgresql+psycopg://user:password@host:5432/dbname); default: sqlite:///<cwd>/data/election_monitoring.db",
        json_schema_extra={"secret": True},
    )
    duckdb_path: LocalPath = Field(
        "data/warehouse.duckdb",
        description="the DuckDB raw store of the shared workspace (every election without a workspace of its own)",
    )
    elections_dir: LocalPath = Field(
        "data/elections",
        description="folder of the election workspaces (`election-pipeline workspace add <election>`): each "
        "<election>/ holds its own drop folder (input/), processed/, quarantine/ and DuckDB store, so that runs "
        "of different elections run in parallel",
    )
    duckdb_memory_limit: str = Field(
        "1GB",
        description="memory DuckDB may use for its buffers; larger queries spill to a temporary folder next "
        "to the DuckDB file",
    )
    file_settle_seconds: float = Field(
        2.0,
        ge=0,
        description="how long a file's size and modification time must stay unchanged (across two looks) before "
        "it is processed; a writer that can pause for longer should deliver under a *.part or *.tmp name and "
        "rename, or raise this",
    )
    sensor_interval_seconds: int = Field(
        1,
        ge=1,
        description="the least time between two looks of the sensor at the drop folder; the Dagster daemon "
        "evaluates sensors every 5 s at the most, so any value up to 4 means a look every 5 s",
    )
    schedule_cron: str = Field("*/15 * * * *", description="when the schedule re-runs the chain (UTC)")
    batch_size: int = Field(
        20_000,
        ge=1,
        description="lines the Python reader stages into DuckDB at a time (zip members, files that are not "
        "plain UTF-8, .csv files over 256 MiB); the plain UTF-8 .csv files DuckDB reads itself are not cut up",
    )
    zip_max_total_bytes: int = Field(
        4 * 1024**3, ge=1, description="a zip expanding to more than this many bytes is refused"
    )
    zip_max_ratio: int = Field(
        200, ge=1, description="a zip expanding beyond 64 MiB and more than this many times its size is refused"
    )
    reports_dir: LocalPath = Field(
        "data/reports",
        description="where the election reports (HTML page and PNG charts) are written, one sub-folder per "
        "election; empty: reports/ next to the DuckDB file",
    )
    retain_transactions_days: int = Field(
        30, ge=0, description="retention: transactions are kept until this many days after the end of their election"
    )
    retain_hourly_days: int = Field(
        365, ge=0, description="retention: hourly statistics are kept this many days after their hour"
    )
    retain_file_jobs_days: int = Field(
        90,
        ge=0,
        description="retention: file processing jobs (and the rejected lines they recorded) are kept this many "
        "days after they ended",
    )
    retention_cron: str = Field("30 3 * * *", description="when the retention job runs (UTC)")
    full_check_every_minutes: float = Field(
        60.0,
        ge=0,
        description="the blocking data-quality checks compare every constituency when their last full pass is "
        "older than this many minutes; in between, the constituencies changed since they last passed "
        "(0: every run is a full pass)",
    )

    api_host: str = Field(
        "127.0.0.1",
        description="address `election-pipeline serve` binds the HTTP API to; an address other than the loopback "
        "needs ELECTION_API_ALLOW_REMOTE=1",
    )
    api_port: int = Field(8000, ge=1, le=65535, description="port of the HTTP API")
    api_allow_remote: bool = Field(
        False,
        description="1: let the HTTP API bind an address that is not the loopback (put a TLS-terminating proxy in "
        "front: bearer tokens travel in clear otherwise)",
    )
    api_public_read: bool = Field(
        False,
        description="1: the HTTP API answers reads without a token (writes and token management still need one)",
    )
    session_hours: float = Field(
        12.0,
        gt=0,
        le=24 * 30,
        description="how long a sign-in to the triage page (`election-pipeline serve` at /) lasts, in hours; "
        "revoking the token ends its sessions at once",
    )

    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="the address people open the pipeline's pages at; notifications link to "
        "<ELECTION_PUBLIC_URL>/alerts/<id>",
    )
    notify_min_severity: SeverityName = Field(
        "critical",
        description="alerts created, reopened or escalated at this severity or above are notified "
        "(critical, warning or info)",
    )
    alert_webhook_urls: str = Field(
        "",
        description="comma-separated webhook URLs (Slack-compatible) that get one JSON message per notified "
        "alert change; secret (a Slack URL carries a token): shown by host only",
        json_schema_extra={"secret": True},
    )
    smtp_host: str = Field("", description="SMTP server for notification emails; empty: no email")
    smtp_port: int = Field(587, ge=1, le=65535, description="port of the SMTP server")
    smtp_username: str = Field("", description="SMTP user name; empty: no login")
    smtp_password: str = Field("", description="SMTP password; secret", json_schema_extra={"secret": True})
    smtp_from: str = Field("election-pipeline@localhost", description="sender address of notification emails")
    smtp_to: str = Field("", description="comma-separated recipients of notification emails; empty: no email")
    smtp_starttls: bool = Field(
        True, description="1: upgrade the SMTP connection with STARTTLS (0 for a local relay without TLS)"
    )
    notify_timeout_seconds: float = Field(
        5.0, gt=0, le=120, description="how long one webhook call or SMTP session may take before it fails"
    )
    notify_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="tries after the first within a run, for each target, with exponential backoff; what "
        "still fails is tried again by the next run",
    )
    notify_backoff_seconds: float = Field(
        0.5, ge=0, le=60, description="wait before the first retry within a run; doubled for each further one"
    )
    notify_max_backoff_seconds: float = Field(
        900.0,
        ge=0,
        description="the longest a failed delivery waits before the next run tries it again (the wait doubles "
        "with each failed try, from ELECTION_NOTIFY_BACKOFF_SECONDS)",
    )

    @field_validator("alert_webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: str) -> str:
        for url in split_list(value):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("every webhook URL must be an http:// or https:// URL with a host")
        return value

    @property
    def webhook_urls(self) -> list[str]:
        """``alert_webhook_urls`` as a list (secrets: never print them)."""
        return split_list(self.alert_webhook_urls)

    @property
    def reports_folder(self) -> str:
        """``reports_dir``, or ``reports/`` next to the DuckDB file when it is empty."""
        return self.reports_dir or str(Path(self.duckdb_path).parent / "reports")

    @classmethod
    def env_name(cls, field: str) -> str:
        """The environment variable of a setting: ``ELECTION_`` + its name in capitals."""
        return ENV_PREFIX + field.upper()

    @classmethod
    def secret_fields(cls) -> list[str]:
        """Settings whose value must never be shown (the UI, the logs, ``describe``)."""
        return [
            name
            for name, f in cls.model_fields.items()
            if isinstance(f.json_schema_extra, dict) and f.json_schema_extra.get("secret")
        ]

    def describe(self) -> dict[str, str]:
        """The settings as printable strings, with every secret hidden: the password of the
        database URL, the webhook URLs but for their host, the SMTP password."""
        secret = set(self.secret_fields())
        return {
            name: redact_secret(name, str(getattr(self, name))) if name in secret else str(getattr(self, name))
            for name in type(self).model_fields
        }


def split_list(value: str) -> list[str]:
    """A comma-separated setting as a list of its non-empty, stripped items."""
    return [item.strip() for item in value.split(",") if item.strip()]


def webhook_label(url: str) -> str:
    """How a webhook is named in logs, metadata and the database: its host and ``/…``
    (the path and query of a Slack-style URL are its token)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}/…"


def redact_secret(name: str, value: str) -> str:
    """A secret setting as it may be printed."""
    if name == "database_url":
        return redact_url(value)
    if name == "alert_webhook_urls":
        return ", ".join(webhook_label(url) for url in split_list(value))
    return "***" if value else ""


def redact_url(url: str) -> str:
    """Hide the password of a SQLAlchemy URL for logs."""
    if "://" not in url or "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    if ":" in creds:
        creds = creds.split(":", 1)[0] + ":***"
    return f"{scheme}://{creds}@{host}"


class SettingsError(ValueError):
    """A setting's value is not valid; the message names the environment variable."""


def load_settings(**overrides: Any) -> Settings:
    """Read every setting from the environment; ``overrides`` (field names) win over it.

    An invalid value raises :class:`SettingsError` naming each variable and what is wrong.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = error["loc"][0] if error["loc"] else ""
            name = Settings.env_name(str(where)) if where else "settings"
            shown = "***" if where in Settings.secret_fields() else repr(error.get("input"))
            problems.append(f"{name}: {error['msg']} (got {shown})")
        raise SettingsError("invalid setting: " + "; ".join(problems)) from None
