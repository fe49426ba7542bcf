"""A small hand-computed election read in several shapes (hourly files, whole-voting
archives, block dumps): the same lines must give the same figures whatever the shape.

Contract W1, hour 08: B1 issues 3 bulletins (each ``maskedSig`` holds a ``;``), V1 and V2
vote. Hour 09: V3 votes, V1 votes again (a revote), V4's vote is rejected.
Expected (transactions, bulletins, votes, revotes, rejected):
  08: (3, 3, 2, 0, 0); 09: (3, 0, 1, 1, 1). Totals: 3 bulletins, 3 voters (V1, V2, V3).
Contract W2, hour 08: B2 issues 1 bulletin, V5 votes: (2, 1, 1, 0, 0).
"""

from __future__ import annotations

import json
from typing import Any

from .conftest import at, bsi, hour, vote

W1 = "W1wdrxMqfGWsXEgTmvdw95omtQ4Gv1Vi4mGAvLYy23DHp"
W2 = "W2wdrxMqfGWsXEgTmvdw95omtQ4Gv1Vi4mGAvLYy23DHq"
#: The lines of each contract and UTC hour.
LINES = {
    (W1, 8): [bsi("B1", at(8, 1), 3, semicolon=True), vote("V1", at(8, 2), "K1"), vote("V2", at(8, 3), "K2")],
    (W1, 9): [vote("V3", at(9, 1), "K3"), vote("V1b", at(9, 2), "K1"), vote("V4", at(9, 3), "K4", rejected=True)],
    (W2, 8): [bsi("B2", at(8, 4), 1, semicolon=True), vote("V5", at(8, 5), "K5")],
}
#: (transactions, bulletins, votes, revotes, rejected) of each contract and hour.
EXPECTED = {
    W1: {hour(8): (3, 3, 2, 0, 0), hour(9): (3, 0, 1, 1, 1)},
    W2: {hour(8): (2, 1, 1, 0, 0)},
}


def stored_without_origin(ws: Any, *, also_drop: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Each transaction as stored, with its JSON fields decoded (so ``\\u003b`` and ``;``
    compare equal when they mean the same) and without the file and line it came from (and
    the columns of ``also_drop``)."""
    dropped = ("id", "source_file", "created_at", "updated_at", *also_drop)
    out = {}
    for tx_id, stored in ws.transactions().items():
        kept = {k: v for k, v in stored.items() if k not in dropped}
        decoded = {k: (json.loads(v) if isinstance(v, str) and v[:1] in "[{" else v) for k, v in kept.items()}
        decoded["raw_data"].pop("line")  # {"file": ..., "number": ...}: where it was read
        decoded["operation_data"].pop("line_number")
        out[tx_id] = decoded
    return out
