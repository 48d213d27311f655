"""ids never reused on SQLite: AUTOINCREMENT on the tables whose ids other data names

SQLite gives a table without ``AUTOINCREMENT`` the highest id in it plus one, so after the
newest person, template, search… is deleted (an erasure, a purge) the next row would take the
deleted one's id, which audit entries, the index outbox, the vector index and links still
name. With ``AUTOINCREMENT`` SQLite remembers the highest id ever given (``sqlite_sequence``)
and never gives it again. SQLite cannot add it to a table: each table is rebuilt (Alembic batch
mode: a copy with the same columns, constraints, indexes and rows, then a rename); foreign keys
are off meanwhile (``store.migrate``). A row deleted *before* this migration may still have its
id given once more (SQLite starts the count at the highest id the table holds).

PostgreSQL: nothing to do (a sequence never gives an id twice).

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

#: The tables (as of this revision) whose ids other data names.
TABLES = (
    "operators",
    "api_tokens",
    "persons",
    "enrollment_images",
    "templates",
    "retemplate_jobs",
    "record_sources",
    "person_links",
    "records",
    "record_corrections",
    "review_items",
    "person_merges",
    "searches",
    "adjudications",
    "exports",
    "document_checks",
    "location_areas",
    "location_approvals",
)


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in TABLES:
        with op.batch_alter_table(
            table,
            recreate="always",
            table_kwargs={"sqlite_autoincrement": autoincrement},
        ):
            pass


def upgrade() -> None:
    _rebuild(True)


def downgrade() -> None:
    _rebuild(False)
