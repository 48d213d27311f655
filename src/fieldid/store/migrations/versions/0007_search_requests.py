"""search requests: short-lived idempotency keys (fieldid.adjudication.idempotency)

A retried search (the phone app's offline queue) sends the same Idempotency-Key; this table links
(operator, key) to the search the first request made, so a retry runs no second search. Rows are
deleted one hour after they are written. Self-contained: no other table refers to it and it refers
to none, so it moves with the searches tables as one unit.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "search_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("request_sha256", sa.String(length=64), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("operator", "key", name="uq_search_requests_operator_key"),
    )
    with op.batch_alter_table("search_requests", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_search_requests_created_at"), ["created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("search_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_search_requests_created_at"))
    op.drop_table("search_requests")
