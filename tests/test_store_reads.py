"""Reads through the store: a use's reads share one session (``Store.reading``), a commit inside
such a block is read back, streamed reads work inside one, and on PostgreSQL reads run in
autocommit and refuse to write (docs/storage.md, "Round trips per search")."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select, text, update

from fieldid.store.schema import AuditEntry, GalleryMeta, Person
from fieldid.workspace import Workspace


def _checkouts(ws: Workspace) -> list[int]:
    n = [0]

    def on_checkout(*_a: object) -> None:
        n[0] += 1

    event.listen(ws.store.engine, "checkout", on_checkout)
    return n


def test_the_reads_of_one_block_share_one_session(enrolled: Workspace):
    store, gallery = enrolled.store, enrolled.gallery  # the gallery opened (that writes)
    n = _checkouts(enrolled)
    with store.reading() as outer, store.read() as a, store.read() as b:
        assert a is outer and b is outer
        people = a.scalar(select(func.count(Person.id)))
        size = gallery.size()  # the gallery's reads join the block too
        rev = gallery.revision()
    assert people == size.persons == 20 and rev
    assert n[0] == 1, f"{n[0]} connections taken for one block of reads"


def test_a_commit_inside_a_reading_block_is_read_back(enrolled: Workspace):
    store = enrolled.store
    with store.reading() as s:
        before = s.scalar(select(func.count(AuditEntry.seq)))
        rev = enrolled.gallery.revision()
        store.append_audit("note", operator="test", payload={"n": 1})
        with enrolled.store.unit_of_work() as uow:
            uow.session.execute(
                update(GalleryMeta).where(GalleryMeta.key == "revision").values(value="moved")
            )
        # On SQLite a read transaction keeps its snapshot: the block's is ended by the commit.
        assert s.scalar(select(func.count(AuditEntry.seq))) == before + 1
        assert enrolled.gallery.revision() == "moved" != rev
        assert len(store.audit_entries("note")) == 1  # a streamed read, inside the block


def test_a_read_session_never_writes(enrolled: Workspace, backend):
    store = enrolled.store
    if backend.is_pg:
        with pytest.raises(Exception, match="read session"), store.read() as s:
            s.execute(update(Person).values(display_name="changed"))
    else:  # SQLite: a deferred transaction, rolled back at the end of the block
        with store.read() as s:
            s.execute(update(Person).values(display_name="changed"))
    with store.read() as s:
        assert "changed" not in set(s.scalars(select(Person.display_name)))
        if backend.is_pg:  # reads run in autocommit: no transaction is open between them
            s.execute(text("SELECT 1"))
            status = s.connection().connection.dbapi_connection.info.transaction_status
            assert status.name == "IDLE"
