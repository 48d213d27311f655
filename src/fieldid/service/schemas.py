"""The API's answers as typed models: what ``/openapi.json`` declares and what
:class:`fieldid.client.Client` returns.

Contract (version 1 of the API):

- every answer is one of these models; a field keeps its name, type and meaning within ``/api/v1``;
- fields may be *added* (each model allows extra members, so an older client keeps working with a
  newer server); a test fails when the service answers a member no model declares;
- every refusal is a :class:`Problem` (``application/problem+json``, RFC 9457) whose ``code`` is
  fieldid's stable error code (``docs/api.md`` lists them).

Only pydantic is imported here, so a program that uses the client needs nothing of the service.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


def _open_schema(schema: dict[str, Any]) -> None:
    """JSON Schema allows members beyond ``properties`` unless it says otherwise; saying
    ``additionalProperties: true`` adds nothing but noise ("additionalProp1") to Swagger's
    examples."""
    schema.pop("additionalProperties", None)


class Answer(BaseModel):
    """Base of every answer: unknown members are kept (forward compatible), never refused."""

    model_config = ConfigDict(extra="allow", json_schema_extra=_open_schema)


# --- errors --------------------------------------------------------------------------------------


class FieldProblem(Answer):
    """One field of a malformed request (``request.invalid``)."""

    field: str = Field(description="The field, dotted for nested ones (e.g. documents.0.type).")
    message: str


class Guidance(Answer):
    """What to change about a photo (``quality.*`` refusals and ``POST /quality``): ``message``
    in plain words, ``detail`` the measurement behind it, ``text`` both together."""

    code: str = Field(examples=["quality.too_far"])
    message: str = Field(examples=["move closer"])
    detail: str = Field("", examples=["eyes 42 px apart, 60 needed"])
    text: str | None = Field(None, examples=["move closer (eyes 42 px apart, 60 needed)"])


class Problem(Answer):
    """Every refusal (RFC 9457 problem details, ``application/problem+json``).

    Match on ``code``, never on the wording of ``detail``. Members beyond the five standard ones
    depend on the code (e.g. ``guidance`` for ``quality.*``, ``errors`` for ``request.invalid``,
    ``retry_after`` for ``access.throttled``, ``receipt_code`` for a refused search)."""

    type: str = Field(description="A URI reference naming the problem: /problems/<code>.")
    title: str = Field(description="A short summary of the problem family.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong and what to do, for a person to read.")
    code: str = Field(
        description="fieldid's stable error code (family.reason).",
        examples=["quality.too_far", "access.forbidden", "search.not_found"],
    )
    errors: list[FieldProblem] | None = Field(
        None, description="request.invalid: each field that was wrong."
    )
    guidance: list[Guidance] | None = Field(
        None, description="quality.*: what to change about the photo, most useful first."
    )
    receipt_code: str | None = Field(
        None, description="A refused search: the receipt code given to the person photographed."
    )
    search_id: str | None = Field(
        None, description="A refused search: the attempt as recorded (GET /api/v1/searches/{id})."
    )
    retry_after: int | None = Field(
        None, description="access.throttled: seconds to wait (also the Retry-After header)."
    )


# --- shared parts --------------------------------------------------------------------------------


class QualityMeasure(Answer):
    value: float = Field(description="The measure's native value, in ``unit``.")
    unit: str
    score: int = Field(description="0-100: how acceptable the value is for recognition.")


class Quality(Answer):
    """A photo's quality: one unified score, its band and every measure."""

    unified: int = Field(description="0-100.")
    band: str = Field(description="good | fair | poor (the calibration's quality bands).")
    measures: dict[str, QualityMeasure]


class GallerySize(Answer):
    persons: int
    templates: int


class ThresholdInForce(Answer):
    """The threshold a search used and how it was set (all null when it was not recorded)."""

    value: float | None = None
    how: str | None = Field(None, description="configured | target_fpir")
    target_fpir: float | None = None
    gallery_size: int | None = None
    band: str | None = None
    calibration: str | None = None
    fpir_estimate: float | None = None
    fmr: float | None = None
    text: str | None = None


class SearchLinks(Answer):
    """Where a search's resources and pages are (paths on this server)."""

    self: str
    probe: str
    adjudications: str
    page: str
    outcome: str
    receipt: str


class RecordCitation(Answer):
    """How a statement or a flag names a record."""

    record_id: int
    source: str
    kind: str
    date: str | None = None


class CitedValue(RecordCitation):
    value: Any = None


class IdentityRecord(Answer):
    """One record from a record source, as the source stated it."""

    record_id: int
    kind: str
    source: str
    date: str | None = None
    source_record_id: str
    fields: dict[str, Any]
    imported_at: str
    corrected: bool
    synthetic: bool


class SourceRecords(Answer):
    """A source's records of one person, most recent first."""

    source: str
    source_kind: str
    authority: str | None = None
    records: list[IdentityRecord]


class Statement(RecordCitation):
    """One record in a sentence, with its source and date."""

    text: str


class ConflictValue(Answer):
    value: Any = None
    records: list[RecordCitation]


class RecordConflict(Answer):
    """Records that disagree: ``sources_disagree`` (``values``) or ``later_record_differs``
    (``earlier``, ``later`` of one ``source``)."""

    rule: str
    field: str
    values: list[ConflictValue] | None = None
    source: str | None = None
    earlier: CitedValue | None = None
    later: CitedValue | None = None
    note: str | None = None


class DocumentComparison(Answer):
    """A presented document's field compared with a candidate's records: a conflict (``rule``
    ``presented_document_differs``, each record with its ``value``) or an agreement."""

    document: int = Field(description="Index of the presented document (from 0).")
    field: str
    presented: str | None = None
    rule: str | None = None
    records: list[CitedValue]


class BelowGate(Answer):
    """An investigation list run on a photo below the quality gate: the reason a supervisor gave
    and every finding of the gate (labelled low quality wherever the list is shown)."""

    reason: str
    guidance: list[Guidance]


class Refusal(Answer):
    """Why an attempt was refused and what to do (the photo was compared with nothing)."""

    code: str
    message: str
    guidance: list[Guidance]
    capture: str | None = Field(None, description="live | file")
    next_step: str
    quality_refusal: bool


#: How a presented document's fields were obtained, weakest first (``none``: read, but neither
#: the check digits nor the chip held).
Evidence = Literal["none", "typed", "mrz_read", "chip_verified"]


class PresentedDocument(Answer):
    """A document the person presented, as recorded (its number only as a keyed hash)."""

    document_type: str
    number_hash: str | None = None
    issuing_country: str | None = None
    name: str | None = None
    date_of_birth: str | None = None
    nationality: str | None = None
    expiry: str | None = None
    evidence: Evidence = Field(
        "typed",
        description="typed (by an officer), mrz_read (every check digit held), chip_verified "
        "(passive authentication) or none (POST /api/v1/document-checks).",
    )
    conflicts_with_ranks: list[int] = Field(
        default_factory=list, description="Ranks of candidates whose records it conflicts with."
    )


# --- search --------------------------------------------------------------------------------------


class Candidate(Answer):
    """A lead: a gallery entry at or above the threshold (or, in an investigation list, among the
    highest scores), with what its score means. Never an identification."""

    rank: int
    person_id: int
    external_id: str
    display_name: str
    synthetic: bool
    score: float
    quality_band: str
    above_threshold: bool
    fmr: float | None = Field(None, description="False match rate per comparison at this score.")
    expected_false_at_or_above: float | None = None
    fpir_at_score: float | None = None
    one_search_in: float | None = None
    extrapolated: bool | None = None
    rates_are_bounds: bool | None = None
    rates_band: str | None = None
    meaning: str = Field(description="What the score means at this gallery size, in words.")
    rates_unavailable: str | None = None
    records: list[SourceRecords]
    summary: list[Statement]
    conflicts: list[RecordConflict]
    presented_document_conflicts: list[DocumentComparison]
    presented_document_agreements: list[DocumentComparison]


class SearchResult(Answer):
    """The answer to ``POST /api/v1/searches``: leads for a person to adjudicate."""

    search_id: str = Field(
        description="The search's opaque public id (GET /api/v1/searches/{search_id})."
    )
    audit_seq: int = Field(description="The search's audit entry (its seq).")
    receipt_code: str = Field(description="The code on the receipt for the person photographed.")
    capture: Literal["live", "file"] | None = Field(
        None,
        description="Where the probe came from: live (the camera) or file (a supplied photo); "
        "fieldid cannot tell a photo of a photo from a live person.",
    )
    capture_text: str | None = Field(None, description="What the capture source means, in words.")
    notice: str
    list_kind: str = Field(description="candidates | investigation")
    list_label: str
    operator: str
    purpose: str
    case_ref: str
    notice_given: bool | None = None
    at: str
    model: str
    threshold: float
    threshold_in_force: ThresholdInForce | None = None
    calibration: str | None = None
    rates_unavailable: str | None = None
    gallery: GallerySize
    faces_in_frame: int
    quality: Quality
    training: bool
    presented_documents: list[PresentedDocument]
    candidates: list[Candidate]
    timings_ms: dict[str, float]
    server_ms: float
    below_gate: BelowGate | None = None
    low_quality: bool = Field(False, description="An investigation list below the quality gate.")
    replayed: bool = Field(
        False,
        description="Always false here: a repeated Idempotency-Key answers the search as "
        "persisted (SearchView) with replayed: true.",
    )
    links: SearchLinks


class ProbeState(Answer):
    """Whether the probe photo is still held: ``held``, ``purged`` (retention) or
    ``never_kept`` (a refused search)."""

    available: bool
    state: str
    state_text: str | None = None
    purged_at: str | None = None


class StatementBySource(Answer):
    record_id: int
    date: str | None = None
    kind: str | None = None
    text: str
    in_conflict: bool
    corrected: bool | None = None
    synthetic: bool | None = None


class StatementsBySource(Answer):
    source: str
    authority: str | None = None
    records: list[StatementBySource]


class SearchCandidate(Answer):
    """A candidate of a persisted search. ``person_id`` is who it was listed as; after a merge,
    ``current_person_id`` is who holds that identity now."""

    rank: int
    person_id: int
    current_person_id: int | None = None
    merged_into: int | None = None
    external_id: str
    display_name: str
    synthetic: bool | None = None
    in_gallery: bool
    score: float
    above_threshold: bool
    fmr: float | None = None
    rate_text: str | None = Field(None, description="What the score meant when it was made.")
    records: list[SourceRecords]
    summary: list[Statement]
    conflicts: list[RecordConflict]
    presented_document_conflicts: list[DocumentComparison]
    presented_document_agreements: list[DocumentComparison]
    by_source: list[StatementsBySource]
    conflict_texts: list[str]
    document_conflict_texts: list[str]
    ruled_out: dict[str, Any] | None = Field(
        None, description="The final rejection that ruled this lead out (None: not ruled out)."
    )
    photo: str | None = Field(
        None, description="The enrolled photo's route (GET; an audited use of a face)."
    )


class Adjudication(Answer):
    """A human decision on a search. Only a final ``confirm`` records an identification, and only
    as "confirmed by <operator> (human adjudication)"."""

    adjudication_id: int
    search_id: str
    person_id: int | None = None
    decision: str = Field(
        description="confirm | reject (one lead) | not_identified | inconclusive | no_lead "
        "(closing the search)"
    )
    state: str = Field(
        description="final | pending_second | blocked_conflict | disagreed | withdrawn"
    )
    state_text: str | None = None
    by: str
    by_role: str
    at: str | None = None
    reason: str
    documents: list[dict[str, str]]
    conflicts: list[str]
    second_by: str | None = None
    second_at: str | None = None
    second_decision: str | None = Field(None, description="confirm | disagree (two-person rule)")
    second_reason: str | None = None
    override_by: str | None = None
    override_reason: str | None = None
    override_at: str | None = None
    audit_seq: int | None = None
    summary: str
    links: dict[str, str] | None = Field(
        None, description="second (the two-person answer) and override, where they apply."
    )


class LocationCell(Answer):
    """A coarse cell: its centre, rounded to ``grid_deg`` on the phone."""

    lat: float
    lon: float
    grid_deg: float


AreaKind = Literal["school", "hospital", "place_of_worship", "court", "event"]


class AreaRef(Answer):
    """How a search or an approval names a sensitive area."""

    id: int
    name: str
    kind: AreaKind


class SearchLocation(Answer):
    """Where a search was asked from, as kept (only when ``[location]`` was on)."""

    cell: LocationCell | None = Field(None, description="None: not sent (and not required).")
    areas: list[AreaRef] = Field(description="The sensitive areas the cell lay in.")
    approval_id: int | None = Field(None, description="The supervisor's approval it used.")
    text: str = Field(description="All of it in words.")


class SearchView(Answer):
    """A search as persisted (``GET /api/v1/searches/{id}``): who, why, the probe's state, the
    candidates and every human adjudication."""

    search_id: str = Field(description="The search's opaque public id.")
    audit_seq: int = Field(description="The search's audit entry (its seq).")
    receipt_code: str
    capture: Literal["live", "file"] | None = Field(
        None,
        description="Where the probe came from: live (the camera) or file (a supplied photo); "
        "fieldid cannot tell a photo of a photo from a live person.",
    )
    capture_text: str | None = Field(None, description="What the capture source means, in words.")
    notice: str
    operator: str
    purpose: str
    case_ref: str
    notice_given: bool | None = None
    at: str | None = None
    model: str
    threshold: float | None = None
    gallery: GallerySize
    outcome: str = Field(
        description="candidates | no_candidate_above_threshold | investigation_list | refused"
    )
    refusal_code: str | None = None
    status_text: str | None = Field(None, description="The search's state in words.")
    status: str = Field(
        description="open | awaiting_second | blocked_conflict | identified | not_identified | "
        "inconclusive | no_lead | refused"
    )
    closed_at: str | None = None
    faces_in_frame: int | None = None
    list_kind: str
    list_label: str
    training: bool
    threshold_in_force: ThresholdInForce
    threshold_text: str | None = None
    rates_unavailable: str | None = None
    documents_at_search: list[PresentedDocument]
    quality: Quality | None = None
    probe: ProbeState
    candidates: list[SearchCandidate]
    adjudications: list[Adjudication]
    documents_presented: list[dict[str, str]]
    refusal: Refusal | None = None
    below_gate: BelowGate | None = None
    low_quality: bool = False
    replayed: bool | None = Field(
        None, description="true when this answers a repeated Idempotency-Key (POST /searches)."
    )
    links: SearchLinks
    location: SearchLocation | None = Field(
        None, description="Where it was asked from (absent for a search made with location off)."
    )


class SearchSummary(Answer):
    """One row of ``GET /api/v1/searches``."""

    search_id: str
    at: str | None = None
    operator: str
    purpose: str
    case_ref: str
    outcome: str
    status: str
    waiting: str | None = None
    status_text: str
    candidates: int
    list_kind: str
    training: bool
    receipt_code: str
    links: SearchLinks


class SearchPage(Answer):
    searches: list[SearchSummary]
    page: int
    per_page: int
    total: int
    pages: int
    scope: str = Field(description="own | all (supervisors)")
    status: str | None = None


class AdjudicationResult(Answer):
    """The decision recorded and the search as it now stands."""

    adjudication: Adjudication
    search: SearchView


# --- verification, quality -----------------------------------------------------------------------


class VerificationResult(Answer):
    """A 1:1 comparison: a similarity score for a person to weigh, not an identification."""

    audit_seq: int = Field(description="The verification's audit entry (its seq).")
    notice: str
    model: str
    score: float
    threshold: float
    threshold_set_by: str = Field(description="configured | verify_target_fmr")
    above_threshold: bool
    fmr: float | None = None
    extrapolated: bool | None = None
    meaning: str
    calibration: str | None = None
    rates_unavailable: str | None = None
    quality_a: Quality
    quality_b: Quality


class FaceBox(Answer):
    box: list[float] = Field(description="left, top, width, height in frame pixels.")
    inter_eye_px_at_capture: float


class FrameSize(Answer):
    width: int
    height: int


class QualityCheck(Answer):
    """Live guidance for one camera frame (not a search: nothing stored or audited)."""

    face: FaceBox | None = None
    passes: bool
    guidance: list[Guidance]
    quality: Quality | None = None
    frame: FrameSize


# --- session -------------------------------------------------------------------------------------


class CaptureSettings(Answer):
    width: int
    height: int
    guidance_width: int
    guidance_fps: float


class MeLocation(Answer):
    """The workspace's ``[location]``: whether searches carry a coarse cell, and its size."""

    enabled: bool
    grid_deg: float = Field(description="The cell size the phone rounds to, in degrees.")
    required: bool = Field(description="Whether a search without a location is refused.")


class Me(Answer):
    operator: str
    role: str
    via: str = Field(description="session | token")
    may: list[str] = Field(description="The actions this principal may take.")
    purposes: list[str]
    notice_required: bool
    capture: CaptureSettings
    location: MeLocation


# --- reviews -------------------------------------------------------------------------------------


class WaitingCandidate(Answer):
    person_id: int
    external_id: str | None = None
    display_name: str | None = None
    synthetic: bool | None = None
    rank: int | None = None
    score: float | None = None


class WaitingAdjudication(Answer):
    """A confirmation waiting for a supervisor (second person, or a document-conflict block)."""

    adjudication_id: int
    search_id: str
    state: str
    state_text: str
    decision: str
    by: str
    by_role: str
    at: str | None = None
    reason: str
    conflicts: list[str]
    override_by: str | None = None
    search_operator: str
    purpose: str
    case_ref: str
    training: bool
    candidate: WaitingCandidate | None = None
    links: dict[str, str]


class ReviewPerson(Answer):
    person_id: int | None = None
    external_id: str | None = None
    display_name: str | None = None
    synthetic: bool | None = None
    in_gallery: bool
    has_photo: bool
    photo: str | None = None


class ReviewItem(Answer):
    """A possible duplicate found at enrollment, or a decision recorded on one."""

    id: int
    kind: str
    state: str
    person_id: int | None = None
    person_external_id: str | None = None
    other_person_id: int | None = None
    other_person_external_id: str | None = None
    image_id: int | None = None
    score: float | None = None
    detail: dict[str, Any]
    created_at: str | None = None
    decision: str | None = None
    note: str | None = None
    resolved_by: str | None = None
    resolved_at: str | None = None


class OpenReviewItem(ReviewItem):
    enrolled: ReviewPerson
    matched: ReviewPerson
    links: dict[str, str]


class ResolvedReviewItem(ReviewItem):
    merged: bool = Field(description="Always false: recording a decision merges nothing.")
    notice: str


class ReviewCounts(Answer):
    adjudications: int
    review_items: int
    total: int


class ReviewQueue(Answer):
    """What waits for a supervisor (``GET /api/v1/reviews``)."""

    adjudications: list[WaitingAdjudication]
    own_adjudications_waiting: list[WaitingAdjudication]
    review_items: list[OpenReviewItem]
    counts: ReviewCounts
    decisions: list[str]
    notice: str


class MergeResult(Answer):
    """What a merge of two people did."""

    merge_id: int
    kept_person_id: int
    kept_external_id: str
    merged_person_id: int
    merged_external_id: str
    merged_display_name: str
    synthetic: bool
    images_moved: int
    images_dropped: int
    templates_moved: int
    templates_dropped: int
    records_moved: int
    links_moved: int
    review_item: int | None = None
    review_items_repointed: list[int]
    by: str
    role: str
    at: str
    reason: str
    audit_seq: int
    index_carried: bool


# --- gallery -------------------------------------------------------------------------------------


class EnrollmentResult(Answer):
    """The answer to ``POST /api/v1/enrollments``: the person the image is enrolled under."""

    person_id: int = Field(description="The person the image is enrolled under (new or existing).")
    external_id: str
    enrolled: int = Field(description="1 when the image was enrolled now, else 0.")
    already_enrolled: int = Field(description="1 when these exact bytes were enrolled before.")
    new_person: bool = Field(description="Whether this enrollment created the person.")
    possible_duplicates: list[int] = Field(
        default_factory=list,
        description="Review items opened: the image matched a different person very closely.",
    )
    gallery: GallerySize


class PersonSummary(Answer):
    """A person in the gallery (``GET /api/v1/people``)."""

    id: int
    external_id: str = Field(description="The source's identity key.")
    display_name: str
    synthetic: bool = Field(description="Generated data (demo, tests, distractors).")
    created_at: str
    images: int = Field(description="Enrolled images.")
    templates: int = Field(description="Face templates (searchable); 0: the person is never found.")


class PeoplePage(Answer):
    people: list[PersonSummary]
    total: int = Field(description="People matching the filter.")
    offset: int
    limit: int


class EnrolledImage(Answer):
    """An enrolled image as stored: never its bytes (a photo is served only by an audited use)."""

    id: int
    person_id: int
    source: str = Field(description="Where the image came from (path or URI given at enrollment).")
    provenance: str | None = None
    sha256: str
    width: int
    height: int
    quality_unified: int
    created_at: str
    capture_date: str | None = None
    record_id: int | None = Field(None, description="The identity record it came with.")
    has_photo: bool = Field(description="Whether a face crop is kept for display.")
    templates: int


class PersonDetail(PersonSummary):
    """A person with their enrolled images (``GET /api/v1/people/{person_id}``)."""

    image_list: list[EnrolledImage]
    records: int = Field(description="Identity records about the person.")
    source_links: int = Field(description="Source subject keys linked to the person.")
    merged_from: list[str] = Field(
        default_factory=list, description="External ids of people merged into this one."
    )


class GalleryDeletion(Answer):
    """What a deletion removed (the templates are gone from the vector index too)."""

    person_id: int
    external_id: str
    image_id: int | None = Field(None, description="The image deleted (an image deletion).")
    images_removed: int
    templates_removed: int
    records_removed: int
    links_removed: int
    audit_seq: int = Field(description="The audit entry that records the deletion.")
    person: PersonDetail | None = Field(
        None, description="The person as left after an image deletion (None: person deleted)."
    )


class OperatorAccount(Answer):
    """An operator account (``/api/v1/admin/users``)."""

    name: str
    role: str
    disabled: bool
    created_at: str
    created_by: str | None = None
    last_login_at: str | None = None
    tokens_revoked: list[int] | None = Field(
        None, description="Disabling: the ids of the tokens it revoked."
    )


class OperatorList(Answer):
    users: list[OperatorAccount]


class TokenInfo(Answer):
    """An API token as listed: never its secret."""

    id: int
    operator: str
    label: str
    scopes: list[str]
    created_at: str
    expires_at: str
    revoked_at: str | None = None
    last_used_at: str | None = None
    state: str = Field(description="active | expired | revoked")


class TokenList(Answer):
    tokens: list[TokenInfo]


class IssuedToken(Answer):
    """A new API token: ``secret`` is shown in this answer only."""

    id: int
    operator: str
    scopes: list[str]
    expires_at: str
    secret: str


class RowProblem(Answer):
    line: int
    code: str
    reason: str
    source_record_id: str | None = None


class ImportReport(Answer):
    source: str
    file: str
    format: str
    dry_run: bool
    rows: int
    inserted: int
    updated: int
    unchanged: int
    new_people: int
    corrections_superseded: int
    bad_rows: int
    photos_enrolled: int
    photos_already_enrolled: int
    photo_refusals: int
    possible_duplicates: int
    bad_row_details: list[RowProblem]
    photo_refusal_details: list[RowProblem]
    possible_duplicate_items: list[int]
    unknown_columns: list[str]


# --- location ------------------------------------------------------------------------------------


class Area(AreaRef):
    """A sensitive area (``/api/v1/location/areas``)."""

    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon, lon/lat.")
    starts_at: str | None = Field(None, description="When it applies from (events).")
    ends_at: str | None = Field(None, description="When it stops applying (events).")
    created_by: str
    created_at: str
    retired_at: str | None = None
    active: bool = Field(description="Whether it applies now.")


class AreaList(Answer):
    """The sensitive areas and the rule per kind in force."""

    enabled: bool = Field(description="Whether [location] is on in this workspace.")
    rules: dict[str, Literal["approval", "refuse"]] = Field(
        description="Per kind: a search there needs a supervisor's approval, or is refused."
    )
    areas: list[Area]


class LocationApproval(Answer):
    """A request for a supervisor's approval of a search in a sensitive area, and its decision."""

    approval_id: int
    state: Literal["pending", "approved", "denied", "used", "expired"]
    operator: str = Field(description="The operator who asked (by a refused search).")
    purpose: str
    case_ref: str
    location: LocationCell
    areas: list[AreaRef]
    areas_text: str
    requested_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    expires_at: str | None = Field(None, description="An approval: usable until then.")
    search_id: str | None = Field(None, description="The search that used the approval.")


class LocationApprovalList(Answer):
    approvals: list[LocationApproval]
    approval_minutes: int = Field(description="How long a request or an approval lasts.")


# --- documents first -----------------------------------------------------------------------------


class PortraitComparison(Answer):
    """The live face compared 1:1 with the document's portrait: a score for a person to weigh."""

    notice: str
    model: str
    portrait_source: Literal["data_page", "chip"]
    score: float
    threshold: float
    threshold_set_by: str = Field(description="configured | verify_target_fmr")
    above_threshold: bool
    fmr: float | None = None
    extrapolated: bool | None = None
    meaning: str
    calibration: str | None = None
    rates_unavailable: str | None = None
    portrait_quality: dict[str, Any]
    live_quality: dict[str, Any]
    timings_ms: dict[str, float]


ExpiryState = Literal["valid", "expired", "unknown"]


class DocumentCheckDetail(Answer):
    """What each check of a document found (no image, no data group)."""

    evidence: Evidence
    expiry_state: ExpiryState
    mrz: dict[str, Any] | None = Field(
        None, description="The MRZ as read: lines, fields, check digits, corrections."
    )
    mrz_error: dict[str, Any] | None = Field(None, description="Why the MRZ was not read.")
    chip: dict[str, Any] | None = Field(
        None, description="Passive authentication: verified, reasons, data groups, signer."
    )
    chip_page_conflicts: list[dict[str, Any]]
    face: PortraitComparison | None = None
    face_error: dict[str, Any] | None = Field(None, description="Why the faces were not compared.")
    timings_ms: dict[str, float]


class DocumentCheckLinks(Answer):
    self: str
    receipt: str


class DocumentCheckResult(Answer):
    """The answer to ``POST /api/v1/document-checks``: settled by the document, or not (then a
    1:N search may follow with ``document_check``)."""

    check_id: int
    audit_seq: int
    receipt_code: str
    evidence: Evidence
    presented_document: PresentedDocument | None = Field(
        None, description="The document read, as recorded (None: nothing could be read)."
    )
    passed: bool
    failed_because: list[str] = Field(description="Why it does not settle the encounter.")
    settled: bool
    outcome: Literal["settled_by_document", "open"]
    search_offered: bool
    next: str
    check: DocumentCheckDetail
    server_ms: float
    links: DocumentCheckLinks


class DocumentHeld(Answer):
    """What of the document is still held while the encounter is open."""

    document_image: bool
    chip_data: bool
    purged_at: str | None = None


class DocumentCheckView(Answer):
    """A recorded document check (``GET /api/v1/document-checks/{check_id}``)."""

    check_id: int
    receipt_code: str
    operator: str
    purpose: str
    case_ref: str
    checked_at: str
    evidence: Evidence
    expiry_state: ExpiryState
    presented_document: PresentedDocument | None = None
    checks: dict[str, Any] = Field(description="Each check's state (MRZ, chip, conflicts).")
    face: dict[str, Any] | None = Field(
        None, description="The 1:1 comparison with the portrait, or why there was none."
    )
    passed: bool
    failed_because: list[str]
    status: Literal["open", "settled_by_document", "searched"]
    settled: bool
    search_id: str | None = Field(None, description="The search that followed (its public id).")
    search_reason: str | None = Field(
        None, description="Why a search followed a document that passed."
    )
    held: DocumentHeld
