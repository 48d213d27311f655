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
from starlette.concurrency import run_in_threadpool

from fieldid.audit import Attribution
from fieldid.documents.chip import ChipFiles
from fieldid.errors import FieldidError
from fieldid.service.api import ERRORS, PROBLEM, read_upload
from fieldid.service.auth import Need, Principal, app_state
from fieldid.service.db import Uow
from fieldid.service.guards import MAX_ID
from fieldid.store.schema import DocumentCheckRecord

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


def check_view(rec: DocumentCheckRecord) -> dict[str, Any]:
    """A recorded document check as the API shows it (no image, no data group)."""
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
        "search_id": rec.search_id,
        "search_reason": rec.search_reason,
        "held": {
            "document_image": rec.document_image is not None,
            "chip_data": rec.chip_data is not None,
            "purged_at": None if rec.data_purged_at is None else rec.data_purged_at.isoformat(),
        },
    }


@router.post("/document-checks", tags=["documents"], status_code=201, responses=ERRORS)
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


@router.get("/document-checks/{check_id}", tags=["documents"], responses={**ERRORS, 404: PROBLEM})
def get_check(
    check_id: int, uow: Uow, principal: Annotated[Principal, Depends(Need("search"))]
) -> dict[str, Any]:
    """A recorded document check: the officer's own, or any for a supervisor (``review``)."""
    rec = None if check_id > MAX_ID else uow.session.get(DocumentCheckRecord, check_id)
    if rec is None or (rec.operator != principal.actor.name and not principal.can("review")):
        raise FieldidError(f"no document check {check_id}", code="document.check_not_found")
    return check_view(rec)
