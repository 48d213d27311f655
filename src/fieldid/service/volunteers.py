"""Demo onboarding: a volunteer enrols their own face, with consent, then searches for it.

Only in the demo (``ServiceSettings.demo_onboarding``). The volunteer is enrolled through the
same path as an administrator's enrollment (:meth:`fieldid.gallery.enroll.Enrollment.enroll`,
audited as ``enroll``), under a neutral synthetic-labelled identity, "Demo volunteer 0007", with
no record of any kind: nothing invented is attached to a real face. Their enrolment is deleted
when they ask ("delete my enrollment"), or automatically after a day; both are audited.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from fieldid.dataset import LabelledImage
from fieldid.errors import FieldidError
from fieldid.retention.policy import RetentionPolicy
from fieldid.store.schema import AuditEntry, Person
from fieldid.workspace import Workspace

PREFIX = "demo-volunteer-"
#: In every volunteer's enrollment source (and so in its audit entry): what they agreed to.
SOURCE = "demo onboarding: the volunteer's own photo, enrolled with their consent"
EXPIRY_OPERATOR = "system:demo-expiry"


class OnboardingError(FieldidError):
    code = "demo.onboarding"


@dataclass(frozen=True)
class Volunteer:
    person_id: int
    external_id: str
    display_name: str
    enrolled_at: datetime

    @property
    def number(self) -> str:
        return self.external_id.removeprefix(PREFIX)

    def to_dict(self) -> dict[str, object]:
        return {
            "person_id": self.person_id,
            "external_id": self.external_id,
            "display_name": self.display_name,
            "enrolled_at": self.enrolled_at.isoformat(),
        }


def consent_text(ws: Workspace, ttl_s: int) -> list[str]:
    """What the volunteer agrees to, in plain words, from what this installation really does."""
    retention = RetentionPolicy.load(ws.root).human()
    hours = max(1, round(ttl_s / 3600))
    crop = " and a small crop of your face, shown beside search results"
    return [
        'What is stored: under a made-up label such as "Demo volunteer 0007", a face template '
        "(128 numbers computed from your photo) and the photo's fingerprint (a SHA-256 hash)"
        f"{crop}. No name and no record of any kind is attached to your face.",
        f"For how long: your enrollment is deleted automatically after {hours} hours, or at once "
        'when you press "Delete my enrollment" (shown once you are enrolled).',
        "The searches you then make are recorded like any other search in this demo: their photo "
        f"is deleted within {retention['probe_images']}, the record that a search was made is "
        f"kept {retention['unidentified_searches']} (or {retention['confirmed_identifications']} "
        f"if someone confirms a match), and the audit log {retention['audit_entries']}.",
        "Everything stays in this demo's workspace on this computer.",
    ]


def _next_number(ws: Workspace) -> int:
    """Numbers are never reused (counted from the audit log), so a volunteer's label in an old
    search record never points at someone enrolled later."""
    with ws.store.read() as s:
        done = s.scalar(
            select(func.count(AuditEntry.seq)).where(
                AuditEntry.event == "enroll", AuditEntry.payload.like(f"%{SOURCE}%")
            )
        )
    n = int(done or 0) + 1
    while ws.gallery.find_person(f"{PREFIX}{n:04d}") is not None:
        n += 1
    return n


def enrol_volunteer(ws: Workspace, data: bytes, *, operator: str, consent: bool) -> Volunteer:
    """Enrol the volunteer's photo after checking consent and the search's quality gate (a
    photo good enough to search with; enrollment's own floor is lower)."""
    if not consent:
        raise OnboardingError(
            "tick the consent box: nothing is enrolled without it", code="demo.no_consent"
        )
    processed = ws.pipeline.process(data)
    ws.config.gate.enforce(processed.quality)
    n = _next_number(ws)
    external_id, display = f"{PREFIX}{n:04d}", f"Demo volunteer {n:04d}"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "volunteer.jpg"
        path.write_bytes(data)
        summary = ws.enrollment.enroll_images(
            [LabelledImage(path, external_id, display)],
            operator=operator,
            source_name=f"{SOURCE} ({external_id})",
            synthetic=True,
        )
    if summary.refused:
        r = summary.refused[0]
        raise OnboardingError(r.message, code=r.code)
    volunteer = get_volunteer(ws, ws.gallery.find_person(external_id) or -1)
    return volunteer


def get_volunteer(ws: Workspace, person_id: int) -> Volunteer:
    with ws.store.read() as s:
        p = s.get(Person, person_id)
    if p is None or not p.external_id.startswith(PREFIX):
        raise OnboardingError(
            f"no demo volunteer {person_id} is enrolled (deleted, expired, or never enrolled)",
            code="demo.not_a_volunteer",
        )
    return Volunteer(p.id, p.external_id, p.display_name, p.created_at)


def list_volunteers(ws: Workspace) -> list[Volunteer]:
    with ws.store.read() as s:
        rows = s.scalars(
            select(Person).where(Person.external_id.like(f"{PREFIX}%")).order_by(Person.id)
        )
        return [Volunteer(p.id, p.external_id, p.display_name, p.created_at) for p in rows]


def delete_volunteer(ws: Workspace, person_id: int, *, operator: str, reason: str) -> int:
    """Remove a volunteer from the gallery (person, images, templates) and audit it. Returns
    the number of templates removed."""
    v = get_volunteer(ws, person_id)
    with ws.store.unit_of_work() as uow:
        removed = ws.gallery.delete_person(uow, v.person_id)
        uow.audit(
            "enroll",
            operator=operator,
            payload={
                "action": "delete",
                "demo_onboarding": True,
                "person_id": v.person_id,
                "external_id": v.external_id,
                "templates_removed": removed,
                "reason": reason,
            },
        )
    ws.gallery.flush()
    return removed


def expire_volunteers(ws: Workspace, ttl_s: int) -> int:
    """Delete volunteers enrolled more than ``ttl_s`` seconds ago (the demo server's schedule)."""
    cut = ws.clock.now() - timedelta(seconds=ttl_s)
    n = 0
    for v in list_volunteers(ws):
        at = v.enrolled_at
        if at.tzinfo is None:
            at = at.replace(tzinfo=cut.tzinfo)
        if at < cut:
            delete_volunteer(
                ws,
                v.person_id,
                operator=EXPIRY_OPERATOR,
                reason=f"demo enrollment older than {ttl_s} s",
            )
            n += 1
    return n
