"""Enrollment: take a labelled image set into the gallery, idempotently, reporting every refusal.

Every image goes through :func:`enroll_one`, which also writes the face thumbnail shown beside
candidates and checks the new template against *other* people: a score at or above the strict
``[enrollment] duplicate_threshold`` opens a possible-duplicate review item (the image is still
enrolled as asked; nothing is merged).
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fieldid.dataset import LabelledImage
from fieldid.errors import FieldidError
from fieldid.pipeline import Processed
from fieldid.probe import decode_probe
from fieldid.workspace import Workspace

THUMBNAIL_PX = 160


@dataclass(frozen=True)
class Refusal:
    path: str
    identity: str
    code: str
    message: str


@dataclass(frozen=True)
class EnrollOutcome:
    """What happened to one image: ``enrolled``, ``already_enrolled`` or ``refused``."""

    outcome: str
    person_id: int | None = None
    image_id: int | None = None
    new_person: bool = False
    refusal: Refusal | None = None
    review_item: int | None = None


@dataclass
class EnrollmentSummary:
    enrolled: int = 0
    already_enrolled: int = 0
    new_people: int = 0
    refused: list[Refusal] = field(default_factory=list)
    #: Review items opened for possible duplicates (ids).
    possible_duplicates: list[int] = field(default_factory=list)
    #: Why dedupe did not run, if it did not (no threshold known for the model).
    dedupe_off: str | None = None

    @property
    def refusal_counts(self) -> dict[str, int]:
        return dict(Counter(r.code for r in self.refused))

    def add(self, out: EnrollOutcome) -> None:
        if out.outcome == "enrolled":
            self.enrolled += 1
            self.new_people += int(out.new_person)
        elif out.outcome == "already_enrolled":
            self.already_enrolled += 1
        elif out.refusal is not None:
            self.refused.append(out.refusal)
        if out.review_item is not None:
            self.possible_duplicates.append(out.review_item)

    def to_dict(self) -> dict[str, Any]:
        return {
            "enrolled": self.enrolled,
            "already_enrolled": self.already_enrolled,
            "new_people": self.new_people,
            "refused": len(self.refused),
            "refusal_counts": self.refusal_counts,
            "refusals": [r.__dict__ for r in self.refused],
            "possible_duplicates": list(self.possible_duplicates),
            "dedupe_off": self.dedupe_off,
        }


def face_thumbnail(processed: Processed, size: int = THUMBNAIL_PX) -> bytes:
    """A JPEG of the face (box with a margin, square), at most ``size`` px a side."""
    rgb = processed.probe.rgb
    box = processed.acquisition.face.box
    cx, cy = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    half = max(box.width, box.height) * 0.75
    h, w = rgb.shape[:2]
    x0, x1 = max(0, int(cx - half)), min(w, int(cx + half))
    y0, y1 = max(0, int(cy - half)), min(h, int(cy + half))
    crop = Image.fromarray(np.ascontiguousarray(rgb[y0:y1, x0:x1]))
    crop.thumbnail((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    crop.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def enroll_one(
    ws: Workspace,
    *,
    path: Path,
    identity: str,
    display_name: str | None = None,
    operator: str,
    synthetic: bool = False,
    record_id: int | None = None,
    capture_date: date | None = None,
    provenance: str | None = None,
) -> EnrollOutcome:
    """Enrol one image under ``identity`` (created if new). Idempotent per (identity, bytes).

    Refusals (unreadable, no face, face too small) come back as an outcome, never raised."""
    pipeline, gallery = ws.pipeline, ws.gallery
    try:
        data = path.read_bytes()
    except OSError as e:
        return EnrollOutcome(
            "refused", refusal=Refusal(str(path), identity, "probe.not_found", str(e))
        )
    sha = hashlib.sha256(data).hexdigest()
    if gallery.has_image(identity, sha):
        return EnrollOutcome("already_enrolled", person_id=gallery.find_person(identity))
    min_ied = ws.config.enroll_min_inter_eye_px
    try:
        probe = decode_probe(data, ws.config.limits)
        processed = pipeline.process_image(probe)
        ied = processed.acquisition.face.inter_eye_distance
        if ied < min_ied:
            return EnrollOutcome(
                "refused",
                refusal=Refusal(
                    str(path),
                    identity,
                    "quality.too_far",
                    f"face too small to enrol: eyes {ied:.0f} px apart, {min_ied:.0f} needed",
                ),
            )
        existing = gallery.find_person(identity)
        threshold = ws.config.duplicate_threshold_for(pipeline.model.id)
        duplicate = None
        if threshold is not None:
            for hit in gallery.search(processed.template, 3):
                if hit.person_id != existing and hit.score >= threshold:
                    duplicate = hit
                    break
        out = gallery.enroll(
            external_id=identity,
            display_name=display_name,
            template=processed.template,
            source=str(path),
            sha256=sha,
            width=probe.width,
            height=probe.height,
            quality_unified=processed.quality.unified,
            synthetic=synthetic,
            record_id=record_id,
            capture_date=capture_date,
            provenance=provenance,
            thumbnail=face_thumbnail(processed),
        )
    except FieldidError as err:
        return EnrollOutcome("refused", refusal=Refusal(str(path), identity, err.code, err.message))
    if out is None:
        return EnrollOutcome("already_enrolled", person_id=existing)
    item = None
    if duplicate is not None and threshold is not None:
        from fieldid.records.review import open_duplicate_item

        item = open_duplicate_item(
            ws,
            person_id=out.person_id,
            other_person_id=duplicate.person_id,
            image_id=out.image_id or 0,
            score=duplicate.score,
            threshold=threshold,
            operator=operator,
        )
    return EnrollOutcome(
        "enrolled",
        person_id=out.person_id,
        image_id=out.image_id,
        new_person=existing is None,
        review_item=item,
    )


def dedupe_off_reason(ws: Workspace) -> str | None:
    model = ws.pipeline.model.id
    if ws.config.duplicate_threshold_for(model) is None:
        return (
            f"no [enrollment] duplicate_threshold for model {model}: possible duplicates are not "
            "checked until one is set"
        )
    return None


def enroll_images(
    ws: Workspace,
    items: list[LabelledImage],
    *,
    operator: str,
    source_name: str,
    synthetic: bool = False,
    progress: Callable[[int], None] | None = None,
) -> EnrollmentSummary:
    """Enrol each image under its identity. An image already enrolled for that identity (same
    bytes) is skipped without being processed again; a failure is reported, never dropped."""
    pipeline, gallery = ws.pipeline, ws.gallery
    summary = EnrollmentSummary(dedupe_off=dedupe_off_reason(ws))
    gallery.index()  # loaded (or rebuilt) once, then kept current and saved at the end
    try:
        for item in items:
            summary.add(
                enroll_one(
                    ws,
                    path=item.path,
                    identity=item.identity,
                    display_name=item.display_name,
                    operator=operator,
                    synthetic=synthetic,
                    provenance=f"enrolled from {source_name}",
                )
            )
            if progress:
                progress(1)
    finally:
        gallery.flush()
        ws.audit.append(
            "enroll",
            operator=operator,
            payload={
                "source": source_name,
                "model": str(pipeline.model),
                "enrolled": summary.enrolled,
                "already_enrolled": summary.already_enrolled,
                "new_people": summary.new_people,
                "refused": summary.refusal_counts,
                "synthetic": synthetic,
                "possible_duplicates": summary.possible_duplicates,
                "dedupe_off": summary.dedupe_off,
            },
        )
    return summary
