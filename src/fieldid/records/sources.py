"""Record sources: registering them and finding them by name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from fieldid.access import Actor, require
from fieldid.errors import FieldidError
from fieldid.records.kinds import SOURCE_KINDS
from fieldid.store import Store
from fieldid.store.schema import Source


class RecordsError(FieldidError):
    """A records operation was refused (unknown source, bad file, unknown record…)."""

    code = "records.invalid"


@dataclass(frozen=True)
class SourceInfo:
    id: int
    name: str
    kind: str
    authority: str
    refresh: str
    refreshed_at: datetime | None
    synthetic: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "authority": self.authority,
            "refresh": self.refresh,
            "refreshed_at": None if self.refreshed_at is None else self.refreshed_at.isoformat(),
            "synthetic": self.synthetic,
        }


def _info(s: Source) -> SourceInfo:
    return SourceInfo(s.id, s.name, s.kind, s.authority, s.refresh, s.refreshed_at, s.synthetic)


def add_source(
    store: Store,
    name: str,
    *,
    kind: str,
    authority: str,
    refresh: str,
    synthetic: bool = False,
    actor: Actor | None = None,
    operator: str | None = None,
) -> SourceInfo:
    """Register a source. Records can only be imported from a registered source, so where every
    record came from (and who answers for it) is always known."""
    if actor is not None:
        require(actor, "admin_sources")
    if kind not in SOURCE_KINDS:
        raise RecordsError(
            f"unknown source kind {kind!r}; choose one of {', '.join(SOURCE_KINDS)}",
            code="records.source_kind",
        )
    if not name.strip() or not authority.strip() or not refresh.strip():
        raise RecordsError(
            "a source needs a name, an owning authority and how it is refreshed",
            code="records.source_incomplete",
        )
    with store.unit_of_work() as uow:
        s = uow.session
        if s.scalar(select(Source.id).where(Source.name == name)) is not None:
            raise RecordsError(f"source {name!r} exists already", code="records.source_exists")
        src = Source(
            name=name,
            kind=kind,
            authority=authority,
            refresh=refresh,
            synthetic=synthetic,
            created_at=uow.now(),
        )
        s.add(src)
        s.flush()
        info = _info(src)
        uow.audit(
            "config_change",
            operator=operator or (actor.name if actor else "system"),
            payload={"change": "source_add", "source": info.to_dict()},
        )
    return info


def get_source(store: Store, name: str) -> SourceInfo:
    with store.read() as s:
        src = s.scalar(select(Source).where(Source.name == name))
        if src is None:
            known = ", ".join(s.scalars(select(Source.name).order_by(Source.name))) or "none"
            raise RecordsError(
                f"no record source named {name!r} (registered: {known}); register it with "
                f"`fieldid source add {name} --kind ... --authority ... --refresh ...`",
                code="records.unknown_source",
            )
        return _info(src)


def list_sources(store: Store) -> list[SourceInfo]:
    with store.read() as s:
        return [_info(x) for x in s.scalars(select(Source).order_by(Source.name))]
