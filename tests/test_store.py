"""The storage kernel itself: URLs, the unit of work, the audit appender, migrations of an old
workspace, ``fieldid init --database-url``, ``fieldid upgrade`` and ``fieldid db copy``."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select, text
from typer.testing import CliRunner

from conftest import make_workspace, subject_images
from fieldid.access import Role
from fieldid.audit import Attribution
from fieldid.audit.verify import verify_log
from fieldid.cli.app import app
from fieldid.errors import WorkspaceError
from fieldid.store import Store, StoreError, open_store
from fieldid.store.engine import database_url, parse_url, shown
from fieldid.store.migrate import alembic_config, downgrade
from fieldid.store.schema import AuditEntry, AuditHead, Person, SearchCandidate, SearchRecord
from fieldid.workspace import Workspace
from helpers_cli import cli, tokens

ATTR = Attribution("officer-7", "field-identification", "CASE-1")
runner = CliRunner()


# -- URLs -----------------------------------------------------------------------------------------


def test_the_database_url_comes_from_the_environment_then_the_file_then_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("FIELDID_DATABASE_URL", raising=False)
    assert database_url(tmp_path, None).database == str(tmp_path / "fieldid.db")
    assert database_url(tmp_path, "postgresql://a@h/db").drivername == "postgresql+psycopg"
    monkeypatch.setenv("FIELDID_DATABASE_URL", "postgresql://b@h2/other")
    assert database_url(tmp_path, "postgresql://a@h/db").database == "other"
    for bad, code in [
        ("mysql://x@h/db", "database.unsupported"),
        ("sqlite://", "database.bad_url"),
        ("not a url", "database.bad_url"),
    ]:
        with pytest.raises(WorkspaceError) as e:
            parse_url(bad)
        assert e.value.code == code
    assert "s3cret" not in shown(parse_url("postgresql://u:s3cret@h/db"))


# -- the unit of work ---------------------------------------------------------------------------


def test_a_use_and_its_audit_entry_commit_together_or_not_at_all(enrolled: Workspace):
    store = enrolled.store
    head = verify_log(store).head_seq
    ran: list[str] = []
    with pytest.raises(RuntimeError), store.unit_of_work() as uow:
        uow.session.add(Person(external_id="x-1", display_name="X", created_at=uow.now()))
        uow.audit("enroll", operator="t", payload={"people": [{"external_id": "x-1"}]})
        uow.after_commit(lambda: ran.append("effect"))
        raise RuntimeError("the use fails after its audit entry was appended")
    assert ran == [] and enrolled.gallery.find_person("x-1") is None
    assert verify_log(store).head_seq == head  # the entry went with the use
    with store.unit_of_work() as uow:
        uow.session.add(Person(external_id="x-2", display_name="X", created_at=uow.now()))
        rec = uow.audit("enroll", operator="t", payload={})
        uow.after_commit(lambda: ran.append("effect"))
        assert ran == []  # not before the commit
    assert ran == ["effect"] and rec.seq == (head or 0) + 1
    assert enrolled.gallery.find_person("x-2") is not None
    # An effect that fails after the commit does not undo it.
    with store.unit_of_work() as uow:
        uow.audit("note", operator="t")
        uow.after_commit(lambda: 1 / 0)
    assert verify_log(store).head_seq == rec.seq + 1


def test_a_request_unit_reads_without_holding_the_write_lock(enrolled: Workspace):
    """The API's request-scoped unit of work reads without locking out writers (on SQLite a
    deferred transaction), and a use through it begins its own write transaction."""
    store = enrolled.store
    request = store.unit_of_work(reads_first=True)
    try:
        assert request.session.scalars(select(Person)).first() is not None  # reading…
        other = store.append_audit("note", operator="another process")  # …never blocks this
        with store.using(request) as uow:  # the use: a write transaction of its own
            mine = uow.audit("note", operator="the request")
        assert mine.seq == other.seq + 1
    finally:
        request.close()
    assert verify_log(store).ok


def test_threads_of_one_process_append_one_chain_without_a_lock_of_their_own(
    enrolled: Workspace,
):
    """The database's lock alone orders appends (the old threading.Lock is gone)."""
    store = enrolled.store
    first = (verify_log(store).head_seq or 0) + 1
    errors: list[BaseException] = []

    def append(n: int) -> None:
        try:
            for i in range(10):
                store.append_audit("note", operator=f"t{n}", payload={"i": i})
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=append, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    chain = verify_log(store)
    assert chain.ok and chain.head_seq == first + 39
    with store.read() as s:
        head = s.get(AuditHead, 1)
        assert head is not None and (head.seq, head.hash) == (chain.head_seq, chain.head_hash)


def test_ids_come_from_the_database(enrolled: Workspace):
    """Template-only people get ids from the database (RETURNING), never max(id) + 1: after
    the highest person is deleted, the next one does not take its id on PostgreSQL, and ids
    stay unique on both."""
    from helpers_storage import add_template_people, delete_person

    model = __import__("fieldid.gallery.distractors", fromlist=["bundled"]).bundled(
        str(enrolled.pipeline.model)
    )
    ids = add_template_people(enrolled, [("d-1", "D 1"), ("d-2", "D 2")], model.sample(2, seed=1))
    assert ids == sorted(ids) and len(set(ids)) == 2
    pid = enrolled.gallery.find_person("d-2")
    assert pid is not None
    delete_person(enrolled, pid)
    more = add_template_people(enrolled, [("d-3", "D 3")], model.sample(1, seed=2))
    assert more[0] not in ids[:1]
    assert enrolled.gallery.index().count() == enrolled.gallery.size().templates


# -- migrations of an existing workspace --------------------------------------------------------


def test_a_workspace_from_before_the_kernel_opens_and_its_searches_read_from_columns(
    enrolled: Workspace,
):
    """Revision 0007 (before the kernel): no audit head, search facts only in the audit log.
    Opening it migrates: the head row is made from the log, each search's threshold, meanings
    and documents are read back from its audit entry into columns."""
    result = enrolled.searches.search(subject_images("subject-0004")[1], ATTR)
    assert result.search_id is not None and result.candidates
    downgrade(enrolled.store.engine, "0007")
    root = enrolled.root
    enrolled.close()
    ws = Workspace.open(root)
    try:
        assert ws.store.revision() == ws.store.head()
        with ws.store.read() as s:
            # The search keeps its public id through the round trip (0009 reads it back from
            # the search's audit entry), and its read model is filled again from that entry.
            rec = s.scalars(
                select(SearchRecord).where(SearchRecord.public_id == result.search_id)
            ).first()
            assert rec is not None and rec.threshold_in_force == result.threshold_in_force
            cand = s.scalars(
                select(SearchCandidate).where(SearchCandidate.search_id == rec.id)
            ).first()
            assert cand is not None and cand.meaning == result.candidates[0].meaning_text
            head = s.get(AuditHead, 1)
            last = s.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())).first()
        assert head is not None and last is not None and head.hash == last.hash
        assert verify_log(ws.store).ok
        again = ws.searches.search(subject_images("subject-0004")[1], ATTR)
        assert again.audit_seq == head.seq + 1
    finally:
        ws.close()


def test_open_store_without_migrating_refuses_a_database_behind(backend, tmp_path: Path):
    url = backend.database_url("template1") or f"sqlite:///{tmp_path / 'x.db'}"  # empty
    store = Store(url)
    with store.engine.begin() as conn:
        cfg = alembic_config(store.engine.url.render_as_string(hide_password=False))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0005")
    store.close()
    with pytest.raises(StoreError) as e:
        open_store(url, migrate=False)
    assert e.value.code == "database.behind"
    open_store(url).close()
    open_store(url, migrate=False).close()


# -- the command line ---------------------------------------------------------------------------


def test_init_with_a_database_url_and_upgrade(backend, tmp_path: Path):
    root = tmp_path / "ws"
    url = backend.database_url()
    args = ["init", str(root)] + (["--database-url", url] if url else [])
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert ("postgresql" if backend.is_pg else "sqlite") in r.output
    if url:
        assert "url = " in (root / "fieldid.toml").read_text()
        assert not (root / "fieldid.db").exists()
    r = runner.invoke(app, ["upgrade", "--workspace", str(root), "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["from"] == out["to"] == Store.head()


def test_init_refuses_an_unusable_database_url_and_leaves_no_workspace(tmp_path: Path):
    r = runner.invoke(app, ["init", str(tmp_path / "ws"), "--database-url", "mysql://x@h/db"])
    assert r.exit_code == 2 and "database.unsupported" in r.output
    assert not (tmp_path / "ws" / "fieldid.toml").exists()


def test_db_copy_moves_an_embedded_workspace_into_postgresql_and_proves_it(
    pg_server, tmp_path: Path
):
    """SQLite -> PostgreSQL: every table copied and counted, the audit chain verified on the
    copy, and with --switch the workspace then works on the copy (same index, same people)."""
    from helpers_storage import Backend, using

    sqlite = Backend("sqlite")
    pg = Backend("postgresql", pg_server)
    with using(sqlite):
        ws = make_workspace(tmp_path / "ws")
    from fieldid.access import Role
    from fieldid.access.accounts import Accounts
    from fieldid.dataset import LabelledImage
    from helpers_records import register, write_csv

    ws.enrollment.enroll_images(
        [LabelledImage(subject_images(f"subject-000{n}")[0], f"subject-000{n}") for n in (1, 2)],
        operator="t",
        source_name="fixtures",
        synthetic=True,
    )
    register(ws)
    write_csv(
        tmp_path / "r.csv",
        [
            {
                "kind": "border_apprehension",
                "source_record_id": "R1",
                "person_external_id": "subject-0001",
                "event_date": "2020-01-02",
                "location": "Sector 1 (synthetic)",
                "outcome": "processed",
                "synthetic": "true",
            }
        ],
    )
    assert ws.importer.import_file("border-test", tmp_path / "r.csv", operator="t").inserted == 1
    ws.searches.search(subject_images("subject-0001")[1], ATTR)
    Accounts(ws.store, ws.clock).add_user("sam", Role.SUPERVISOR, "sam-password-1", by="t")
    ws.close()
    admin = tokens(tmp_path / "ws")[Role.ADMIN]
    try:
        target = pg.database_url()
        assert target is not None
        r = cli(
            ["db", "copy", "--from", str(tmp_path / "ws"), "--to", target, "--switch", "--json"],
            admin,
        )
        assert r.exit_code == 0, r.output
        proof = json.loads(r.stdout[r.stdout.index("{") :])
        assert proof["proven"] and proof["counts_match"] and proof["switched"]
        tables = proof["tables"]
        for table in ("persons", "templates", "records", "searches", "operators"):
            assert tables[table]["source"] == tables[table]["target"] > 0, table
        assert proof["audit"]["copy"]["ok"] and proof["audit"]["heads_match"]
        # The workspace now runs on PostgreSQL: same people, new ids after the copied ones.
        ws = Workspace.open(tmp_path / "ws")
        try:
            assert ws.store.backend == "postgresql"
            result = ws.searches.search(subject_images("subject-0002")[1], ATTR)
            assert result.candidates[0].external_id == "subject-0002"
            assert ws.gallery.index_source == "disk"  # the copied revision: no rebuild
            assert verify_log(ws.store).ok
        finally:
            ws.close()
        # A second copy into the same (now full) database is refused, and changes nothing.
        r = cli(["db", "copy", "--from", str(tmp_path / "ws"), "--to", target], admin)
        assert r.exit_code == 2 and "database.not_empty" in r.output
        # And back: PostgreSQL into a new SQLite file, proven the same way.
        back = f"sqlite:///{tmp_path / 'back.db'}"
        r = cli(["db", "copy", "--from", str(tmp_path / "ws"), "--to", back], admin)
        assert r.exit_code == 0 and "audit log of the copy intact" in r.output, r.output
    finally:
        pg.drop_made()


def test_db_copy_refuses_a_failed_proof_exit_1(pg_server, tmp_path: Path):
    """A copy whose audit chain does not verify is not called proven (exit 1, no switch)."""
    from helpers_storage import Backend, using

    with using(Backend("sqlite")):
        ws = make_workspace(tmp_path / "ws")
    ws.close()
    admin = tokens(tmp_path / "ws")[Role.ADMIN]
    ws = Workspace.open(tmp_path / "ws")
    ws.store.append_audit("note", operator="t")
    with ws.store.unit_of_work() as uow:  # tampered before the copy
        uow.session.execute(text("update audit_entries set operator = 'x' where seq = 1"))
    ws.close()
    pg = Backend("postgresql", pg_server)
    try:
        target = pg.database_url()
        assert target is not None
        r = cli(["db", "copy", "--from", str(tmp_path / "ws"), "--to", target, "--switch"], admin)
        assert r.exit_code == 1, r.output
        assert "does not verify" in r.output
        from fieldid.config import WorkspaceConfig

        assert WorkspaceConfig.load(tmp_path / "ws" / "fieldid.toml").database_url is None
    finally:
        pg.drop_made()
