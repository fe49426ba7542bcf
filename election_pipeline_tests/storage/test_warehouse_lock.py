"""Opening the DuckDB raw store waits out another process's lock; an error inside the
``with`` block is not retried and comes out as itself.

The lock is real: a second Python process opens the same DuckDB file read-write, which
DuckDB refuses to any other process until it closes it.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest

from election_pipeline.defs.resources import WarehouseResource, is_lock_error
from election_pipeline.defs.retries import worth_retrying

HOLD = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.readline()  # hold the lock until told to let go
conn.close()
"""


def _hold_lock(path: Path) -> subprocess.Popen:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder: subprocess.Popen) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    holder.wait(timeout=30)


def test_opening_a_locked_store_waits_until_the_other_process_lets_go(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    holder = _hold_lock(path)
    # The file is really locked: a plain open fails at once with DuckDB's lock error.
    with pytest.raises(duckdb.IOException) as refused:
        duckdb.connect(str(path))
    assert is_lock_error(refused.value)

    letting_go = threading.Event()

    def let_go_soon() -> None:
        time.sleep(1.5)
        letting_go.set()  # before the release: the lock may be free the moment it is sent
        _release(holder)

    threading.Thread(target=let_go_soon, daemon=True).start()
    with WarehouseResource(database=str(path)).connect() as conn:
        # We only got in once the holder was told to let go, and the schema is there.
        assert letting_go.is_set()
        assert conn.execute("SELECT count(*) FROM raw_transactions").fetchone() == (0,)


def test_a_lock_error_inside_the_block_is_not_retried_and_comes_out_as_itself(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    resource = WarehouseResource(database=str(path))
    runs = 0
    with pytest.raises(duckdb.IOException, match="Could not set lock") as raised, resource.connect() as conn:
        runs += 1
        conn.execute("SELECT 1")
        raise duckdb.IOException('IO Error: Could not set lock on file "other.duckdb": Conflicting lock')
    assert runs == 1  # the body ran once: no retry around it
    # It is the lock error itself (not "generator didn't stop after throw()"), so the
    # step's retry policy sees a transient DuckDB lock and retries the step.
    assert not isinstance(raised.value, RuntimeError)
    assert worth_retrying(raised.value)
    # The connection was closed: another process can open the file at once.
    check = subprocess.run(
        [sys.executable, "-c", "import sys, duckdb; duckdb.connect(sys.argv[1]).close()", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr


def test_any_other_error_opening_the_store_is_not_retried(tmp_path):
    not_a_database = tmp_path / "warehouse.duckdb"
    not_a_database.write_text("this is not a DuckDB file\n" * 100)
    with pytest.raises(duckdb.Error) as raised, WarehouseResource(database=str(not_a_database)).connect():
        pass
    assert not is_lock_error(raised.value)


TURN = """
import sys
from election_pipeline.defs.resources import WarehouseResource
with WarehouseResource(database=sys.argv[1]).connect() as duck:
    print("holding", flush=True)
    sys.stdin.readline()  # keep the store's turn until told to let go
"""


def test_a_second_process_waits_for_the_stores_turn_instead_of_meeting_the_lock(tmp_path, monkeypatch):
    """Two runs of one store (one started by hand beside the daemon's): the second one's step
    waits for the first's to end, however long, then writes; nothing fails. (DuckDB's own lock
    would be waited out for LOCK_WAIT_SECONDS only: here a fifth of a second.)"""
    from election_pipeline.defs import resources

    monkeypatch.setattr(resources, "LOCK_WAIT_SECONDS", 0.2)
    path = tmp_path / "warehouse.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", TURN, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    done = threading.Event()
    waited: list[float] = []

    def second() -> None:
        started = time.monotonic()
        with WarehouseResource(database=str(path)).connect() as duck:
            waited.append(time.monotonic() - started)
            duck.execute("CREATE TABLE IF NOT EXISTS turn_test AS SELECT 1 AS x")
        done.set()

    worker = threading.Thread(target=second)
    worker.start()
    time.sleep(1.0)
    assert not done.is_set()  # still waiting for its turn (the first process holds it)
    _release(holder)
    worker.join(timeout=60)
    assert done.is_set() and waited[0] >= 0.9
    with duckdb.connect(str(path), read_only=True) as duck:
        assert duck.execute("SELECT x FROM turn_test").fetchall() == [(1,)]
    assert (tmp_path / "warehouse.duckdb.lock").exists()
