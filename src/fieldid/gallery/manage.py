"""Managing the gallery: list, show, correct and delete people and their enrolled images.

The gallery-managing role (``gallery_manage``: admin) acts here; every act is audited in the same
unit of work as the change it makes (or, for the reads, as an entry of its own), so a change and
its entry exist together or not at all:

- ``gallery_read``: a list of people (with the filter asked) or one person shown;
- ``person_correct``: a person's display name corrected (old and new value, reason);
- ``image_correct``: an enrolled image's capture date or provenance corrected, or the image moved
  to the person it really shows (old and new values, reason);
- ``person_delete``: a person deleted with their images, templates, source links and records
  (counts, reason);
- ``image_delete``: one enrolled image deleted with its templates (reason).

Deleting purges the biometric data (templates, the image's stored face crop) from the database
and, after the commit, the vector index (:meth:`fieldid.gallery.store.Gallery.change`): a search
afterwards cannot return the person or the image, whatever process runs it (an index behind the
database is caught up before it is used). History is not rewritten: searches and adjudications
keep the person ids and external ids they recorded.

Refusals (codes ``person.*``): an unknown person or image, no reason, a correction that changes
nothing, a person named by an adjudication still waiting on a second confirmation or an override
(finish it first, as for a merge), moving an image between a synthetic and a real person (invented
data is never attached to a real person, nor the reverse), or onto a person who already holds
those exact bytes.

Every method takes an optional ``uow`` (the API's request-scoped unit of work), committed before
it returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from fieldid.access import Actor, require
from fieldid.errors import FieldidError
from fieldid.gallery.store import Gallery
from fieldid.store import Store, UnitOfWork
from fieldid.store.repos import lineage
from fieldid.store.schema import (
    AdjudicationRecord,
    EnrollmentImage,
    Person,
    PersonLink,
    Record,
    TemplateRow,
)

#: The permission every act here needs (``fieldid.access.PERMISSIONS``).
PERMISSION = "gallery_manage"
#: The shortest reason a correction or a deletion is accepted with.
MIN_REASON = 10
#: Largest page of a list.
MAX_LIMIT = 500
#: Adjudication states that still wait for a person's act (as for a merge).
_OPEN_ADJUDICATION = ("pending_second", "blocked_conflict")
#: Marks "not given" in a correction (None means "clear the field").
UNSET: Any = object()


class GalleryError(FieldidError):
    """A gallery-management act refused (codes ``person.*``)."""


@dataclass(frozen=True)
class ImageInfo:
    """An enrolled image as stored (never its bytes: a photo is served only by an audited use)."""

    id: int
    person_id: int
    source: str
    provenance: str | None
    sha256: str
    width: int
    height: int
    quality_unified: int
    created_at: datetime
    capture_date: date | None
    record_id: int | None
    has_photo: bool
    templates: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = lineage.as_utc(self.created_at).isoformat()
        d["capture_date"] = None if self.capture_date is None else self.capture_date.isoformat()
        return d


@dataclass(frozen=True)
class PersonSummary:
    id: int
    external_id: str
    display_name: str
    synthetic: bool
    created_at: datetime
    images: int
    templates: int

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["created_at"] = lineage.as_utc(self.created_at).isoformat()
        return d


@dataclass(frozen=True)
class PersonDetail(PersonSummary):
    """A person with their enrolled images, and how many records and source links they have."""

    image_list: tuple[ImageInfo, ...] = ()
    records: int = 0
    source_links: int = 0
    #: External ids of people merged into this one (``fieldid person history`` tells more).
    merged_from: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = PersonSummary.to_dict(self)
        d.pop("image_list", None)
        d["image_list"] = [i.to_dict() for i in self.image_list]
        d["merged_from"] = list(self.merged_from)
        return d


@dataclass(frozen=True)
class PeoplePage:
    people: tuple[PersonSummary, ...]
    total: int
    offset: int
    limit: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "people": [p.to_dict() for p in self.people],
            "total": self.total,
            "offset": self.offset,
            "limit": self.limit,
        }


@dataclass(frozen=True)
class Deletion:
    """What a deletion removed, and the audit entry that records it."""

    person_id: int
    external_id: str
    image_id: int | None
    images_removed: int
    templates_removed: int
    records_removed: int
    links_removed: int
    audit_seq: int
    #: The person left after an image deletion (None when the person was deleted).
    person: PersonDetail | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "person_id": self.person_id,
            "external_id": self.external_id,
            "image_id": self.image_id,
            "images_removed": self.images_removed,
            "templates_removed": self.templates_removed,
            "records_removed": self.records_removed,
            "links_removed": self.links_removed,
            "audit_seq": self.audit_seq,
            "person": None if self.person is None else self.person.to_dict(),
        }


def _text(value: str, what: str, *, lines: bool = False) -> str:
    """``value`` stripped; refused when it holds a control character (a NUL cannot be stored
    in PostgreSQL text; none belongs in a name, a provenance or a search). ``lines``: tabs and
    line breaks are allowed (a reason)."""
    allowed = "\t\n\r" if lines else ""
    bad = next((c for c in value if (ord(c) < 32 or ord(c) == 127) and c not in allowed), None)
    if bad is not None:
        raise GalleryError(
            f"the {what} holds a control character (U+{ord(bad):04X})", code="person.bad_text"
        )
    return value.strip()


def _reason(reason: str) -> str:
    text = _text(reason, "reason", lines=True)
    if len(text) < MIN_REASON:
        raise GalleryError(
            f"say why (at least {MIN_REASON} characters): the reason is kept in the audit log",
            code="person.no_reason",
        )
    return text


def _counts(s: Session, column: Any, ids: list[int]) -> dict[int, int]:
    if not ids:
        return {}
    rows = s.execute(select(column, func.count()).where(column.in_(ids)).group_by(column))
    return {int(k): int(n) for k, n in rows}


def _person(s: Session, person_id: int, *, lock: bool = False) -> Person:
    q = select(Person).where(Person.id == person_id)
    if lock:
        q = q.with_for_update()
    p = s.scalars(q).first()
    if p is None:
        raise GalleryError(f"no person {person_id} in the gallery", code="person.not_found")
    return p


def _image(s: Session, person_id: int, image_id: int, *, lock: bool = False) -> EnrollmentImage:
    q = select(EnrollmentImage).where(EnrollmentImage.id == image_id)
    if lock:
        q = q.with_for_update()
    img = s.scalars(q).first()
    if img is None or img.person_id != person_id:
        raise GalleryError(
            f"person {person_id} has no enrolled image {image_id}", code="person.image_not_found"
        )
    return img


def _image_infos(s: Session, person_id: int) -> tuple[ImageInfo, ...]:
    images = list(
        s.scalars(
            select(EnrollmentImage)
            .where(EnrollmentImage.person_id == person_id)
            .order_by(EnrollmentImage.id)
        )
    )
    per_image = _counts(s, TemplateRow.image_id, [i.id for i in images])
    return tuple(
        ImageInfo(
            id=i.id,
            person_id=i.person_id,
            source=i.source,
            provenance=i.provenance,
            sha256=i.sha256,
            width=i.width,
            height=i.height,
            quality_unified=i.quality_unified,
            created_at=i.created_at,
            capture_date=i.capture_date,
            record_id=i.record_id,
            has_photo=i.thumbnail is not None,
            templates=per_image.get(i.id, 0),
        )
        for i in images
    )


def _detail(s: Session, p: Person) -> PersonDetail:
    images = _image_infos(s, p.id)
    templates = s.scalar(select(func.count()).where(TemplateRow.person_id == p.id)) or 0
    records = s.scalar(select(func.count()).where(Record.person_id == p.id)) or 0
    links = s.scalar(select(func.count()).where(PersonLink.person_id == p.id)) or 0
    merged = tuple(i.external_id for i in lineage.identities(s, p.id) if i.merge_id is not None)
    return PersonDetail(
        id=p.id,
        external_id=p.external_id,
        display_name=p.display_name,
        synthetic=p.synthetic,
        created_at=p.created_at,
        images=len(images),
        templates=int(templates),
        image_list=images,
        records=int(records),
        source_links=int(links),
        merged_from=merged,
    )


def _refuse_open_adjudication(s: Session, person_id: int, what: str) -> None:
    waiting = s.scalar(
        select(AdjudicationRecord.id)
        .where(
            AdjudicationRecord.person_id == person_id,
            AdjudicationRecord.state.in_(_OPEN_ADJUDICATION),
        )
        .limit(1)
    )
    if waiting is not None:
        raise GalleryError(
            f"adjudication {waiting} names person {person_id} and still waits for a second "
            f"confirmation or an override: finish it before {what}",
            code="person.open_adjudication",
            adjudication_id=waiting,
        )


class GalleryAdmin:
    """The gallery-management acts over one store and its gallery (built by the Workspace)."""

    def __init__(self, store: Store, gallery: Gallery) -> None:
        self.store = store
        self.gallery = gallery

    # -- reading ---------------------------------------------------------------------------------

    def find(self, ref: str) -> int:
        """A live person by external id (what lists show) or numeric id; ``person.not_found``
        otherwise (a merged person's old id included: ``fieldid person history`` says where it
        went)."""
        with self.store.read() as s:
            pid = s.scalar(select(Person.id).where(Person.external_id == ref))
            if pid is None and ref.isascii() and ref.isdigit() and len(ref) < 11:
                pid = s.scalar(select(Person.id).where(Person.id == int(ref)))
        if pid is None:
            raise GalleryError(f"no person {ref!r} in the gallery", code="person.not_found")
        return int(pid)

    def list_people(
        self,
        actor: Actor,
        *,
        query: str | None = None,
        synthetic: bool | None = None,
        offset: int = 0,
        limit: int = 50,
        uow: UnitOfWork | None = None,
    ) -> PeoplePage:
        """People by id, ``limit`` from ``offset``; ``query``: a part of the external id or the
        display name (case-insensitive); ``synthetic``: only generated (True) or only real
        (False) people. Audited (``gallery_read``)."""
        require(actor, PERMISSION)
        if offset < 0 or not 1 <= limit <= MAX_LIMIT:
            raise GalleryError(
                f"offset must be 0 or more and limit between 1 and {MAX_LIMIT}",
                code="request.invalid",
            )
        q = _text(query or "", "query")
        with self.store.using(uow) as u:
            s = u.session
            where: list[Any] = []
            if q:
                like = f"%{q.lower()}%"
                where.append(
                    or_(
                        func.lower(Person.external_id).like(like),
                        func.lower(Person.display_name).like(like),
                    )
                )
            if synthetic is not None:
                where.append(Person.synthetic.is_(synthetic))
            total = s.scalar(select(func.count()).select_from(Person).where(*where)) or 0
            rows = list(
                s.scalars(
                    select(Person).where(*where).order_by(Person.id).offset(offset).limit(limit)
                )
            )
            ids = [p.id for p in rows]
            images = _counts(s, EnrollmentImage.person_id, ids)
            templates = _counts(s, TemplateRow.person_id, ids)
            people = tuple(
                PersonSummary(
                    p.id,
                    p.external_id,
                    p.display_name,
                    p.synthetic,
                    p.created_at,
                    images.get(p.id, 0),
                    templates.get(p.id, 0),
                )
                for p in rows
            )
            u.audit(
                "gallery_read",
                operator=actor.name,
                payload={
                    "action": "list",
                    "query": q or None,
                    "synthetic": synthetic,
                    "offset": offset,
                    "shown": len(people),
                    "total": int(total),
                },
            )
        return PeoplePage(people, int(total), offset, limit)

    def show_person(
        self, actor: Actor, person_id: int, *, uow: UnitOfWork | None = None
    ) -> PersonDetail:
        """One person with their enrolled images (metadata, never the bytes). Audited
        (``gallery_read``)."""
        require(actor, PERMISSION)
        with self.store.using(uow) as u:
            detail = _detail(u.session, _person(u.session, person_id))
            u.audit(
                "gallery_read",
                operator=actor.name,
                payload={
                    "action": "show",
                    "person_id": person_id,
                    "external_id": detail.external_id,
                },
            )
        return detail

    # -- correcting ------------------------------------------------------------------------------

    def correct_person(
        self,
        actor: Actor,
        person_id: int,
        *,
        display_name: str,
        reason: str,
        uow: UnitOfWork | None = None,
    ) -> PersonDetail:
        """Correct a person's display name (the external id is the source's key: a source
        corrects it by importing). Audited (``person_correct``) with the old and new value."""
        require(actor, PERMISSION)
        why = _reason(reason)
        name = _text(display_name, "display name")
        if not name:
            raise GalleryError("a display name cannot be empty", code="person.no_change")
        with self.store.using(uow) as u:
            s = u.session
            p = _person(s, person_id, lock=True)
            if p.display_name == name:
                raise GalleryError("the correction changes nothing", code="person.no_change")
            old = p.display_name
            p.display_name = name
            s.flush()
            u.audit(
                "person_correct",
                operator=actor.name,
                payload={
                    "person_id": person_id,
                    "external_id": p.external_id,
                    "changed": {"display_name": {"old": old, "new": name}},
                    "reason": why,
                },
            )
            detail = _detail(s, p)
        return detail

    def correct_image(
        self,
        actor: Actor,
        person_id: int,
        image_id: int,
        *,
        reason: str,
        capture_date: date | None = UNSET,
        provenance: str | None = UNSET,
        move_to: int | None = None,
        uow: UnitOfWork | None = None,
    ) -> ImageInfo:
        """Correct an enrolled image's ``capture_date`` or ``provenance`` (None clears it), or
        move it with its templates to the person it really shows (``move_to``). Audited
        (``image_correct``) with the old and new values."""
        require(actor, PERMISSION)
        why = _reason(reason)
        with self.store.using(uow) as u:
            s = u.session
            img = _image(s, person_id, image_id, lock=True)
            changed: dict[str, dict[str, Any]] = {}
            if capture_date is not UNSET and capture_date != img.capture_date:
                changed["capture_date"] = {
                    "old": None if img.capture_date is None else img.capture_date.isoformat(),
                    "new": None if capture_date is None else capture_date.isoformat(),
                }
                img.capture_date = capture_date
            if provenance is not UNSET:
                text = None if provenance is None else (_text(provenance, "provenance") or None)
                if text != img.provenance:
                    changed["provenance"] = {"old": img.provenance, "new": text}
                    img.provenance = text
            if move_to is not None and move_to != img.person_id:
                self._move(s, img, move_to)
                changed["person_id"] = {"old": person_id, "new": move_to}
                self.gallery.change(u)  # owners changed: the gallery's revision moves
            if not changed:
                raise GalleryError("the correction changes nothing", code="person.no_change")
            s.flush()
            u.audit(
                "image_correct",
                operator=actor.name,
                payload={
                    "person_id": person_id,
                    "image_id": image_id,
                    "changed": changed,
                    "reason": why,
                },
            )
            (info,) = [i for i in _image_infos(s, img.person_id) if i.id == image_id]
        return info

    def _move(self, s: Session, img: EnrollmentImage, to: int) -> None:
        source = _person(s, img.person_id, lock=True)
        target = s.scalars(select(Person).where(Person.id == to).with_for_update()).first()
        if target is None:
            raise GalleryError(f"no person {to} to move the image to", code="person.not_found")
        if target.synthetic != source.synthetic:
            raise GalleryError(
                "an image cannot move between a synthetic and a real person",
                code="person.synthetic_mix",
            )
        held = s.scalar(
            select(EnrollmentImage.id).where(
                EnrollmentImage.person_id == to, EnrollmentImage.sha256 == img.sha256
            )
        )
        if held is not None:
            raise GalleryError(
                f"person {to} already holds these exact bytes (image {held}): delete this one "
                "instead",
                code="person.image_held",
                image_id=held,
            )
        _refuse_open_adjudication(s, source.id, "moving its images")
        s.execute(
            TemplateRow.__table__.update()  # type: ignore[attr-defined]
            .where(TemplateRow.image_id == img.id)
            .values(person_id=to)
        )
        img.person_id = to

    # -- deleting --------------------------------------------------------------------------------

    def delete_person(
        self, actor: Actor, person_id: int, *, reason: str, uow: UnitOfWork | None = None
    ) -> Deletion:
        """Delete a person with their enrolled images, templates, source links and records (and
        the history of people merged into them); the vector index follows after the commit.
        Audited (``person_delete``) with what went."""
        require(actor, PERMISSION)
        why = _reason(reason)
        with self.store.using(uow) as u:
            s = u.session
            p = _person(s, person_id, lock=True)
            _refuse_open_adjudication(s, person_id, "deleting the person")
            external_id = p.external_id
            images = s.scalar(select(func.count()).where(EnrollmentImage.person_id == person_id))
            records = s.scalar(select(func.count()).where(Record.person_id == person_id)) or 0
            links = s.scalar(select(func.count()).where(PersonLink.person_id == person_id)) or 0
            # Records and links go by the database's cascade too; deleted here explicitly so
            # that no backend's foreign-key setting decides it.
            s.execute(delete(Record).where(Record.person_id == person_id))
            s.execute(delete(PersonLink).where(PersonLink.person_id == person_id))
            s.expunge(p)
            templates = self.gallery.delete_person(u, person_id)
            entry = u.audit(
                "person_delete",
                operator=actor.name,
                payload={
                    "person_id": person_id,
                    "external_id": external_id,
                    "images_removed": int(images or 0),
                    "templates_removed": templates,
                    "records_removed": int(records),
                    "links_removed": int(links),
                    "reason": why,
                },
            )
        self.gallery.flush()
        return Deletion(
            person_id,
            external_id,
            None,
            int(images or 0),
            templates,
            int(records),
            int(links),
            entry.seq,
        )

    def delete_image(
        self,
        actor: Actor,
        person_id: int,
        image_id: int,
        *,
        reason: str,
        uow: UnitOfWork | None = None,
    ) -> Deletion:
        """Delete one enrolled image (its stored face crop) with its templates; the person
        stays, with whatever else they have. Audited (``image_delete``)."""
        require(actor, PERMISSION)
        why = _reason(reason)
        with self.store.using(uow) as u:
            s = u.session
            p = _person(s, person_id, lock=True)
            img = _image(s, person_id, image_id, lock=True)
            sha = img.sha256
            s.expunge(img)
            templates = self.gallery.delete_image(u, image_id)
            entry = u.audit(
                "image_delete",
                operator=actor.name,
                payload={
                    "person_id": person_id,
                    "external_id": p.external_id,
                    "image_id": image_id,
                    "sha256": sha,
                    "templates_removed": templates,
                    "reason": why,
                },
            )
            left = _detail(s, p)
        self.gallery.flush()
        return Deletion(
            person_id, p.external_id, image_id, 1, templates, 0, 0, entry.seq, person=left
        )
