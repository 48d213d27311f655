"""The field app's documents-first screens (issue 12, item 4).

start ("does the person have an identity document?") → document (photograph the data page with
the camera inside a document frame, or choose a file; then the face) → what was read and checked
and the 1:1 result → either the encounter is settled (no gallery search; the receipt says so), or
the officer goes on to the 1:N capture page with the check attached (after a document that passed
only with a written reason).

The data page's number is shown once, on the page that answers the check, and stored only as the
workspace's keyed hash: a check's page read back later shows the hash's absence, not the number.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fieldid.audit import Attribution
from fieldid.errors import FieldidError
from fieldid.search.encounter import EncounterCheck
from fieldid.search.service import MIN_DOCUMENT_REASON
from fieldid.service import api
from fieldid.service.auth import Need, Principal, app_state
from fieldid.service.db import Uow
from fieldid.service.documents_api import audit_check_read, check_view, visible_check
from fieldid.service.problems import status_for
from fieldid.service.web import _use_errors, _when, qr_svg, render
from fieldid.store.schema import DocumentCheckRecord

router = APIRouter(include_in_schema=False)

EVIDENCE_TEXT = {
    "chip_verified": "Chip verified (passive authentication)",
    "mrz_read": "MRZ read, every check digit valid",
    "typed": "Typed by the officer",
    "none": "Not evidence: the document could not be read or verified",
}
WHY_TEXT = {
    "document.chip_page_conflict": "the chip and the printed page disagree",
    "document.chip_not_verified": "the chip could not be verified",
    "document.not_read": "the machine-readable zone could not be read",
    "document.check_digits": "a check digit fails, or a character is uncertain",
    "document.nothing_given": "no document was given",
    "document.expired": "the document has expired",
    "document.expiry_unknown": "the expiry date could not be read",
    "face.not_compared": "the face could not be compared with the portrait",
    "face.below_threshold": "the face does not match the portrait at the threshold in force",
}
FIELDS = (
    ("document_code", "Document code"),
    ("issuing_country", "Issuing state"),
    ("document_number", "Document number"),
    ("surname", "Surname"),
    ("given_names", "Given names"),
    ("nationality", "Nationality"),
    ("date_of_birth_iso", "Date of birth"),
    ("sex", "Sex"),
    ("expiry_date_iso", "Expiry"),
)


def _use(purpose: str, case_ref: str, notice_given: bool | None) -> dict[str, Any]:
    return {"purpose": purpose, "case_ref": case_ref.strip(), "notice_given": bool(notice_given)}


def _document_context(
    request: Request, principal: Principal, use: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    s = app_state(request).settings
    return {
        **use,
        "camera": request.query_params.get("camera", "on") != "off",
        "csrf": principal.csrf_token or "",
        "config": {"width": s.capture_width, "height": s.capture_height},
        "error": None,
        **extra,
    }


@router.get("/document")
def document_page(
    request: Request,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
    purpose: str = "",
    case_ref: str = "",
    notice_given: bool | None = None,
) -> HTMLResponse:
    """Photograph the person's document (camera with a document frame, or a file), then their
    face: the 1:1 check that comes before any gallery search."""
    errors = _use_errors(request, purpose, case_ref, notice_given)
    if errors:
        from fieldid.service.web import _start_context

        ctx = _start_context(
            request, purpose=purpose, case_ref=case_ref, notice_given=bool(notice_given)
        )
        ctx["errors"] = errors
        return render(request, "start.html", ctx, status=422)
    use = _use(purpose, case_ref, notice_given)
    return render(request, "document.html", _document_context(request, principal, use))


def result_context(
    request: Request, s: Session, out: EncounterCheck | None, rec: DocumentCheckRecord
) -> dict[str, Any]:
    """What the result page shows: from the check just made (``out``: the fields as read, the
    MRZ lines) or, read back later, from its record (the number only hashed)."""
    view = check_view(s, rec)
    reading = None if out is None else out.check.reading
    chip = None if out is None else out.check.chip
    mrz = None
    if out is not None:
        if chip is not None and chip.verified and chip.mrz is not None:
            mrz = chip.mrz
        elif reading is not None:
            mrz = reading.mrz
    fields = []
    if mrz is not None:
        fields = [(label, mrz.fields.get(key) or "") for key, label in FIELDS]
    elif rec.document is not None:
        d = rec.document
        fields = [
            ("Document type", d.get("document_type") or ""),
            ("Issuing state", d.get("issuing_country") or ""),
            ("Document number", "kept only as a keyed hash" if d.get("number_hash") else ""),
            ("Name", d.get("name") or ""),
            ("Nationality", d.get("nationality") or ""),
            ("Date of birth", d.get("date_of_birth") or ""),
            ("Expiry", d.get("expiry") or ""),
        ]
    mrz_checks = (rec.checks or {}).get("mrz") or {}
    use = {
        "purpose": rec.purpose,
        "case_ref": rec.case_ref,
        "notice_given": "true",
        "document_check": str(rec.id),
    }
    return {
        "rec": rec,
        "view": view,
        "evidence_text": EVIDENCE_TEXT.get(rec.evidence, rec.evidence),
        "why": [WHY_TEXT.get(w, w) for w in rec.failed_because],
        "fields": fields,
        "mrz_lines": [] if reading is None else reading.mrz.lines,
        "check_digits": mrz_checks.get("checks", {}),
        "uncertain": mrz_checks.get("uncertain", 0),
        "corrections": mrz_checks.get("corrections", 0),
        "chip": (rec.checks or {}).get("chip"),
        "conflicts": (rec.checks or {}).get("chip_page_conflicts", []),
        "face": rec.face,
        "at": _when(rec.checked_at.isoformat()),
        "search_query": urlencode(use),
        "min_reason": MIN_DOCUMENT_REASON,
        "fresh": out is not None,
    }


@router.post("/document")
async def document_submit(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
    document: Annotated[UploadFile, File()],
    face: Annotated[UploadFile, File()],
    purpose: Annotated[str, Form()] = "",
    case_ref: Annotated[str, Form()] = "",
    notice_given: Annotated[bool | None, Form()] = None,
) -> Response:
    """Check the document and compare the face 1:1; answers with what was read and checked."""
    state = app_state(request)
    use = _use(purpose, case_ref, notice_given)
    try:
        errors = _use_errors(request, purpose, case_ref, notice_given)
        if errors:
            raise FieldidError(" ".join(errors), code="use.incomplete")
        page = await api.read_upload(document, state, "document photo")
        live = await api.read_upload(face, state, "face photo")
        attr = Attribution(principal.actor.name, purpose.strip(), case_ref.strip())

        def run() -> EncounterCheck:
            return state.workspace.documents.check(
                attr,
                document_image=page,
                live_face=live,
                actor=principal.actor,
                uow=uow,
                record_lock=state.work_lock,
            )

        out = await run_in_threadpool(run)
    except FieldidError as e:
        ctx = _document_context(request, principal, use, error=e)
        return render(request, "document.html", ctx, status=status_for(e.code))
    state.metrics.outcome("document_check", "settled" if out.settled else "not_settled")
    rec = uow.session.get(DocumentCheckRecord, out.check_id)
    assert rec is not None
    return render(request, "document_result.html", result_context(request, uow.session, out, rec))


@router.get("/document/{check_id}")
def document_result(
    check_id: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
) -> HTMLResponse:
    """A document check read back: its record (the number only hashed); audited
    (``document_check_view``)."""
    rec = visible_check(uow.session, principal, check_id)
    ctx = result_context(request, uow.session, None, rec)
    audit_check_read(app_state(request).workspace.store, uow, principal, rec, "page")
    return render(request, "document_result.html", ctx)


@router.get("/receipt/document/{code}")
def document_receipt(
    code: str,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search", page=True))],
) -> HTMLResponse:
    """The receipt for a person whose document was checked: settled by the document, no gallery
    search; what is kept and for how long; how to ask for redress."""
    from sqlalchemy import select

    from fieldid.retention.policy import RetentionPolicy

    ws = app_state(request).workspace
    rec = uow.session.scalars(
        select(DocumentCheckRecord).where(DocumentCheckRecord.receipt_code == code.strip().upper())
    ).first()
    if rec is None or (rec.operator != principal.actor.name and not principal.can("review")):
        raise FieldidError(
            "no document check with this receipt code", code="document.check_not_found"
        )
    text = ws.config.receipt
    audit_check_read(ws.store, uow, principal, rec, "receipt")
    return render(
        request,
        "receipt_document.html",
        {
            "rec": rec,
            "at": _when(rec.checked_at.isoformat()),
            "purpose": rec.purpose.replace("-", " "),
            "text": text,
            "qr": qr_svg(text.qr_payload(rec.receipt_code)),
            "qr_payload": text.qr_payload(rec.receipt_code),
            "retention": RetentionPolicy.load(ws.root).human(),
            "settled": rec.status == "settled_by_document",
            "evidence_text": EVIDENCE_TEXT.get(rec.evidence, rec.evidence),
        },
    )
