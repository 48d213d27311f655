"""accountable: an opaque id per search, named adjudication states, the second person's answer

- ``searches.public_id``: the one id a search is known by outside the database (API, pages,
  command line, exports): 128 random bits, URL-safe, unguessable. Filled here for searches made
  before. The integer primary key stays inside the database.
- ``searches.status``: a refused attempt is ``refused`` (it was never a search, so it cannot be
  "not identified"); the adjudication states are named (``docs/accountability.md``).
- ``adjudications.second_decision`` (``confirm`` or ``disagree``) and ``second_reason``: the
  second person's answer under the two-person rule, with their reason. Earlier second
  confirmations are filled as ``confirm``.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import json
import secrets

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("searches") as batch:
        batch.add_column(sa.Column("public_id", sa.String(length=32), nullable=True))
    with op.batch_alter_table("adjudications") as batch:
        batch.add_column(sa.Column("second_decision", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("second_reason", sa.Text(), nullable=True))

    conn = op.get_bind()
    searches = sa.table(
        "searches",
        sa.column("id", sa.Integer()),
        sa.column("public_id", sa.String()),
        sa.column("status", sa.String()),
        sa.column("outcome", sa.String()),
    )
    entries = sa.table(
        "audit_entries", sa.column("seq", sa.Integer()), sa.column("payload", sa.Text())
    )
    seqs = sa.table("searches", sa.column("id", sa.Integer()), sa.column("audit_seq", sa.Integer()))
    recorded = dict(
        conn.execute(
            sa.select(seqs.c.id, entries.c.payload).join(
                entries, entries.c.seq == seqs.c.audit_seq, isouter=True
            )
        ).all()
    )
    taken: set[str] = set()
    for search_id, text in recorded.items():
        # A search whose audit entry already names a public id (this revision was downgraded
        # and applied again) keeps it, so links and receipts made meanwhile still work.
        public_id = _recorded_id(text)
        if public_id is None or public_id in taken:
            public_id = secrets.token_urlsafe(16)
        taken.add(public_id)
        conn.execute(
            searches.update().where(searches.c.id == search_id).values(public_id=public_id)
        )
    conn.execute(searches.update().where(searches.c.outcome == "refused").values(status="refused"))
    adjudications = sa.table(
        "adjudications",
        sa.column("second_by", sa.String()),
        sa.column("second_decision", sa.String()),
    )
    conn.execute(
        adjudications.update()
        .where(adjudications.c.second_by.is_not(None))
        .values(second_decision="confirm")
    )
    with op.batch_alter_table("searches") as batch:
        batch.alter_column("public_id", existing_type=sa.String(length=32), nullable=False)
        batch.create_index(batch.f("ix_searches_public_id"), ["public_id"], unique=True)


def _recorded_id(text: str | None) -> str | None:
    try:
        value = json.loads(text or "{}").get("search_id")
    except (ValueError, AttributeError):
        return None
    if isinstance(value, str) and 16 <= len(value) <= 32:
        return value
    return None


def downgrade() -> None:
    conn = op.get_bind()
    searches = sa.table(
        "searches",
        sa.column("status", sa.String()),
        sa.column("outcome", sa.String()),
    )
    conn.execute(
        searches.update().where(searches.c.outcome == "refused").values(status="not_identified")
    )
    # States this revision named fold back into the four the previous one knew.
    for new, old in (
        ("awaiting_second", "open"),
        ("blocked_conflict", "open"),
        ("no_lead", "inconclusive"),
    ):
        conn.execute(searches.update().where(searches.c.status == new).values(status=old))
    adjs = sa.table(
        "adjudications", sa.column("state", sa.String()), sa.column("decision", sa.String())
    )
    conn.execute(adjs.update().where(adjs.c.state == "disagreed").values(state="withdrawn"))
    for new, old in (("not_identified", "reject"), ("no_lead", "inconclusive")):
        conn.execute(adjs.update().where(adjs.c.decision == new).values(decision=old))
    with op.batch_alter_table("adjudications") as batch:
        batch.drop_column("second_reason")
        batch.drop_column("second_decision")
    with op.batch_alter_table("searches") as batch:
        batch.drop_index(batch.f("ix_searches_public_id"))
        batch.drop_column("public_id")
