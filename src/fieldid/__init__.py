"""fieldid: field identity verification that gives leads, never determinations.

The package follows the data: ``probe`` (intake) → ``detect`` (find and align the face) →
``quality`` (measure and gate) → ``template`` (embed) → ``gallery`` (enrolled templates and the
vector index) → ``search`` (1:N and 1:1) → ``candidate`` (what a search returns) → ``audit``.
``evaluation`` measures the whole chain (FTA, FMR/FNMR, FNIR/FPIR).

In process (notebooks, batch jobs): ``fieldid.open_workspace(path, token=...)`` gives the
workspace's services acting as one authenticated operator (:mod:`fieldid.library`,
``docs/api.md``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fieldid.library import Fieldid, open_workspace

__version__ = "0.1.0"
__all__ = ["Fieldid", "__version__", "open_workspace"]


def __getattr__(name: str) -> Any:
    """``fieldid.open_workspace`` (:mod:`fieldid.library`), imported on first use: importing
    ``fieldid.client`` (or any light module) does not load the models, the database and the
    services."""
    if name in ("open_workspace", "Fieldid"):
        from fieldid import library

        return getattr(library, name)
    raise AttributeError(f"module 'fieldid' has no attribute {name!r}")
