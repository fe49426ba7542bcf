"""``GET /api/tokens`` and ``DELETE /api/tokens/{id}``: token management for admins (tokens are
created with ``election-pipeline tokens create``, where the new secret can be shown safely)."""

from __future__ import annotations

from fastapi import APIRouter

from election_pipeline.api.deps import DB, Admin
from election_pipeline.api.models import TokenOut
from election_pipeline.api.params import Id
from election_pipeline.api.routers.common import errors
from election_pipeline.api.tokens import list_tokens, revoke_tokens
from election_pipeline.db.models import ApiToken

router = APIRouter(prefix="/api/tokens", tags=["tokens"], responses=errors(401, 403, 422))


@router.get("", response_model=list[TokenOut])
def get_tokens(db: DB, _caller: Admin) -> list:
    """Every token, revoked ones included (names, roles and times; never a secret)."""
    return list_tokens(db)


@router.delete("/{token_id}", response_model=TokenOut, responses=errors(404))
def revoke_token(token_id: Id, db: DB, _caller: Admin) -> object:
    """Revoke the token with this id: it opens nothing from now on."""
    if db.get(ApiToken, token_id) is None:
        raise LookupError(f"no token has the id {token_id[:60]!r}")
    return revoke_tokens(db, token_id)[0]
