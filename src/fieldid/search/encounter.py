"""Documents first: an encounter begins with the document the person presents, and 1:N search
is the fallback (issue 12, item 4).

:class:`DocumentEncounters` checks a presented document (the data page photo's MRZ, the chip's
data groups by passive authentication, the live face 1:1 against the portrait; see
:mod:`fieldid.documents.service`) and records the check with its audit entry in one unit of
work. The check *passes* when all of these hold:

- its evidence is ``mrz_read`` (every check digit holds, nothing uncertain) or
  ``chip_verified`` (passive authentication held, and the chip agrees with the page if both
  were given);
- the document is not expired (an expiry that cannot be read does not pass);
- the live face matches the portrait at the threshold in force for 1:1
  (``[search] verify_target_fmr`` through the calibration, or the configured threshold).

A passing check *settles* the encounter: it ends there, with no gallery search, and its receipt
says so. Nothing of the document's images is kept (they would be deleted when the encounter
ends, and it has ended). A check that does not pass leaves the encounter open: a 1:N search may
follow (:meth:`fieldid.search.service.SearchService.search` with ``document_check``), and the
data page photo and chip data are held until the encounter ends (retention class
``document_images``). A 1:N search after a passing check is refused unless the officer records
why the document is not enough (at least :data:`MIN_SEARCH_REASON` characters); the reason is
stored with the check and audited with the search.

What is recorded (``document_checks``, ``fieldid.store.schema.encounters``): the document's
fields as a presented document with its evidence level (the number only as the workspace's
keyed hash), each check's state, the 1:1 result. The live face is not kept.
"""

from __future__ import annotations

import base64
import json
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from fieldid.access import Actor, require
from fieldid.adjudication.store import new_receipt_code
from fieldid.audit.log import Attribution
from fieldid.calibration.store import CalibrationSource
from fieldid.clock import Clock
from fieldid.config import WorkspaceConfig
from fieldid.documents.chip import ChipFiles
from fieldid.documents.ocr import LineReader
from fieldid.documents.service import DocumentCheck, DocumentChecker
from fieldid.errors import FieldidError
from fieldid.pipeline import FacePipeline
from fieldid.probe import IntakeLimits
from fieldid.records.documents import PresentedDocument
from fieldid.search.service import check_attribution
from fieldid.store import Store, UnitOfWork
from fieldid.store.keys import CHIP_DATA, DOCUMENT_IMAGE, record_hash_key, seal
from fieldid.store.schema import DocumentCheckRecord

#: Evidence levels, weakest first: an officer typed the fields; the MRZ was read from the
#: page with every check digit holding; the chip's data was verified by passive authentication.
EVIDENCE_ORDER = ("typed", "mrz_read", "chip_verified")
#: ICAO document code (its first letter) -> the document type fieldid records.
DOCUMENT_TYPES = {"P": "passport", "V": "visa", "I": "identity_card", "A": "identity_card"}


def document_type(code: str) -> str:
    c = (code or "?")[:1].upper()
    return DOCUMENT_TYPES.get(c, "identity_card" if c == "C" else "travel_document")


def failed_because(check: DocumentCheck) -> list[str]:
    """Why a check does not settle the encounter (empty: it passes); see the module."""
    out = []
    if check.conflicts:
        out.append("document.chip_page_conflict")
    elif check.evidence not in ("mrz_read", "chip_verified"):
        if check.chip is not None and not check.chip.verified:
            out.append("document.chip_not_verified")
        if check.reading is None:
            out.append("document.not_read")
        elif not check.reading.valid:
            out.append("document.check_digits")
        if check.chip is None and check.reading is None:
            out.append("document.nothing_given")
    if check.expiry_state == "expired":
        out.append("document.expired")
    elif check.expiry_state != "valid":
        out.append("document.expiry_unknown")
    if check.match is None:
        out.append("face.not_compared")
    elif not check.match.above_threshold:
        out.append("face.below_threshold")
    return out


def presented_from(check: DocumentCheck) -> PresentedDocument | None:
    """The document a check read, as a presented document with its evidence level (the chip's
    fields where it was verified, else the page's)."""
    chip_ok = check.chip is not None and check.chip.verified and check.chip.mrz is not None
    mrz = check.chip.mrz if chip_ok and check.chip is not None else None
    if mrz is None and check.reading is not None:
        mrz = check.reading.mrz
    if mrz is None:
        return None
    f = mrz.fields

    def day(key: str) -> date | None:
        v = f.get(key)
        return None if not v else date.fromisoformat(str(v))

    name = " ".join(x for x in (f.get("given_names"), f.get("surname")) if x) or None
    return PresentedDocument(
        document_type=document_type(str(f.get("document_code", ""))),
        number=f.get("document_number") or None,
        issuing_country=f.get("issuing_country") or None,
        name=name,
        date_of_birth=day("date_of_birth_iso"),
        nationality=f.get("nationality") or None,
        expiry=day("expiry_date_iso"),
        evidence=check.evidence if check.evidence in EVIDENCE_ORDER else "none",
    )


def _checks_summary(check: DocumentCheck) -> dict[str, Any]:
    """Each check's state, without images or data groups (what the record keeps)."""
    r = check.reading
    mrz: dict[str, Any] | None = None
    if r is not None:
        mrz = {
            "format": r.mrz.format,
            "valid": r.valid,
            "checks": {c.name: c.state for c in r.mrz.checks},
            "uncertain": len(r.uncertain),
            "corrections": len(r.corrections),
            "confidence": round(r.confidence, 3),
        }
    chip = None
    if check.chip is not None:
        chip = {
            "verified": check.chip.verified,
            "reasons": [x.to_dict() for x in check.chip.reasons],
            "data_groups": {str(k): v for k, v in check.chip.data_group_hashes.items()},
            "signer": check.chip.signer_subject,
            "csca": check.chip.csca_subject,
        }
    return {
        "evidence": check.evidence,
        "expiry_state": check.expiry_state,
        "mrz": mrz,
        "mrz_error": check.reading_error,
        "chip": chip,
        "chip_page_conflicts": check.conflicts,
    }


def _face_summary(check: DocumentCheck) -> dict[str, Any] | None:
    if check.match is not None:
        d = check.match.to_dict()
        d.pop("timings_ms", None)
        return d
    if check.match_error is not None:
        return {"error": check.match_error}
    return None


def chip_json(files: ChipFiles) -> bytes:
    """The chip's files as held while the encounter is open (base64 in JSON)."""
    return json.dumps(
        {
            "sod": base64.b64encode(files.sod).decode(),
            "data_groups": {
                str(k): base64.b64encode(v).decode() for k, v in files.data_groups.items()
            },
        }
    ).encode()


@dataclass(frozen=True)
class EncounterCheck:
    """A recorded document check and what it means for the encounter."""

    check_id: int
    audit_seq: int
    receipt_code: str
    check: DocumentCheck
    passed: bool
    failed_because: list[str]
    document: dict[str, Any] | None

    @property
    def settled(self) -> bool:
        return self.passed

    def to_dict(self) -> dict[str, Any]:
        d = self.check.to_dict()
        if d.get("mrz") is not None:
            # the photo's pixels never go back; the band's corners are not needed by a client
            d["mrz"].pop("band_corners", None)
        return {
            "check_id": self.check_id,
            "audit_seq": self.audit_seq,
            "receipt_code": self.receipt_code,
            "evidence": self.check.evidence,
            "presented_document": self.document,
            "passed": self.passed,
            "failed_because": self.failed_because,
            "settled": self.settled,
            "outcome": "settled_by_document" if self.settled else "open",
            "search_offered": not self.settled,
            "next": (
                "the document passed: the encounter ends here, with no gallery search"
                if self.settled
                else "the document did not settle the encounter: a 1:N search may follow"
            ),
            "check": d,
        }


class DocumentEncounters:
    """Document checks of one workspace, recorded and audited (see the module)."""

    def __init__(
        self,
        store: Store,
        pipeline: FacePipeline,
        calibration: CalibrationSource,
        config: WorkspaceConfig,
        clock: Clock,
        *,
        root: Path,
        csca_folder: Path | None = None,
        reader: LineReader | None = None,
        limits: IntakeLimits | None = None,
    ) -> None:
        self.store = store
        self.pipeline = pipeline
        self.calibrations = calibration
        self.config = config
        self.clock = clock
        self.root = root
        self.csca_folder = csca_folder
        self.reader = reader
        self.limits = limits

    def checker(self) -> DocumentChecker:
        return DocumentChecker(
            self.pipeline,
            self.calibrations.current(),
            csca_folder=self.csca_folder,
            clock=self.clock,
            reader=self.reader,
            threshold=self.config.threshold,
            verify_target_fmr=self.config.verify_target_fmr,
            limits=self.limits,
        )

    def check(
        self,
        attr: Attribution,
        *,
        document_image: bytes | None,
        live_face: bytes | None,
        chip: ChipFiles | None = None,
        actor: Actor | None = None,
        uow: UnitOfWork | None = None,
        record_lock: AbstractContextManager[Any] | None = None,
    ) -> EncounterCheck:
        """Check the document, compare the live face 1:1, record and audit the check (one unit
        of work: ``uow``, the caller's, or a new one). Refused (audited ``document_check``,
        outcome refused) without an operator, a permitted purpose, a case, or anything to check.
        The reading and the face work run first, outside any transaction; ``record_lock`` (the
        server's work lock) is held only while the check is recorded."""
        check_attribution(attr, self.config.purposes)
        started = time.time()
        try:
            if actor is not None:
                require(actor, "search")
            if document_image is None and chip is None:
                raise FieldidError(
                    "give the data page photo, the chip's data groups, or both",
                    code="document.nothing_given",
                )
        except FieldidError as err:
            self.store.append_audit(
                "document_check",
                operator=attr.operator,
                purpose=attr.purpose,
                case_ref=attr.case_ref,
                payload={"outcome": "refused", "error": err.to_dict(), "started": started},
                releasing=uow,
            )
            raise
        result = self.checker().check(document_image, live_face, chip=chip)
        why = failed_because(result)
        passed = not why
        presented = presented_from(result)
        stored = (
            None if presented is None else presented.stored(record_hash_key(self.store)).to_dict()
        )
        receipt = new_receipt_code()
        summary = _checks_summary(result)
        face = _face_summary(result)
        keep_image: bytes | None = None
        if not passed and document_image is not None and result.reading is not None:
            # held while the encounter is open, re-encoded (no metadata), never the upload
            ok, enc = cv2.imencode(
                ".jpg",
                cv2.cvtColor(np.ascontiguousarray(result.reading.rgb), cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 90],
            )
            keep_image = bytes(enc) if ok else None
        with record_lock or nullcontext(), self.store.using(uow) as u:
            now = u.now()
            rec = DocumentCheckRecord(
                audit_seq=0,
                receipt_code=receipt,
                operator=attr.operator,
                purpose=attr.purpose,
                case_ref=attr.case_ref,
                checked_at=now,
                evidence=result.evidence,
                expiry_state=result.expiry_state,
                document=stored,
                checks=summary,
                face=face,
                passed=passed,
                failed_because=why,
                status="settled_by_document" if passed else "open",
                ended_at=now if passed else None,
            )
            u.session.add(rec)
            u.session.flush()  # the check's id binds its sealed document data
            # the holder's portrait is in both: sealed like every biometric value
            if keep_image is not None:
                rec.document_image = seal(u.session, DOCUMENT_IMAGE, rec.id, keep_image)
            if not passed and chip is not None:
                rec.chip_data = seal(u.session, CHIP_DATA, rec.id, chip_json(chip))
            entry = u.audit(
                "document_check",
                operator=attr.operator,
                purpose=attr.purpose,
                case_ref=attr.case_ref,
                payload={
                    "started": started,
                    "ended": time.time(),
                    "outcome": "settled_by_document" if passed else "not_settled",
                    "document_check_id": rec.id,
                    "receipt_code": receipt,
                    "evidence": result.evidence,
                    "passed": passed,
                    "failed_because": why,
                    "document": stored,
                    "checks": summary,
                    "face": face,
                    "kept": {
                        "document_image": keep_image is not None,
                        "chip_data": rec.chip_data is not None,
                    },
                    **({"actor": {"name": actor.name, "role": actor.role.value}} if actor else {}),
                },
            )
            rec.audit_seq = entry.seq
        return EncounterCheck(rec.id, entry.seq, receipt, result, passed, why, stored)
