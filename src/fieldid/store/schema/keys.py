"""The keyring's rows: facts about the workspace's keys, and keys wrapped by its KEK.

The key-encryption key itself is never here (``fieldid.keys.sources``: a file outside the
workspace, an environment variable, or a command). Rows, by ``name``:

- ``kek``: the workspace id (names the default key file), the fingerprint of the KEK every data
  key is wrapped under, and when biometric data stored before encryption was sealed;
- ``record-hash``: the HMAC key for identity-document numbers, wrapped by the KEK;
- ``rotation``: present while ``fieldid keys rotate`` is under way (the new KEK's fingerprint
  and where it comes from), so an interrupted rotation resumes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from fieldid.store.schema.base import Base


class KeyringEntry(Base):
    __tablename__ = "keyring"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Fingerprint of the KEK the row is about, or that wraps ``wrapped``.
    kek_id: Mapped[str] = mapped_column(String(16))
    #: A key wrapped by the KEK (``Keyring.wrap_key``), or None.
    wrapped: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    #: Facts that are not secret (workspace id, where a key comes from, progress).
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
