"""``election-pipeline workspace``: the elections that have a drop folder and DuckDB store of
their own (docs/architecture.md#several-elections-at-once).

* ``workspace add <election>``: make the election's workspace under ``ELECTION_ELECTIONS_DIR``
  and move its rows out of the shared store (the migration of an existing single store);
  running it again finishes a move that was stopped;
* ``workspace list``: the workspaces, their folders and what their stores hold.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from election_pipeline.settings import load_settings


def cmd_add(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from election_pipeline.analytics.store_move import copy_election, remove_moved
    from election_pipeline.db.models import Constituency
    from election_pipeline.db.session import get_engine, upgrade_database
    from election_pipeline.defs.resources import WarehouseResource
    from election_pipeline.workspaces import create_workspace, election_workspaces, planned_workspace

    settings = load_settings()
    engine = get_engine(settings.database_url)
    upgrade_database(engine)
    election = args.election
    known = {ws.election for ws in election_workspaces(settings.elections_dir)}
    with engine.connect() as conn:
        ids = sorted(conn.execute(select(Constituency.id).where(Constituency.election_id == election)).scalars())
    shared_path = Path(settings.duckdb_path)
    shared = (
        WarehouseResource(database=str(shared_path), connection_config={"memory_limit": settings.duckdb_memory_limit})
        if shared_path.exists()
        else None
    )
    if election not in known:
        ws = planned_workspace(settings.elections_dir, election, engine)
        if shared is not None:
            with shared.connect() as duck:
                for line in copy_election(duck, ws.duckdb_path, ids).lines():
                    print(f"  {line}")
        create_workspace(ws)  # the marker: from now on the shared workspace leaves the election alone
        print(f"Workspace of election {election}: drop its files into {ws.input_dir}")
    else:
        print(f"Election {election} has a workspace already; finishing the move of its rows")
    if shared is not None:
        with shared.connect() as duck:
            for line in remove_moved(duck, ids, election).lines():
                print(f"  {line}")
    print(
        f"  {len(ids)} constituencies of {election}; its next run (the sensor's, the schedule's or "
        "`election-pipeline run`) publishes its figures from the new store"
    )
    return 0


def cmd_list(_args: argparse.Namespace) -> int:
    import duckdb

    from election_pipeline.workspaces import all_workspaces, shared_workspace

    settings = load_settings()
    for ws in all_workspaces(shared_workspace(settings), settings.elections_dir):
        held = "no store yet"
        if ws.duckdb_path.exists():
            try:
                with duckdb.connect(str(ws.duckdb_path), read_only=True) as duck:
                    n, c = duck.execute(
                        "SELECT count(*), count(DISTINCT constituency_id) FROM raw_transactions"
                    ).fetchall()[0]
                held = f"{n:,} transactions of {c} constituencies"
            except duckdb.Error as err:  # a run holds it, or it predates the schema
                held = f"store not readable now ({str(err).splitlines()[0][:80]})"
        print(f"{ws.tag:<24} {held}\n  input  {ws.input_dir}\n  store  {ws.duckdb_path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("workspace", help="election workspaces: a drop folder and DuckDB store per election")
    wsub = p.add_subparsers(dest="workspace_command", required=True)
    add = wsub.add_parser(
        "add",
        help="give an election its own drop folder and store, moving its rows out of the shared store",
    )
    add.add_argument("election", help="the election id (as in elections.csv)")
    add.set_defaults(func=cmd_add)
    lst = wsub.add_parser("list", help="the workspaces and what their stores hold")
    lst.set_defaults(func=cmd_list)
