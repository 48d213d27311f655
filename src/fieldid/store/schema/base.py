"""The one declarative base every table of fieldid belongs to.

Each area's module (``people``, ``records``, ``searches``, ``access``, ``audit``) imports only this
base; :mod:`fieldid.store.schema` imports them all, so ``Base.metadata`` is complete wherever the
package is imported (Alembic's ``env.py``, ``fieldid db copy``).
"""

from __future__ import annotations

from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass
