"""Declarative base and the mixins every operational table shares (docs/data-model.md#conventions).

All datetimes in the operational database are naive and in UTC.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import JSON, DateTime, MetaData, String, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: JSON on every engine, JSONB on PostgreSQL.
JSONType = JSON().with_variant(JSONB(), "postgresql")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current instant as a naive UTC datetime."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_uuid() -> str:
    """A random (version 4) UUID as text; about ten times cheaper than ``str(uuid.uuid4())``.
    Random ids keep their first characters distinct, so a short prefix names a row (the
    ``alerts`` commands accept one)."""
    h = os.urandom(16).hex()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


def new_ordered_uuid() -> str:
    """A time-ordered (version 7, RFC 9562) UUID as text, for the rows of tables that grow by
    millions (``transactions``): the creation instant in milliseconds, a finer fraction of
    the millisecond, then 62 random bits.

    Ids made later sort later, so the table's primary-key index grows at its end instead of
    at random places (which, once the index no longer fits the database's cache, costs a
    page read per row). The first 12 characters are the same for ids made in the same
    millisecond, so such ids are not for people to abbreviate."""
    ms, sub = divmod(time.time_ns(), 1_000_000)
    t = f"{ms:012x}"
    r = os.urandom(8).hex()
    return f"{t[:8]}-{t[8:]}-7{sub * 4096 // 1_000_000:03x}-{_VARIANT[r[0]]}{r[1:4]}-{r[4:]}"


_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


class Base(DeclarativeBase):
    """Base class for all SQLAlchemy models."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSONType, list[Any]: JSONType}

    if TYPE_CHECKING:
        # SQLAlchemy declares ``__table__`` as any FromClause; every model here is mapped to a
        # Table (declared with ``__tablename__``), which the bulk writers and Core statements take.
        __table__: ClassVar[Table]


class UUIDMixin:
    """A UUID (as text) primary key."""

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_uuid)


class TimestampMixin:
    """``created_at`` and ``updated_at``, kept by the ORM and by the bulk writers."""

    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow, nullable=False)
