"""Enrolled face photos: the small crops kept at enrollment (``enrollment_images.thumbnail``).

Reading one is a use of a face: every surface that serves one audits it (``photo_access``) with
the search it belongs to, or, outside any search, with the reason a gallery-managing role gave
(``fieldid.service.api``, ``fieldid person photo``). This module only reads; the crops are
sealed at rest (``fieldid.store.keys``) and opened here, for the one shown.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from fieldid.errors import FieldidError
from fieldid.store.keys import THUMBNAIL, unseal
from fieldid.store.schema import EnrollmentImage, Person


def best_photo(s: Session, person_id: int) -> bytes:
    """The enrolled photo of a person (the best-quality crop kept at enrollment). Raises
    ``person.not_found`` or ``person.no_photo`` (template-only identities have none)."""
    if s.get(Person, person_id) is None:
        raise FieldidError("that person is no longer in the gallery", code="person.not_found")
    best = s.execute(
        select(EnrollmentImage.id, EnrollmentImage.thumbnail)
        .where(EnrollmentImage.person_id == person_id, EnrollmentImage.thumbnail.is_not(None))
        .order_by(EnrollmentImage.quality_unified.desc(), EnrollmentImage.id)
        .limit(1)
    ).first()
    blob = None if best is None or best[1] is None else unseal(s, THUMBNAIL, best[0], best[1])
    if not blob:
        images = s.scalar(
            select(EnrollmentImage.id).where(EnrollmentImage.person_id == person_id).limit(1)
        )
        why = "has no enrolled image" if images is None else "has no stored photo"
        raise FieldidError(f"this person {why}", code="person.no_photo")
    return bytes(blob)
