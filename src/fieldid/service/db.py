"""The request-scoped unit of work: what handlers read and write through.

``Uow`` is a FastAPI dependency (the full-stack template's ``SessionDep`` is the model): one
:class:`~fieldid.store.UnitOfWork` per request, closed (anything uncommitted rolled back) when
the request ends. Handlers read through ``uow.session`` and hand the unit of work to the service
they call; the service commits the use together with its audit entry before the handler
answers, so an answer never reports a use that was not stored. Handlers never open sessions.
Reads take no lock (on SQLite a deferred transaction); a use begins its write transaction
itself (``Store.using``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from fieldid.service.auth import app_state
from fieldid.store import UnitOfWork


def request_unit(request: Request) -> Iterator[UnitOfWork]:
    uow = app_state(request).workspace.store.unit_of_work(reads_first=True)
    request.state.uow = uow  # the page header's counts read through it too
    try:
        yield uow
    finally:
        uow.close()
        request.state.uow = None  # an error page rendered after this reads on its own


Uow = Annotated[UnitOfWork, Depends(request_unit)]
