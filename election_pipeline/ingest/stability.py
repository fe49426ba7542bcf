"""Deciding when a file in the drop folder is complete (docs/input-format.md#settling).

A file still being copied keeps changing. The sensor remembers each file's size and
modification time; a file is ready once they have not changed for ``settle_seconds``
across two looks. The settle time counts from the file's modification time (every write
moves it), or from the first look if that is earlier: a file last written longer ago than the
settle time (a copy renamed into place after a pause, a file dropped while the sensor was
stopped) is ready at the second look, without waiting the settle time again. ``*.tmp``/``*.part`` and hidden files are ignored (a copy renamed into
place from such a name is picked up like any other). The state is kept small: only
files still in the folder are remembered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .export_files import is_candidate


@dataclass
class FolderState:
    """``pending``: name -> [size, mtime_ns, first_seen]; ``requested``: name -> [size, mtime_ns]."""

    pending: dict[str, list[float]] = field(default_factory=dict)
    requested: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"pending": self.pending, "requested": self.requested}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> FolderState:
        if not text:
            return cls()
        try:
            data = json.loads(text)
            return cls(dict(data.get("pending", {})), dict(data.get("requested", {})))
        except (ValueError, AttributeError):
            return cls()  # an unreadable cursor only costs one extra look


def observe(input_dir: Path, state: FolderState, now: float, settle_seconds: float) -> tuple[list[str], FolderState]:
    """Look at the folder once. Returns the names that just became ready, and the new state."""
    ready: list[str] = []
    new = FolderState()
    if not input_dir.is_dir():
        return ready, new
    for path in sorted(input_dir.iterdir()):
        if not is_candidate(path):
            continue
        st = path.stat()
        sig: list[float] = [st.st_size, st.st_mtime_ns]
        name = path.name
        if state.requested.get(name) == sig:
            new.requested[name] = sig  # already handed to a run
            continue
        seen = state.pending.get(name)
        if seen is not None and seen[:2] == sig and now - seen[2] >= settle_seconds:
            ready.append(name)
            new.requested[name] = sig
        elif seen is not None and seen[:2] == sig:
            new.pending[name] = seen
        else:
            new.pending[name] = [*sig, min(now, st.st_mtime_ns / 1e9)]
    return ready, new
