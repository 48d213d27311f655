"""accountability: persisted searches, candidates, probes, adjudications, exports

Revision ID: 0003
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "searches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.Column("receipt_code", sa.String(length=16), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("case_ref", sa.String(length=200), nullable=False),
        sa.Column("started_at", TZ, nullable=False),
        sa.Column("ended_at", TZ, nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("threshold", sa.Float(), nullable=False),
        sa.Column("gallery_persons", sa.Integer(), nullable=False),
        sa.Column("gallery_templates", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=40), nullable=False),
        sa.Column("refusal_code", sa.String(length=80), nullable=True),
        sa.Column("quality_unified", sa.Integer(), nullable=True),
        sa.Column("list_kind", sa.String(length=40), nullable=False),
        sa.Column("training", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("closed_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("receipt_code"),
    )
    op.create_index("ix_searches_audit_seq", "searches", ["audit_seq"])
    op.create_index("ix_searches_started_at", "searches", ["started_at"])
    op.create_index("ix_searches_status", "searches", ["status"])

    op.create_table(
        "search_candidates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("fmr", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(["search_id"], ["searches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_search_candidates_search_id", "search_candidates", ["search_id"])
    op.create_index("ix_search_candidates_person_id", "search_candidates", ["person_id"])
    op.create_index("ix_search_candidates_external_id", "search_candidates", ["external_id"])

    op.create_table(
        "probes",
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("image", sa.LargeBinary(), nullable=True),
        sa.Column("template", sa.LargeBinary(), nullable=True),
        sa.Column("quality", sa.Text(), nullable=False),
        sa.Column("captured_at", TZ, nullable=False),
        sa.Column("image_purged_at", TZ, nullable=True),
        sa.Column("template_purged_at", TZ, nullable=True),
        sa.ForeignKeyConstraint(["search_id"], ["searches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("search_id"),
    )
    op.create_index("ix_probes_captured_at", "probes", ["captured_at"])

    op.create_table(
        "adjudications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("search_id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor_name", sa.String(length=200), nullable=False),
        sa.Column("actor_role", sa.String(length=40), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("documents", sa.Text(), nullable=False),
        sa.Column("conflicts", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("second_by", sa.String(length=200), nullable=True),
        sa.Column("second_at", TZ, nullable=True),
        sa.Column("override_by", sa.String(length=200), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("override_at", TZ, nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["search_id"], ["searches.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_adjudications_search_id", "adjudications", ["search_id"])
    op.create_index("ix_adjudications_person_id", "adjudications", ["person_id"])

    op.create_table(
        "exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.Column("purged_at", TZ, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_exports_created_at", "exports", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_exports_created_at", table_name="exports")
    op.drop_table("exports")
    op.drop_index("ix_adjudications_person_id", table_name="adjudications")
    op.drop_index("ix_adjudications_search_id", table_name="adjudications")
    op.drop_table("adjudications")
    op.drop_index("ix_probes_captured_at", table_name="probes")
    op.drop_table("probes")
    op.drop_index("ix_search_candidates_external_id", table_name="search_candidates")
    op.drop_index("ix_search_candidates_person_id", table_name="search_candidates")
    op.drop_index("ix_search_candidates_search_id", table_name="search_candidates")
    op.drop_table("search_candidates")
    op.drop_index("ix_searches_status", table_name="searches")
    op.drop_index("ix_searches_started_at", table_name="searches")
    op.drop_index("ix_searches_audit_seq", table_name="searches")
    op.drop_table("searches")
