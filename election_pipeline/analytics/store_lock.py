"""Taking turns on a DuckDB store across processes.

DuckDB lets one process open a file for writing; a second one is refused at once. Runs that
Dagster's queue starts never meet (one run per workspace at a time), but a run started by
hand (``election-pipeline run`` while the daemon serves the same workspace) would. So every
step that opens a store first takes an exclusive lock on a file beside it
(``<store>.lock``, ``flock``), waiting for it as long as the other step takes; the operating
system releases it when the holder ends, however it ends (a killed run holds nothing). A
process that already holds the lock of a store takes it again without waiting.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

_held: dict[str, int] = {}
_guard = threading.Lock()


@contextmanager
def store_turn(store: str | Path) -> Iterator[None]:
    """Hold the store's turn while the block runs (see the module docstring)."""
    key = str(Path(store).absolute())
    with _guard:
        if _held.get(key):
            _held[key] += 1
            mine = False
        else:
            mine = True
    if not mine:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    Path(key).parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("The DuckDB store %s is in use by another run; waiting for its turn", key)
            fcntl.flock(fd, fcntl.LOCK_EX)
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
    finally:
        os.close(fd)  # releases the lock
