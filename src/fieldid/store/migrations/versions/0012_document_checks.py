"""document checks: documents presented at an encounter, as read and verified (issue 12)

``document_checks``: one row per document check (evidence level, check states, the 1:1 result,
whether it settled the encounter, the search that followed and why). The data page photo and
the chip's data groups are held only while the encounter is open. Self-contained: refers to no
other table (``search_id`` is not a foreign key).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "document_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.Column("receipt_code", sa.String(length=16), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("case_ref", sa.String(length=200), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("evidence", sa.String(length=20), nullable=False),
        sa.Column("expiry_state", sa.String(length=20), nullable=False),
        sa.Column("document", sa.JSON(), nullable=True),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("face", sa.JSON(), nullable=True),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("failed_because", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("search_id", sa.Integer(), nullable=True),
        sa.Column("search_reason", sa.Text(), nullable=True),
        sa.Column("document_image", sa.LargeBinary(), nullable=True),
        sa.Column("chip_data", sa.LargeBinary(), nullable=True),
        sa.Column("data_purged_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("receipt_code"),
    )
    with op.batch_alter_table("document_checks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_document_checks_audit_seq"), ["audit_seq"])
        batch_op.create_index(batch_op.f("ix_document_checks_checked_at"), ["checked_at"])
        batch_op.create_index(batch_op.f("ix_document_checks_status"), ["status"])
        batch_op.create_index(batch_op.f("ix_document_checks_search_id"), ["search_id"])


def downgrade() -> None:
    with op.batch_alter_table("document_checks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_document_checks_search_id"))
        batch_op.drop_index(batch_op.f("ix_document_checks_status"))
        batch_op.drop_index(batch_op.f("ix_document_checks_checked_at"))
        batch_op.drop_index(batch_op.f("ix_document_checks_audit_seq"))
    op.drop_table("document_checks")
