"""Transaction: one blockchain transaction of a constituency's contract (docs/data-model.md#transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, TimestampMixin, UUIDMixin

if TYPE_CHECKING:
    from .constituency import Constituency


class Transaction(UUIDMixin, TimestampMixin, Base):
    """A stored transaction. ``tx_id`` is the export's ``nestedTxId`` (unique).

    ``type`` is the contract operation (``vote``, ``blindSigIssue``, ...). ``block_height`` is
    the block it came in when it was read from a block dump, null for the 12-field export,
    which carries none. A transaction stands unless
    ``is_rolled_back`` or ``in_conflict``; it counts unless also ``is_rejected``.

    ``raw_data`` is not the line: it keeps the fields no figure uses and what locates the line,
    as written by the publish step (``stages/publish.py``): ``type`` (the export's 103/104),
    ``version``, ``ts`` (epoch milliseconds), ``fee``, ``feeAssetId``, ``failKey`` (the ``diff``
    key starting with ``FAIL``, or null) and ``line`` (``file``: the file, or
    ``archive.zip::member.csv``; ``number``: the line number). The whole line, ballot and
    signature included, stays in the processed file. ``operation_data`` holds what the pipeline
    derived from the line (operation, rejected, bulletins, voters added, line number)
    (docs/data-model.md#transaction).
    """

    __tablename__ = "transactions"
    __table_args__ = (
        Index("ix_transactions_constituency_id_timestamp", "constituency_id", "timestamp"),
        Index("ix_transactions_type_constituency_id", "type", "constituency_id"),
        Index("ix_transactions_block_height", "block_height"),
    )

    tx_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    constituency_id: Mapped[str] = mapped_column(ForeignKey("constituencies.id"), nullable=False)
    block_height: Mapped[int | None] = mapped_column(BigInteger)
    timestamp: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    type: Mapped[str] = mapped_column(String(40), nullable=False)
    sender: Mapped[str | None] = mapped_column(String(255))
    is_rejected: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    is_rolled_back: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    #: Another copy of this ``tx_id`` with different content was read: no copy stands.
    in_conflict: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false(), nullable=False)
    bulletins: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    source_file: Mapped[str | None] = mapped_column(String(512))
    raw_data: Mapped[dict[str, Any]] = mapped_column(nullable=True)
    operation_data: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)

    constituency: Mapped[Constituency] = relationship(back_populates="transactions")
