"""Bringing a database's schema to the current Alembic revision (SQLite and PostgreSQL).

Migrations live in ``fieldid/store/migrations/versions`` and keep the revision ids they were
written with (``0001`` …), so a workspace made before the storage kernel still upgrades.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from fieldid.store.engine import TRAINING_SCHEMA, is_postgres

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine) -> None:
    """Apply every pending migration (a new database gets the whole schema). On PostgreSQL the
    migrations of concurrent starters are serialised by an advisory lock."""
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        if is_postgres(engine.url):
            conn.execute(text("SELECT pg_advisory_xact_lock(7310542)"))
            if conn.execute(text("SHOW search_path")).scalar() == TRAINING_SCHEMA:
                conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {TRAINING_SCHEMA}"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        rev: str | None = MigrationContext.configure(conn).get_current_revision()
        return rev


def head_revision() -> str | None:
    head: str | None = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    return head
