"""election-pipeline: the command line of the election-monitoring pipeline.

* ``run``: materialise the whole asset graph once (every file now in the input folder),
  with every check, and print what was found.
* ``sample``: write a sample election into the input and reference folders.
* ``summary``: print what the operational database holds.
* ``workspace``: give an election its own drop folder and DuckDB store (``workspace --help``).
* ``report``: metrics of an election, a constituency or hour by hour (``report --help``).
* ``alerts``: list, show, assign, note, set the status of and snooze alerts (``alerts --help``).
* ``tokens``: create, list and revoke the HTTP API's bearer tokens (``tokens --help``).
* ``serve``: serve the HTTP API (docs/api.md).

Each group of subcommands lives in its own module with a ``register(subparsers)``
function, listed in ``COMMAND_MODULES``. Settings come from the ``ELECTION_*`` environment
variables (see the README).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

COMMAND_MODULES = ("commands_run", "workspaces", "report", "alerts", "tokens", "serve")


class ArgumentParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, exit status 2:
    ``<command>: error: <what is wrong> (see <command> --help)``, with any control
    character of the arguments escaped. Subcommand parsers are of this class too."""

    def error(self, message: str) -> NoReturn:
        from .alerts import printable

        self.exit(2, f"{self.prog}: error: {printable(message)} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="election-pipeline", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, LookupError, FileExistsError, FileNotFoundError) as exc:
        print(f"election-pipeline: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
