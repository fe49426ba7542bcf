"""Bearer tokens of the HTTP API: created, listed and revoked (``election-pipeline tokens``),
checked on every request (docs/api.md#tokens).

A token is ``ep_`` followed by 43 URL-safe characters from :func:`secrets.token_urlsafe`
(256 random bits). Only its SHA-256 is stored (``api_tokens.token_hash``); the token itself
is shown once, when it is made. A presented token is hashed, looked up by its hash and the
stored hash compared with :func:`hmac.compare_digest`. Tokens are never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from election_pipeline.db.models import ApiToken, utcnow

#: What every token starts with (tells a token from other secrets in a configuration).
PREFIX = "ep_"
#: The longest token name.
MAX_NAME = 255


class Role(StrEnum):
    """What a token may do. Each role may do what the ones before it may."""

    OBSERVER = "observer"  # reads
    ANALYST = "analyst"  # also triages alerts
    ADMIN = "admin"  # also manages tokens


ROLES: tuple[str, ...] = tuple(Role)
RANK: dict[str, int] = {role: rank for rank, role in enumerate(Role)}


def hash_token(token: str) -> str:
    """The hex SHA-256 of a token, as stored."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def may(role: str | None, needed: Role) -> bool:
    """Whether ``role`` may do what ``needed`` may."""
    return role is not None and RANK.get(role, -1) >= RANK[needed]


def create_token(db: Session, *, name: str, role: str) -> tuple[ApiToken, str]:
    """A new token for ``name`` with ``role``: the stored row and the token itself (shown
    once; only its hash is kept). ``ValueError`` for an unknown role or a bad name."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
    name = (name or "").strip()
    if not name:
        raise ValueError("the token's name must not be empty")
    if len(name) > MAX_NAME:
        raise ValueError(f"the token's name is {len(name)} characters long; at most {MAX_NAME} are allowed")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise ValueError("the token's name must not contain control characters")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(name=name, role=role, token_hash=hash_token(token))
    db.add(row)
    db.commit()
    db.refresh(row)
    return row, token


def list_tokens(db: Session, *, include_revoked: bool = True) -> list[ApiToken]:
    """Every token (never its secret), the oldest first."""
    stmt = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    if not include_revoked:
        stmt = stmt.where(ApiToken.revoked_at.is_(None))
    return list(db.scalars(stmt))


def revoke_tokens(db: Session, key: str) -> list[ApiToken]:
    """Revoke the token whose id is ``key`` (or starts with it, at least 8 characters, if
    only one does), else every unrevoked token named ``key``. Returns the tokens revoked;
    ``LookupError`` when none matches."""
    key = (key or "").strip()
    found: list[ApiToken] = []
    if key:
        exact = db.get(ApiToken, key)
        if exact is not None:
            found = [exact]
        elif len(key) >= 8:
            found = list(db.scalars(select(ApiToken).where(ApiToken.id.startswith(key, autoescape=True)).limit(2)))
            if len(found) > 1:
                raise LookupError(f"token id prefix {key!r} is ambiguous: give more of the id")
        if not found:
            found = list(db.scalars(select(ApiToken).where(ApiToken.name == key, ApiToken.revoked_at.is_(None))))
    if not found:
        raise LookupError(f"no token has the id or the name {key[:60]!r} (see `election-pipeline tokens list`)")
    now = utcnow()
    for row in found:
        if row.revoked_at is None:
            row.revoked_at = now
    db.commit()
    return found


def authenticate(db: Session, presented: str | None) -> ApiToken | None:
    """The unrevoked token ``presented`` is, or ``None``."""
    if not presented:
        return None
    digest = hash_token(presented)
    row = db.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    if row is None or not hmac.compare_digest(row.token_hash, digest) or row.revoked_at is not None:
        return None
    return row
