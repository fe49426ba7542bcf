"""Election workspaces: one drop folder and one DuckDB store per election
(docs/architecture.md#several-elections-at-once).

DuckDB lets one process write a file at a time, so one store for every election makes every
run wait for the others. An election may have a **workspace** of its own instead: a folder
``<ELECTION_ELECTIONS_DIR>/<election id>/`` made by ``election-pipeline workspace add``, holding

* ``input/``, ``processed/``, ``quarantine/``: its drop folder and where its files go;
* ``warehouse.duckdb``: its raw store (and the change log and ledger of that store);
* ``workspace.json``: the marker the command writes (a folder without it is not a workspace).

Runs of different workspaces write different files and run in parallel; runs of one
workspace wait for each other (Dagster's run queue: one run per value of the run tag
:data:`WORKSPACE_TAG`). The operational database is shared: the observers' API, page and
reports see every election.

Every other election stays in the **shared** workspace, the settings' ``ELECTION_INPUT_DIR``
and ``ELECTION_DUCKDB_PATH`` (the only one when no election has a workspace). Each
constituency belongs to exactly one workspace, by its election: its election's workspace, or
the shared one. :class:`Scope` says which constituencies a run may write figures for, and
:meth:`Scope.refusal` which contracts the ingest of a workspace refuses (a file of another
election's contract dropped in the wrong folder). The shared drop folder also serves as a
common one: a file whose name gives a contract of an election with a workspace is handed to
that workspace's folder (:func:`forward_to_workspaces`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, and_, or_, select, true

#: The run tag naming the workspace a run works on (its value: an election id, or
#: :data:`SHARED`). Dagster's run queue runs one run per value at a time.
WORKSPACE_TAG = "election/workspace"
#: The tag value of the shared workspace.
SHARED = "shared"
#: The file that makes a folder of ``ELECTION_ELECTIONS_DIR`` a workspace.
MARKER = "workspace.json"
#: An election id usable as a folder name.
_FOLDER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class WorkspaceError(ValueError):
    """A workspace that cannot be used or made; the message says why."""


@dataclass(frozen=True)
class Workspace:
    """Where one workspace's files and store are. ``election`` is None for the shared one."""

    election: str | None
    input_dir: Path
    processed_dir: Path
    quarantine_dir: Path
    duckdb_path: Path

    @property
    def tag(self) -> str:
        """The value of :data:`WORKSPACE_TAG` for its runs."""
        return self.election or SHARED

    @property
    def label(self) -> str:
        return f"election {self.election}" if self.election else "the shared workspace"


def _election_workspace(root: Path, election: str) -> Workspace:
    folder = root / election
    return Workspace(
        election, folder / "input", folder / "processed", folder / "quarantine", folder / "warehouse.duckdb"
    )


def shared_workspace(settings: Any) -> Workspace:
    """The shared workspace of ``settings`` (a :class:`~election_pipeline.settings.Settings`
    or anything with its folder fields: ``input_dir``, ``processed_dir``, ``quarantine_dir``,
    ``duckdb_path``)."""
    return Workspace(
        None,
        Path(settings.input_dir),
        Path(settings.processed_dir),
        Path(settings.quarantine_dir),
        Path(settings.duckdb_path),
    )


def election_workspaces(elections_dir: str | Path) -> list[Workspace]:
    """The workspaces made in ``elections_dir`` (folders holding :data:`MARKER`), by election id."""
    root = Path(elections_dir) if elections_dir else None
    if root is None or not root.is_dir():
        return []
    out = []
    for folder in sorted(root.iterdir()):
        if folder.is_dir() and (folder / MARKER).is_file() and _FOLDER_NAME.match(folder.name):
            out.append(_election_workspace(root, folder.name))
    return out


def all_workspaces(shared: Workspace, elections_dir: str | Path) -> list[Workspace]:
    """``shared``, then every election's workspace in ``elections_dir``."""
    return [shared, *election_workspaces(elections_dir)]


def workspace_for_tag(shared: Workspace, elections_dir: str | Path, tag: str | None) -> Workspace:
    """The workspace a run tagged ``tag`` works on (no tag, or :data:`SHARED`: ``shared``)."""
    if not tag or tag == SHARED:
        return shared
    for ws in election_workspaces(elections_dir):
        if ws.election == tag:
            return ws
    raise WorkspaceError(
        f"election {tag!r} has no workspace in {elections_dir} (make one with `election-pipeline workspace add {tag}`)"
    )


def planned_workspace(elections_dir: str | Path, election: str, engine: Engine | None = None) -> Workspace:
    """The workspace ``election`` would have (nothing is made). With ``engine``, the election
    must be in the operational database."""
    if not elections_dir:
        raise WorkspaceError("ELECTION_ELECTIONS_DIR is empty: set it to the folder that holds the workspaces")
    if not _FOLDER_NAME.match(election):
        raise WorkspaceError(
            f"election id {election!r} cannot name a folder (letters, digits, '.', '_' and '-' only, "
            "starting with a letter or digit)"
        )
    if engine is not None:
        from election_pipeline.db.models import Election

        with engine.connect() as conn:
            if conn.execute(select(Election.id).where(Election.id == election)).first() is None:
                raise WorkspaceError(
                    f"election {election!r} is not in the operational database: load its reference data first "
                    "(elections.csv; `election-pipeline run` loads it)"
                )
    return _election_workspace(Path(elections_dir), election)


def create_workspace(ws: Workspace) -> Workspace:
    """Make ``ws``'s folders and write its marker: from then on it is a workspace (its store is
    made by its first run, or by ``election-pipeline workspace add``)."""
    for folder in (ws.input_dir, ws.processed_dir, ws.quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)
    marker = ws.input_dir.parent / MARKER
    if not marker.exists():
        marker.write_text(
            json.dumps({"election": ws.election, "created_at": datetime.now(UTC).isoformat()}, indent=2) + "\n",
            encoding="utf-8",
        )
    return ws


@dataclass(frozen=True)
class Scope:
    """The constituencies a run writes figures for: those of ``election`` (a workspace's), or,
    for the shared workspace (``election`` None), those of every election without a workspace
    (``separate``: the elections that have one) and the contracts of no known election."""

    election: str | None = None
    separate: frozenset[str] = frozenset()

    @classmethod
    def of(cls, workspace: Workspace, elections_dir: str | Path) -> Scope:
        others = frozenset(w.election for w in election_workspaces(elections_dir) if w.election)
        return cls(workspace.election, frozenset() if workspace.election else others)

    @property
    def is_everything(self) -> bool:
        return self.election is None and not self.separate

    def condition(self) -> ColumnElement[bool]:
        """SQLAlchemy condition on ``constituencies``: the constituency is in the scope (by its
        election, or, for a contract of no known election, by the workspace that counts it)."""
        from election_pipeline.db.models import Constituency

        election, workspace = Constituency.election_id, Constituency.workspace
        if self.election is not None:
            return or_(election == self.election, and_(election.is_(None), workspace == self.election))
        if not self.separate:
            return true()
        return or_(
            and_(election.is_(None), workspace.is_(None)),
            and_(election.is_not(None), election.not_in(sorted(self.separate))),
        )

    def owns(self, constituency_column: Any) -> ColumnElement[bool]:
        """SQLAlchemy condition on a column holding a constituency id (``hourly_stats``,
        ``alerts``, ``transactions``): the constituency is in the scope. A constituency the
        operational database does not know yet counts as one of no known election, counted
        by the shared workspace."""
        if self.is_everything:
            return true()
        from election_pipeline.db.models import Constituency

        mine = constituency_column.in_(select(Constituency.id).where(self.condition()))
        if not self.holds(None):
            return mine
        return or_(mine, constituency_column.not_in(select(Constituency.id)))

    def holds(self, election: str | None, workspace: str | None = None) -> bool:
        """Whether a constituency of ``election`` (None: no known election, counted by
        ``workspace``, None: the shared one) is in the scope."""
        if self.election is not None:
            return election == self.election or (election is None and workspace == self.election)
        if election is None:
            return workspace is None
        return election not in self.separate

    def refusal(self, contract_id: str, known: Mapping[str, tuple[str | None, str | None]]) -> str | None:
        """Why the ingest of this scope's workspace does not count ``contract_id`` (``known``
        gives each recorded contract's election and, for one of no known election, the
        workspace that counts it; absent: a contract never seen), or None when it does. An
        election's workspace takes a contract never seen as one it counts; a contract of no
        known election stays with the workspace that counted it first."""
        if contract_id not in known:
            return None
        election, workspace = known[contract_id]
        if self.holds(election, workspace):
            return None
        if election is None:
            where = f"the workspace of election {workspace}" if workspace else "the shared workspace"
            return f"contract {contract_id} is of no known election and is counted by {where}, where it arrived first"
        if self.election is not None:
            return (
                f"contract {contract_id} is a constituency of election {election}, not of {self.election} "
                "whose drop folder this is"
            )
        return f"contract {contract_id} is a constituency of election {election}, which has a workspace of its own"

    def describe(self) -> str:
        if self.election is not None:
            return f"election {self.election}"
        if self.separate:
            return f"every election but {', '.join(sorted(self.separate))}"
        return "every election"


def constituency_elections(engine: Engine) -> dict[str, tuple[str | None, str | None]]:
    """Every constituency the operational database knows: its election (None: none) and, for
    one of no known election, the workspace that counts it (None: the shared one)."""
    from election_pipeline.db.models import Constituency

    with engine.connect() as conn:
        rows = conn.execute(select(Constituency.id, Constituency.election_id, Constituency.workspace)).tuples().all()
    return {cid: (election, workspace) for cid, election, workspace in rows}


def contract_admission(known: Mapping[str, tuple[str | None, str | None]], scope: Scope) -> Callable[[str], str | None]:
    """For the ingest: why a contract's lines are not counted in ``scope``'s workspace (None:
    they are), by what the operational database records of each contract
    (:func:`constituency_elections`)."""
    return lambda contract_id: scope.refusal(contract_id, known)


def named_contract(path: Path) -> str | None:
    """The contract a file's name gives: a ``.csv`` export's, or a whole-voting archive's
    (``<contractId>.zip``, ``<contractId>_dump.zip``); None for any other file."""
    from election_pipeline.ingest.export_files import FileRefused, contract_id_from_name, whole_voting_contract

    if path.name.lower().endswith(".csv"):
        try:
            return contract_id_from_name(path.name)
        except FileRefused:
            return None
    return whole_voting_contract(path.name)


@dataclass(frozen=True)
class Forwarded:
    """A file of the shared drop folder handed to its election's workspace."""

    name: str
    election: str
    target: Path


def forward_to_workspaces(
    files: list[Path], known: Mapping[str, tuple[str | None, str | None]], elections_dir: str | Path
) -> tuple[list[Path], list[Forwarded]]:
    """For the shared workspace's run: move every file of ``files`` whose name gives a contract
    of an election with a workspace of its own into that workspace's drop folder (its sensor
    takes it from there), and return the files left to read here and those handed over.

    The move is a copy under a ``.part`` name in the workspace's folder (which no reader
    takes), renamed into place, then the original removed: a stop in between leaves the file
    in both folders, and the workspace's ledger knows the second copy. A file whose name is
    taken in the target folder gets a unique suffix."""
    by_election = {ws.election: ws for ws in election_workspaces(elections_dir)}
    kept: list[Path] = []
    handed: list[Forwarded] = []
    for path in files:
        contract = None if path.is_symlink() else named_contract(path)
        election = known.get(contract, (None, None))[0] if contract else None
        ws = by_election.get(election) if election else None
        if ws is None or election is None:
            kept.append(path)
            continue
        ws.input_dir.mkdir(parents=True, exist_ok=True)
        target = ws.input_dir / path.name
        if target.exists():
            stem, dot, suffix = path.name.partition(".")
            target = ws.input_dir / f"{stem}.{uuid.uuid4().hex[:12]}{dot}{suffix}"
        part = target.with_name(target.name + ".part")
        shutil.copy2(path, part)
        os.replace(part, target)
        path.unlink()
        handed.append(Forwarded(path.name, election, target))
    return kept, handed


#: The scope of a run when no election has a workspace of its own: every constituency.
EVERYTHING = Scope()
