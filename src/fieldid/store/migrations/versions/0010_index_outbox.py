"""index outbox: template changes waiting for a vector index outside the database

A gallery whose vector index lives outside its database (``[index] backend = "milvus"``, or
pgvector in another database) writes one row per added or removed template here, in the same
transaction as the change; the rows are deleted once the index has applied them
(fieldid.gallery.vectors). Self-contained: no foreign keys either way.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "index_outbox",
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("template_id", sa.Integer(), nullable=False),
        sa.Column("revision", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )


def downgrade() -> None:
    op.drop_table("index_outbox")
