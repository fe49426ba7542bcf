"""``election-pipeline tokens ...``: the HTTP API's bearer tokens (docs/api.md#tokens).

* ``tokens create --role observer|analyst|admin --name NAME``: a new token, printed once,
  as the last word of the last line (only its SHA-256 is stored);
* ``tokens list [--format table|json]``: every token's id, name, role, creation and
  revocation times (never a secret);
* ``tokens revoke ID_OR_NAME``: revoke the token with this id (or a unique prefix of at
  least eight characters), else every unrevoked token with this name.

Settings (``ELECTION_DATABASE_URL``) come from the environment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from election_pipeline.api.tokens import ROLES


@contextmanager
def _session() -> Iterator[Session]:
    from election_pipeline.db.session import get_engine, upgrade_database
    from election_pipeline.settings import load_settings

    engine = get_engine(load_settings().database_url)
    upgrade_database(engine)
    with Session(engine, expire_on_commit=False) as db:
        yield db


def _when(value) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value else "-"


def cmd_create(args: argparse.Namespace) -> int:
    from election_pipeline.api.tokens import create_token

    with _session() as db:
        row, token = create_token(db, name=args.name, role=args.role)
    from election_pipeline.cli.alerts import printable

    print(f"Token {row.id} for {printable(row.name)} ({row.role}) created. It is shown only now; keep it secret.")
    print(f"Send it as `Authorization: Bearer <token>`. Token: {token}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from election_pipeline.api.tokens import list_tokens
    from election_pipeline.cli.alerts import printable

    with _session() as db:
        rows = list_tokens(db)
    if args.format == "json":
        json.dump(
            [
                {
                    "id": r.id,
                    "name": r.name,
                    "role": r.role,
                    "created_at": r.created_at.isoformat() + "Z",
                    "revoked_at": r.revoked_at.isoformat() + "Z" if r.revoked_at else None,
                }
                for r in rows
            ],
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    if not rows:
        print("No tokens. `election-pipeline tokens create --role observer --name NAME` makes one.")
        return 0
    print(f"{'id':<36}  {'role':<8}  {'created (UTC)':<19}  {'revoked (UTC)':<19}  name")
    for r in rows:
        print(f"{r.id:<36}  {r.role:<8}  {_when(r.created_at):<19}  {_when(r.revoked_at):<19}  {printable(r.name)}")
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    from election_pipeline.api.tokens import revoke_tokens
    from election_pipeline.cli.alerts import printable

    with _session() as db:
        rows = revoke_tokens(db, args.key)
    for r in rows:
        print(f"{r.id}: revoked ({printable(r.name)}, {r.role}) at {_when(r.revoked_at)} UTC")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    tokens = sub.add_parser(
        "tokens", help="create, list and revoke the HTTP API's bearer tokens", description=__doc__.split("\n\n")[0]
    )
    cmds = tokens.add_subparsers(dest="tokens_command", required=True)

    p = cmds.add_parser("create", help="a new token (printed once, as the last word of the last line)")
    p.add_argument(
        "--role",
        required=True,
        choices=ROLES,
        help="observer reads; analyst also triages alerts; admin also manages tokens",
    )
    p.add_argument("--name", required=True, help="who or what holds the token (recorded in the alerts' history)")
    p.set_defaults(func=cmd_create)

    p = cmds.add_parser("list", help="every token (never its secret)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("revoke", help="revoke a token by id (or unique id prefix) or every token with a name")
    p.add_argument("key", metavar="ID_OR_NAME")
    p.set_defaults(func=cmd_revoke)
