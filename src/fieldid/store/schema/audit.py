"""The audit log: entries, and the head row appends lock.

``audit_entries`` is append-only and hash-chained (``fieldid.store.audit``). ``audit_head`` holds
one row (id 1): the seq and hash of the last entry written. Every append locks it in its
transaction (``SELECT … FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already holds the
database's write lock), reads the next seq and previous hash from it, and moves it forward, so
any number of processes and hosts append to one chain without a seq taken twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldid.store.schema.base import Base


class AuditEntry(Base):
    """One attributable use or change. Append-only; each entry's hash covers the previous one."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    event: Mapped[str] = mapped_column(String(40), index=True)
    operator: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(String(100), nullable=True)
    case_ref: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: Canonical JSON of everything else the entry records.
    payload: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The last entry appended (seq 0 and the genesis hash while the log is empty)."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
