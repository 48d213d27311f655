"""The API's enrollment does its face work in the server's bounded face-work pool
(fieldid.facework), as searches do: never in the server process, so one slow enrollment photo
holds one pool worker (with its time and memory limits), not the server."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from fieldid.access import Role
from fieldid.store.schema import EnrollmentImage, EnrollmentPixels
from helpers_service import client, login, service_root, workspace_of

__all__ = ["client", "service_root"]  # fixtures

FACES = Path(__file__).parent / "fixtures" / "faces"


def _face(subject: str) -> bytes:
    """A test face, closer (cropped and enlarged onto a 640×480 frame)."""
    face = Image.open(FACES / subject / f"{subject}_0001.jpg").convert("RGB")
    crop = face.crop((60, 55, 190, 185)).resize((300, 300), Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (640, 480), (118, 124, 130))
    canvas.paste(crop, (170, 90))
    buf = io.BytesIO()
    canvas.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _pool_jobs(c) -> int:
    faces = c.app.state.fieldid.faces
    return sum(int(p["jobs"]) for p in faces.stats().processes)


def test_api_enrollment_runs_its_face_work_in_the_pool(client):
    csrf = login(client, Role.ADMIN)
    photo = _face("subject-0003")
    before = _pool_jobs(client)
    r = client.post(
        "/api/v1/enrollments",
        headers={"X-CSRF-Token": csrf},
        files={"image": ("a.jpg", photo, "image/jpeg")},
        data={"external_id": "pool-enrol-1", "source": "test", "synthetic": "true"},
    )
    assert r.status_code == 201, r.text
    assert r.json()["new_person"] is True
    assert _pool_jobs(client) == before + 1, "the enrollment's face work did not run in the pool"
    # What the pool returned is what the gallery keeps: the template, thumbnail and pixels.
    ws = workspace_of(client)
    assert ws.gallery.find_person("pool-enrol-1") == r.json()["person_id"]
    with ws.store.read() as s:
        img = s.scalars(
            select(EnrollmentImage).where(EnrollmentImage.person_id == r.json()["person_id"])
        ).one()
        assert img.thumbnail and img.width == 640 and img.height == 480
        assert s.get(EnrollmentPixels, img.id) is not None

    # A refusal comes from the pool too (no face in a plain grey picture).
    buf = io.BytesIO()
    Image.new("RGB", (400, 400), (120, 120, 120)).save(buf, format="JPEG")
    r = client.post(
        "/api/v1/enrollments",
        headers={"X-CSRF-Token": csrf},
        files={"image": ("grey.jpg", buf.getvalue(), "image/jpeg")},
        data={"external_id": "pool-enrol-2", "source": "test"},
    )
    assert r.status_code == 422 and r.json()["code"].startswith("acquire."), r.text
    assert _pool_jobs(client) == before + 2
