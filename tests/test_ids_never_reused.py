"""Ids are never given twice: after the newest person is erased, the next one enrolled gets a
new id (SQLite: AUTOINCREMENT, migration ``never_reused_ids``; PostgreSQL: sequences), because
audit entries, the index outbox and vector indexes still name the deleted one's. The migration
rebuilds SQLite's tables with their rows, both ways."""

from __future__ import annotations

from sqlalchemy import func, select, text

from conftest import FACES
from fieldid.access import Actor, Role
from fieldid.dataset import read_labelled
from fieldid.store import migrate
from fieldid.store.engine import make_engine
from fieldid.store.schema import Base, Person, TemplateRow
from fieldid.workspace import Workspace


def _the_migration() -> tuple[str, str]:
    """(revision, the one before it) of the migration that made ids never reused."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://"))
    rev = next(r for r in script.walk_revisions() if r.path.endswith("never_reused_ids.py"))
    down = rev.down_revision
    assert isinstance(down, str)
    return rev.revision, down


def _newest(ws: Workspace) -> tuple[int, str, int]:
    with ws.store.read() as s:
        p = s.scalars(select(Person).order_by(Person.id.desc()).limit(1)).one()
        top_template = s.scalar(select(func.max(TemplateRow.id))) or 0
        return p.id, p.external_id, int(top_template)


def test_an_erased_persons_id_is_never_given_to_the_next_one(enrolled: Workspace):
    pid, external_id, top_template = _newest(enrolled)
    admin = Actor("admin", Role.ADMIN)
    enrolled.gallery_admin.delete_person(admin, pid, reason="erasure requested by the person")
    with enrolled.store.read() as s:
        assert s.get(Person, pid) is None
    # The same identity's photo enrolled again: a new person, with a new id.
    items = [i for i in read_labelled(FACES) if i.identity == external_id][:1]
    summary = enrolled.enrollment.enroll_images(
        items, operator="test", source_name="fixtures", synthetic=True
    )
    assert summary.enrolled == 1
    again, ext, newest_template = _newest(enrolled)
    assert ext == external_id
    assert again > pid, f"person id {pid} was given again after its erasure"
    assert newest_template > top_template, "a deleted template's id was given again"


def test_the_migration_rebuilds_tables_with_their_rows_both_ways(enrolled: Workspace, backend):
    revision, before = _the_migration()
    url = enrolled.store.url
    enrolled.close()
    engine = make_engine(url)
    tables = [
        t.name for t in Base.metadata.sorted_tables if t.dialect_kwargs.get("sqlite_autoincrement")
    ]
    assert {"persons", "templates", "searches", "records"} <= set(tables)

    def snapshot() -> dict[str, list[tuple[object, ...]]]:
        with engine.connect() as c:
            return {
                name: [tuple(r) for r in c.execute(text(f"SELECT * FROM {name} ORDER BY id"))]
                for name in ("persons", "templates", "enrollment_images", "operators")
            }

    def autoincrement() -> set[str]:
        if backend.name != "sqlite":
            return set()
        with engine.connect() as c:
            rows = c.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
            return {n for n, sql in rows if "AUTOINCREMENT" in sql}

    try:
        data = snapshot()
        assert data["persons"] and data["templates"]
        assert autoincrement() == (set(tables) if backend.name == "sqlite" else set())
        migrate.downgrade(engine, before)
        assert migrate.current_revision(engine) == before
        assert snapshot() == data and autoincrement() == set()
        migrate.upgrade(engine)
        assert migrate.current_revision(engine) == revision == migrate.head_revision()
        assert snapshot() == data
        assert autoincrement() == (set(tables) if backend.name == "sqlite" else set())
    finally:
        engine.dispose()
