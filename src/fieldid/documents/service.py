"""Document checks as one service: read, verify the chip, compare the face 1:1. No storage.

:class:`DocumentChecker` is built with what it uses (the face pipeline, the calibration in force,
the CSCA folder, a clock, and optionally an OCR reader and thresholds) and keeps nothing between
calls: the caller decides what is recorded, audited and kept. ``check`` returns a
:class:`DocumentCheck` with the evidence level reached:

- ``mrz_read``: the MRZ was read from the photo and is ``valid`` (every check digit holds,
  nothing uncertain);
- ``chip_verified``: passive authentication held;
- ``none``: neither (what was read is still shown, with why it is not evidence).

(The level ``typed``, fields an officer typed, is the presented-document path in
:mod:`fieldid.records.documents`.) Where the chip was verified and an MRZ was also read from the
photo, the two must agree on every field; a disagreement is listed in ``conflicts`` and the level
falls to ``none``: a chip and a page that disagree are not one document.

The 1:1 comparison takes the chip's portrait (DG2) when the chip was verified, else the data
page's portrait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fieldid.calibration import Calibration
from fieldid.clock import Clock, SystemClock
from fieldid.documents.chip import ChipFiles, ChipVerification, verify_chip
from fieldid.documents.ocr import LineReader
from fieldid.documents.portrait import (
    DEFAULT_VERIFY_TARGET_FMR,
    PortraitMatch,
    as_probe,
    compare,
    find_portrait,
)
from fieldid.documents.read import DocumentError, DocumentReading, read_document
from fieldid.errors import FieldidError
from fieldid.pipeline import FacePipeline, Processed
from fieldid.probe import IntakeLimits, decode_probe

EVIDENCE_LEVELS = ("none", "typed", "mrz_read", "chip_verified")
#: Fields compared between a chip's DG1 and the MRZ read from the page.
COMPARED_FIELDS = (
    "document_code",
    "issuing_country",
    "document_number",
    "surname",
    "given_names",
    "nationality",
    "date_of_birth",
    "sex",
    "expiry_date",
)


@dataclass
class DocumentCheck:
    """Everything one document check found."""

    evidence: str
    reading: DocumentReading | None = None
    reading_error: dict[str, Any] | None = None
    chip: ChipVerification | None = None
    match: PortraitMatch | None = None
    match_error: dict[str, Any] | None = None
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    expiry_state: str = "unknown"
    timings_ms: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "evidence": self.evidence,
            "expiry_state": self.expiry_state,
            "mrz": None if self.reading is None else self.reading.to_dict(),
            "mrz_error": self.reading_error,
            "chip": None if self.chip is None else self.chip.to_dict(),
            "chip_page_conflicts": self.conflicts,
            "face": None if self.match is None else self.match.to_dict(),
            "face_error": self.match_error,
            "timings_ms": {k: round(v, 1) for k, v in self.timings_ms.items()},
        }


class DocumentChecker:
    def __init__(
        self,
        pipeline: FacePipeline,
        calibration: Calibration | None,
        *,
        csca_folder: Path | None = None,
        clock: Clock | None = None,
        reader: LineReader | None = None,
        threshold: float | None = None,
        verify_target_fmr: float = DEFAULT_VERIFY_TARGET_FMR,
        limits: IntakeLimits | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.calibration = calibration
        self.csca_folder = csca_folder
        self.clock = clock or SystemClock()
        self.reader = reader
        self.threshold = threshold
        self.verify_target_fmr = verify_target_fmr
        self.limits = limits

    def read(self, image: bytes | str | Path) -> DocumentReading:
        return read_document(image, reader=self.reader, clock=self.clock, limits=self.limits)

    def verify_chip(self, files: ChipFiles) -> ChipVerification:
        return verify_chip(files, self.csca_folder, clock=self.clock)

    def check(
        self,
        document_image: bytes | str | Path | None,
        live_face: bytes | str | Path | None,
        *,
        chip: ChipFiles | None = None,
    ) -> DocumentCheck:
        """Read the page (if given), verify the chip (if given), compare the live face (if
        given) with the portrait. A part that fails is reported with its reason; the others
        still run."""
        timings: dict[str, float] = {}
        out = DocumentCheck(evidence="none")
        page_rgb = None
        if document_image is not None:
            t = time.perf_counter()
            try:
                page_rgb = decode_probe(document_image, self.limits).rgb
                out.reading = read_document(page_rgb, reader=self.reader, clock=self.clock)
            except FieldidError as e:
                out.reading_error = e.to_dict()
            timings["read"] = (time.perf_counter() - t) * 1000
        if chip is not None:
            t = time.perf_counter()
            out.chip = self.verify_chip(chip)
            timings["chip"] = (time.perf_counter() - t) * 1000
        # evidence level
        if out.chip is not None and out.chip.verified:
            out.evidence = "chip_verified"
        elif out.reading is not None and out.reading.valid:
            out.evidence = "mrz_read"
        if out.chip is not None and out.chip.verified and out.reading is not None:
            out.conflicts = _conflicts(out.reading, out.chip)
            if out.conflicts:
                out.evidence = "none"
        mrz = (
            out.chip.mrz
            if out.chip is not None and out.chip.verified and out.chip.mrz is not None
            else (out.reading.mrz if out.reading is not None else None)
        )
        if mrz is not None:
            exp = mrz.fields.get("expiry_date_iso")
            today = self.clock.now().date().isoformat()
            out.expiry_state = "unknown" if exp is None else ("expired" if exp < today else "valid")
        if live_face is not None:
            t = time.perf_counter()
            try:
                out.match = self._match(out, page_rgb, live_face)
            except FieldidError as e:
                out.match_error = e.to_dict()
            timings["face"] = (time.perf_counter() - t) * 1000
        out.timings_ms = timings
        return out

    def _match(
        self, out: DocumentCheck, page_rgb: Any, live_face: bytes | str | Path
    ) -> PortraitMatch:
        portrait: Processed
        if out.chip is not None and out.chip.verified and out.chip.face_rgb is not None:
            portrait, source = self.pipeline.process_image(as_probe(out.chip.face_rgb)), "chip"
        elif page_rgb is not None:
            corners = None if out.reading is None else out.reading.band_corners
            portrait, _ = find_portrait(self.pipeline, page_rgb, corners)
            source = "data_page"
        else:
            raise DocumentError(
                "no portrait to compare with: give the data page photo or a verified chip with DG2",
                code="document.no_portrait",
            )
        live = self.pipeline.process(live_face)
        return compare(
            portrait,
            live,
            model=str(self.pipeline.model),
            calibration=self.calibration,
            portrait_source=source,
            threshold=self.threshold,
            verify_target_fmr=self.verify_target_fmr,
        )


def _conflicts(reading: DocumentReading, chip: ChipVerification) -> list[dict[str, Any]]:
    if chip.mrz is None:
        return []
    out = []
    for f in COMPARED_FIELDS:
        a, b = reading.mrz.fields.get(f), chip.mrz.fields.get(f)
        if a != b:
            out.append({"field": f, "page": a, "chip": b})
    return out
