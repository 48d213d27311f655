"""``fieldid serve --workers N`` (issue 10, item 3): several server processes on one PostgreSQL
database, each with its own index that follows the database's gallery revision; SQLite refuses
more than one; every request logged as one JSON line without personal data.

The multi-worker test runs the real command (uvicorn's worker processes, the face-work pools) on
a free loopback port, enrols a person through whichever worker takes the request, and searches
until every worker has answered with that person.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from typer.testing import CliRunner

from fieldid.access.accounts import Accounts
from fieldid.cli.app import app as cli
from fieldid.service.serve import check_workers, face_workers_per_process
from fieldid.workspace import Workspace
from helpers_live import free_port
from helpers_service import FAST_HASHER, service_root, serving  # noqa: F401
from helpers_storage import Backend, active

FACES = Path(__file__).parent / "fixtures" / "faces"
#: Enrolled through the server during the test; searched with another photo of the same person.
ENROL = FACES / "subject-0002" / "subject-0002_0001.jpg"
PROBE = FACES / "subject-0002" / "subject-0002_0002.jpg"
NAME = "Subject 0002 (synthetic)"
LINE_KEYS = {"ts", "method", "route", "status", "ms", "operator", "worker"}
SEARCH_FORM = {"purpose": "evaluation", "case_ref": "CASE-WORKERS-1", "notice_given": "true"}


def probe_jpeg() -> bytes:
    """The probe photo as a closer capture: LFW's 250 px enlarged to 500 px (the search's quality
    gate wants 60 px between the eyes; the enrolled photo keeps its size)."""
    img = Image.open(PROBE).convert("RGB").resize((500, 500), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def tokens(root: Path) -> tuple[str, str]:
    """An officer's search token and an admin's enrolment token."""
    ws = Workspace.open(root)
    try:
        accounts = Accounts(ws.store, ws.clock, hasher=FAST_HASHER)
        life = timedelta(hours=1)
        officer = accounts.issue_token("u-officer", scopes=["search"], lifetime=life, by="test")
        admin = accounts.issue_token("u-admin", scopes=["enroll"], lifetime=life, by="test")
        return officer.secret, admin.secret
    finally:
        ws.close()


def purges(root: Path) -> int:
    ws = Workspace.open(root)
    try:
        return sum(1 for e in ws.store.audit_entries() if e.event == "purge")
    finally:
        ws.close()


def names(answer: dict[str, Any]) -> set[str]:
    return {str(c.get("display_name")) for c in answer.get("candidates", [])}


# --- the refusal on SQLite, the pool's size -----------------------------------------------------


def test_sqlite_refuses_more_than_one_worker_with_the_reason(backend: Backend, tmp_path: Path):
    root = tmp_path / "ws"
    backend.init(root).close()
    if backend.is_pg:
        check_workers("postgresql", 4)  # accepted: nothing to refuse
        return
    result = CliRunner().invoke(cli, ["serve", "-w", str(root), "--workers", "2"])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "serve.workers_sqlite" in out
    assert "needs PostgreSQL" in out and "one process write at a time" in out
    assert "fieldid db copy" in out  # and how to get there


def test_face_workers_are_the_cores_shared_out_among_server_processes():
    assert face_workers_per_process(1, cores=2) == 2
    assert face_workers_per_process(2, cores=2) == 1
    assert face_workers_per_process(4, cores=2) == 1
    assert face_workers_per_process(2, cores=8) == 4
    assert face_workers_per_process(3, cores=8) == 3


# --- request lines ------------------------------------------------------------------------------


def test_every_request_is_one_json_line_without_personal_data(
    service_root: Path,  # noqa: F811
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level(logging.INFO, logger="fieldid.requests")
    with serving(service_root, tmp_path) as c:
        ws = c.app.state.fieldid.workspace  # type: ignore[attr-defined]
        accounts = Accounts(ws.store, ws.clock, hasher=FAST_HASHER)
        token = accounts.issue_token(
            "u-officer", scopes=["search"], lifetime=timedelta(hours=1), by="test"
        ).secret
        auth = {"Authorization": f"Bearer {token}"}
        probe = probe_jpeg()
        caplog.clear()
        assert c.get("/healthz").status_code == 200
        r = c.post(
            "/api/v1/searches",
            headers=auth,
            files={"image": ("probe.jpg", probe, "image/jpeg")},
            data={**SEARCH_FORM, "case_ref": "CASE-Jane-Roe-1970"},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["search_id"]
        worker = r.headers["X-Fieldid-Worker"]
        # ids in the path and personal data in a query string
        assert c.get(f"/api/v1/searches/{sid}?name=Jane+Roe", headers=auth).status_code == 200
        assert c.get("/api/v1/searches/1?dob=1970-01-01").status_code == 401
        assert c.get("/people/Jane-Roe-passport-X1234567").status_code == 404
        # an operator refused for the action is named too
        assert c.post("/api/v1/enrollments", headers=auth).status_code == 403
        lines = [r.getMessage() for r in caplog.records if r.name == "fieldid.requests"]
    rows = [json.loads(line) for line in lines]
    assert all(set(row) == LINE_KEYS for row in rows), rows
    got = [(row["method"], row["route"], row["status"], row["operator"]) for row in rows]
    assert got == [
        ("GET", "/healthz", 200, None),
        ("POST", "/api/v1/searches", 201, "u-officer"),
        ("GET", "/api/v1/searches/{search_id}", 200, "u-officer"),
        ("GET", "/api/v1/searches/{search_id}", 401, None),
        ("GET", "unmatched", 404, None),
        ("POST", "/api/v1/enrollments", 403, "u-officer"),
    ]
    assert {row["worker"] for row in rows} == {worker}
    assert all(isinstance(row["ms"], float) and row["ms"] >= 0 for row in rows)
    text = "\n".join(lines)
    for personal in ("Jane", "Roe", "1970", "X1234567", "CASE-", "passport", "dob", "name="):
        assert personal not in text, personal
    assert f"/{sid}" not in text
    assert max(len(line) for line in lines) < 250  # no body of any kind (image, template, record)


# --- several workers on PostgreSQL --------------------------------------------------------------


def wait_ready(url: str, proc: subprocess.Popen[bytes], workers: int) -> set[str]:
    """Until ``workers`` different workers have said ready (a new connection each time: the
    kernel hands each to whichever worker accepts it)."""
    seen: set[str] = set()
    started = time.monotonic()
    while len(seen) < workers:
        if proc.poll() is not None:
            raise RuntimeError(f"fieldid serve exited with {proc.returncode}")
        if time.monotonic() - started > 240:
            raise RuntimeError(f"only {len(seen)} of {workers} workers became ready in 240 s")
        try:
            r = httpx.get(f"{url}/readyz", timeout=10)
            work = r.json()["checks"].get("face_work") or {}
            if r.status_code == 200 and work.get("ready_workers") == work.get("workers"):
                seen.add(r.headers["X-Fieldid-Worker"])
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    return seen


def search(url: str, token: str) -> tuple[str, set[str]]:
    """One search on a new connection: which worker answered, and the names it found."""
    r = httpx.post(
        f"{url}/api/v1/searches",
        headers={"Authorization": f"Bearer {token}"},
        files={"image": ("probe.jpg", probe_jpeg(), "image/jpeg")},
        data=SEARCH_FORM,
        timeout=120,
    )
    assert r.status_code == 201, r.text
    return r.headers["X-Fieldid-Worker"], names(r.json())


def test_every_worker_sees_an_enrollment_made_through_another(
    service_root: Path,  # noqa: F811
    backend: Backend,
    tmp_path: Path,
):
    if not backend.is_pg:
        pytest.skip("several workers serve PostgreSQL only (SQLite refuses: the test above)")
    root = active().copy(service_root, tmp_path / "ws")
    officer, admin = tokens(root)
    purges_before = purges(root)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_file = tmp_path / "requests.jsonl"
    proc = serve_workers(root, port, log_file)
    try:
        workers = wait_ready(url, proc, 2)
        # Every worker has searched (its index loaded at the old revision) and does not know
        # the person yet.
        before: set[str] = set()
        for _ in range(40):
            worker, found = search(url, officer)
            assert NAME not in found
            before.add(worker)
            if before == workers:
                break
        assert before == workers, f"the searches reached {len(before)} of 2 workers"

        r = httpx.post(
            f"{url}/api/v1/enrollments",
            headers={"Authorization": f"Bearer {admin}"},
            files={"image": ("face.jpg", ENROL.read_bytes(), "image/jpeg")},
            data={
                "external_id": "subject-0002",
                "display_name": NAME,
                "source": "fixtures (synthetic identity)",
                "synthetic": "true",
            },
            timeout=120,
        )
        assert r.status_code == 201, r.text
        assert r.json()["enrolled"] == 1
        enrolled_by = r.headers["X-Fieldid-Worker"]

        after: dict[str, set[str]] = {}
        for _ in range(40):
            worker, found = search(url, officer)
            after.setdefault(worker, set()).update(found)
            assert NAME in found, f"worker {worker} answered without the person enrolled"
            if set(after) == workers:
                break
        assert set(after) == workers
        assert any(w != enrolled_by for w in after)  # one that did not enrol found them too
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    rows = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert rows and all(set(row) == LINE_KEYS for row in rows)
    assert {row["worker"] for row in rows} == workers
    searches = [row for row in rows if row["route"] == "/api/v1/searches"]
    assert searches and {row["operator"] for row in searches} == {"u-officer"}
    assert {row["status"] for row in searches} == {201}
    enrols = [row for row in rows if row["route"] == "/api/v1/enrollments"]
    assert [(row["status"], row["operator"], row["worker"]) for row in enrols] == [
        (201, "u-admin", enrolled_by)
    ]
    # one purge schedule among the workers: a single purge at start-up, not one per worker
    assert purges(root) == purges_before + 1


#: The merge test: two people enrolled before the server starts, one merged into the other by
#: `fieldid person merge` (a third process) while both workers serve.
KEPT = "Subject 0002 (synthetic)"
MERGED = "Subject 0002 B (synthetic)"


def serve_workers(root: Path, port: int, log_file: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "FIELDID_DATABASE_URL"}
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from fieldid.cli.app import main; main()",
            "serve",
            "-w",
            str(root),
            "--port",
            str(port),
            "--workers",
            "2",
            "--face-workers",
            "1",
            "--request-log",
            str(log_file),
        ],
        stdin=subprocess.DEVNULL,
        env=env,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_every_worker_sees_a_merge_made_by_another_process(
    service_root: Path,  # noqa: F811
    backend: Backend,
    tmp_path: Path,
):
    if not backend.is_pg:
        pytest.skip("several workers serve PostgreSQL only (SQLite refuses: the test above)")
    from fieldid.dataset import LabelledImage

    root = active().copy(service_root, tmp_path / "ws")
    officer, _ = tokens(root)
    ws = Workspace.open(root)
    try:
        summary = ws.enrollment.enroll_images(
            [
                LabelledImage(ENROL, "subject-0002", KEPT),
                # The probe's own photo, under a second identity: a duplicate to merge.
                LabelledImage(PROBE, "subject-0002-b", MERGED),
            ],
            operator="test",
            source_name="fixtures (synthetic identity)",
            synthetic=True,
        )
        assert summary.enrolled == 2 and summary.new_people == 2
        supervisor = Accounts(ws.store, ws.clock, hasher=FAST_HASHER).issue_token(
            "u-supervisor", scopes=["review"], lifetime=timedelta(hours=1), by="test"
        )
    finally:
        ws.close()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serve_workers(root, port, tmp_path / "requests.jsonl")
    try:
        workers = wait_ready(url, proc, 2)
        # Every worker has searched, its index loaded, and finds both people.
        before: set[str] = set()
        for _ in range(40):
            worker, found = search(url, officer)
            assert {KEPT, MERGED} <= found, found
            before.add(worker)
            if before == workers:
                break
        assert before == workers, f"the searches reached {len(before)} of 2 workers"

        env = {k: v for k, v in os.environ.items() if k != "FIELDID_DATABASE_URL"}
        env["FIELDID_TOKEN"] = supervisor.secret
        merged = subprocess.run(
            [
                sys.executable,
                "-c",
                "from fieldid.cli.app import main; main()",
                "person",
                "merge",
                "--keep",
                "subject-0002",
                "--merge",
                "subject-0002-b",
                "--reason",
                "the same person enrolled twice from one source (test)",
                "-w",
                str(root),
                "--json",
            ],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert merged.returncode == 0, merged.stdout + merged.stderr
        assert json.loads(merged.stdout)["templates_moved"] == 1

        # Each worker now answers with the kept person only: its index follows the revision
        # the merge moved, and the merged person's template belongs to the kept one.
        after: set[str] = set()
        for _ in range(40):
            worker, found = search(url, officer)
            assert KEPT in found and MERGED not in found, (worker, found)
            after.add(worker)
            if after == workers:
                break
        assert after == workers, f"the searches after the merge reached {len(after)} of 2"
    finally:
        stop(proc)
