"""The HTTP service: REST API (``/api/v1``), the officer's web app, OpenAPI docs at ``/docs``."""

from fieldid.service.app import create_app
from fieldid.service.settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
