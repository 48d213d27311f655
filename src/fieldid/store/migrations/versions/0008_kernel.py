"""storage kernel: the audit head row, and a search's read model in its own columns

- ``audit_head``: one row (id 1), the seq and hash of the last entry; every append locks it.
- ``searches``: ``threshold_in_force``, ``rates_unavailable``, ``calibration``,
  ``presented_documents``, ``faces_in_frame``, ``refusal``, ``below_gate``;
  ``search_candidates``: ``above_threshold``, ``meaning``. Filled here, for searches made
  before, from their audit entries (where those are still held); pages and the API read these
  columns from now on, never the audit payload.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("threshold_in_force", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("rates_unavailable", sa.Text(), nullable=True))
        batch.add_column(sa.Column("calibration", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("presented_documents", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("faces_in_frame", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("refusal", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("below_gate", sa.JSON(), nullable=True))
    with op.batch_alter_table("search_candidates") as batch:
        batch.add_column(sa.Column("above_threshold", sa.Boolean(), nullable=True))
        batch.add_column(sa.Column("meaning", sa.Text(), nullable=True))

    conn = op.get_bind()
    entries = sa.table(
        "audit_entries",
        sa.column("seq", sa.Integer()),
        sa.column("hash", sa.String()),
        sa.column("payload", sa.Text()),
    )
    last = conn.execute(
        sa.select(entries.c.seq, entries.c.hash).order_by(entries.c.seq.desc()).limit(1)
    ).first()
    head = sa.table(
        "audit_head", sa.column("id", sa.Integer()), sa.column("seq"), sa.column("hash")
    )
    conn.execute(
        head.insert().values(
            id=1, seq=0 if last is None else last[0], hash=GENESIS if last is None else last[1]
        )
    )
    _backfill(conn, entries)


def _backfill(conn: Any, entries: Any) -> None:
    searches = sa.table(
        "searches",
        sa.column("id", sa.Integer()),
        sa.column("audit_seq", sa.Integer()),
        sa.column("threshold_in_force", sa.JSON()),
        sa.column("rates_unavailable", sa.Text()),
        sa.column("calibration", sa.String()),
        sa.column("presented_documents", sa.JSON()),
        sa.column("faces_in_frame", sa.Integer()),
        sa.column("refusal", sa.JSON()),
        sa.column("below_gate", sa.JSON()),
    )
    cands = sa.table(
        "search_candidates",
        sa.column("search_id", sa.Integer()),
        sa.column("rank", sa.Integer()),
        sa.column("above_threshold", sa.Boolean()),
        sa.column("meaning", sa.Text()),
    )
    rows = conn.execute(
        sa.select(searches.c.id, entries.c.payload).join(
            entries, entries.c.seq == searches.c.audit_seq
        )
    ).all()
    for search_id, text in rows:
        try:
            p = json.loads(text)
        except ValueError:
            continue
        tif = p.get("threshold_in_force") or None
        probe = p.get("probe") or {}
        faces = probe.get("faces_in_frame")
        conn.execute(
            searches.update()
            .where(searches.c.id == search_id)
            .values(
                threshold_in_force=tif,
                rates_unavailable=p.get("rates_unavailable"),
                calibration=(tif or {}).get("calibration"),
                presented_documents=p.get("presented") or [],
                faces_in_frame=faces if isinstance(faces, int) else None,
                refusal=p.get("error") if p.get("outcome") == "refused" else None,
                below_gate=p.get("below_gate"),
            )
        )
        for c in p.get("candidates", []):
            conn.execute(
                cands.update()
                .where(cands.c.search_id == search_id, cands.c.rank == c.get("rank"))
                .values(above_threshold=c.get("above_threshold"), meaning=c.get("meaning"))
            )


def downgrade() -> None:
    with op.batch_alter_table("search_candidates") as batch:
        batch.drop_column("meaning")
        batch.drop_column("above_threshold")
    with op.batch_alter_table("searches") as batch:
        batch.drop_column("below_gate")
        batch.drop_column("refusal")
        batch.drop_column("faces_in_frame")
        batch.drop_column("presented_documents")
        batch.drop_column("calibration")
        batch.drop_column("rates_unavailable")
        batch.drop_column("threshold_in_force")
    op.drop_table("audit_head")
