"""The settings: one declaration each, read from ``ELECTION_*`` variables, documented in
the README, and shared with the Dagster resources without a second list of names."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from election_pipeline.defs.resources import DetectionResource, build_resources
from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.settings import Settings, SettingsError, load_settings, redact_url

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme_with_its_default():
    table = {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `(ELECTION_[A-Z_]+)` \| `?([^|`]*)`? \|", README.read_text(), re.MULTILINE)
    }
    for name, field in Settings.model_fields.items():
        env = Settings.env_name(name)
        assert env in table, f"{env} is not documented in the README's Settings table"
        if isinstance(field.default, (int, float)) and not isinstance(field.default, bool):
            assert float(table[env]) == float(field.default), (env, table[env], field.default)
        elif isinstance(field.default, str) and field.default:
            assert table[env] == field.default, (env, table[env], field.default)


def test_environment_values_are_read_and_paths_made_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ELECTION_BATCH_SIZE", " 500 ")
    monkeypatch.setenv("ELECTION_SPIKE_WARNING_Z", "4.5")
    monkeypatch.setenv("ELECTION_INPUT_DIR", "drop")
    monkeypatch.setenv("ELECTION_SCHEDULE_CRON", "")  # empty: the default
    s = load_settings()
    assert s.batch_size == 500
    assert s.spike_warning_z == 4.5 and s.thresholds().spike.warning_z == 4.5
    assert s.input_dir == str(tmp_path / "drop")
    assert s.schedule_cron == "*/15 * * * *"
    assert s.database_url == f"sqlite:///{tmp_path / 'data' / 'election_monitoring.db'}"


def test_a_bad_value_names_its_variable(monkeypatch):
    monkeypatch.setenv("ELECTION_BATCH_SIZE", "many")
    with pytest.raises(SettingsError, match=r"ELECTION_BATCH_SIZE: .*integer.*'many'"):
        load_settings()
    monkeypatch.delenv("ELECTION_BATCH_SIZE")
    monkeypatch.setenv("ELECTION_REJECTION_RATE", "2")
    with pytest.raises(SettingsError, match="rejection_rate must be between 0 and 1"):
        load_settings()


def test_a_bad_database_url_is_reported_without_its_password(monkeypatch):
    assert redact_url("postgresql+psycopg://u:pw@h:5432/db") == "postgresql+psycopg://u:***@h:5432/db"
    s = load_settings(database_url="postgresql+psycopg://u:pw@h:5432/db")
    assert s.describe()["database_url"] == "postgresql+psycopg://u:***@h:5432/db"


def test_the_detection_resource_has_exactly_the_thresholds_and_their_defaults():
    assert set(DetectionResource.model_fields) == set(DetectionThresholds.model_fields)
    assert DetectionResource().thresholds() == DetectionThresholds()
    resources = build_resources(load_settings(spike_min_votes=33, offline_after_hours=3.0))
    detection = resources["detection"]
    assert isinstance(detection, DetectionResource)
    assert detection.thresholds() == DetectionThresholds(spike_min_votes=33, offline_after_hours=3.0)


def test_the_database_url_from_the_environment_reaches_its_resource_as_an_env_var(monkeypatch):
    import dagster as dg

    url = "postgresql+psycopg://observer:pw@127.0.0.1:5432/test"
    monkeypatch.setenv("ELECTION_DATABASE_URL", url)
    ops_db = build_resources(load_settings())["ops_db"]
    assert isinstance(ops_db.url, dg.EnvVar)  # type: ignore[attr-defined]
    assert ops_db.url.env_var_name == "ELECTION_DATABASE_URL"  # type: ignore[attr-defined]
    # A URL given by hand (not from the environment) is used as it is.
    by_hand = build_resources(load_settings(database_url="sqlite:///elsewhere.db"))["ops_db"]
    assert by_hand.url == "sqlite:///elsewhere.db"  # type: ignore[attr-defined]
