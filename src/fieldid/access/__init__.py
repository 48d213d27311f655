"""Who may do what: roles, actors and the permission table every surface (CLI, API, web) enforces.

Roles (from the product's users):

- *officer*: searches and adjudicates their own searches;
- *supervisor*: reviews, gives second-person confirmation, overrides a blocked confirmation with a
  written reason; may also search and ask for investigation lists;
- *auditor*: reads the audit log and reports; cannot search;
- *admin*: users, sources, policy, enrollment and import; does not search.

Every surface checks with :func:`require` against :data:`PERMISSIONS`: the API and the pages
(``Need(action)``), the command line (an account's token or password, ``fieldid.cli.auth``) and
the services themselves. No surface compares role names of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from fieldid.errors import AuthorisationError


class Role(StrEnum):
    OFFICER = "officer"
    SUPERVISOR = "supervisor"
    AUDITOR = "auditor"
    ADMIN = "admin"


#: action -> roles allowed to perform it. Every surface checks with :func:`require`.
PERMISSIONS: dict[str, frozenset[Role]] = {
    "search": frozenset({Role.OFFICER, Role.SUPERVISOR}),
    "verify": frozenset({Role.OFFICER, Role.SUPERVISOR}),
    "investigation": frozenset({Role.SUPERVISOR}),
    "adjudicate": frozenset({Role.OFFICER, Role.SUPERVISOR}),
    "second_confirm": frozenset({Role.SUPERVISOR}),
    "override_conflict": frozenset({Role.SUPERVISOR}),
    "review": frozenset({Role.SUPERVISOR}),
    "audit_read": frozenset({Role.AUDITOR, Role.ADMIN}),
    "report": frozenset({Role.AUDITOR, Role.SUPERVISOR, Role.ADMIN}),
    "pia": frozenset({Role.AUDITOR, Role.ADMIN}),
    "redress": frozenset({Role.AUDITOR, Role.ADMIN}),
    "enroll": frozenset({Role.ADMIN}),
    "retemplate": frozenset({Role.ADMIN}),
    "import": frozenset({Role.ADMIN}),
    "admin_users": frozenset({Role.ADMIN}),
    "admin_sources": frozenset({Role.ADMIN}),
    "policy": frozenset({Role.ADMIN}),
    "purge": frozenset({Role.ADMIN}),
    "keys": frozenset({Role.ADMIN}),
    "metrics": frozenset({Role.AUDITOR, Role.ADMIN}),
    "record_correct": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "record_read": frozenset({Role.OFFICER, Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN}),
    #: An enrolled photo outside any search (the roles that manage the gallery), with a reason.
    "gallery_photo": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    #: Measure accuracy against the workspace's own gallery (``fieldid eval --workspace``).
    "evaluate": frozenset({Role.AUDITOR, Role.ADMIN}),
    #: Copy the whole database elsewhere (``fieldid db copy``).
    "db_copy": frozenset({Role.ADMIN}),
    #: Rebuild, move or check the gallery's vector index (``fieldid index``): it reads every
    #: template, and a move writes them to another engine.
    "index": frozenset({Role.ADMIN}),
    #: One's own account: change one's password.
    "account_self": frozenset({Role.OFFICER, Role.SUPERVISOR, Role.AUDITOR, Role.ADMIN}),
    #: List, show, correct and delete people and their enrolled images (``gallery/manage.py``).
    "gallery_manage": frozenset({Role.ADMIN}),
    # sensitive areas (fieldid.location): schools, hospitals, places of worship, courts are
    # loaded by an admin; an event is declared by a supervisor (or an admin) with its window;
    # a search in an area that needs it is approved beforehand by a supervisor.
    "location_areas": frozenset({Role.ADMIN}),
    "location_event": frozenset({Role.SUPERVISOR, Role.ADMIN}),
    "location_approve": frozenset({Role.SUPERVISOR}),
}


@dataclass(frozen=True)
class Actor:
    """An authenticated operator acting in one role."""

    name: str
    role: Role

    def can(self, action: str) -> bool:
        return self.role in PERMISSIONS[action]


def require(actor: Actor, action: str) -> None:
    """Raise ``access.forbidden`` unless the actor's role permits ``action``."""
    if action not in PERMISSIONS:
        raise KeyError(f"unknown action {action!r}")
    if not actor.can(action):
        allowed = sorted(r.value for r in PERMISSIONS[action])
        raise AuthorisationError(
            f"{actor.name} ({actor.role.value}) may not {action.replace('_', ' ')}; "
            f"that needs the role {' or '.join(allowed)}",
            code="access.forbidden",
            action=action,
            role=actor.role.value,
        )
