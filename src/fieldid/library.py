"""fieldid in process: ``fieldid.open_workspace(...)`` for notebooks and batch jobs.

::

    import fieldid

    with fieldid.open_workspace("ws", token=os.environ["FIELDID_TOKEN"]) as fid:
        found = fid.search("probe.jpg", purpose="field-identification", case_ref="CASE-17")
        for c in found.candidates:                    # leads, never identifications
            print(c.rank, c.external_id, round(c.score, 4), c.meaning_text)

The same services the command line and the HTTP API use (the workspace's composition root,
:class:`fieldid.workspace.Workspace`), acting as **one authenticated operator**: an API token
(``token=``, or the ``FIELDID_TOKEN`` environment variable; ``fieldid token issue NAME``) or a
name and password (``user=``, ``password=``; checked and throttled like the web login). What the
operator may do is their role's (and the token's scopes); every use is audited under their name
exactly as on the other surfaces, refusals included. Without credentials nothing opens
(``access.unauthenticated``).

Each method is one use with the services' own answers (``CandidateList``, ``Verification``,
``Adjudication``, ``EnrollmentSummary``, the gallery-management views): ``to_dict()`` gives the
JSON the CLI prints. ``workspace`` is the composition root itself, for reading what these methods
do not cover (``workspace.gallery.size()``, ``workspace.config``); a use made through it
directly is attributed by whoever writes that code, so prefer the methods here.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from fieldid.access import Actor
from fieldid.access.accounts import Accounts, AuthenticationError, require_scoped
from fieldid.adjudication.service import Adjudication
from fieldid.audit import Attribution
from fieldid.candidate import CandidateList
from fieldid.clock import Clock
from fieldid.dataset import LabelledImage
from fieldid.errors import FieldidError
from fieldid.gallery.enroll import EnrollmentSummary
from fieldid.gallery.manage import UNSET, Deletion, ImageInfo, PeoplePage, PersonDetail
from fieldid.records.documents import PresentedDocument
from fieldid.records.importer import ImportReport
from fieldid.search.service import ImageSource, Verification
from fieldid.workspace import Workspace

TOKEN_ENV = "FIELDID_TOKEN"
#: What a password login through this API is recorded as coming from (login throttling, audit).
CLIENT = "library"


@dataclass(frozen=True)
class BatchItem:
    """One probe of :meth:`Fieldid.search_many`: its answer, or the refusal (audited too)."""

    probe: str
    result: CandidateList | None
    error: FieldidError | None


class Fieldid:
    """An open workspace acting as one authenticated operator (see the module docstring)."""

    def __init__(
        self, workspace: Workspace, actor: Actor, scopes: frozenset[str] | None = None
    ) -> None:
        self.workspace = workspace
        #: Who every use is attributed to, in their account's role.
        self.actor = actor
        #: A token's scopes (None: a password login, the role's every permission).
        self.scopes = scopes

    def _may(self, action: str) -> None:
        require_scoped(self.actor, action, self.scopes)

    def _attr(self, purpose: str, case_ref: str) -> Attribution:
        return Attribution(self.actor.name, purpose, case_ref)

    # -- searching -------------------------------------------------------------------------------

    def search(
        self,
        photo: ImageSource,
        *,
        purpose: str,
        case_ref: str,
        top_k: int | None = None,
        investigation: bool = False,
        documents: Sequence[PresentedDocument] = (),
        notice_given: bool | None = None,
        below_gate_reason: str | None = None,
        training: bool = False,
    ) -> CandidateList:
        """Search one face 1:N (a path or the bytes): leads at or above the threshold, each with
        its score and what it means; audited. ``investigation``: the top entries whatever their
        score (a role that permits it)."""
        self._may("search")
        if investigation:
            self._may("investigation")
        return self.workspace.searches.search(
            photo,
            self._attr(purpose, case_ref),
            top_k=top_k,
            investigation=investigation,
            actor=self.actor,
            presented=documents,
            training=training,
            notice_given=notice_given,
            capture="file",
            below_gate_reason=below_gate_reason,
        )

    def search_many(
        self,
        photos: Iterable[ImageSource],
        *,
        purpose: str,
        case_ref: str,
        top_k: int | None = None,
        investigation: bool = False,
    ) -> Iterator[BatchItem]:
        """Search many probes with the models loaded once: one audited search each, answered
        as each ends; a refused probe yields its error and the batch goes on."""
        self._may("search")
        for photo in photos:
            name = "<bytes>" if isinstance(photo, bytes) else str(photo)
            try:
                found = self.search(
                    photo,
                    purpose=purpose,
                    case_ref=case_ref,
                    top_k=top_k,
                    investigation=investigation,
                )
            except FieldidError as e:
                if e.code.startswith("access."):
                    raise
                yield BatchItem(name, None, e)
            else:
                yield BatchItem(name, found, None)

    def verify(
        self, photo_a: ImageSource, photo_b: ImageSource, *, purpose: str, case_ref: str
    ) -> Verification:
        """Compare two photos 1:1: a score for a person to weigh; audited."""
        self._may("verify")
        return self.workspace.searches.verify(photo_a, photo_b, self._attr(purpose, case_ref))

    def adjudicate(
        self,
        search_id: str,
        decision: Literal["confirm", "reject", "not_identified", "inconclusive", "no_lead"],
        *,
        reason: str,
        person_id: int | None = None,
        documents: Sequence[Mapping[str, Any]] = (),
    ) -> Adjudication:
        """Record a human decision on a search (its public id): ``confirm`` or ``reject`` one
        lead (``person_id``), or close it as ``not_identified``, ``inconclusive`` or
        ``no_lead``. Only a confirmation that becomes final records an identification."""
        self._may("adjudicate")
        return self.workspace.adjudicator().adjudicate(
            search_id,
            self.actor,
            decision,
            person_id=person_id,
            reason=reason,
            documents=documents,
        )

    # -- the gallery -----------------------------------------------------------------------------

    def enroll(
        self,
        photos: Iterable[tuple[str | Path, str] | tuple[str | Path, str, str | None]],
        *,
        source: str,
        synthetic: bool = False,
    ) -> EnrollmentSummary:
        """Enrol photos, each ``(path, external_id)`` or ``(path, external_id, display_name)``,
        from the record source ``source`` (admin); audited."""
        self._may("enroll")
        items = [
            LabelledImage(Path(p[0]), p[1], p[2] if len(p) > 2 else None)  # type: ignore[misc]
            for p in photos
        ]
        return self.workspace.enrollment.enroll_images(
            items, operator=self.actor.name, source_name=source, synthetic=synthetic
        )

    def import_records(
        self, path: str | Path, *, source: str, kind: str | None = None, dry_run: bool = False
    ) -> ImportReport:
        """Import a records file (.csv, .jsonl, .parquet) from a registered source (admin)."""
        self._may("import")
        return self.workspace.importer.import_file(
            source,
            Path(path),
            kind=kind,
            dry_run=dry_run,
            operator=self.actor.name,
            actor=self.actor,
        )

    def people(
        self,
        *,
        query: str | None = None,
        synthetic: bool | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> PeoplePage:
        """People in the gallery (admin; audited)."""
        self._may("gallery_manage")
        return self.workspace.gallery_admin.list_people(
            self.actor, query=query, synthetic=synthetic, offset=offset, limit=limit
        )

    def person(self, person: int | str) -> PersonDetail:
        """One person (numeric or external id) with their enrolled images (admin; audited)."""
        self._may("gallery_manage")
        return self.workspace.gallery_admin.show_person(self.actor, self._person(person))

    def correct_person(self, person: int | str, *, display_name: str, reason: str) -> PersonDetail:
        """Correct a person's display name (admin; audited)."""
        self._may("gallery_manage")
        return self.workspace.gallery_admin.correct_person(
            self.actor, self._person(person), display_name=display_name, reason=reason
        )

    def correct_image(
        self,
        person: int | str,
        image_id: int,
        *,
        reason: str,
        capture_date: date | None = UNSET,
        provenance: str | None = UNSET,
        move_to: int | str | None = None,
    ) -> ImageInfo:
        """Correct an enrolled image's capture date or provenance, or move it to the person it
        really shows (admin; audited)."""
        self._may("gallery_manage")
        return self.workspace.gallery_admin.correct_image(
            self.actor,
            self._person(person),
            image_id,
            reason=reason,
            capture_date=capture_date,
            provenance=provenance,
            move_to=None if move_to is None else self._person(move_to),
        )

    def delete_person(self, person: int | str, *, reason: str) -> Deletion:
        """Delete a person with their images, templates, records and index entries (admin;
        audited): no search afterwards returns them."""
        self._may("gallery_manage")
        return self.workspace.gallery_admin.delete_person(
            self.actor, self._person(person), reason=reason
        )

    def delete_image(self, person: int | str, image_id: int, *, reason: str) -> Deletion:
        """Delete one enrolled image with its templates (admin; audited)."""
        self._may("gallery_manage")
        return self.workspace.gallery_admin.delete_image(
            self.actor, self._person(person), image_id, reason=reason
        )

    def _person(self, person: int | str) -> int:
        if isinstance(person, int):
            return person
        return self.workspace.gallery_admin.find(person)

    # -- closing ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the workspace (the vector index is saved, the database released)."""
        self.workspace.close()

    def __enter__(self) -> Fieldid:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_workspace(
    path: str | os.PathLike[str],
    *,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    clock: Clock | None = None,
) -> Fieldid:
    """Open the workspace at ``path`` as an authenticated operator: ``token`` (else the
    ``FIELDID_TOKEN`` environment variable) or ``user`` and ``password``. Raises
    ``workspace.not_found`` for a folder without a workspace and ``access.*`` when the
    credentials do not hold (unknown, expired, revoked, disabled, throttled)."""
    ws = Workspace.open(Path(path), clock=clock)
    try:
        accounts = Accounts(ws.store, ws.clock)
        secret = token if token is not None else os.environ.get(TOKEN_ENV)
        if user is not None or password is not None:
            if not user or not password:
                raise AuthenticationError(
                    "give both user and password (or a token)", code="access.unauthenticated"
                )
            return Fieldid(ws, accounts.authenticate(user, password, client=CLIENT))
        if secret:
            grant = accounts.token(secret)
            return Fieldid(ws, grant.actor, grant.scopes)
        raise AuthenticationError(
            f"fieldid.open_workspace needs an operator: token=… (or {TOKEN_ENV}), or user=… "
            "and password=… (`fieldid token issue NAME` makes a token)",
            code="access.unauthenticated",
        )
    except BaseException:
        ws.close()
        raise
