"""re-templating and the capture source: template generations, stored enrolled pixels, jobs

- ``templates.generation`` (1 for every template so far): the gallery searches only the active
  generation (``gallery_meta`` key ``generation``, 1 when absent); a re-templating writes the new
  model's templates under the next one until its switch (``gallery/retemplate.py``).
- ``enrollment_pixels``: each enrolled image as the pipeline saw it (lossless PNG), so every
  template can be computed again for another model. Images enrolled before this migration have
  none: re-templating reads them from their recorded source path, checked against their SHA-256.
- ``retemplate_jobs``, ``retemplate_failures``: a re-templating's state and the images its new
  model could not template.
- ``searches.capture``: "live" (the field app's camera) or "file"; NULL for searches made
  before it was recorded.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("templates") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), server_default="1", nullable=False))
        batch.create_index("ix_templates_generation_image", ["generation", "image_id"])
    op.create_table(
        "enrollment_pixels",
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["image_id"], ["enrollment_images.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("image_id"),
    )
    op.create_table(
        "retemplate_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("from_model", sa.String(length=200), nullable=False),
        sa.Column("to_model", sa.String(length=200), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("embedder", sa.JSON(), nullable=False),
        sa.Column("options", sa.JSON(), nullable=False),
        sa.Column("operator", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("generation"),
    )
    with op.batch_alter_table("retemplate_jobs") as batch:
        batch.create_index(batch.f("ix_retemplate_jobs_state"), ["state"], unique=False)
    op.create_table(
        "retemplate_failures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.Integer(), nullable=False),
        sa.Column("image_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=80), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["retemplate_jobs.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["image_id"], ["enrollment_images.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "image_id", name="uq_retemplate_failure"),
    )
    with op.batch_alter_table("retemplate_failures") as batch:
        batch.create_index(batch.f("ix_retemplate_failures_job_id"), ["job_id"], unique=False)
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("capture", sa.String(length=8), nullable=True))


def downgrade() -> None:
    conn = op.get_bind()
    meta = sa.table("gallery_meta", sa.column("key", sa.String()), sa.column("value", sa.Text()))
    active = conn.execute(sa.select(meta.c.value).where(meta.c.key == "generation")).scalar()
    templates = sa.table("templates", sa.column("generation", sa.Integer()))
    # Only the active generation's templates can be kept: the schema before has no generations.
    conn.execute(sa.delete(templates).where(templates.c.generation != int(active or 1)))
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("capture")
    with op.batch_alter_table("retemplate_failures") as batch:
        batch.drop_index(batch.f("ix_retemplate_failures_job_id"))
    op.drop_table("retemplate_failures")
    with op.batch_alter_table("retemplate_jobs") as batch:
        batch.drop_index(batch.f("ix_retemplate_jobs_state"))
    op.drop_table("retemplate_jobs")
    op.drop_table("enrollment_pixels")
    with op.batch_alter_table("templates") as batch:
        batch.drop_index("ix_templates_generation_image")
        batch.drop_column("generation")
