"""The command line, as ``make run`` uses it, on the generated sample election: the
figures in the database equal the generator's independently computed ground truth."""

import pytest
from sqlalchemy import select

from election_pipeline.cli import main
from election_pipeline.db.models import Constituency
from election_pipeline.db.session import get_engine
from election_pipeline.sample import generate_sample
from election_pipeline_tests.sample_truth import expected_hourly, published_hourly


@pytest.fixture
def env(workspace, tmp_path, monkeypatch):
    for key, value in workspace.environment(tmp_path / "dagster_home").items():
        monkeypatch.setenv(key, value)
    return workspace.settings()


def test_cli_run_on_the_sample_matches_its_ground_truth(env, workspace, capsys):
    from pathlib import Path

    truth = generate_sample(Path(env.input_dir), Path(env.reference_dir), seed=11, constituencies=4)
    assert main(["run", "--log-level", "WARNING"]) == 0
    out = capsys.readouterr().out
    assert "hourly_stats.hourly_totals_reconcile: passed" in out
    assert f"rejected lines:       {truth.malformed_lines}" in out

    engine = get_engine(env.database_url)
    expected = expected_hourly(truth)
    assert published_hourly(engine) == expected
    with engine.connect() as conn:
        unknown = conn.execute(
            select(Constituency.in_reference).where(Constituency.id == truth.unknown_contract_id)
        ).scalar_one()
        totals = dict(conn.execute(select(Constituency.id, Constituency.votes_cast)).tuples().all())
    assert unknown is False
    assert totals == {cid: t.votes_cast for cid, t in truth.totals.items()}

    # A second run finds nothing new and changes no figure.
    assert main(["sample", "--if-empty"]) == 0
    assert main(["run", "--log-level", "WARNING"]) == 0
    assert published_hourly(engine) == expected


def test_sample_if_empty_leaves_existing_input_alone(env, capsys):
    from pathlib import Path

    Path(env.input_dir, "mine.csv").write_text("x\n")
    assert main(["sample", "--if-empty"]) == 0
    assert "already holds files" in capsys.readouterr().out
    assert sorted(p.name for p in Path(env.input_dir).iterdir()) == ["mine.csv"]
