"""What the service shows of a persisted search: read from the database, never from memory.

Every page and API answer about a search after it ran comes from here: the search record
(``searches``, with its read model: threshold in force, presented documents), its candidates
(``search_candidates``, each with the meaning its score had), its probe (``probes``, whose image
and template the retention purge nulls) and its human adjudications. A purged probe is a state to
show ("probe deleted under the retention policy"), not an error. Nothing here reads the audit log:
it is evidence, not storage. Every function reads through the session it is given (the request's
unit of work).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

from PIL import Image, ImageOps
from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldid.adjudication.store import SearchRef, candidates_of, find_by_receipt, get_search
from fieldid.candidate import CANDIDATES, LEAD_NOTICE, LIST_LABELS
from fieldid.errors import AuthorisationError, FieldidError
from fieldid.gallery.photos import best_photo
from fieldid.not_checked import capture_text
from fieldid.records.assemble import assemble
from fieldid.records.checks import stored_document
from fieldid.records.documents import compare_documents
from fieldid.service.auth import Principal
from fieldid.store import Store, UnitOfWork
from fieldid.store.keys import PROBE_IMAGE, unseal
from fieldid.store.repos.lineage import current_people, current_person
from fieldid.store.schema import (
    AdjudicationRecord,
    Person,
    ProbeRecord,
    SearchCandidate,
    SearchRecord,
)
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


def visible_search(s: Session, principal: Principal, search_id: SearchRef) -> SearchRecord:
    rec = get_search(s, search_id)
    check_visible(principal, rec)
    return rec


def visible_receipt(s: Session, principal: Principal, code: str) -> SearchRecord:
    rec = find_by_receipt(s, code)
    check_visible(principal, rec)
    return rec


#: What to do after a refusal, by code family, where the refusal's own message does not say it.
NEXT_STEP = {
    "quality": "Take another photo, or choose another file, with the changes above.",
    "acquire": "Take a photo with the person's face clearly in view, from the front.",
    "probe": "Use a JPEG, PNG or WebP photo of the person's face.",
}


def refusal_view(rec: SearchRecord) -> dict[str, Any] | None:
    """Why an attempt was refused and what to do, as recorded with it (None for a search that
    ran). Quality refusals list every finding, most useful first."""
    if rec.outcome != "refused":
        return None
    error = rec.refusal or {}
    code = str(error.get("code") or rec.refusal_code or "refused")
    guidance = [
        {
            "code": g.get("code", ""),
            "message": str(g.get("message", "")),
            "detail": str(g.get("detail", "")),
        }
        for g in error.get("guidance") or []
        if isinstance(g, dict)
    ]
    family = code.split(".", 1)[0]
    return {
        "code": code,
        "message": str(error.get("message") or "the photo could not be searched"),
        "guidance": guidance,
        "capture": error.get("capture"),
        "next_step": NEXT_STEP.get(family, "Take another photo and try again."),
        "quality_refusal": family == "quality",
    }


def candidates_records(
    s: Session,
    ws: Workspace,
    person_ids: list[int],
    presented: list[dict[str, Any]],
    *,
    training: bool,
) -> dict[int, dict[str, Any]]:
    """Each candidate's records (by source, most recent first), summary and conflicts, and how
    the documents presented at the search compare with them. Records are read as they are now;
    a correction since the search shows as corrected. A training search's candidates are read
    from the training gallery."""
    if not person_ids:
        return {}
    if training:
        with ws.training().store.read() as ts:
            found = assemble(ts, person_ids)
    else:
        found = assemble(s, person_ids)
    key = ws.document_key()
    docs = [stored_document(d, key) for d in presented]
    out: dict[int, dict[str, Any]] = {}
    for pid in person_ids:
        recs = found[pid]
        conflicts, agreements = compare_documents(docs, recs.records)
        out[pid] = {
            **recs.to_dict(),
            "presented_document_conflicts": conflicts,
            "presented_document_agreements": agreements,
        }
    return out


def probe_state(s: Session, rec: SearchRecord) -> dict[str, Any]:
    """Whether the probe photo can be shown, and if not why not."""
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


def probe_display(s: Session, rec: SearchRecord) -> bytes:
    """The probe photo downscaled for display, made on each request (no copy is kept: the
    retention purge must leave nothing behind)."""
    probe = s.get(ProbeRecord, rec.id)
    sealed = None if probe is None else probe.image
    if sealed is None:
        raise ProbeGone(
            f"the photo of this search: {PROBE_PURGED}"
            if probe is not None
            else "this attempt kept no photo (it was refused)",
            search_id=rec.public_id,
        )
    return _jpeg(unseal(s, PROBE_IMAGE, rec.id, sealed))


def _jpeg(data: bytes) -> bytes:
    with Image.open(io.BytesIO(data)) as opened:
        im = ImageOps.exif_transpose(opened).convert("RGB")
        im.thumbnail((PROBE_DISPLAY_SIDE, PROBE_DISPLAY_SIDE))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def person_photo(s: Session, person_id: int) -> bytes:
    """The enrolled photo of a person (``fieldid.gallery.photos.best_photo``)."""
    return best_photo(s, person_id)


def candidate_photo(s: Session, rec: SearchRecord, rank: int) -> tuple[bytes, SearchCandidate, int]:
    """The enrolled photo of the candidate at ``rank`` of a search (of the person who holds the
    candidate's identity today, after any merge): the photo, the candidate, that person's id."""
    cand = s.scalars(
        select(SearchCandidate).where(
            SearchCandidate.search_id == rec.id, SearchCandidate.rank == rank
        )
    ).first()
    if cand is None:
        raise FieldidError(f"this search listed no candidate {rank}", code="search.no_candidate")
    if rec.training:
        raise FieldidError(
            "training candidates are template-only synthetic identities: no photo",
            code="person.no_photo",
        )
    now = current_person(s, cand.person_id, cand.external_id)
    if now is None:
        raise FieldidError("that person is no longer in the gallery", code="person.not_found")
    return person_photo(s, now), cand, now


def audit_access(
    uow: UnitOfWork,
    store: Store,
    principal: Principal,
    event: str,
    rec: SearchRecord | None,
    payload: dict[str, Any],
) -> int:
    """Audit a read of a face, a record or a search (``search_view``, ``photo_access``,
    ``search_list``, ``review_view``…) under the principal, with the search it belongs to, in
    the request's unit of work: the answer goes out only once the entry is committed."""
    purpose = rec.purpose if rec is not None else None
    case_ref = rec.case_ref if rec is not None else None
    about = {} if rec is None else {"search_id": rec.public_id, "search_seq": rec.audit_seq}
    with store.using(uow) as u:
        entry = u.audit(
            event,
            operator=principal.actor.name,
            purpose=purpose,
            case_ref=case_ref,
            payload={"role": principal.actor.role.value, "via": principal.via, **about, **payload},
        )
    return entry.seq


#: How each decision reads, by whom (never a verdict: who decided, and that a human did).
DECISION_WORDS = {
    "confirm": "confirmed",
    "reject": "ruled out",
    "not_identified": "closed without an identification",
    "inconclusive": "closed as inconclusive",
    "no_lead": "closed as no lead",
}

#: What an adjudication's state means, in words.
ADJUDICATION_STATE_TEXT = {
    "final": "recorded",
    "pending_second": "a confirmation waits for a second person",
    "blocked_conflict": "blocked: a document presented conflicts with the records",
    "disagreed": "a second person disagreed: the confirmation does not stand",
    "withdrawn": "withdrawn: the lead was ruled out or the search closed",
}


def adjudication_dict(r: AdjudicationRecord, search: SearchRecord) -> dict[str, Any]:
    words = DECISION_WORDS.get(r.decision, r.decision)
    return {
        "adjudication_id": r.id,
        "search_id": search.public_id,
        "person_id": r.person_id,
        "decision": r.decision,
        "state": r.state,
        "state_text": ADJUDICATION_STATE_TEXT.get(r.state, r.state),
        "by": r.actor_name,
        "by_role": r.actor_role,
        "at": iso(r.at),
        "reason": r.reason,
        "documents": json.loads(r.documents),
        "conflicts": json.loads(r.conflicts),
        "second_by": r.second_by,
        "second_at": iso(r.second_at),
        "second_decision": r.second_decision,
        "second_reason": r.second_reason,
        "override_by": r.override_by,
        "override_reason": r.override_reason,
        "override_at": iso(r.override_at),
        "audit_seq": r.audit_seq,
        # Never a verdict: who decided, and that a human did (and whether it still stands).
        "summary": f"{words} by {r.actor_name} (human adjudication)"
        + (
            f"; {r.second_by} disagreed"
            if r.state == "disagreed"
            else "; withdrawn"
            if r.state == "withdrawn"
            else ""
        ),
        "links": {
            "second": f"/api/v1/searches/{search.public_id}/adjudications/{r.id}/second",
            "override": f"/api/v1/searches/{search.public_id}/adjudications/{r.id}/override",
        },
    }


def adjudications(s: Session, search: SearchRecord) -> list[dict[str, Any]]:
    rows = s.scalars(
        select(AdjudicationRecord)
        .where(AdjudicationRecord.search_id == search.id)
        .order_by(AdjudicationRecord.id)
    )
    return [adjudication_dict(r, search) for r in rows]


def _cite(r: dict[str, Any]) -> str:
    kind = str(r.get("kind", "record")).replace("_", " ")
    return f"{kind}, {r.get('date') or 'undated'}, source {r.get('source')}"


def flag_text(flag: dict[str, Any]) -> str:
    """One line for a disagreement between records, naming each record's source and date."""
    field = str(flag.get("field", "")).replace("_", " ")
    if flag.get("rule") == "later_record_differs":
        e, la = flag["earlier"], flag["later"]
        return (
            f"{field}: a later record ({_cite(la)}) states {la['value']}, an earlier one "
            f"({_cite(e)}) states {e['value']}"
        )
    parts = [
        f"{v['value']} ({'; '.join(_cite(r) for r in v['records'])})"
        for v in flag.get("values", [])
    ]
    return f"sources disagree on {field}: " + " vs ".join(parts)


def document_conflict_text(c: dict[str, Any]) -> str:
    """One line for a presented document that differs from a candidate's records."""
    field = str(c.get("field", "")).replace("_", " ")
    shown = "" if field == "document number" else f" {c.get('presented')}"
    on_record = "; ".join(
        _cite(r) + ("" if field == "document number" else f" states {r.get('value')}")
        for r in c.get("records", [])
    )
    n = int(c.get("document", 0)) + 1
    return f"presented document {n}: {field}{shown} differs from {on_record}"


def records_by_source(recs: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary statements grouped by source (sources by most recent record first), each
    marked when a disagreement cites it."""
    cited: set[Any] = set()
    for flag in recs.get("conflicts", []):
        for v in flag.get("values", []):
            cited.update(r.get("record_id") for r in v.get("records", []))
        for k in ("earlier", "later"):
            if k in flag:
                cited.add(flag[k].get("record_id"))
    for c in recs.get("presented_document_conflicts", []):
        cited.update(r.get("record_id") for r in c.get("records", []))
    texts = {st["record_id"]: st["text"] for st in recs.get("summary", [])}
    return [
        {
            "source": g["source"],
            "authority": g.get("authority"),
            "records": [
                {
                    "record_id": r["record_id"],
                    "date": r.get("date"),
                    "kind": r.get("kind"),
                    "text": texts.get(r["record_id"], ""),
                    "in_conflict": r["record_id"] in cited,
                    "corrected": r.get("corrected"),
                    "synthetic": r.get("synthetic"),
                }
                for r in g["records"]
            ],
        }
        for g in recs.get("records", [])
    ]


def search_view(s: Session, ws: Workspace, rec: SearchRecord) -> dict[str, Any]:
    """The whole of a persisted search as every surface shows it (the API's
    ``GET /api/v1/searches/{id}``; the results, outcome and receipt pages), read through ``s``;
    ``ws`` for the training gallery and the document-number key."""
    cands = candidates_of(s, rec.id)
    presented = list(rec.presented_documents or [])
    # Candidates are history: each keeps the person id it was listed under. For what is shown
    # now (name, photo, records) follow any merge since to the person who holds them today.
    if rec.training:  # training candidates belong to the training gallery, not this one
        current: dict[int, int | None] = {c.person_id: c.person_id for c in cands}
        people: dict[int, Person] = {}
    else:
        found = current_people(s, [(c.person_id, c.external_id) for c in cands])
        current = {
            c.person_id: (found[c.person_id].id if c.person_id in found else None) for c in cands
        }
        people = {p.id: p for p in found.values()}
    records = candidates_records(
        s,
        ws,
        sorted({v for v in current.values() if v is not None}),
        presented,
        training=bool(rec.training),
    )
    probe = probe_state(s, rec)
    adjs = adjudications(s, rec)
    ruled_out = {
        a["person_id"]: a for a in adjs if a["decision"] == "reject" and a["state"] == "final"
    }
    candidates = []
    for c in cands:
        now = current.get(c.person_id)
        p = people.get(now) if now is not None else None
        recs = records.get(now, {}) if now is not None else {}
        candidates.append(
            {
                "rank": c.rank,
                "person_id": c.person_id,
                # A rejected lead: who ruled it out and why (the search stays open for the rest).
                "ruled_out": ruled_out.get(c.person_id),
                "photo": f"/api/v1/searches/{rec.public_id}/candidates/{c.rank}/photo"
                if p is not None
                else None,
                "current_person_id": now,
                "merged_into": now if now is not None and now != c.person_id else None,
                "external_id": c.external_id,
                "display_name": p.display_name if p else c.external_id,
                "synthetic": bool(p.synthetic) if p else None,
                "in_gallery": p is not None,
                "score": round(c.score, 4),
                "above_threshold": True if c.above_threshold is None else c.above_threshold,
                "fmr": c.fmr,
                # What the score meant at the gallery size and probe quality of the search, as
                # recorded then (calibration.meaning).
                "rate_text": c.meaning,
                "presented_document_conflicts": recs.get("presented_document_conflicts", []),
                "presented_document_agreements": recs.get("presented_document_agreements", []),
                "conflicts": recs.get("conflicts", []),
                "summary": recs.get("summary", []),
                "records": recs.get("records", []),
                "by_source": records_by_source(recs),
                "conflict_texts": [flag_text(f) for f in recs.get("conflicts", [])],
                "document_conflict_texts": [
                    document_conflict_text(x) for x in recs.get("presented_document_conflicts", [])
                ],
            }
        )
    documents_at_search = [
        {
            **d,
            "conflicts_with_ranks": [
                c["rank"]
                for c in candidates
                if any(x["document"] == i for x in c["presented_document_conflicts"])
            ],
        }
        for i, d in enumerate(presented)
    ]
    tif = rec.threshold_in_force or {}
    documents = [d for a in adjs for d in a["documents"]]
    return {
        "search_id": rec.public_id,
        "audit_seq": rec.audit_seq,
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
        "status_text": status_text(rec, adjs, len(candidates)),
        "closed_at": iso(rec.closed_at),
        "faces_in_frame": rec.faces_in_frame,
        "list_kind": rec.list_kind,
        "list_label": LIST_LABELS.get(rec.list_kind, LIST_LABELS[CANDIDATES]),
        "training": bool(rec.training),
        "threshold_in_force": tif,
        "threshold_text": tif.get("text"),
        "rates_unavailable": rec.rates_unavailable,
        "documents_at_search": documents_at_search,
        "quality": probe.pop("quality"),
        "probe": probe,
        "candidates": candidates,
        "adjudications": adjs,
        "documents_presented": documents,
        # Refused: why, and what to do; the photo was compared with nothing and not kept.
        "refusal": refusal_view(rec),
        # An investigation list run on a photo below the quality gate: the reason given and the
        # gate's findings (labelled low quality wherever the list is shown).
        "below_gate": rec.below_gate,
        "low_quality": rec.below_gate is not None,
        # Where the probe came from, and what that means (fieldid.not_checked).
        "capture": rec.capture,
        "capture_text": capture_text(rec.capture),
        "links": links(rec.public_id, rec.receipt_code),
        **location_view(rec),
    }


def location_view(rec: SearchRecord) -> dict[str, Any]:
    """Where the search was asked from, as kept: the coarse cell, the sensitive areas it lay in
    and the approval it used. Nothing (not even the key) for a search made with location off."""
    if rec.location is None and rec.location_areas is None:
        return {}
    cell = rec.location
    areas = list(rec.location_areas or [])
    where = (
        "not sent" if cell is None else f"cell {cell['lat']}, {cell['lon']} ({cell['grid_deg']}°)"
    )
    if areas:
        from fieldid.location.approvals import describe_areas

        where += f", in {describe_areas(areas)}"
    if rec.location_approval_id is not None:
        where += f"; on a supervisor's approval (request {rec.location_approval_id})"
    return {
        "location": {
            "cell": cell,
            "areas": areas,
            "approval_id": rec.location_approval_id,
            "text": where,
        }
    }


def status_text(rec: SearchRecord, adjs: list[dict[str, Any]], leads: int) -> str:
    """A search's state in words (``fieldid.adjudication.states``), with what the officer
    needs to know next: never a verdict about the person."""
    from fieldid.adjudication.states import STATE_TEXT, SearchState

    if rec.outcome == "refused":
        return f"refused: the photo was not searched ({rec.refusal_code or 'no reason kept'})"
    try:
        state = SearchState(rec.status)
    except ValueError:
        return rec.status
    if state == SearchState.OPEN:
        last = adjs[-1] if adjs else None
        if last is not None and last["state"] == "disagreed":
            return (
                f"open: {last['second_by']} disagreed with the confirmation by {last['by']}; "
                "the leads can be decided again"
            )
        if rec.outcome == "no_candidate_above_threshold":
            return "open: no candidate at or above the threshold; close it as no lead"
        n = sum(1 for a in adjs if a["decision"] == "reject" and a["state"] == "final")
        if n:
            left = max(leads - n, 0)
            if left == 0:
                return f"open: every lead ruled out ({n}); close the search"
            rest = "the other waits" if left == 1 else "the others wait"
            return f"open: {n} of {leads} leads ruled out; {rest} for a decision"
    return STATE_TEXT[state]


def links(search_id: str, receipt_code: str) -> dict[str, str]:
    """Where a search's API resources and pages are."""
    return {
        "self": f"/api/v1/searches/{search_id}",
        "probe": f"/api/v1/searches/{search_id}/probe",
        "adjudications": f"/api/v1/searches/{search_id}/adjudications",
        "page": f"/results/{search_id}",
        "outcome": f"/outcome/{search_id}",
        "receipt": f"/receipt/{receipt_code}",
    }
