"""ApiToken: a bearer token of the HTTP API, stored as its SHA-256 only (docs/api.md#tokens)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UUIDMixin, utcnow


class ApiToken(UUIDMixin, Base):
    """One token: who holds it (``name``), what it may do (``role``: observer, analyst or
    admin) and the hex SHA-256 of its secret. The secret itself is shown once, when the token
    is created, and stored nowhere. A revoked token (``revoked_at`` set) opens nothing."""

    __tablename__ = "api_tokens"

    name: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
