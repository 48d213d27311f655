"""A Python client for fieldid's HTTP API (``/api/v1``), returning the service's own typed models.

::

    from fieldid.client import Client, ApiError

    with Client("https://fieldid.example.org", token) as api:   # fieldid token issue NAME
        found = api.search("probe.jpg", purpose="field-identification", case_ref="CASE-17",
                           notice_given=True)
        for c in found.candidates:                               # leads, never identifications
            print(c.rank, c.external_id, c.score, c.meaning)
        try:
            api.adjudicate(found.search_id, "confirm", person_id=found.candidates[0].person_id,
                           reason="…")
        except ApiError as e:
            print(e.code, e.problem.detail)                      # e.g. adjudication.no_reason

Every method is one route. :data:`ROUTES` names each method's HTTP method, path, the form or JSON
fields it may send and the model of its answer; ``tests/test_client.py`` checks every entry against
the server's OpenAPI description, so the client and the API cannot drift apart unnoticed. A
refusal raises :class:`ApiError` carrying the :class:`~fieldid.service.schemas.Problem`
(``code`` is the stable error code).

Authentication is an API token (``Authorization: Bearer``); no cookie or CSRF token is involved.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import httpx
from pydantic import BaseModel

from fieldid.service.schemas import (
    AdjudicationResult,
    Area,
    AreaList,
    DocumentCheckResult,
    DocumentCheckView,
    EnrolledImage,
    EnrollmentResult,
    GalleryDeletion,
    ImportReport,
    IssuedToken,
    LocationApproval,
    LocationApprovalList,
    Me,
    MergeResult,
    OperatorAccount,
    OperatorList,
    PeoplePage,
    PersonDetail,
    Problem,
    QualityCheck,
    ResolvedReviewItem,
    ReviewQueue,
    SearchPage,
    SearchResult,
    SearchView,
    TokenList,
    VerificationResult,
)

__all__ = ["ROUTES", "ApiError", "Client", "Route"]


class _Unset:
    """Marks an argument left out (None has a meaning of its own: clear the field)."""


_UNSET = _Unset()

#: A photo: its bytes, or a path to read them from.
Image = bytes | str | os.PathLike[str]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Route:
    """One API route as this client calls it."""

    method: Literal["GET", "POST", "DELETE", "PATCH", "PUT"]
    path: str
    #: The model of the success answer (None: not JSON, e.g. a JPEG or no content).
    answer: type[BaseModel] | None
    #: How the body goes: ``multipart`` (form fields and files), ``json``, or ``none``.
    body: Literal["multipart", "json", "none"] = "none"
    #: Every form or JSON field (and file) the method may send.
    fields: tuple[str, ...] = ()
    #: Query parameters the method may send.
    query: tuple[str, ...] = ()


#: Each client method's route (the drift test checks each against ``/openapi.json``).
ROUTES: dict[str, Route] = {
    "me": Route("GET", "/api/v1/me", Me),
    "search": Route(
        "POST",
        "/api/v1/searches",
        SearchResult,
        "multipart",
        (
            "image",
            "purpose",
            "case_ref",
            "notice_given",
            "investigation",
            "documents",
            "capture",
            "below_gate_reason",
            "location",
            "document_check",
            "document_reason",
        ),
    ),
    "get_search": Route("GET", "/api/v1/searches/{search_id}", SearchView),
    "searches": Route("GET", "/api/v1/searches", SearchPage, query=("page", "per_page", "status")),
    "probe_photo": Route("GET", "/api/v1/searches/{search_id}/probe", None),
    "candidate_photo": Route("GET", "/api/v1/searches/{search_id}/candidates/{rank}/photo", None),
    "gallery_photo": Route("POST", "/api/v1/gallery/photo", None, "json", ("person", "reason")),
    "review_item_photo": Route("GET", "/api/v1/review-items/{item_id}/photos/{side}", None),
    "verify": Route(
        "POST",
        "/api/v1/verifications",
        VerificationResult,
        "multipart",
        ("image_a", "image_b", "purpose", "case_ref"),
    ),
    "quality": Route("POST", "/api/v1/quality", QualityCheck, "multipart", ("frame", "scale")),
    "adjudicate": Route(
        "POST",
        "/api/v1/searches/{search_id}/adjudications",
        AdjudicationResult,
        "json",
        ("decision", "person_id", "reason", "documents"),
    ),
    "second": Route(
        "POST",
        "/api/v1/searches/{search_id}/adjudications/{adjudication_id}/second",
        AdjudicationResult,
        "json",
        ("decision", "reason"),
    ),
    "override": Route(
        "POST",
        "/api/v1/searches/{search_id}/adjudications/{adjudication_id}/override",
        AdjudicationResult,
        "json",
        ("reason",),
    ),
    "enroll": Route(
        "POST",
        "/api/v1/enrollments",
        EnrollmentResult,
        "multipart",
        ("image", "external_id", "display_name", "source", "synthetic"),
    ),
    "reviews": Route("GET", "/api/v1/reviews", ReviewQueue),
    "resolve_review_item": Route(
        "POST",
        "/api/v1/review-items/{item_id}",
        ResolvedReviewItem,
        "json",
        ("decision", "note"),
    ),
    "merge_review_item": Route(
        "POST", "/api/v1/review-items/{item_id}/merge", MergeResult, "json", ("keep", "reason")
    ),
    "people": Route(
        "GET", "/api/v1/people", PeoplePage, query=("q", "synthetic", "offset", "limit")
    ),
    "person": Route("GET", "/api/v1/people/{person_id}", PersonDetail),
    "correct_person": Route(
        "PATCH", "/api/v1/people/{person_id}", PersonDetail, "json", ("display_name", "reason")
    ),
    "delete_person": Route(
        "DELETE", "/api/v1/people/{person_id}", GalleryDeletion, query=("reason",)
    ),
    "correct_image": Route(
        "PATCH",
        "/api/v1/people/{person_id}/images/{image_id}",
        EnrolledImage,
        "json",
        ("reason", "capture_date", "provenance", "person_id"),
    ),
    "delete_image": Route(
        "DELETE",
        "/api/v1/people/{person_id}/images/{image_id}",
        GalleryDeletion,
        query=("reason",),
    ),
    "users": Route("GET", "/api/v1/admin/users", OperatorList),
    "add_user": Route(
        "POST", "/api/v1/admin/users", OperatorAccount, "json", ("name", "role", "password")
    ),
    "disable_user": Route("POST", "/api/v1/admin/users/{name}/disable", OperatorAccount),
    "enable_user": Route("POST", "/api/v1/admin/users/{name}/enable", OperatorAccount),
    "reset_password": Route(
        "POST", "/api/v1/admin/users/{name}/password", None, "json", ("password",)
    ),
    "tokens": Route("GET", "/api/v1/admin/tokens", TokenList, query=("operator",)),
    "issue_token": Route(
        "POST",
        "/api/v1/admin/tokens",
        IssuedToken,
        "json",
        ("operator", "scopes", "days", "label"),
    ),
    "revoke_token": Route("DELETE", "/api/v1/admin/tokens/{token_id}", None),
    "check_document": Route(
        "POST",
        "/api/v1/document-checks",
        DocumentCheckResult,
        "multipart",
        ("document", "face", "purpose", "case_ref", "chip_sod", "chip_dg1", "chip_dg2"),
    ),
    "document_check": Route("GET", "/api/v1/document-checks/{check_id}", DocumentCheckView),
    "areas": Route("GET", "/api/v1/location/areas", AreaList, query=("include_retired",)),
    "add_area": Route(
        "POST",
        "/api/v1/location/areas",
        Area,
        "json",
        ("name", "kind", "geometry", "starts_at", "ends_at"),
    ),
    "retire_area": Route("DELETE", "/api/v1/location/areas/{area_id}", Area),
    "location_approvals": Route(
        "GET", "/api/v1/location/approvals", LocationApprovalList, query=("state",)
    ),
    "decide_location_approval": Route(
        "POST",
        "/api/v1/location/approvals/{approval_id}",
        LocationApproval,
        "json",
        ("decision", "reason"),
    ),
    "import_records": Route(
        "POST",
        "/api/v1/imports",
        ImportReport,
        "multipart",
        ("file", "source", "kind", "dry_run"),
    ),
}


class ApiError(Exception):
    """The API refused: ``problem`` is its problem+json answer (``code`` is stable)."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(f"[{problem.code}] {problem.detail}")
        self.problem = problem

    @property
    def code(self) -> str:
        return self.problem.code

    @property
    def status(self) -> int:
        return self.problem.status


def _problem(response: httpx.Response) -> Problem:
    try:
        return Problem.model_validate(response.json())
    except ValueError:
        status = response.status_code
        return Problem.model_validate(
            {
                "type": f"/problems/http.{status}",
                "title": response.reason_phrase or "HTTP error",
                "status": status,
                "detail": response.text[:500] or response.reason_phrase,
                "code": f"http.{status}",
            }
        )


def _photo(image: Image, name: str) -> tuple[str, bytes, str]:
    if isinstance(image, bytes):
        return (name, image, "application/octet-stream")
    path = Path(image)
    return (path.name, path.read_bytes(), "application/octet-stream")


def _form(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Client:
    """fieldid's HTTP API. ``base_url``: the server (``https://host``); ``token``: an API token
    (``fieldid token issue NAME``). ``transport`` lets a test or an embedding program route the
    requests elsewhere (e.g. ``httpx.ASGITransport``)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        verify: bool | str = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
            transport=transport,
            verify=verify,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------

    def _send(
        self,
        name: str,
        *,
        path: Mapping[str, int | str] | None = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, bytes, str]] | None = None,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> httpx.Response:
        route = ROUTES[name]
        sent = set(data or {}) | set(files or {}) | set(body or {})
        assert sent <= set(route.fields), f"{name} sends {sent - set(route.fields)}"
        assert set(query or {}) <= set(route.query), f"{name} queries {set(query or {})}"
        url = route.path.format(**(path or {}))
        params = {k: _form(v) for k, v in (query or {}).items() if v is not None}
        form = {k: _form(v) for k, v in (data or {}).items() if v is not None}
        response = self._http.request(
            route.method,
            url,
            params=params or None,
            data=form or None,
            files=dict(files) if files else None,
            json=dict(body) if body is not None else None,
        )
        if response.status_code >= 400:
            raise ApiError(_problem(response))
        return response

    def _answer(self, name: str, model: type[M], **kw: Any) -> M:
        assert ROUTES[name].answer is model
        return model.model_validate(self._send(name, **kw).json())

    # -- who -----------------------------------------------------------------------------------

    def me(self) -> Me:
        """Who the token acts as, what it may do, and the workspace's purposes."""
        return self._answer("me", Me)

    def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI description (``/openapi.json``, needs the token too)."""
        response = self._http.get("/openapi.json")
        if response.status_code >= 400:
            raise ApiError(_problem(response))
        out: dict[str, Any] = response.json()
        return out

    # -- search --------------------------------------------------------------------------------

    def search(
        self,
        image: Image,
        *,
        purpose: str,
        case_ref: str,
        notice_given: bool | None = None,
        investigation: bool = False,
        documents: Sequence[Mapping[str, Any]] | None = None,
        capture: Literal["live", "file"] = "file",
        below_gate_reason: str | None = None,
        location: str | None = None,
        document_check: int | None = None,
        document_reason: str | None = None,
    ) -> SearchResult:
        """Search one face 1:N: leads at or above the threshold, each with its score and what it
        means. ``documents``: those the person presented (``document_type``, ``number``,
        ``issuing_country``, ``name``, ``date_of_birth``, ``nationality``, ``expiry``).
        ``capture``: ``live`` (the camera, the person present) or ``file`` (a supplied photo);
        the gate's refusals are worded for it. ``below_gate_reason``: search a photo below the
        quality gate anyway, as an investigation list labelled low quality (supervisors).
        ``location``: the coarse cell ``"lat,lon"`` (already rounded to the workspace's grid;
        used when ``[location]`` is on). ``document_check``: the document check this search
        follows (:meth:`check_document`); ``document_reason``: why, when that document passed."""
        data: dict[str, Any] = {
            "purpose": purpose,
            "case_ref": case_ref,
            "capture": capture,
            "location": location,
            "document_check": document_check,
            "document_reason": document_reason,
        }
        if below_gate_reason is not None:
            data["below_gate_reason"] = below_gate_reason
        if notice_given is not None:
            data["notice_given"] = notice_given
        if investigation:
            data["investigation"] = True
        if documents:
            data["documents"] = json.dumps([dict(d) for d in documents], default=str)
        return self._answer(
            "search", SearchResult, data=data, files={"image": _photo(image, "probe.jpg")}
        )

    def get_search(self, search_id: str) -> SearchView:
        """A search as persisted, with its candidates and every human adjudication."""
        return self._answer("get_search", SearchView, path={"search_id": search_id})

    def searches(
        self, *, page: int = 1, per_page: int = 50, status: str | None = None
    ) -> SearchPage:
        """The token's account's searches, newest first (a supervisor's: everyone's)."""
        return self._answer(
            "searches",
            SearchPage,
            query={"page": page, "per_page": per_page, "status": status},
        )

    def probe_photo(self, search_id: str) -> bytes:
        """The search's probe photo, downscaled (JPEG); ``probe.purged`` once deleted. Audited
        (``photo_access``)."""
        return self._send("probe_photo", path={"search_id": search_id}).content

    def candidate_photo(self, search_id: str, rank: int) -> bytes:
        """The enrolled photo of the search's candidate at ``rank`` (JPEG), to compare with the
        probe; audited (``photo_access``) with the search."""
        return self._send("candidate_photo", path={"search_id": search_id, "rank": rank}).content

    def gallery_photo(self, person: str, *, reason: str) -> bytes:
        """An enrolled photo outside any search (supervisor, admin), with a written reason
        (15+ characters); audited (``photo_access``). ``person``: external or numeric id."""
        return self._send("gallery_photo", body={"person": person, "reason": reason}).content

    def verify(
        self, image_a: Image, image_b: Image, *, purpose: str, case_ref: str
    ) -> VerificationResult:
        """Compare two photos 1:1: a score for a person to weigh."""
        return self._answer(
            "verify",
            VerificationResult,
            data={"purpose": purpose, "case_ref": case_ref},
            files={"image_a": _photo(image_a, "a.jpg"), "image_b": _photo(image_b, "b.jpg")},
        )

    def quality(self, frame: Image, *, scale: float = 1.0) -> QualityCheck:
        """Quality guidance for one frame (not a search: nothing stored or audited)."""
        return self._answer(
            "quality",
            QualityCheck,
            data={"scale": scale},
            files={"frame": _photo(frame, "frame.jpg")},
        )

    # -- documents first -----------------------------------------------------------------------

    def check_document(
        self,
        *,
        purpose: str,
        case_ref: str,
        document: Image | None = None,
        face: Image | None = None,
        chip_sod: bytes | None = None,
        chip_dg1: bytes | None = None,
        chip_dg2: bytes | None = None,
    ) -> DocumentCheckResult:
        """Check a presented document before any 1:N search: its data page photo's MRZ, its
        chip's files (EF.SOD and DG1, optionally DG2; raw bytes, sent as base64) by passive
        authentication, and the live ``face`` 1:1 with its portrait. ``settled``: the document
        passed and the encounter ends with no gallery search; else a :meth:`search` may follow
        with ``document_check``."""
        files: dict[str, tuple[str, bytes, str]] = {}
        if document is not None:
            files["document"] = _photo(document, "document.jpg")
        if face is not None:
            files["face"] = _photo(face, "face.jpg")
        chip = {"chip_sod": chip_sod, "chip_dg1": chip_dg1, "chip_dg2": chip_dg2}
        data: dict[str, Any] = {"purpose": purpose, "case_ref": case_ref}
        data |= {k: base64.b64encode(v).decode() for k, v in chip.items() if v is not None}
        return self._answer("check_document", DocumentCheckResult, data=data, files=files)

    def document_check(self, check_id: int) -> DocumentCheckView:
        """A recorded document check (the token's own, or any for a supervisor); audited."""
        return self._answer("document_check", DocumentCheckView, path={"check_id": check_id})

    # -- location (sensitive areas and approvals) ------------------------------------------------

    def areas(self, *, include_retired: bool = False) -> AreaList:
        """The sensitive areas (admins, supervisors) and the rule per kind in force."""
        return self._answer("areas", AreaList, query={"include_retired": include_retired})

    def add_area(
        self,
        name: str,
        *,
        kind: Literal["school", "hospital", "place_of_worship", "court", "event"],
        geometry: Mapping[str, Any],
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
    ) -> Area:
        """Add a sensitive area (GeoJSON Polygon or MultiPolygon, lon/lat): an admin any kind, a
        supervisor an ``event`` with its window (audited)."""
        return self._answer(
            "add_area",
            Area,
            body={
                "name": name,
                "kind": kind,
                "geometry": dict(geometry),
                "starts_at": None if starts_at is None else starts_at.isoformat(),
                "ends_at": None if ends_at is None else ends_at.isoformat(),
            },
        )

    def retire_area(self, area_id: int) -> Area:
        """Retire an area: it applies no longer (audited)."""
        return self._answer("retire_area", Area, path={"area_id": area_id})

    def location_approvals(
        self,
        *,
        state: Literal["pending", "approved", "denied", "used", "expired"] | None = None,
    ) -> LocationApprovalList:
        """Requests for approval of searches in sensitive areas, newest first (supervisors)."""
        return self._answer("location_approvals", LocationApprovalList, query={"state": state})

    def decide_location_approval(
        self, approval_id: int, *, decision: Literal["approve", "deny"], reason: str
    ) -> LocationApproval:
        """Approve or refuse a pending request, with a reason (a supervisor other than the
        operator who asked; audited)."""
        return self._answer(
            "decide_location_approval",
            LocationApproval,
            path={"approval_id": approval_id},
            body={"decision": decision, "reason": reason},
        )

    # -- adjudication --------------------------------------------------------------------------

    def adjudicate(
        self,
        search_id: str,
        decision: Literal["confirm", "reject", "not_identified", "inconclusive", "no_lead"],
        *,
        reason: str,
        person_id: int | None = None,
        documents: Sequence[Mapping[str, Any]] = (),
    ) -> AdjudicationResult:
        """Record a human decision on a search (``person_id`` is needed to confirm).
        ``documents``: ``type``, ``number``, ``issuing_country``, ``name``, ``date_of_birth``,
        ``nationality``."""
        return self._answer(
            "adjudicate",
            AdjudicationResult,
            path={"search_id": search_id},
            body={
                "decision": decision,
                "person_id": person_id,
                "reason": reason,
                "documents": [dict(d) for d in documents],
            },
        )

    def second(
        self,
        search_id: str,
        adjudication_id: int,
        *,
        decision: Literal["confirm", "disagree"],
        reason: str,
    ) -> AdjudicationResult:
        """The second person's answer to a confirmation under the two-person rule (a supervisor
        other than the first): ``confirm`` or ``disagree``, with a reason either way."""
        return self._answer(
            "second",
            AdjudicationResult,
            path={"search_id": search_id, "adjudication_id": adjudication_id},
            body={"decision": decision, "reason": reason},
        )

    def override(self, search_id: str, adjudication_id: int, *, reason: str) -> AdjudicationResult:
        """Lift a document-conflict block, with a written reason (a supervisor)."""
        return self._answer(
            "override",
            AdjudicationResult,
            path={"search_id": search_id, "adjudication_id": adjudication_id},
            body={"reason": reason},
        )

    # -- gallery and records -------------------------------------------------------------------

    def enroll(
        self,
        image: Image,
        *,
        external_id: str,
        source: str,
        display_name: str = "",
        synthetic: bool = False,
    ) -> EnrollmentResult:
        """Enrol one image under an identity (admin); the answer names the person id."""
        return self._answer(
            "enroll",
            EnrollmentResult,
            data={
                "external_id": external_id,
                "source": source,
                "display_name": display_name,
                "synthetic": synthetic,
            },
            files={"image": _photo(image, "enrol.jpg")},
        )

    def people(
        self,
        *,
        q: str | None = None,
        synthetic: bool | None = None,
        offset: int = 0,
        limit: int = 50,
    ) -> PeoplePage:
        """People in the gallery by id (admin; audited): ``q`` a part of the external id or
        display name, ``synthetic`` only generated (True) or only real (False) people."""
        return self._answer(
            "people",
            PeoplePage,
            query={"q": q, "synthetic": synthetic, "offset": offset, "limit": limit},
        )

    def person(self, person_id: int) -> PersonDetail:
        """One person with their enrolled images (metadata, never bytes) (admin; audited)."""
        return self._answer("person", PersonDetail, path={"person_id": person_id})

    def correct_person(self, person_id: int, *, display_name: str, reason: str) -> PersonDetail:
        """Correct a person's display name, with a reason (admin; audited)."""
        return self._answer(
            "correct_person",
            PersonDetail,
            path={"person_id": person_id},
            body={"display_name": display_name, "reason": reason},
        )

    def delete_person(self, person_id: int, *, reason: str) -> GalleryDeletion:
        """Delete a person with their images, templates, records and index entries (admin;
        audited): no search afterwards returns them."""
        return self._answer(
            "delete_person",
            GalleryDeletion,
            path={"person_id": person_id},
            query={"reason": reason},
        )

    def correct_image(
        self,
        person_id: int,
        image_id: int,
        *,
        reason: str,
        capture_date: date | _Unset | None = _UNSET,
        provenance: str | _Unset | None = _UNSET,
        move_to: int | None = None,
    ) -> EnrolledImage:
        """Correct an enrolled image's ``capture_date`` or ``provenance`` (None clears it; left
        out: unchanged), or move it with its templates to person ``move_to`` (admin;
        audited)."""
        body: dict[str, Any] = {"reason": reason}
        if not isinstance(capture_date, _Unset):
            body["capture_date"] = None if capture_date is None else capture_date.isoformat()
        if not isinstance(provenance, _Unset):
            body["provenance"] = provenance
        if move_to is not None:
            body["person_id"] = move_to
        return self._answer(
            "correct_image",
            EnrolledImage,
            path={"person_id": person_id, "image_id": image_id},
            body=body,
        )

    def delete_image(self, person_id: int, image_id: int, *, reason: str) -> GalleryDeletion:
        """Delete one enrolled image with its templates and face crop (admin; audited)."""
        return self._answer(
            "delete_image",
            GalleryDeletion,
            path={"person_id": person_id, "image_id": image_id},
            query={"reason": reason},
        )

    def import_records(
        self,
        file: str | os.PathLike[str],
        *,
        source: str,
        kind: str | None = None,
        dry_run: bool = False,
    ) -> ImportReport:
        """Import a records file (.csv, .jsonl, .parquet) from a registered source (admin)."""
        path = Path(file)
        return self._answer(
            "import_records",
            ImportReport,
            data={"source": source, "kind": kind, "dry_run": dry_run},
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
        )

    # -- the access lifecycle (admin) ----------------------------------------------------------

    def users(self) -> OperatorList:
        """Every operator account: role, state, when made and by whom, last login (audited)."""
        return self._answer("users", OperatorList)

    def add_user(self, name: str, *, role: str, password: str) -> OperatorAccount:
        """Add an operator (``officer``, ``supervisor``, ``auditor``, ``admin``; audited)."""
        return self._answer(
            "add_user",
            OperatorAccount,
            body={"name": name, "role": role, "password": password},
        )

    def disable_user(self, name: str) -> OperatorAccount:
        """Disable an operator: sessions end and tokens are revoked at once (audited)."""
        return self._answer("disable_user", OperatorAccount, path={"name": name})

    def enable_user(self, name: str) -> OperatorAccount:
        """Enable a disabled operator; revoked tokens stay revoked (audited)."""
        return self._answer("enable_user", OperatorAccount, path={"name": name})

    def reset_password(self, name: str, *, password: str) -> None:
        """Give an operator a new password; their sessions end (audited)."""
        self._send("reset_password", path={"name": name}, body={"password": password})

    def tokens(self, *, operator: str | None = None) -> TokenList:
        """API tokens (all, or one operator's): never a secret (audited)."""
        return self._answer("tokens", TokenList, query={"operator": operator})

    def issue_token(
        self,
        operator: str,
        *,
        scopes: Sequence[str] | None = None,
        days: int = 90,
        label: str = "",
    ) -> IssuedToken:
        """Issue an API token; its ``secret`` is in this answer only (audited)."""
        return self._answer(
            "issue_token",
            IssuedToken,
            body={
                "operator": operator,
                "scopes": None if scopes is None else list(scopes),
                "days": days,
                "label": label,
            },
        )

    def revoke_token(self, token_id: int) -> None:
        """Revoke a token: it stops working at once (audited)."""
        self._send("revoke_token", path={"token_id": token_id})

    # -- reviews -------------------------------------------------------------------------------

    def reviews(self) -> ReviewQueue:
        """What waits for a supervisor: confirmations and possible duplicates."""
        return self._answer("reviews", ReviewQueue)

    def review_item_photo(self, item_id: int, side: Literal["enrolled", "matched"]) -> bytes:
        """One of a possible duplicate's two enrolled photos (a supervisor; audited)."""
        return self._send("review_item_photo", path={"item_id": item_id, "side": side}).content

    def resolve_review_item(self, item_id: int, *, decision: str, note: str) -> ResolvedReviewItem:
        """Record a decision on a possible duplicate (merges nothing)."""
        return self._answer(
            "resolve_review_item",
            ResolvedReviewItem,
            path={"item_id": item_id},
            body={"decision": decision, "note": note},
        )

    def merge_review_item(self, item_id: int, *, keep: int, reason: str) -> MergeResult:
        """Merge a possible duplicate's two people into ``keep`` (a supervisor, with a reason)."""
        return self._answer(
            "merge_review_item",
            MergeResult,
            path={"item_id": item_id},
            body={"keep": keep, "reason": reason},
        )
