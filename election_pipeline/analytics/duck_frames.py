"""pandas frames handed to DuckDB for the length of one statement or a few."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import duckdb
import pandas as pd


@contextlib.contextmanager
def registered(duck: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame) -> Iterator[None]:
    """Register ``frame`` as the view ``name`` for the ``with`` block, then unregister it.

    When the block fails, the error it raised is the one that propagates: unregistering on a
    transaction the error aborted fails too ("Current transaction is aborted"), and that second
    error would otherwise hide the first (and be taken for a failure of the store itself)."""
    duck.register(name, frame)
    try:
        yield
    except BaseException:
        with contextlib.suppress(duckdb.Error):
            duck.unregister(name)
        raise
    duck.unregister(name)
