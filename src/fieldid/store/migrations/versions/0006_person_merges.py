"""person merges: two people a supervisor merged, with what the merged person was and what moved

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "person_merges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kept_person_id", sa.Integer(), nullable=False),
        sa.Column("kept_external_id", sa.String(length=200), nullable=False),
        sa.Column("merged_person_id", sa.Integer(), nullable=False),
        sa.Column("merged_external_id", sa.String(length=200), nullable=False),
        sa.Column("merged_display_name", sa.String(length=200), nullable=False),
        sa.Column("merged_synthetic", sa.Boolean(), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("actor_role", sa.String(length=40), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("review_item_id", sa.Integer(), nullable=True),
        sa.Column("images_moved", sa.Integer(), nullable=False),
        sa.Column("images_dropped", sa.Integer(), nullable=False),
        sa.Column("templates_moved", sa.Integer(), nullable=False),
        sa.Column("templates_dropped", sa.Integer(), nullable=False),
        sa.Column("records_moved", sa.Integer(), nullable=False),
        sa.Column("links_moved", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("person_merges", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_person_merges_kept_external_id"), ["kept_external_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_person_merges_merged_person_id"), ["merged_person_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_person_merges_merged_external_id"), ["merged_external_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("person_merges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_merges_merged_external_id"))
        batch_op.drop_index(batch_op.f("ix_person_merges_merged_person_id"))
        batch_op.drop_index(batch_op.f("ix_person_merges_kept_external_id"))
    op.drop_table("person_merges")
