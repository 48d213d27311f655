"""Bringing a database's schema to the current Alembic revision (SQLite and PostgreSQL).

Migrations live in ``fieldid/store/migrations/versions`` and keep the revision ids they were
written with (``0001`` …), so a workspace made before the storage kernel still upgrades.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

from fieldid.store.engine import TRAINING_SCHEMA, is_postgres

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextmanager
def migrating(engine: Engine) -> Iterator[tuple[Connection, Config]]:
    """A connection in one transaction, and the Alembic configuration bound to it.

    SQLite: foreign keys are off meanwhile. A migration that alters a table there copies it to
    a new one and drops the old, and with foreign keys on, dropping ``enrollment_images`` would
    delete every template through ``ON DELETE CASCADE``. PostgreSQL: migrations of processes
    starting at once are serialised by an advisory lock."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.connect() as conn:
        sqlite = not is_postgres(engine.url)
        if sqlite:  # outside any transaction, where SQLite honours it
            conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
        try:
            with conn.begin():
                if not sqlite:
                    conn.execute(text("SELECT pg_advisory_xact_lock(7310542)"))
                    if conn.execute(text("SHOW search_path")).scalar() == TRAINING_SCHEMA:
                        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {TRAINING_SCHEMA}"))
                cfg.attributes["connection"] = conn
                yield conn, cfg
        finally:
            if sqlite:
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=ON")  # type: ignore[union-attr]


def upgrade(engine: Engine) -> None:
    """Apply every pending migration (a new database gets the whole schema)."""
    with migrating(engine) as (_conn, cfg):
        command.upgrade(cfg, "head")


def downgrade(engine: Engine, revision: str) -> None:
    """Undo migrations down to ``revision`` (tests of the migrations themselves)."""
    with migrating(engine) as (_conn, cfg):
        command.downgrade(cfg, revision)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev


def head_revision() -> str | None:
    head: str | None = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    return head
