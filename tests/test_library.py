"""``fieldid.open_workspace``: the in-process API for notebooks and batch jobs. It opens only for
an authenticated operator (token or password), every use is audited under that operator exactly
as on the other surfaces, and the operator's role and the token's scopes hold. Both backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import fieldid
from conftest import subject_images
from fieldid.access import Role
from fieldid.access.accounts import Accounts
from fieldid.errors import FieldidError
from fieldid.library import Fieldid
from fieldid.workspace import Workspace
from helpers_service import FAST_HASHER

PASSWORD = "library-password-1"
USE = {"purpose": "field-identification", "case_ref": "NOTEBOOK-1"}


@pytest.fixture()
def root(enrolled: Workspace) -> Path:
    accounts = Accounts(enrolled.store, enrolled.clock, hasher=FAST_HASHER)
    accounts.add_user("analyst-1", Role.OFFICER, PASSWORD, by="test")
    accounts.add_user("admin-1", Role.ADMIN, PASSWORD, by="test")
    root = enrolled.root
    enrolled.close()
    return root


def _token(root: Path, name: str, scopes: list[str] | None = None) -> str:
    with Workspace.open(root) as ws:
        return Accounts(ws.store, ws.clock).issue_token(name, scopes=scopes, by="test").secret


def test_it_opens_only_for_an_authenticated_operator(root: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("FIELDID_TOKEN", raising=False)
    for kw in ({}, {"user": "analyst-1"}, {"token": "fid_not-a-token"}):
        with pytest.raises(FieldidError) as e:
            fieldid.open_workspace(root, **kw)
        assert e.value.code in {"access.unauthenticated", "access.token_invalid"}, kw
    with pytest.raises(FieldidError) as e:
        fieldid.open_workspace(root, user="analyst-1", password="wrong-password")
    assert e.value.code == "access.bad_credentials"
    with pytest.raises(FieldidError) as e:
        fieldid.open_workspace(root.parent / "nowhere", token="x")
    assert e.value.code == "workspace.not_found"
    monkeypatch.setenv("FIELDID_TOKEN", _token(root, "analyst-1"))
    with fieldid.open_workspace(root) as fid:
        assert isinstance(fid, Fieldid) and fid.actor.name == "analyst-1"
        assert fid.actor.role is Role.OFFICER


def test_searches_and_verifications_are_audited_under_the_operator(root: Path):
    with fieldid.open_workspace(root, token=_token(root, "analyst-1")) as fid:
        found = fid.search(subject_images("subject-0004")[1], **USE)
        assert found.candidates[0].external_id == "subject-0004"
        assert found.to_dict()["candidates"][0]["external_id"] == "subject-0004"
        v = fid.verify(*subject_images("subject-0004")[:2], **USE)
        assert v.above_threshold
        probes = [*subject_images("subject-0005")[1:], b"not an image"]
        batch = list(fid.search_many(probes, **USE))
        assert [b.error is None for b in batch] == [True] * (len(probes) - 1) + [False]
        assert batch[0].result is not None
        assert batch[0].result.candidates[0].external_id == "subject-0005"
        assert batch[-1].error is not None and batch[-1].error.code.startswith("probe.")
        with pytest.raises(FieldidError) as e:  # an officer does not manage the gallery
            fid.people()
        assert e.value.code == "access.forbidden"
        entries = fid.workspace.store.audit_entries()
    searches = [e for e in entries if e.event == "search"]
    assert len(searches) == 1 + len(probes)
    assert {(e.operator, e.purpose, e.case_ref) for e in searches} == {
        ("analyst-1", "field-identification", "NOTEBOOK-1")
    }
    assert searches[0].payload["actor"] == {"name": "analyst-1", "role": "officer"}
    assert [e.operator for e in entries if e.event == "verify"] == ["analyst-1"]


def test_a_tokens_scopes_hold(root: Path):
    with fieldid.open_workspace(root, token=_token(root, "analyst-1", ["verify"])) as fid:
        assert fid.verify(*subject_images("subject-0004")[:2], **USE).above_threshold
        with pytest.raises(FieldidError) as e:
            fid.search(subject_images("subject-0004")[1], **USE)
        assert e.value.code == "access.scope"


def test_an_admin_manages_the_gallery_and_a_deleted_person_is_never_found(root: Path):
    with fieldid.open_workspace(root, user="admin-1", password=PASSWORD) as fid:
        assert fid.people(query="subject-000").total == 9
        detail = fid.person("subject-0007")
        assert detail.images == 1 and detail.templates == 1
        fixed = fid.correct_person("subject-0007", display_name="Seven", reason="typo in name")
        assert fixed.display_name == "Seven"
        gone = fid.delete_person(detail.id, reason="withdrawn by the source (ticket 9)")
        assert gone.templates_removed == 1
        with pytest.raises(FieldidError) as e:  # an admin does not search
            fid.search(subject_images("subject-0007")[1], **USE)
        assert e.value.code == "access.forbidden"
    with fieldid.open_workspace(root, user="analyst-1", password=PASSWORD) as fid:
        found = fid.search(subject_images("subject-0007")[1], **USE)
        assert all(c.external_id != "subject-0007" for c in found.candidates)


def test_importing_fieldid_or_its_client_loads_no_service():
    code = (
        "import sys, fieldid, fieldid.client\n"
        "heavy = {'fieldid.workspace', 'fieldid.library', 'cv2', 'sqlalchemy'}\n"
        "assert not heavy & set(sys.modules), heavy & set(sys.modules)\n"
        "assert callable(fieldid.open_workspace) and 'fieldid.library' in sys.modules\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
