"""The HTTP service: REST API (``/api/v1``), the officer's web app, OpenAPI docs at ``/docs``.

``create_app`` and ``ServiceSettings`` load on first use, so that importing a light module of
this package (``fieldid.service.schemas``, which :mod:`fieldid.client` uses) does not load the
whole service."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fieldid.service.app import create_app
    from fieldid.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from fieldid.service.app import create_app

        return create_app
    if name == "ServiceSettings":
        from fieldid.service.settings import ServiceSettings

        return ServiceSettings
    raise AttributeError(f"module 'fieldid.service' has no attribute {name!r}")
