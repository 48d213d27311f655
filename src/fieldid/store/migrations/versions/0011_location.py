"""location: a search's coarse location, sensitive areas and supervisors' approvals (issue 17.3)

- ``searches``: ``location`` (the coarse cell the phone sent: {lat, lon, grid_deg}),
  ``location_areas`` (the sensitive areas it lay in), ``location_approval_id``. Searches made
  before have none (location was never recorded): the columns stay NULL.
- ``location_areas``: sensitive areas (GeoJSON polygons with a kind and an optional window).
- ``location_approvals``: approvals asked for by a search in an area that needs one.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("location", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("location_areas", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("location_approval_id", sa.Integer(), nullable=True))
    op.create_table(
        "location_areas",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("geometry", sa.JSON(), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("location_areas") as batch:
        batch.create_index(batch.f("ix_location_areas_kind"), ["kind"], unique=False)
        batch.create_index(batch.f("ix_location_areas_min_lat"), ["min_lat"], unique=False)
    op.create_table(
        "location_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("case_ref", sa.String(length=200), nullable=False),
        sa.Column("location", sa.JSON(), nullable=False),
        sa.Column("areas", sa.JSON(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("request_seq", sa.Integer(), nullable=False),
        sa.Column("decided_by", sa.String(length=200), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decision_seq", sa.Integer(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("search_id", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("location_approvals") as batch:
        batch.create_index(batch.f("ix_location_approvals_status"), ["status"], unique=False)
        batch.create_index(batch.f("ix_location_approvals_operator"), ["operator"], unique=False)


def downgrade() -> None:
    op.drop_table("location_approvals")
    op.drop_table("location_areas")
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("location_approval_id")
        batch.drop_column("location_areas")
        batch.drop_column("location")
