"""keyring: facts about the workspace's keys, and keys wrapped by its key-encryption key

Biometric columns (``templates.vector``, ``enrollment_images.thumbnail``, ``probes.image``,
``probes.template``, ``document_checks.document_image`` and ``chip_data``,
``enrollment_pixels.data``) keep their types: from now on they hold sealed records
(``fieldid.keys.envelope``). Values stored before are sealed in place when the workspace is
next opened with its key (``fieldid.store.keys.seal_plaintext``: in batches, each its own
transaction, so an interrupted run resumes), not here: a migration has no key. A downgrade keeps
a keyring that holds keys (dropping it would leave the sealed data unreadable for good).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "keyring" in sa.inspect(op.get_bind()).get_table_names():
        return  # kept by a downgrade because it held keys (below)
    op.create_table(
        "keyring",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("kek_id", sa.String(length=16), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    # A keyring that holds keys is kept: the biometric data stays sealed after a downgrade, and
    # without the record-hash key and the workspace id it could never be read again.
    if op.get_bind().execute(sa.text("SELECT count(*) FROM keyring")).scalar():
        return
    op.drop_table("keyring")
