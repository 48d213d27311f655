"""The one declarative base every table of fieldid belongs to.

Each area's module (``people``, ``records``, ``searches``, ``access``, ``audit``) imports only this
base; :mod:`fieldid.store.schema` imports them all, so ``Base.metadata`` is complete wherever the
package is imported (Alembic's ``env.py``, ``fieldid db copy``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


#: ``__table_args__`` of every table whose ids other data names (audit entries, the vector
#: index, the index outbox, other rows, links): on SQLite ``INTEGER PRIMARY KEY AUTOINCREMENT``,
#: so an id is never given again after its row is deleted (without it SQLite gives the highest
#: deleted id to the next row). PostgreSQL's sequences never reuse an id. Migration 0015.
NEVER_REUSED: dict[str, Any] = {"sqlite_autoincrement": True}
