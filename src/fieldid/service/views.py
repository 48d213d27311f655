"""What the service shows of a persisted search: read from the database, never from memory.

Every page and API answer about a search after it ran comes from here: the search record
(``searches``), its candidates (``search_candidates``), its probe (``probes``, whose image and
template the retention purge nulls) and its human adjudications. A purged probe is a state to show
("probe deleted under the retention policy"), not an error.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageOps
from sqlalchemy import select

from fieldid.adjudication.schema import AdjudicationRecord, ProbeRecord, SearchRecord
from fieldid.adjudication.store import candidates_of, find_by_receipt, get_search
from fieldid.candidate import LEAD_NOTICE
from fieldid.errors import AuthorisationError, FieldidError
from fieldid.gallery.schema import AuditEntry, Person
from fieldid.service.auth import Principal
from fieldid.workspace import Workspace

#: Shown (and returned as ``probe.state_text``) where a purged probe photo would have been.
PROBE_PURGED = "probe deleted under the retention policy"
#: Largest side of the probe photo sent for display.
PROBE_DISPLAY_SIDE = 480


class ProbeGone(FieldidError):
    """The probe photo is no longer held (purged, or a refused search that never kept one)."""

    code = "probe.purged"


def utc(dt: datetime | None) -> datetime | None:
    """SQLite gives naive datetimes back; everything fieldid stores is UTC."""
    if dt is None:
        return None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def iso(dt: datetime | None) -> str | None:
    d = utc(dt)
    return None if d is None else d.isoformat().replace("+00:00", "Z")


def check_visible(principal: Principal, rec: SearchRecord) -> None:
    """A search's results are for the officer who ran it, and for reviewers (supervisors)."""
    if rec.operator != principal.actor.name and not principal.can("review"):
        raise AuthorisationError(
            "only the officer who ran a search, or a supervisor, may see it",
            code="access.forbidden",
            action="review",
        )


def visible_search(ws: Workspace, principal: Principal, search_id: int) -> SearchRecord:
    rec = get_search(ws, search_id)
    check_visible(principal, rec)
    return rec


def visible_receipt(ws: Workspace, principal: Principal, code: str) -> SearchRecord:
    rec = find_by_receipt(ws, code)
    check_visible(principal, rec)
    return rec


def _faces_in_frame(ws: Workspace, audit_seq: int) -> int | None:
    with ws.sessions() as s:
        payload = s.scalar(select(AuditEntry.payload).where(AuditEntry.seq == audit_seq))
    if payload is None:  # the audit entry is past its own retention period
        return None
    probe = json.loads(payload).get("probe") or {}
    n = probe.get("faces_in_frame")
    return int(n) if isinstance(n, int) else None


def probe_state(ws: Workspace, rec: SearchRecord) -> dict[str, Any]:
    """Whether the probe photo can be shown, and if not why not."""
    with ws.sessions() as s:
        probe = s.get(ProbeRecord, rec.id)
        if probe is None:
            return {
                "available": False,
                "state": "never_kept",
                "state_text": "no photo was kept: the search was refused",
                "quality": None,
                "purged_at": None,
            }
        quality = json.loads(probe.quality) if probe.quality else None
        if probe.image is None:
            return {
                "available": False,
                "state": "purged",
                "state_text": PROBE_PURGED,
                "quality": quality or None,
                "purged_at": iso(probe.image_purged_at),
            }
    return {
        "available": True,
        "state": "held",
        "state_text": None,
        "quality": quality or None,
        "purged_at": None,
    }


def probe_display(ws: Workspace, search_id: int) -> bytes:
    """The probe photo downscaled for display, made on each request (no copy is kept: the
    retention purge must leave nothing behind)."""
    with ws.sessions() as s:
        probe = s.get(ProbeRecord, search_id)
        data = None if probe is None else probe.image
    if data is None:
        raise ProbeGone(
            f"the photo of search {search_id}: {PROBE_PURGED}"
            if probe is not None
            else f"search {search_id} kept no photo (it was refused)",
            search_id=search_id,
        )
    with Image.open(io.BytesIO(data)) as opened:
        im = ImageOps.exif_transpose(opened).convert("RGB")
        im.thumbnail((PROBE_DISPLAY_SIDE, PROBE_DISPLAY_SIDE))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def rate_text(fmr: float | None, persons: int) -> str | None:
    """What a candidate's score means at this gallery size, from its false-match rate."""
    if fmr is None or fmr <= 0:
        return None
    fpir = 1.0 - (1.0 - min(fmr, 1.0)) ** max(persons, 1)
    return (
        f"About 1 in {1 / fmr:,.0f} comparisons with a stranger scores this high; searching "
        f"{persons:,} people, about {fpir:.1%} of searches would list some stranger at this score."
    )


def adjudication_dict(r: AdjudicationRecord) -> dict[str, Any]:
    words = {
        "confirm": "confirmed",
        "reject": "rejected",
        "inconclusive": "marked inconclusive",
    }[r.decision]
    return {
        "adjudication_id": r.id,
        "search_id": r.search_id,
        "person_id": r.person_id,
        "decision": r.decision,
        "state": r.state,
        "by": r.actor_name,
        "by_role": r.actor_role,
        "at": iso(r.at),
        "reason": r.reason,
        "documents": json.loads(r.documents),
        "conflicts": json.loads(r.conflicts),
        "second_by": r.second_by,
        "second_at": iso(r.second_at),
        "override_by": r.override_by,
        "override_reason": r.override_reason,
        "override_at": iso(r.override_at),
        "audit_seq": r.audit_seq,
        # Never a verdict: who decided, and that a human did.
        "summary": f"{words} by {r.actor_name} (human adjudication)",
    }


def adjudications(ws: Workspace, search_id: int) -> list[dict[str, Any]]:
    with ws.sessions() as s:
        rows = s.scalars(
            select(AdjudicationRecord)
            .where(AdjudicationRecord.search_id == search_id)
            .order_by(AdjudicationRecord.id)
        )
        return [adjudication_dict(r) for r in rows]


def search_view(ws: Workspace, rec: SearchRecord) -> dict[str, Any]:
    """The whole of a persisted search as every surface shows it (the API's
    ``GET /api/v1/searches/{id}``; the results, outcome and receipt pages)."""
    cands = candidates_of(ws, rec.id)
    with ws.sessions() as s:
        people = {
            p.id: p
            for p in s.scalars(select(Person).where(Person.id.in_([c.person_id for c in cands])))
        }
    probe = probe_state(ws, rec)
    persons = rec.gallery_persons
    candidates = []
    for c in cands:
        p = people.get(c.person_id)
        candidates.append(
            {
                "rank": c.rank,
                "person_id": c.person_id,
                "external_id": c.external_id,
                "display_name": p.display_name if p else c.external_id,
                "synthetic": bool(p.synthetic) if p else None,
                "in_gallery": p is not None,
                "score": round(c.score, 4),
                "fmr": c.fmr,
                "rate_text": rate_text(c.fmr, persons),
                # The records stream fills these (source, date, conflicts with the documents).
                "records": [],
            }
        )
    adjs = adjudications(ws, rec.id)
    documents = [d for a in adjs for d in a["documents"]]
    return {
        "search_id": rec.id,
        "search_ref": rec.audit_seq,
        "receipt_code": rec.receipt_code,
        "notice": LEAD_NOTICE,
        "operator": rec.operator,
        "purpose": rec.purpose,
        "case_ref": rec.case_ref,
        "notice_given": rec.notice_given,
        "at": iso(rec.started_at),
        "model": rec.model,
        "threshold": rec.threshold,
        "gallery": {"persons": rec.gallery_persons, "templates": rec.gallery_templates},
        "outcome": rec.outcome,
        "refusal_code": rec.refusal_code,
        "status": rec.status,
        "closed_at": iso(rec.closed_at),
        "faces_in_frame": _faces_in_frame(ws, rec.audit_seq),
        "quality": probe.pop("quality"),
        "probe": probe,
        "candidates": candidates,
        "adjudications": adjs,
        "documents_presented": documents,
        "links": links(rec.id, rec.receipt_code),
    }


def links(search_id: int, receipt_code: str) -> dict[str, str]:
    """Where a search's API resources and pages are."""
    return {
        "self": f"/api/v1/searches/{search_id}",
        "probe": f"/api/v1/searches/{search_id}/probe",
        "adjudications": f"/api/v1/searches/{search_id}/adjudications",
        "page": f"/results/{search_id}",
        "outcome": f"/outcome/{search_id}",
        "receipt": f"/receipt/{receipt_code}",
    }
