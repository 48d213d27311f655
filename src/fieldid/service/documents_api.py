"""Documents first, over HTTP (``/api/v1/document-checks``): check the document the person
presents and compare their face 1:1 before any 1:N search (fieldid.search.encounter).

A check that passes settles the encounter (``settled: true``): no gallery search, and the
receipt says so. Otherwise the answer offers a search: ``POST /api/v1/searches`` with
``document_check`` set to the check's id. A search after a check that passed needs
``document_reason`` (at least 15 characters, audited).
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from fieldid.audit import Attribution
from fieldid.documents.chip import ChipFiles
from fieldid.errors import FieldidError
from fieldid.service import schemas
from fieldid.service.api import ERRORS, PROBLEM, read_upload
from fieldid.service.auth import Need, Principal, app_state
from fieldid.service.db import Uow
from fieldid.service.guards import MAX_ID
from fieldid.store import Store, UnitOfWork
from fieldid.store.schema import DocumentCheckRecord, SearchRecord

router = APIRouter(prefix="/api/v1")

#: Largest chip file accepted (a DG2 with a JPEG 2000 portrait is some tens of kB).
MAX_CHIP_FILE = 512 * 1024


def _b64(value: str | None, name: str) -> bytes | None:
    if value is None or not value.strip():
        return None
    try:
        raw = base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise FieldidError(f"{name} is not base64: {e}", code="chip.base64", field=name) from e
    if len(raw) > MAX_CHIP_FILE:
        raise FieldidError(
            f"{name} is larger than {MAX_CHIP_FILE // 1024} kB", code="chip.too_large", field=name
        )
    return raw


def chip_from_form(sod: str | None, dg1: str | None, dg2: str | None) -> ChipFiles | None:
    """The chip's files from base64 form fields (what a phone's NFC reader app exports), or
    None when none was given. EF.SOD and DG1 are needed; DG2 (the portrait) is optional."""
    s, d1, d2 = _b64(sod, "chip_sod"), _b64(dg1, "chip_dg1"), _b64(dg2, "chip_dg2")
    if s is None and d1 is None and d2 is None:
        return None
    if s is None or d1 is None:
        raise FieldidError(
            "a chip needs at least EF.SOD and DG1 (chip_sod, chip_dg1)", code="chip.incomplete"
        )
    groups = {1: d1} if d2 is None else {1: d1, 2: d2}
    return ChipFiles(sod=s, data_groups=groups)


def check_view(s: Session, rec: DocumentCheckRecord) -> dict[str, Any]:
    """A recorded document check as the API shows it (no image, no data group); the search that
    followed by its public id."""
    search = None if rec.search_id is None else s.get(SearchRecord, rec.search_id)
    return {
        "check_id": rec.id,
        "receipt_code": rec.receipt_code,
        "operator": rec.operator,
        "purpose": rec.purpose,
        "case_ref": rec.case_ref,
        "checked_at": rec.checked_at.isoformat(),
        "evidence": rec.evidence,
        "expiry_state": rec.expiry_state,
        "presented_document": rec.document,
        "checks": rec.checks,
        "face": rec.face,
        "passed": rec.passed,
        "failed_because": rec.failed_because,
        "status": rec.status,
        "settled": rec.status == "settled_by_document",
        "search_id": None if search is None else search.public_id,
        "search_reason": rec.search_reason,
        "held": {
            "document_image": rec.document_image is not None,
            "chip_data": rec.chip_data is not None,
            "purged_at": None if rec.data_purged_at is None else rec.data_purged_at.isoformat(),
        },
    }


def audit_check_read(
    store: Store, uow: UnitOfWork, principal: Principal, rec: DocumentCheckRecord, via: str
) -> None:
    """Audit a read of a document check (``document_check_view``) under the principal, with
    the check's purpose and case, in the request's unit of work."""
    with store.using(uow) as u:
        u.audit(
            "document_check_view",
            operator=principal.actor.name,
            purpose=rec.purpose,
            case_ref=rec.case_ref,
            payload={
                "role": principal.actor.role.value,
                "via": principal.via,
                "document_check_id": rec.id,
                "check_seq": rec.audit_seq,
                "via_route": via,
            },
        )


@router.post(
    "/document-checks",
    tags=["documents"],
    status_code=201,
    response_model=schemas.DocumentCheckResult,
    responses=ERRORS,
)
async def create_check(
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search"))],
    purpose: Annotated[str, Form(max_length=200)],
    case_ref: Annotated[str, Form(max_length=200)],
    document: Annotated[
        UploadFile | None, File(description="A photo of the data page (JPEG, PNG or WebP).")
    ] = None,
    face: Annotated[
        UploadFile | None, File(description="The live face, compared 1:1 with the portrait.")
    ] = None,
    chip_sod: Annotated[str | None, Form(max_length=800_000)] = None,
    chip_dg1: Annotated[str | None, Form(max_length=800_000)] = None,
    chip_dg2: Annotated[str | None, Form(max_length=800_000)] = None,
) -> JSONResponse:
    """Check a presented document: read its MRZ (check digits), verify its chip (passive
    authentication, files as base64), compare the live face with its portrait 1:1. Recorded
    and audited (``document_check``). ``settled: true``: the document passed and the
    encounter ends with no gallery search; else ``search_offered: true``."""
    state = app_state(request)
    page = None if document is None else await read_upload(document, state, "document photo")
    live = None if face is None else await read_upload(face, state, "face photo")
    chip = chip_from_form(chip_sod, chip_dg1, chip_dg2)
    attr = Attribution(principal.actor.name, purpose.strip(), case_ref.strip())
    ws = state.workspace
    t = time.perf_counter()

    def run() -> dict[str, Any]:
        out = ws.documents.check(
            attr,
            document_image=page,
            live_face=live,
            chip=chip,
            actor=principal.actor,
            uow=uow,
            record_lock=state.work_lock,
        )
        return out.to_dict()

    try:
        body = await run_in_threadpool(run)
    except FieldidError as e:
        state.metrics.outcome("document_check", e.code)
        raise
    state.metrics.outcome("document_check", "settled" if body["settled"] else "not_settled")
    body["server_ms"] = round((time.perf_counter() - t) * 1000, 1)
    body["links"] = {
        "self": f"/api/v1/document-checks/{body['check_id']}",
        "receipt": f"/receipt/document/{body['receipt_code']}",
    }
    return JSONResponse(body, status_code=201, headers={"Location": body["links"]["self"]})


@router.get(
    "/document-checks/{check_id}",
    tags=["documents"],
    response_model=schemas.DocumentCheckView,
    responses={**ERRORS, 404: PROBLEM},
)
def get_check(
    check_id: int,
    request: Request,
    uow: Uow,
    principal: Annotated[Principal, Depends(Need("search"))],
) -> dict[str, Any]:
    """A recorded document check: the officer's own, or any for a supervisor (``review``).
    Reading it is audited (``document_check_view``)."""
    rec = visible_check(uow.session, principal, check_id)
    view = check_view(uow.session, rec)
    audit_check_read(app_state(request).workspace.store, uow, principal, rec, "api")
    return view


def visible_check(s: Session, principal: Principal, check_id: int) -> DocumentCheckRecord:
    """A document check the principal may see: their own, or any for a supervisor."""
    rec = None if check_id > MAX_ID or check_id < 1 else s.get(DocumentCheckRecord, check_id)
    if rec is None or (rec.operator != principal.actor.name and not principal.can("review")):
        raise FieldidError(f"no document check {check_id}", code="document.check_not_found")
    return rec
