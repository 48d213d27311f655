"""Every table of fieldid, one module per area, all on one declarative :class:`Base`.

=============== ===============================================================================
module          tables
=============== ===============================================================================
``people``      ``gallery_meta``, ``persons``, ``enrollment_images``, ``enrollment_pixels``,
                ``templates``, ``retemplate_jobs``, ``retemplate_failures``
``records``     ``record_sources``, ``person_links``, ``records``, ``record_corrections``,
                ``review_items``, ``person_merges``
``searches``    ``searches``, ``search_candidates``, ``probes``, ``adjudications``, ``exports``,
                ``search_requests``
``access``      ``operators``, ``api_tokens``, ``web_sessions``, ``login_failures``
``location``    ``location_areas``, ``location_approvals``
``audit``       ``audit_entries``, ``audit_head``
``encounters``  ``document_checks``
``keys``        ``keyring``
=============== ===============================================================================

Each module imports only :mod:`fieldid.store.schema.base`; this package imports them all so that
``Base.metadata`` is complete. Migrations live in ``fieldid/store/migrations``.
"""

from fieldid.store.schema.access import ApiToken, LoginFailure, Operator, WebSession
from fieldid.store.schema.audit import AuditEntry, AuditHead
from fieldid.store.schema.base import Base
from fieldid.store.schema.encounters import DocumentCheckRecord
from fieldid.store.schema.keys import KeyringEntry
from fieldid.store.schema.location import LocationApproval, LocationArea
from fieldid.store.schema.people import (
    EnrollmentImage,
    EnrollmentPixels,
    GalleryMeta,
    IndexOutbox,
    Person,
    RetemplateFailure,
    RetemplateJob,
    TemplateRow,
)
from fieldid.store.schema.records import (
    PersonLink,
    PersonMerge,
    Record,
    RecordCorrection,
    ReviewItem,
    Source,
)
from fieldid.store.schema.searches import (
    AdjudicationRecord,
    ExportRecord,
    ProbeRecord,
    SearchCandidate,
    SearchRecord,
    SearchRequest,
)

__all__ = [
    "AdjudicationRecord",
    "ApiToken",
    "AuditEntry",
    "AuditHead",
    "Base",
    "DocumentCheckRecord",
    "EnrollmentImage",
    "EnrollmentPixels",
    "ExportRecord",
    "GalleryMeta",
    "IndexOutbox",
    "KeyringEntry",
    "LocationApproval",
    "LocationArea",
    "LoginFailure",
    "Operator",
    "Person",
    "PersonLink",
    "PersonMerge",
    "ProbeRecord",
    "Record",
    "RecordCorrection",
    "RetemplateFailure",
    "RetemplateJob",
    "ReviewItem",
    "SearchCandidate",
    "SearchRecord",
    "SearchRequest",
    "Source",
    "TemplateRow",
    "WebSession",
]
