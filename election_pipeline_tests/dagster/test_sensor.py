"""The file sensor, evaluated with a real instance on a real folder."""

import os

import dagster as dg

from election_pipeline.defs.automation import build_sensor
from election_pipeline_tests.builders import CONTRACT_A, issue, ms

NAME = f"{CONTRACT_A}_2024-09-06_0700-0800.csv"


def _tick(sensor, instance, cursor):
    ctx = dg.build_sensor_context(instance=instance, cursor=cursor)
    result = sensor(ctx)
    return result


def test_picks_up_a_settled_file_once(workspace, instance):
    sensor = build_sensor(str(workspace.input), settle_seconds=0, interval_seconds=1)
    workspace.drop(NAME, [issue("t1", ms("2024-09-06 07:05:00"), 1)])

    first = _tick(sensor, instance, None)
    assert first.run_requests == []  # seen once: not yet known to be complete

    second = _tick(sensor, instance, first.cursor)
    assert len(second.run_requests) == 1
    request = second.run_requests[0]
    assert request.run_config["ops"]["raw_transactions"]["config"]["files"] == [NAME]
    assert request.run_key

    third = _tick(sensor, instance, second.cursor)
    assert third.run_requests == []  # never requested twice while it sits there


def test_skips_a_file_that_is_still_growing(workspace, instance):
    sensor = build_sensor(str(workspace.input), settle_seconds=0, interval_seconds=1)
    path = workspace.drop(NAME, [issue("t1", ms("2024-09-06 07:05:00"), 1)])
    first = _tick(sensor, instance, None)
    with path.open("a") as fh:  # the copy goes on
        fh.write(issue("t2", ms("2024-09-06 07:06:00"), 1) + "\n")
    second = _tick(sensor, instance, first.cursor)
    assert second.run_requests == []
    third = _tick(sensor, instance, second.cursor)
    assert [r.run_config["ops"]["raw_transactions"]["config"]["files"] for r in third.run_requests] == [[NAME]]


def test_waits_for_the_settle_time(workspace, instance):
    sensor = build_sensor(str(workspace.input), settle_seconds=3600, interval_seconds=1)
    workspace.drop(NAME, [issue("t1", ms("2024-09-06 07:05:00"), 1)])
    first = _tick(sensor, instance, None)
    second = _tick(sensor, instance, first.cursor)
    assert second.run_requests == []  # unchanged, but not for an hour yet


def test_a_file_last_written_before_the_settle_time_is_handed_over_in_one_evaluation(workspace, instance):
    """The settle time counts from the file's modification time: a file untouched for longer
    is requested by the evaluation that first sees it (its second look comes right after),
    while a file written just now still waits."""
    sensor = build_sensor(str(workspace.input), settle_seconds=30, interval_seconds=1)
    path = workspace.drop(NAME, [issue("t1", ms("2024-09-06 07:05:00"), 1)])
    written = path.stat().st_mtime - 60
    os.utime(path, (written, written))
    first = _tick(sensor, instance, None)
    assert [r.run_config["ops"]["raw_transactions"]["config"]["files"] for r in first.run_requests] == [[NAME]]

    fresh = workspace.drop(NAME.replace("0700-0800", "0800-0900"), [issue("t2", ms("2024-09-06 08:05:00"), 1)])
    second = _tick(sensor, instance, first.cursor)
    assert second.run_requests == []  # written a moment ago: it settles first
    assert fresh.name in second.cursor


def test_ignores_partial_copies_until_renamed(workspace, instance):
    sensor = build_sensor(str(workspace.input), settle_seconds=0, interval_seconds=1)
    part = workspace.drop(NAME + ".part", [issue("t1", ms("2024-09-06 07:05:00"), 1)])
    cursor = None
    for _ in range(2):
        result = _tick(sensor, instance, cursor)
        assert result.run_requests == []
        cursor = result.cursor
    os.rename(part, workspace.input / NAME)
    cursor = _tick(sensor, instance, cursor).cursor
    assert len(_tick(sensor, instance, cursor).run_requests) == 1


def test_a_changed_file_with_the_same_name_is_requested_again(workspace, instance):
    sensor = build_sensor(str(workspace.input), settle_seconds=0, interval_seconds=1)
    path = workspace.drop(NAME, [issue("t1", ms("2024-09-06 07:05:00"), 1)])
    c1 = _tick(sensor, instance, None).cursor
    r2 = _tick(sensor, instance, c1)
    assert len(r2.run_requests) == 1
    path.write_text(issue("t9", ms("2024-09-06 07:09:00"), 2) + "\n")  # a new export replaced it
    c3 = _tick(sensor, instance, r2.cursor).cursor
    r4 = _tick(sensor, instance, c3)
    assert len(r4.run_requests) == 1 and r4.run_requests[0].run_key != r2.run_requests[0].run_key
