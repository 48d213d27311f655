"""A migration's round trip: head → down to the revision before it → head again, on the test's
backend."""

from __future__ import annotations

from pathlib import Path

from helpers_storage import Backend


def round_trip(backend: Backend, tmp_path: Path, before: str, table: str) -> None:
    """The migration after ``before`` creates ``table``; its downgrade drops it; upgrading again
    brings the database back to head with the table."""
    from sqlalchemy import inspect

    from fieldid.store import migrate
    from fieldid.store.engine import make_engine

    engine = make_engine(backend.database_url() or f"sqlite:///{tmp_path / 'm.db'}")
    try:
        migrate.upgrade(engine)
        assert table in inspect(engine).get_table_names()
        migrate.downgrade(engine, before)
        assert migrate.current_revision(engine) == before
        assert table not in inspect(engine).get_table_names()
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == migrate.head_revision()
        assert table in inspect(engine).get_table_names()
    finally:
        engine.dispose()
