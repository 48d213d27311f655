"""identity records: sources, person links, records, corrections, review items; image provenance

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("authority", sa.String(length=200), nullable=False),
        sa.Column("refresh", sa.String(length=200), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "person_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("subject_key", sa.String(length=200), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_id"], ["record_sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "subject_key", name="uq_link_source_subject"),
    )
    with op.batch_alter_table("person_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_person_links_person_id"), ["person_id"], unique=False)

    op.create_table(
        "records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("event_date", sa.Date(), nullable=True),
        sa.Column("source_record_id", sa.String(length=200), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("raw", sa.JSON(), nullable=False),
        sa.Column("content_sha", sa.String(length=64), nullable=False),
        sa.Column("synthetic", sa.Boolean(), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["source_id"], ["record_sources.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_id", "source_record_id", name="uq_record_source_id"),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index("ix_records_person_date", ["person_id", "event_date"], unique=False)

    op.create_table(
        "record_corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("old_fields", sa.JSON(), nullable=False),
        sa.Column("new_fields", sa.JSON(), nullable=False),
        sa.Column("old_event_date", sa.Date(), nullable=True),
        sa.Column("new_event_date", sa.Date(), nullable=True),
        sa.Column("audit_seq", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["record_id"], ["records.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("record_corrections", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_record_corrections_record_id"), ["record_id"], unique=False
        )

    with op.batch_alter_table("enrollment_images", schema=None) as batch_op:
        batch_op.add_column(sa.Column("record_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("capture_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("provenance", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("thumbnail", sa.LargeBinary(), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_enrollment_images_record_id"), ["record_id"], unique=False
        )
        batch_op.create_foreign_key(
            "fk_enrollment_images_record_id", "records", ["record_id"], ["id"], ondelete="SET NULL"
        )

    op.create_table(
        "review_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("person_id", sa.Integer(), nullable=True),
        sa.Column("other_person_id", sa.Integer(), nullable=True),
        sa.Column("image_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decision", sa.String(length=40), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["image_id"], ["enrollment_images.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["other_person_id"], ["persons.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["person_id"], ["persons.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_review_items_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_review_items_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("review_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_review_items_state"))
        batch_op.drop_index(batch_op.f("ix_review_items_kind"))
    op.drop_table("review_items")
    with op.batch_alter_table("enrollment_images", schema=None) as batch_op:
        batch_op.drop_constraint("fk_enrollment_images_record_id", type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_enrollment_images_record_id"))
        batch_op.drop_column("thumbnail")
        batch_op.drop_column("provenance")
        batch_op.drop_column("capture_date")
        batch_op.drop_column("record_id")
    with op.batch_alter_table("record_corrections", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_record_corrections_record_id"))
    op.drop_table("record_corrections")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index("ix_records_person_date")
    op.drop_table("records")
    with op.batch_alter_table("person_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_person_links_person_id"))
    op.drop_table("person_links")
    op.drop_table("record_sources")
