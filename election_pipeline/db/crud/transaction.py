"""Transaction CRUD (docs/data-model.md#crud)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select

from ..models import Transaction
from ..schemas.base import to_naive_utc
from ..schemas.transaction import (
    TransactionCreate,
    TransactionUpdate,
    validate_transaction_type,
)
from .base import BaseCRUD


class TransactionCRUD(BaseCRUD[Transaction, TransactionCreate, TransactionUpdate]):
    """Stored transactions. List methods return them oldest first; ``skip``/``limit``
    page through long lists (``limit=None``: all)."""

    model = Transaction
    create_schema = TransactionCreate
    update_schema = TransactionUpdate

    def _paged(self, stmt: Select[Any], skip: int, limit: int | None) -> list[Transaction]:
        stmt = stmt.order_by(Transaction.timestamp, Transaction.tx_id).offset(skip)
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._list(stmt)

    def get_by_tx_id(self, tx_id: str) -> Transaction | None:
        """The transaction with this export id (``nestedTxId``), or ``None``."""
        return self.db.scalars(select(Transaction).where(Transaction.tx_id == tx_id)).first()

    def get_by_constituency(
        self, *, constituency_id: str, skip: int = 0, limit: int | None = None
    ) -> list[Transaction]:
        """Transactions of one constituency."""
        stmt = select(Transaction).where(Transaction.constituency_id == constituency_id)
        return self._paged(stmt, skip, limit)

    def get_by_type(self, *, type: str, skip: int = 0, limit: int | None = None) -> list[Transaction]:
        """Transactions of one operation (``vote``, ``blindSigIssue``, ...; any case)."""
        canonical = validate_transaction_type(type)
        stmt = select(Transaction).where(Transaction.type == canonical)
        return self._paged(stmt, skip, limit)

    def get_by_time_range(
        self,
        *,
        start_time: datetime,
        end_time: datetime,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[Transaction]:
        """Transactions with ``start_time <= timestamp < end_time`` (naive = UTC)."""
        stmt = select(Transaction).where(
            Transaction.timestamp >= to_naive_utc(start_time),
            Transaction.timestamp < to_naive_utc(end_time),
        )
        return self._paged(stmt, skip, limit)

    def search(
        self,
        *,
        constituency_id: str | None = None,
        type: str | None = None,
        start_time: datetime | None = None,
        end_time: datetime | None = None,
        block_height: int | None = None,
        skip: int = 0,
        limit: int | None = 100,
    ) -> list[Transaction]:
        """Transactions matching every filter given: a constituency, an operation (any
        case; ``ValueError`` for an unknown one), ``start_time <= timestamp < end_time``
        (naive = UTC) and a block height; oldest first."""
        stmt = select(Transaction)
        if constituency_id is not None:
            stmt = stmt.where(Transaction.constituency_id == constituency_id)
        if type is not None:
            stmt = stmt.where(Transaction.type == validate_transaction_type(type))
        if start_time is not None:
            stmt = stmt.where(Transaction.timestamp >= to_naive_utc(start_time))
        if end_time is not None:
            stmt = stmt.where(Transaction.timestamp < to_naive_utc(end_time))
        if block_height is not None:
            stmt = stmt.where(Transaction.block_height == block_height)
        return self._paged(stmt, skip, limit)

    def get_by_tx_ids(self, tx_ids: list[str]) -> list[Transaction]:
        """The transactions with these export ids (those that are stored), oldest first."""
        if not tx_ids:
            return []
        return self._paged(select(Transaction).where(Transaction.tx_id.in_(tx_ids)), 0, None)

    def get_by_block_height(self, *, block_height: int) -> list[Transaction]:
        """Transactions of one block (only sources that carry a block height have one)."""
        stmt = select(Transaction).where(Transaction.block_height == block_height)
        return self._paged(stmt, 0, None)


__all__ = ["TransactionCRUD"]
