"""Absurd and malformed arguments to ``election-pipeline alerts ...`` and ``report ...``: each
one exits with status 2 and one line on stderr, never a traceback, and changes nothing;
text from the data is shown with its terminal control characters escaped.

The operational database is real (a SQLite file in ``tmp_path``, then a PostgreSQL schema),
seeded with the same alerts as ``test_alerts_cli`` through the real ``publish_alerts``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from election_pipeline.cli import main
from election_pipeline.db.models import Alert, Constituency
from election_pipeline.db.session import get_engine
from election_pipeline_tests.cli.test_alerts_cli import give_alert_id, seed_alerts

#: Two alerts get ids with this common prefix (as in ``test_ambiguous_prefix_is_refused``).
SHARED = "abcd"


@pytest.fixture
def alerts_db(db_url: str, monkeypatch) -> str:
    """The database of ``db_url`` (SQLite, then PostgreSQL) with two constituencies and four
    alerts; the two of CtrB have ids starting with :data:`SHARED`."""
    monkeypatch.setenv("ELECTION_DATABASE_URL", db_url)
    seed_alerts(db_url)
    with Session(get_engine(db_url)) as db:
        for n, alert in enumerate(
            db.scalars(select(Alert).where(Alert.constituency_id == "CtrB").order_by(Alert.type))
        ):
            give_alert_id(db, alert, f"{SHARED}{n}-0000-0000-0000-000000000000")
        db.commit()
    return db_url


def _state(url: str) -> list[tuple]:
    with Session(get_engine(url)) as db:
        return sorted(
            (a.id, a.status, a.assigned_to, repr(a.notes), a.snoozed_until, a.resolved_at)
            for a in db.scalars(select(Alert))
        )


def _spike_id(url: str) -> str:
    with Session(get_engine(url)) as db:
        return db.scalars(select(Alert.id).where(Alert.type == "unusual_spike")).one()


def _run(argv: list[str]) -> int:
    """``main(argv)``; argparse's own errors leave through ``SystemExit``."""
    try:
        return main(argv)
    except SystemExit as exc:
        assert isinstance(exc.code, int), exc.code
        return exc.code


# Each case failed before: a traceback (OverflowError, a database error), a usage block of
# several lines instead of one, status 0, or a message that did not say what was wrong.
BAD_ALERT_ARGUMENTS = [
    # --until: huge, negative and malformed
    (["snooze", "{id}", "--until", "100000000d"], "--until '100000000d' is out of range"),
    (["snooze", "{id}", "--until", "99999999999999999999999m"], "is out of range"),
    (["snooze", "{id}", "--until", "1" * 400 + "h"], "is out of range"),
    (["snooze", "{id}", "--until", "9999-12-31T23:59-05:00"], "is out of range"),
    (["snooze", "{id}", "--until", "0001-01-01T00:00+05:00"], "is out of range"),
    (["snooze", "{id}", "--until=-2h"], "--until must be in the future"),
    (["snooze", "{id}", "--until=-100000000d"], "is out of range"),
    (["snooze", "{id}", "--until", "-2h"], "argument --until: expected one argument"),
    (["snooze", "{id}"], "the following arguments are required: --until"),
    # ids: too short, too long, not text
    (["show", ""], "alert id prefix '' is too short: give at least 4 characters"),
    (["show", "abc"], "alert id prefix 'abc' is too short: give at least 4 characters"),
    (["snooze", "ab", "--until", "2h"], "is too short"),
    (["show", "a" * 5000], "alert ids are 36 characters long"),
    (["show", "\udcff\udcfeab"], "the alert id is not valid UTF-8 text"),
    # assign, note: empty, very long, not text
    (["assign", "{id}", ""], "the assignee must not be empty: give a name, or - to unassign"),
    (["assign", "{id}", "   "], "the assignee must not be empty"),
    (["assign", "{id}", "x" * 256], "the assignee is 256 characters long; at most 255 are allowed"),
    (["note", "{id}", "x" * 10_001], "the note is 10001 characters long; at most 10000 are allowed"),
    (["note", "{id}", "checked", "--author", ""], "--author must not be empty"),
    (["note", "{id}", "checked", "--author", "y" * 256], "--author is 256 characters long"),
    (["note", "{id}", "bad \udcff bytes"], "the note is not valid UTF-8 text"),
    # status
    (["status", "{id}"], "the following arguments are required: status"),
    # list
    (["list", "--limit", "-1"], "argument --limit: must be 0 (all) or more (got -1)"),
    (["list", "--limit", "abc"], "argument --limit: must be a whole number, 0 for all (got 'abc')"),
    (["list", "--limit", "1.5"], "argument --limit: must be a whole number"),
    (["list", "--constituency", ""], "--constituency must not be empty"),
    (["list", "--rule", "  "], "--rule must not be empty"),
    (["list", "--rule", "r" * 300], "--rule is 300 characters long"),
    (["list", "--format", "xml"], "argument --format: invalid choice: 'xml'"),
    (["list", "--no-such-option"], "unrecognized arguments: --no-such-option"),
    (["bogus"], "argument alerts_command: invalid choice: 'bogus'"),
    ([], "the following arguments are required: alerts_command"),
]

BAD_REPORT_ARGUMENTS = [
    (["hourly", "CtrA", "--from", "notatime"], "--from: not an ISO 8601 date or time"),
    (["hourly", "CtrA", "--from", ""], "--from: not an ISO 8601 date or time"),
    (["hourly", "CtrA", "--to", "2024-02-30"], "--to: not an ISO 8601 date or time"),
    (
        ["hourly", "CtrA", "--from", "9999-12-31T23:59-05:00"],
        "--from '9999-12-31T23:59-05:00' is out of range",
    ),
    (["hourly", "CtrA", "--to", "0001-01-01T00:00+05:00"], "--to '0001-01-01T00:00+05:00' is out of range"),
    (["constituency", "CtrA", "--from", "9999-12-31T23:59-05:00"], "is out of range"),
    (["hourly", "CtrA", "--from", "2024-09-07", "--to", "2024-09-06"], "--from must be before --to"),
    (["hourly", "CtrA", "--from", "2024-09-07T03:00+03:00", "--to", "2024-09-07T00:00Z"], "--from must be before --to"),
    (["constituency", "CtrA", "--from", "2024-09-07", "--to", "2024-09-06"], "--from must be before --to"),
    (["hourly", "CtrA", "--window", "0"], "argument --window: must be a whole number of hours from 1 to 10000"),
    (["hourly", "CtrA", "--window", "-3"], "argument --window: must be a whole number of hours from 1 to 10000"),
    (["hourly", "CtrA", "--window", "99999999999999999999"], "argument --window: must be a whole number of hours"),
    (["hourly", "CtrA", "--window", "abc"], "argument --window: must be a whole number of hours"),
    (["constituency", "CtrA", "--period", "year"], "argument --period: invalid choice: 'year'"),
    (["election"], "the following arguments are required: id"),
]


def _check_refused(capsys, argv: list[str], message: str) -> None:
    assert _run(argv) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    assert err.endswith("\n") and err.count("\n") == 1, err  # one line
    assert err.startswith("election-pipeline") and ": error: " in err
    assert message in err, err
    assert out == ""


@pytest.mark.parametrize(("argv", "message"), BAD_ALERT_ARGUMENTS)
def test_bad_alerts_argument_exits_2_with_one_line(alerts_db, capsys, argv, message):
    before = _state(alerts_db)
    spike = _spike_id(alerts_db)
    _check_refused(capsys, ["alerts", *(a.replace("{id}", spike) for a in argv)], message)
    assert _state(alerts_db) == before


@pytest.mark.parametrize(("argv", "message"), BAD_REPORT_ARGUMENTS)
def test_bad_report_argument_exits_2_with_one_line(alerts_db, capsys, argv, message):
    _check_refused(capsys, ["report", *argv], message)


def test_a_huge_snooze_duration_is_refused_by_the_installed_command(alerts_db):
    """The reported case, through the real ``election-pipeline`` script in its own process."""
    script = Path(sys.executable).with_name("election-pipeline")
    done = subprocess.run(
        [str(script), "alerts", "snooze", _spike_id(alerts_db), "--until", "100000000d"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "OverflowError" not in done.stderr
    assert done.stderr.splitlines() == [
        "election-pipeline: error: --until '100000000d' is out of range: times run from year 1 to 9999"
    ]


def test_too_short_prefix_says_so_and_four_characters_are_enough(alerts_db, capsys):
    spike = _spike_id(alerts_db)
    assert _run(["alerts", "show", spike[:3]]) == 2
    assert capsys.readouterr().err == (
        f"election-pipeline: error: alert id prefix {spike[:3]!r} is too short: "
        "give at least 4 characters of the alert id\n"
    )
    # four characters name the alert (unless another id shares them, then the error says so)
    code = _run(["alerts", "show", spike[:4]])
    out, err = capsys.readouterr()
    assert (code, spike in out) == (0, True) or "ambiguous" in err
    assert _run(["alerts", "show", SHARED]) == 2
    assert "ambiguous" in capsys.readouterr().err


def test_a_huge_limit_lists_everything(alerts_db, capsys):
    assert _run(["alerts", "list", "--limit", "9" * 30]) == 0
    assert "4 alert(s)" in capsys.readouterr().out


# --------------------------------------------------------------------------------------
# Terminal escape sequences in the data are shown escaped
# --------------------------------------------------------------------------------------

CLEAR, TITLE, CSI8, BELL = "\x1b[2J", "\x1b]0;owned\x07", "\x9b31m", "\x07"
RAW = ("\x1b", "\x07", "\x9b", "\x08", "\r", "\u202e", "\x00")


def _no_raw_controls(text: str) -> None:
    for ch in RAW:
        assert ch not in text, repr(ch)


def test_show_escapes_control_characters_and_keeps_multiline_notes_readable(alerts_db, capsys):
    spike = _spike_id(alerts_db)
    note = f"clear {CLEAR} title {TITLE} csi {CSI8}\nsecond line\r\nthird \rover\bwrite \u202eevil"
    assert _run(["alerts", "note", spike, note, "--author", "eve\x1b[31m"]) == 0
    assert _run(["alerts", "assign", spike, "mallory\x1b]0;x\x07"]) == 0
    with Session(get_engine(alerts_db)) as db:
        db.execute(
            update(Alert)
            .where(Alert.id == spike)
            .values(title=f"spike {CLEAR}", description=f"first\n{TITLE}second", assigned_to="mallory\x1b]0;x\x07")
        )
        db.commit()
    capsys.readouterr()

    assert _run(["alerts", "show", spike[:8]]) == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    lines = out.splitlines()
    assert lines[0] == "spike \\x1b[2J"
    assert "  assigned to:   mallory\\x1b]0;x\\x07" in lines
    assert "  first" in lines and "  \\x1b]0;owned\\x07second" in lines  # description: line breaks kept, indented
    [at] = [i for i, line in enumerate(lines) if "eve\\x1b[31m: clear" in line]
    assert lines[at].endswith("] eve\\x1b[31m: clear \\x1b[2J title \\x1b]0;owned\\x07 csi \\x9b31m")
    assert lines[at + 1 : at + 3] == [
        "      second line",  # a note's next lines are indented under it
        "      third \\rover\\x08write \\u202eevil",  # a lone carriage return cannot overwrite the line
    ]


def test_list_escapes_control_characters_one_row_per_alert(alerts_db, capsys):
    spike = _spike_id(alerts_db)
    with Session(get_engine(alerts_db)) as db:
        db.execute(update(Alert).where(Alert.id == spike).values(title=f"spike {TITLE}\nnext", assigned_to="a\x1bb"))
        db.commit()
    assert _run(["alerts", "list"]) == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    [row] = [line for line in out.splitlines() if line.startswith(spike[:8])]
    assert row.endswith("spike \\x1b]0;owned\\x07\\nnext")
    assert " a\\x1bb " in row
    assert len(out.splitlines()) == 1 + 4 + 1  # header, four alerts, footer: the newline did not add a row


def test_report_escapes_control_characters_of_names(alerts_db, capsys):
    with Session(get_engine(alerts_db)) as db:
        db.execute(update(Constituency).where(Constituency.id == "CtrA").values(name=f"River{CLEAR}side{BELL}"))
        db.commit()
    assert _run(["report", "constituency", "CtrA"]) == 0
    out = capsys.readouterr().out
    _no_raw_controls(out)
    assert "River\\x1b[2Jside\\x07  (CtrA)" in out
