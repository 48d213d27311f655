"""A migration's round trip: head → down to the revision before it → head again."""

from __future__ import annotations

from pathlib import Path


def round_trip(tmp_path: Path, before: str, table: str) -> None:
    """The migration after ``before`` creates ``table``; its downgrade drops it; upgrading again
    brings the database back to head with the table."""
    from alembic import command
    from sqlalchemy import inspect

    from fieldid.gallery import db

    engine = db.make_engine(tmp_path / "m.db")
    db.upgrade(engine)
    assert table in inspect(engine).get_table_names()
    cfg = db.alembic_config(str(engine.url))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, before)
    assert db.current_revision(engine) == before
    assert table not in inspect(engine).get_table_names()
    db.upgrade(engine)
    assert db.current_revision(engine) == db.head_revision()
    assert table in inspect(engine).get_table_names()
