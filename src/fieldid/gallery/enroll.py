"""Enrollment: take a labelled image set into the gallery, idempotently, reporting every refusal."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fieldid.dataset import LabelledImage
from fieldid.errors import FieldidError
from fieldid.probe import decode_probe
from fieldid.workspace import Workspace


@dataclass(frozen=True)
class Refusal:
    path: str
    identity: str
    code: str
    message: str


@dataclass
class EnrollmentSummary:
    enrolled: int = 0
    already_enrolled: int = 0
    new_people: int = 0
    refused: list[Refusal] = field(default_factory=list)

    @property
    def refusal_counts(self) -> dict[str, int]:
        return dict(Counter(r.code for r in self.refused))

    def to_dict(self) -> dict[str, Any]:
        return {
            "enrolled": self.enrolled,
            "already_enrolled": self.already_enrolled,
            "new_people": self.new_people,
            "refused": len(self.refused),
            "refusal_counts": self.refusal_counts,
            "refusals": [r.__dict__ for r in self.refused],
        }


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
    summary = EnrollmentSummary()
    min_ied = ws.config.enroll_min_inter_eye_px
    gallery.index()  # loaded (or rebuilt) once, then kept current and saved at the end
    try:
        for item in items:
            try:
                data = item.path.read_bytes()
            except OSError as e:
                summary.refused.append(
                    Refusal(str(item.path), item.identity, "probe.not_found", str(e))
                )
                if progress:
                    progress(1)
                continue
            sha = hashlib.sha256(data).hexdigest()
            if gallery.has_image(item.identity, sha):
                summary.already_enrolled += 1
            else:
                try:
                    probe = decode_probe(data, ws.config.limits)
                    processed = pipeline.process_image(probe)
                    ied = processed.acquisition.face.inter_eye_distance
                    if ied < min_ied:
                        summary.refused.append(
                            Refusal(
                                str(item.path),
                                item.identity,
                                "quality.too_far",
                                f"face too small to enrol: eyes {ied:.0f} px apart, "
                                f"{min_ied:.0f} needed",
                            )
                        )
                    else:
                        existed = gallery.find_person(item.identity) is not None
                        out = gallery.enroll(
                            external_id=item.identity,
                            display_name=item.display_name,
                            template=processed.template,
                            source=str(item.path),
                            sha256=sha,
                            width=probe.width,
                            height=probe.height,
                            quality_unified=processed.quality.unified,
                            synthetic=synthetic,
                        )
                        if out is None:
                            summary.already_enrolled += 1
                        else:
                            summary.enrolled += 1
                            summary.new_people += 0 if existed else 1
                except FieldidError as err:
                    summary.refused.append(
                        Refusal(str(item.path), item.identity, err.code, err.message)
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
            },
        )
    return summary
